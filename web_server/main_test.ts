import { assert, assertEquals, assertMatch, assertRejects } from "../lib/testing/assert.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { startTask } from "../lib/testing/http_server.ts";
import { residentBytes } from "../lib/testing/memory.ts";
import { assertHelpLists, runTaskIn } from "../lib/testing/tasks.ts";
import { OPTIONS } from "./main.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);

Deno.test("webserver --help lists every option with its default and the exit codes", async () => {
  const help = await assertHelpLists("webserver", OPTIONS);
  assertMatch(help, /^Usage: deno task webserver \[options\] \[ROOT\]\n/);
  assertMatch(help, /Exit codes: 0 after SIGINT\/SIGTERM, 1 when the server cannot start/);
});

Deno.test("webserver takes ROOT, --cert, --key and --log from the directory it is run in", async () => {
  const dir = await Deno.makeTempDir({ prefix: "netkit_webserver_paths_" });
  try {
    await Deno.writeTextFile(`${dir}/index.html`, "<h1>the user's site</h1>\n");
    await Deno.copyFile(new URL("localhost.crt", TESTDATA), `${dir}/site.crt`);
    await Deno.copyFile(new URL("localhost.key", TESTDATA), `${dir}/site.key`);
    await using server = await startTask("webserver", [
      "-p",
      "0",
      "-w",
      "1",
      "--cert",
      "site.crt",
      "--key",
      "site.key",
      "--log",
      "access.log",
      ".",
    ], { cwd: dir });
    using client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(new URL("ca.crt", TESTDATA))],
    });
    const res = await fetch(`https://localhost:${server.port}/`, { client });
    assertEquals(await res.text(), "<h1>the user's site</h1>\n");
    assertEquals(await server.stop("SIGTERM"), 0);
    // fetch picks h2 by ALPN, and the log names the protocol.
    assertMatch(await Deno.readTextFile(`${dir}/access.log`), /"GET \/ HTTP\/2\.0" 200 /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("webserver that cannot start exits 1 and names the path as typed and resolved", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "netkit_webserver_paths_" });
  try {
    await t.step("a missing ROOT", async () => {
      const r = await runTaskIn(dir, "webserver", ["-p", "0", "site"]);
      assertEquals(r.code, 1, r.stderr);
      assertEquals(
        r.stderr.split(": No such file")[0],
        `webserver: cannot serve "site" (${dir}/site)`,
      );
    });
    await t.step("a missing --cert", async () => {
      const r = await runTaskIn(dir, "webserver", [
        "-p",
        "0",
        "--cert",
        "a.crt",
        "--key",
        "a.key",
        ".",
      ]);
      assertEquals(r.code, 1, r.stderr);
      assert(
        r.stderr.startsWith(`webserver: cannot use --cert "a.crt" (${dir}/a.crt): `),
        r.stderr,
      );
    });
    await t.step("a --log in a missing directory", async () => {
      const r = await runTaskIn(dir, "webserver", ["-p", "0", "--log", "logs/access.log", "."]);
      assertEquals(r.code, 1, r.stderr);
      assert(
        r.stderr.startsWith(
          `webserver: cannot use --log "logs/access.log" (${dir}/logs/access.log): `,
        ),
        r.stderr,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("webserver rejects a --cache-size that is not a size with exit 2", async () => {
  const r = await runTaskIn(Deno.cwd(), "webserver", ["-p", "0", "--cache-size", "lots", "."]);
  assertEquals(r.code, 2, r.stderr);
  assertMatch(r.stderr, /^webserver: invalid size for --cache-size: 'lots'/);
});

Deno.test("webserver rejects an --io-uring other than auto, on or off with exit 2", async () => {
  const r = await runTaskIn(Deno.cwd(), "webserver", ["-p", "0", "--io-uring", "yes", "."]);
  assertEquals(r.code, 2, r.stderr);
  assertMatch(r.stderr, /^webserver: invalid --io-uring 'yes': expected auto, on or off\n$/);
});

Deno.test("webserver reloads --cert and --key on SIGHUP: open connections stay, new ones get the new certificate", async () => {
  await using first = await makeTestCa({ prefix: "netkit_reload_a_" });
  await using second = await makeTestCa({ prefix: "netkit_reload_b_" });
  const dir = await Deno.makeTempDir({ prefix: "netkit_webserver_reload_" });
  try {
    await Deno.writeTextFile(`${dir}/index.html`, "hello\n");
    await Deno.writeTextFile(`${dir}/site.crt`, first.cert);
    await Deno.writeTextFile(`${dir}/site.key`, first.key);
    await using server = await startTask("webserver", [
      "-p",
      "0",
      "--cert",
      "site.crt",
      "--key",
      "site.key",
      "--no-log",
      ".",
    ], { cwd: dir });
    const connect = (ca: string) =>
      Deno.connectTls({
        hostname: "localhost",
        port: server.port,
        caCerts: [ca],
        alpnProtocols: ["http/1.1"],
      });
    const get = async (conn: Deno.TlsConn) => {
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      const buf = new Uint8Array(4096);
      let text = "";
      while (!text.endsWith("hello\n")) {
        const n = await conn.read(buf);
        if (n === null) throw new Error(`closed after ${JSON.stringify(text)}`);
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      return text.split("\r\n")[0];
    };
    using old = await connect(first.caCert);
    assertEquals(await get(old), "HTTP/1.1 200 OK");
    await Deno.writeTextFile(`${dir}/site.crt`, second.cert);
    await Deno.writeTextFile(`${dir}/site.key`, second.key);
    server.signal("SIGHUP");
    while (!server.stderr().includes("reloaded --cert and --key")) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // The open keep-alive connection is served on as before.
    assertEquals(await get(old), "HTTP/1.1 200 OK");
    // New connections get the new certificate: the new CA verifies it, the old one does not.
    // Several, so that every event loop (one per core) is asked.
    for (let i = 0; i < 8; i++) {
      using fresh = await connect(second.caCert);
      assertEquals(await get(fresh), "HTTP/1.1 200 OK");
      await assertRejects(async () => {
        using stale = await connect(first.caCert);
        await stale.handshake();
      });
    }
    assertEquals(await server.stop("SIGTERM"), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("webserver's response cache counts its keys: 4,000 long query strings stay within --cache-size", async () => {
  const root = await Deno.makeTempDir({ prefix: "netkit_webserver_keys_" });
  try {
    await Deno.writeTextFile(`${root}/small.txt`, "hello\n");
    await using server = await startTask("webserver", [
      "-p",
      "0",
      "-w",
      "1",
      "--no-log",
      "--cache-size",
      "1M",
      root,
    ]);
    // Every query string names another entry of the same 6-byte file, with a
    // key of about 8 KB: 2,000 of them are 16 MB of keys.
    let n = 0;
    const round = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const res = await fetch(
          `http://127.0.0.1:${server.port}/small.txt?${n++}-${"k".repeat(8000)}`,
        );
        assertEquals(await res.text(), "hello\n");
      }
    };
    const rss = () => residentBytes(server.pid);
    await round(500); // Past the 1 MiB bound: the cache evicts from here on.
    const sizes = [await rss()];
    for (let r = 0; r < 2; r++) {
      await round(2000);
      sizes.push(await rss());
    }
    // Counting only the 6-byte responses, the cache kept every key: 16 MB a round.
    const grew = Math.min(sizes[1]! - sizes[0]!, sizes[2]! - sizes[1]!);
    assert(grew < 6e6, `RSS grew ${(grew / 1e6).toFixed(1)} MB per 2,000 requests: ${sizes}`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
