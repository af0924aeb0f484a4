import { writeAll } from "../lib/http/mod.ts";
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { startTask } from "../lib/testing/http_server.ts";
import { freePort } from "../lib/testing/ports.ts";
import { assertHelpLists, runTaskIn } from "../lib/testing/tasks.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { rawRequest } from "./_test_util.ts";
import { OPTIONS } from "./main.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

async function waitFor(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`Cannot reach port ${port}: the proxy did not start`);
}

Deno.test("proxy CLI rejects bad options with exit code 2 and a one-line message", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [["--port", "abc"], /^proxy: invalid argument for --port: 'abc'\n$/],
    [
      ["--allow", "10.0.0.0/99"],
      /^proxy: Cannot parse CIDR "10\.0\.0\.0\/99": bad prefix length\n$/,
    ],
    [
      ["--upstream", "ftp://x"],
      /^proxy: invalid --upstream 'ftp:\/\/x': only http:\/\/ and https:\/\/ are supported\n$/,
    ],
    [["--drop-rate", "2"], /^proxy: invalid argument for --drop-rate/],
    [["--cache-dir", "/tmp", "--cache-size", "lots"], /^proxy: invalid size for --cache-size/],
    [["--bogus"], /^proxy: unrecognized option '--bogus'/i],
    [
      ["--cache-control-target", "Bad Name"],
      /^proxy: invalid --cache-control-target 'Bad Name': not a field name\n$/,
    ],
    [["--max-stale", "-1"], /^proxy: invalid argument for --max-stale/],
    [["--stale-if-error", "soon"], /^proxy: invalid argument for --stale-if-error/],
    [["--admin-port", "70000"], /^proxy: invalid argument for --admin-port/],
    [["--workers", "0"], /^proxy: invalid argument for --workers/],
    [
      ["--io-uring", "yes"],
      /^proxy: invalid --io-uring 'yes': expected auto, on or off\n$/,
    ],
    [
      ["--purge-allow", "10.0.0.0/99"],
      /^proxy: Cannot parse CIDR "10\.0\.0\.0\/99": bad prefix length\n$/,
    ],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" "), async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "-p", "0", ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(out.code, 2);
      const err = new TextDecoder().decode(out.stderr);
      assert(message.test(err), err);
    });
  }
});

Deno.test("proxy killed -9 while storing a response never serves that entry after a restart", async () => {
  // An origin that sends a large cacheable body slowly, so the kill lands mid-write.
  const origin = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let requests = 0;
  const serving = (async () => {
    for await (const conn of origin) {
      requests++;
      (async () => {
        try {
          await conn.read(new Uint8Array(4096));
          const size = 4 << 20;
          await writeAll(
            conn,
            new TextEncoder().encode(
              `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: ${size}\r\n\r\n`,
            ),
          );
          const piece = new Uint8Array(64 * 1024).fill(97);
          for (let sent = 0; sent < size; sent += piece.length) {
            await writeAll(conn, piece);
            await new Promise((r) => setTimeout(r, requests === 1 ? 20 : 0));
          }
        } catch {
          // The proxy was killed.
        } finally {
          conn.close();
        }
      })();
    }
  })();
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const upstream = `http://127.0.0.1:${origin.addr.port}`;
  const args = [
    "run",
    "-A",
    MAIN,
    "-p",
    String(port),
    "-u",
    upstream,
    "-d",
    dir,
    "--access-log",
    "none",
  ];
  try {
    const first = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" })
      .spawn();
    await waitFor(port);
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(new TextEncoder().encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buf = new Uint8Array(65536);
    let got = 0;
    while (got < 512 * 1024) got += (await client.read(buf)) ?? Infinity;
    first.kill("SIGKILL");
    await first.status;
    client.close();
    let tmp = 0;
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".tmp")) tmp++;
    assertEquals(tmp, 1, "the interrupted write left its temporary file");

    const second = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" })
      .spawn();
    try {
      await waitFor(port);
      const r = await rawRequest(port, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assertEquals(r?.body.length, 4 << 20);
      assert(
        r?.headers.get("cache-status")?.includes("fwd=uri-miss"),
        r?.headers.get("cache-status") ?? "",
      );
      assertEquals(requests, 2);
      // The entry is committed (synced and renamed) just after the client got the
      // last byte, so the next request may still race it: poll briefly.
      let again = null;
      for (let i = 0; i < 50; i++) {
        again = await rawRequest(port, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if (again?.headers.get("cache-status")?.includes("hit")) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert(
        again?.headers.get("cache-status")?.includes("hit"),
        again?.headers.get("cache-status") ?? "",
      );
      assertEquals(again?.body.length, 4 << 20);
    } finally {
      second.kill("SIGTERM");
      await second.status;
    }
    for await (const e of Deno.readDir(dir)) assert(!e.name.endsWith(".tmp"), e.name);
  } finally {
    origin.close();
    await serving;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proxy --help lists every option with its default and the exit codes", async () => {
  const help = await assertHelpLists("proxy", OPTIONS);
  assertMatch(help, /Exit codes: 0 after SIGINT\/SIGTERM, 1 when the server cannot start/);
});

Deno.test("proxy takes --cache-dir, --access-log and --upstream-ca from the directory it is run in", async () => {
  await using ca = await makeTestCa({ prefix: "proxy_paths_" });
  await using origin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: ca.cert, key: ca.key, onListen() {} },
    () => new Response("from the origin", { headers: { "cache-control": "max-age=600" } }),
  );
  const dir = await Deno.makeTempDir({ prefix: "netkit_proxy_paths_" });
  try {
    await Deno.copyFile(ca.caPath, `${dir}/origin-ca.pem`);
    await using proxy = await startTask("proxy", [
      "-p",
      "0",
      "-u",
      `https://localhost:${origin.addr.port}`,
      "--upstream-ca",
      "origin-ca.pem",
      "--cache-dir",
      "cache",
      "--access-log",
      "access.log",
    ], { cwd: dir });
    const res = await fetch(`http://127.0.0.1:${proxy.port}/page`);
    assertEquals([res.status, await res.text()], [200, "from the origin"]);
    assertEquals(await proxy.stop("SIGTERM"), 0);
    assertMatch(await Deno.readTextFile(`${dir}/access.log`), /GET http.*\/page/);
    const entries = await Array.fromAsync(Deno.readDir(`${dir}/cache`));
    assert(entries.length > 0, "the disk tier is empty");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proxy that cannot open its files exits 1 and names the path as typed and resolved", async () => {
  const dir = await Deno.makeTempDir({ prefix: "netkit_proxy_paths_" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "not a directory");
    // An address no interface has: should the directory be found, the proxy
    // still cannot listen, so the test fails instead of waiting on a server.
    const { code, stderr } = await runTaskIn(dir, "proxy", [
      "-l",
      "203.0.113.1",
      "--cache-dir",
      "file/cache",
    ]);
    assertEquals(code, 1, stderr);
    assert(
      stderr.startsWith(`proxy: cannot use --cache-dir "file/cache" (${dir}/file/cache): `),
      stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proxy that cannot listen exits 1, as every server that cannot start", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "-l", "203.0.113.1", "--access-log", "none"],
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 1, stderr);
  assertMatch(stderr, /^proxy: cannot start: /);
});
