import { rawServer, scriptedServer } from "../lib/http/testdata/peers.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { refusedPort } from "../lib/testing/ports.ts";
import { assertHelpLists, runTaskIn } from "../lib/testing/tasks.ts";
import {
  formatBytes,
  formatProgress,
  formatTiming,
  OPTIONS,
  parseHeaderOption,
  ProgressMeter,
} from "./client.ts";
import { EXIT_CODES } from "../lib/http/client.ts";
import { type Nginx, startNginx } from "./_nginx.ts";
import { bodyReader, readRequestHead, writeAll } from "../lib/http/mod.ts";
import { createHash } from "node:crypto";

const CLIENT = new URL("./client.ts", import.meta.url).pathname;
const dec = new TextDecoder();
const enc = new TextEncoder();

interface Run {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/** Runs a command, optionally under `unshare -n` (a namespace with no network). */
async function run(
  argv: string[],
  options: { isolated?: boolean; clearEnv?: boolean } = {},
): Promise<Run> {
  const [program, ...args] = options.isolated ? ["unshare", "-n", ...argv] : argv;
  const out = await new Deno.Command(program!, {
    args,
    ...options.clearEnv ? { clearEnv: true, env: { PATH: Deno.env.get("PATH") ?? "" } } : {},
  }).output();
  return { code: out.code, stdout: out.stdout, stderr: dec.decode(out.stderr) };
}

/** Runs the client CLI as `deno task webclient` does, optionally under `unshare -n`. */
function client(args: string[], options: { isolated?: boolean } = {}): Promise<Run> {
  return run([Deno.execPath(), "run", "-A", CLIENT, ...args], options);
}

/**
 * The nginx the client is tested against: one worker, redirects and a
 * generated answer, and an access log of nginx's connection serial number
 * and request count on it, so tests can count connections.
 */
function startClientNginx(root: string): Promise<Nginx> {
  return startNginx(root, {
    workers: 1,
    logFormat: "$connection $connection_requests $request_method $uri $status",
    server: `
    location = /go { return 302 /small.txt; }
    location = /loop { return 301 /loop; }
    location = /chunked { default_type text/plain; return 200 "dynamic"; }`,
  });
}

/** Deterministic bytes, so a comparison proves the body went through intact. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

Deno.test("client fetches from a real nginx: bodies, -o, keep-alive, -L, -I, --fail", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "client_nginx_" });
  await using nginx = await startClientNginx(root);
  const big = pattern(3 * 1024 * 1024 + 17);
  await Deno.writeFile(`${root}/big.bin`, big);
  await Deno.writeTextFile(`${root}/small.txt`, "small file\n");
  await Deno.writeTextFile(`${root}/a.txt`, "A");
  await Deno.writeTextFile(`${root}/b.txt`, "B");
  const outDir = await Deno.makeTempDir({ prefix: "client_out_" });
  try {
    await t.step("a small file to stdout", async () => {
      const r = await client([`${nginx.url}/small.txt`]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(dec.decode(r.stdout), "small file\n");
    });

    await t.step("-o writes a 3 MiB file byte for byte", async () => {
      const r = await client(["-o", `${outDir}/big.bin`, `${nginx.url}/big.bin`]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.length, 0);
      assert(sameBytes(await Deno.readFile(`${outDir}/big.bin`), big), "file differs");
    });

    await t.step("several URLs share one keep-alive connection", async () => {
      const before = (await nginx.log()).length;
      const r = await client([
        "--timing",
        `${nginx.url}/a.txt`,
        `${nginx.url}/b.txt`,
        `${nginx.url}/small.txt`,
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(dec.decode(r.stdout), "ABsmall file\n");
      const lines = (await nginx.log(before + 3)).slice(before);
      assertEquals(lines.length, 3);
      const connections = new Set(lines.map((l) => l.split(" ")[0]));
      assertEquals(connections.size, 1, lines.join("\n"));
      assertEquals(lines.map((l) => l.split(" ")[1]), ["1", "2", "3"]);
      // --timing reports the reuse too.
      assertEquals(r.stderr.match(/connection reused/g)?.length, 2, r.stderr);
    });

    await t.step("-o per URL, in order", async () => {
      const r = await client([
        "-o",
        `${outDir}/a`,
        "-o",
        `${outDir}/b`,
        `${nginx.url}/a.txt`,
        `${nginx.url}/b.txt`,
        `${nginx.url}/small.txt`,
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await Deno.readTextFile(`${outDir}/a`), "A");
      assertEquals(await Deno.readTextFile(`${outDir}/b`), "B");
      assertEquals(dec.decode(r.stdout), "small file\n");
    });

    await t.step("-L follows nginx's 302 on the same connection", async () => {
      const before = (await nginx.log()).length;
      const r = await client(["-L", `${nginx.url}/go`]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(dec.decode(r.stdout), "small file\n");
      const lines = (await nginx.log(before + 2)).slice(before);
      assertEquals(lines.map((l) => l.split(" ").slice(3).join(" ")), [
        "/go 302",
        "/small.txt 200",
      ]);
      assertEquals(new Set(lines.map((l) => l.split(" ")[0])).size, 1);
    });

    await t.step("without -L the redirect body is printed", async () => {
      const r = await client([`${nginx.url}/go`]);
      assertEquals(r.code, 0);
      assert(dec.decode(r.stdout).includes("302 Found"), "nginx's redirect page");
    });

    await t.step("-L on a redirect loop stops at --max-redirs with 47", async () => {
      const r = await client(["-L", "--max-redirs", "3", `${nginx.url}/loop`]);
      assertEquals(r.code, 47);
      assert(r.stderr.includes("more than 3 redirects"), r.stderr);
    });

    await t.step("-I prints the head only", async () => {
      const r = await client(["-I", `${nginx.url}/small.txt`]);
      assertEquals(r.code, 0);
      const text = dec.decode(r.stdout);
      assert(text.startsWith("HTTP/1.1 200 OK\r\n"), text);
      assert(/\r\nContent-Length: 11\r\n/.test(text), text);
      assert(text.endsWith("\r\n\r\n"), "head ends with an empty line");
    });

    await t.step("-i prints the head, then the body", async () => {
      const r = await client(["-i", `${nginx.url}/a.txt`]);
      const text = dec.decode(r.stdout);
      assert(text.startsWith("HTTP/1.1 200 OK\r\n") && text.endsWith("\r\n\r\nA"), text);
    });

    await t.step("a 404 is output normally without --fail, exit 22 with it", async () => {
      const plain = await client([`${nginx.url}/missing`]);
      assertEquals(plain.code, 0);
      assert(dec.decode(plain.stdout).includes("404 Not Found"));
      const failed = await client(["--fail", `${nginx.url}/missing`]);
      assertEquals(failed.code, 22);
      assertEquals(failed.stdout.length, 0);
      assert(failed.stderr.includes("returned error: 404"), failed.stderr);
    });

    await t.step("-v shows both heads on stderr", async () => {
      const r = await client(["-v", `${nginx.url}/a.txt`]);
      assertEquals(r.code, 0);
      assertEquals(dec.decode(r.stdout), "A");
      for (const want of ["> GET /a.txt HTTP/1.1", "> Host: 127.0.0.1:", "< HTTP/1.1 200 OK"]) {
        assert(r.stderr.includes(want), `missing "${want}" in:\n${r.stderr}`);
      }
    });

    await t.step("--timing shows the five marks in order", async () => {
      const r = await client(["--timing", `${nginx.url}/a.txt`]);
      const marks = [
        ...r.stderr.matchAll(/^\*\s+(dns|connect|tls|first byte|total)\s+([\d.]+) ms/gm),
      ];
      assertEquals(marks.map((m) => m[1]), ["dns", "connect", "tls", "first byte", "total"]);
      const [dns, connect, , first, total] = marks.map((m) => Number(m[2]));
      assert(dns! <= connect! && connect! <= first! && first! <= total!, r.stderr);
    });

    await t.step("HEAD and POST reach nginx", async () => {
      const before = (await nginx.log()).length;
      await client(["-X", "HEAD", `${nginx.url}/a.txt`]);
      await client(["-d", "x=1", `${nginx.url}/a.txt`]);
      const lines = (await nginx.log(before + 2)).slice(before);
      // nginx answers a POST to a static file with 405.
      assertEquals(lines.map((l) => l.split(" ").slice(2).join(" ")), [
        "HEAD /a.txt 200",
        "POST /a.txt 405",
      ]);
    });
  } finally {
    await Deno.remove(outDir, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("client sends -X, -H and -d @file as asked", async () => {
  await using server = rawServer((req) =>
    `HTTP/1.1 200 OK\r\nContent-Length: ${req.body.length}\r\n\r\n${req.body}`
  );
  const dir = await Deno.makeTempDir({ prefix: "client_data_" });
  try {
    await Deno.writeTextFile(`${dir}/body.json`, '{"a": 1}\n');
    const r = await client([
      "-X",
      "PUT",
      "-H",
      "Content-Type: application/json",
      "-H",
      "Accept:",
      "-H",
      "X-Empty;",
      "-A",
      "agent/1",
      "-d",
      `@${dir}/body.json`,
      `${server.url}/put`,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(dec.decode(r.stdout), '{"a": 1}\n');
    const h = server.received[0]!.head;
    assertEquals(h.method, "PUT");
    assertEquals(h.headers.get("content-type"), "application/json");
    assertEquals(h.headers.get("content-length"), "9");
    assertEquals(h.headers.has("accept"), false);
    assertEquals(h.headers.get("x-empty"), "");
    assertEquals(h.headers.get("user-agent"), "agent/1");
    const joined = await client(["-d", "a=1", "-d", "b=2", `${server.url}/post`]);
    assertEquals(dec.decode(joined.stdout), "a=1&b=2");
    assertEquals(server.received[1]!.head.method, "POST");
    const missing = await client(["-d", `@${dir}/nope`, `${server.url}/`]);
    assertEquals(missing.code, 26);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs curl with the same arguments, as webclient's reference for exit codes. */
function curl(args: string[], options: { isolated?: boolean } = {}): Promise<Run> {
  // -q skips ~/.curlrc and the bare environment drops any proxy variables, so
  // only the arguments under test decide what curl does.
  return run(["curl", "-q", ...args], { ...options, clearEnv: true });
}

/** Runs webclient and curl with the same arguments side by side. */
async function both(
  args: string[],
  options: { isolated?: boolean } = {},
): Promise<{ ours: Run; theirs: Run }> {
  const [ours, theirs] = await Promise.all([client(args, options), curl(args, options)]);
  return { ours, theirs };
}

/** Replies by request-target; null closes the connection without a reply. */
const REPLIES: Record<string, string | null> = {
  "/ok": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "/404": "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
  "/500": "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
  "/loop": "HTTP/1.1 301 Moved Permanently\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
  "/partial": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nab",
  "/colonless": "HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
  "/empty": null,
};

Deno.test("webclient exits with curl's code for each failure, against the same server", async (t) => {
  await using server = rawServer((req) => REPLIES[req.head.target] ?? null);
  // Reads the request and never answers: the client has to give up on its own.
  await using silent = scriptedServer(async (conn) => {
    const buf = new Uint8Array(65536);
    while (await conn.read(buf) !== null) {
      // Wait for the client to close.
    }
  });
  // Not HTTP at all: an SMTP-like greeting in place of a status line.
  await using smtpish = rawServer(() => "220 ready\r\n\r\n");
  // Answers in plain text at once, so a TLS client's handshake fails instead of
  // waiting for a ServerHello (curl would wait its 300 s connect timeout).
  await using plain = scriptedServer(async (conn) => {
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
  });
  await using ca = await makeTestCa({ prefix: "client_exit_" });
  await using tls = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: ca.cert, key: ca.key, onListen() {} },
    () => new Response("TLS"),
  );
  const https = `https://localhost:${tls.addr.port}/`;
  using reserved = await refusedPort();
  const refused = `http://127.0.0.1:${reserved.port}/`;
  const dir = await Deno.makeTempDir({ prefix: "client_exit_" });
  try {
    // `says`: what webclient's message must tell the user.
    const cases: { name: string; args: string[]; isolated?: boolean; says?: RegExp }[] = [
      { name: "no URL", args: [] },
      { name: "an unknown option", args: ["--bogus", `${server.url}/ok`] },
      { name: "a -m that is not a number", args: ["-m", "soon", `${server.url}/ok`] },
      { name: "an unsupported scheme", args: ["nosuch://127.0.0.1/"] },
      { name: "a malformed URL", args: ["http://[::1/"] },
      // A namespace with no network: the .invalid name (RFC 6761) cannot resolve.
      {
        name: "an unresolvable host",
        args: ["http://nowhere.invalid/"],
        isolated: true,
        says: /^webclient: Cannot resolve host "nowhere\.invalid"/,
      },
      {
        name: "connection refused",
        args: [refused],
        says: /^webclient: Cannot connect to 127\.0\.0\.1/,
      },
      { name: "-m with a server that does not answer", args: ["-m", "0.3", silent.url] },
      { name: "an empty reply", args: [`${server.url}/empty`] },
      { name: "a header line without a colon", args: [`${server.url}/colonless`] },
      { name: "a body shorter than its Content-Length", args: [`${server.url}/partial`] },
      { name: "-f with a 404", args: ["-f", `${server.url}/404`] },
      { name: "-f with a 500", args: ["-f", `${server.url}/500`] },
      { name: "-L past --max-redirs", args: ["-L", "--max-redirs", "3", `${server.url}/loop`] },
      {
        name: "-o into a missing directory",
        args: ["-o", `${dir}/no/such/dir/x`, `${server.url}/ok`],
      },
      { name: "TLS with a CA nobody trusts", args: [https] },
      {
        name: "TLS to a server that speaks plain HTTP",
        args: [`https://127.0.0.1:${plain.port}/`],
      },
      { name: "an unreadable --cacert", args: ["--cacert", `${dir}/missing.pem`, https] },
      {
        name: "a success followed by a failure",
        args: [`${server.url}/ok`, `${server.url}/empty`],
      },
    ];
    for (const c of cases) {
      const { name, args } = c;
      await t.step(name, async () => {
        const { ours, theirs } = await both(args, c);
        const why = `curl ${args.join(" ")}\n  curl: ${theirs.code} ${theirs.stderr.trim()}\n` +
          `  webclient: ${ours.code} ${ours.stderr.trim()}`;
        assert(theirs.code !== 0, `curl succeeded, so the case tests nothing:\n${why}`);
        assertEquals(ours.code, theirs.code, why);
        if (c.says) assertMatch(ours.stderr, c.says);
      });
    }

    // Where webclient differs from curl on purpose; each step checks that the
    // difference is the one described.
    await t.step("differs: -d @missing-file fails where curl sends an empty body", async () => {
      // An empty body in place of the one asked for would change the request
      // silently, so webclient refuses and sends nothing.
      const args = ["-d", `@${dir}/nope`, `${server.url}/ok`];
      const before = server.received.length;
      const theirs = await curl(args);
      assertEquals(theirs.code, 0, theirs.stderr);
      assertMatch(theirs.stderr, /Couldn't read data from file/);
      const sent = server.received.slice(before).map((r) => [r.head.method, r.body]);
      assertEquals(sent, [["POST", ""]]);
      const ours = await client(args);
      assertEquals(ours.code, EXIT_CODES.read, ours.stderr);
      assertEquals(server.received.length, before + 1, "webclient sent nothing");
    });
    await t.step("differs: a reply with no status line is a bad reply, not HTTP/0.9", async () => {
      // curl takes it for HTTP/0.9, which it refuses as an unsupported protocol;
      // webclient never speaks HTTP/0.9, so to it the reply is just malformed.
      const { ours, theirs } = await both([smtpish.url]);
      assertMatch(theirs.stderr, /HTTP\/0\.9 when not allowed/);
      assertEquals(theirs.code, (await curl(["nosuch://127.0.0.1/"])).code, theirs.stderr);
      assertEquals(ours.code, EXIT_CODES.reply, ours.stderr);
    });
    await t.step("differs: a failure is remembered when a later URL succeeds", async () => {
      // curl exits with the last transfer's result; webclient with the last
      // failure's, so a script learns that some URL failed.
      const { ours, theirs } = await both([refused, `${server.url}/ok`]);
      assertEquals(theirs.code, 0, theirs.stderr);
      assertEquals(dec.decode(ours.stdout), "ok");
      assertEquals(ours.code, (await curl([refused])).code, ours.stderr);
    });
    await t.step("differs: ftp:// is an unsupported protocol where curl speaks FTP", async () => {
      // webclient is an HTTP client; curl tries the FTP server and fails to connect.
      const port = new URL(refused).port;
      const { ours, theirs } = await both([`ftp://127.0.0.1:${port}/`]);
      assertEquals(theirs.code, (await curl([refused])).code, theirs.stderr);
      assertEquals(ours.code, (await curl(["nosuch://127.0.0.1/"])).code, ours.stderr);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client speaks HTTPS with --cacert and exits 60 for an untrusted certificate", async () => {
  await using ca = await makeTestCa({ prefix: "client_tls_" });
  using listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: ca.cert, key: ca.key });
  const serve = (async () => {
    for (let k = 0; k < 2; k++) {
      const conn = await listener.accept();
      try {
        const buf = new Uint8Array(4096);
        await conn.read(buf);
        await conn.write(
          new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nTLS"),
        );
      } catch {
        // The untrusting client aborts the handshake.
      } finally {
        conn.close();
      }
    }
  })();
  const url = `https://localhost:${listener.addr.port}/`;
  const ok = await client(["--cacert", ca.caPath, "--timing", url]);
  assertEquals(ok.code, 0, ok.stderr);
  assertEquals(dec.decode(ok.stdout), "TLS");
  const tls = Number(ok.stderr.match(/^\*\s+tls\s+([\d.]+) ms/m)?.[1]);
  assert(tls > 0, ok.stderr);
  const untrusted = await client([url]);
  assertEquals(untrusted.code, 60, untrusted.stderr);
  await serve;
});

Deno.test("webclient --help lists every option with its default and the exit codes", async () => {
  const help = await assertHelpLists("webclient", OPTIONS);
  assertMatch(help, /Exit codes: 0 ok, .* 77 cannot read --cacert\.\n$/s);
});

Deno.test("webclient takes -o, -d @FILE and --cacert from the directory it is run in", async (t) => {
  await using ca = await makeTestCa({ prefix: "client_paths_" });
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: ca.cert, key: ca.key, onListen() {} },
    async (req) => new Response(`${req.method} ${await req.text()}`),
  );
  const url = `https://localhost:${server.addr.port}/`;
  const dir = await Deno.makeTempDir({ prefix: "netkit_webclient_paths_" });
  const webclient = (args: string[]) => runTaskIn(dir, "webclient", args);
  try {
    await Deno.writeTextFile(`${dir}/form.txt`, "a=1");
    await Deno.copyFile(ca.caPath, `${dir}/ca.pem`);
    await t.step("the files are read and written there", async () => {
      const r = await webclient([
        "-s",
        "--cacert",
        "ca.pem",
        "-d",
        "@form.txt",
        "-o",
        "page.html",
        url,
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await Deno.readTextFile(`${dir}/page.html`), "POST a=1");
    });
    await t.step("a missing one is named as typed and as resolved", async () => {
      const r = await webclient(["-d", "@nope.txt", url]);
      assertEquals(r.code, 26, r.stderr);
      assert(
        r.stderr.startsWith(`webclient: Cannot read data file "nope.txt" (${dir}/nope.txt): `),
        r.stderr,
      );
      const ca = await webclient(["--cacert", "nope.pem", url]);
      assertEquals(ca.code, 77, ca.stderr);
      assert(
        ca.stderr.startsWith(`webclient: Cannot read CA file "nope.pem" (${dir}/nope.pem): `),
        ca.stderr,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client formatting helpers", async (t) => {
  await t.step("parseHeaderOption follows curl's -H forms", () => {
    assertEquals(parseHeaderOption("X: 1"), { field: ["X", "1"] });
    assertEquals(parseHeaderOption("X:"), { omit: "X" });
    assertEquals(parseHeaderOption("X;"), { field: ["X", ""] });
    let threw = false;
    try {
      parseHeaderOption("nonsense");
    } catch {
      threw = true;
    }
    assert(threw);
  });
  await t.step("formatBytes", () => {
    assertEquals(
      [0, 1023, 1024, 1536, 5 * 1024 * 1024].map((n) => formatBytes(n)),
      ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB"],
    );
  });
  await t.step("formatProgress with and without a known size", () => {
    assertEquals(
      formatProgress(1024 * 1024, 4 * 1024 * 1024, 2000, 8),
      "[##      ]  25%  1.0 MiB / 4.0 MiB  512.0 KiB/s",
    );
    assertEquals(formatProgress(2048, null, 1000), "2.0 KiB  2.0 KiB/s");
    assertEquals(formatProgress(10, 5, 1000, 4), "[####] 100%  10 B / 5 B  10 B/s");
  });
  await t.step("the progress meter redraws at most 10 times a second", () => {
    // Updates every 0.1 ms for 10 s (a fast transfer), on a fake clock.
    let now = 0;
    const lines: string[] = [];
    const meter = new ProgressMeter(
      { writeSync: (p) => (lines.push(dec.decode(p)), p.length) },
      100_000,
      { now: () => now },
    );
    for (let i = 0; i <= 100_000; i++) {
      now = i / 10;
      meter.update(i);
    }
    assert(lines.length <= 100, `${lines.length} redraws in 10 s`);
    assert(lines.length >= 90, `${lines.length} redraws: the meter must still move`);
    assertMatch(lines.at(-1)!, /^\r\[#+ *\] +9\d%/);
    meter.end();
    assertEquals(lines.at(-1), "\r\x1b[K");
  });

  await t.step("formatTiming", () => {
    const lines = formatTiming({ dns: 0.5, connect: 1, tls: 0, firstByte: 2.25, total: 3 }, true);
    assertEquals(lines.length, 5);
    assertEquals(lines[3], "*   first byte    2.250 ms");
    assert(lines[4]!.endsWith("(connection reused)"));
  });
});

/** SHA-256 of bytes, as hex. */
function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

Deno.test("webclient moves bulk bodies byte for byte (SHA-256), as curl does", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "client_bulk_" });
  // Several buffers' worth and an odd tail, so pieces straddle every boundary.
  const big = pattern(9 * 1024 * 1024 + 4097);
  const digest = sha256(big);
  await Deno.writeFile(`${root}/big.bin`, big);
  await using nginx = await startClientNginx(root);
  // Hashes each request body as it streams in and answers with the digest,
  // the framing fields it saw, and the length.
  await using hasher = scriptedServer(async (conn, reader) => {
    for (;;) {
      const head = await readRequestHead(reader);
      if (head === null) return;
      if (head.expectContinue) await writeAll(conn, enc.encode("HTTP/1.1 100 Continue\r\n\r\n"));
      const hash = createHash("sha256");
      let n = 0;
      for await (const p of bodyReader(reader, head.body)) {
        hash.update(p);
        n += p.length;
      }
      const text = `${head.method} ${head.target} ${n} ${hash.digest("hex")} ${
        head.headers.get("content-length") ?? "-"
      } ${head.headers.get("transfer-encoding") ?? "-"} ${head.headers.get("content-type") ?? "-"}`;
      await writeAll(
        conn,
        enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`),
      );
    }
  });
  try {
    await t.step("a download to a file, pre-sized, is the file nginx sent", async () => {
      for (const [who, runIt] of [["webclient", client], ["curl", curl]] as const) {
        const out = `${root}/${who}.bin`;
        const r = await runIt(["-s", "-o", out, `${nginx.url}/big.bin`]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(sha256(await Deno.readFile(out)), digest, who);
      }
    });
    await t.step("a download to stdout is the file nginx sent", async () => {
      const r = await client(["-s", `${nginx.url}/big.bin`]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(sha256(r.stdout), digest);
    });
    const uploads: [string, string[], string][] = [
      ["-T FILE is a PUT of the file's bytes", ["-T", `${root}/big.bin`], "-"],
      [
        "--data-binary @FILE is a POST of the file's bytes",
        ["--data-binary", `@${root}/big.bin`],
        "application/x-www-form-urlencoded",
      ],
    ];
    for (const [name, args, type] of uploads) {
      await t.step(`${name}, streamed with its Content-Length`, async () => {
        const method = args[0] === "-T" ? "PUT" : "POST";
        const want = `${method} /up ${big.length} ${digest} ${big.length} - ${type}`;
        const { ours, theirs } = await both(["-s", ...args, `${hasher.url}/up`]);
        assertEquals(theirs.code, 0, theirs.stderr);
        assertEquals(dec.decode(theirs.stdout), want, "curl");
        assertEquals(ours.code, 0, ours.stderr);
        assertEquals(dec.decode(ours.stdout), want, "webclient");
      });
    }
    await t.step("-T appends the file's name to a URL that ends in /, as curl", async () => {
      const { ours, theirs } = await both(["-s", "-T", `${root}/big.bin`, `${hasher.url}/dir/`]);
      assertEquals(dec.decode(theirs.stdout).split(" ").slice(0, 2), ["PUT", "/dir/big.bin"]);
      assertEquals(dec.decode(ours.stdout), dec.decode(theirs.stdout));
    });
    await t.step("-T from a pipe has no size to announce: it is sent chunked", async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLIENT, "-s", "-T", "/dev/stdin", `${hasher.url}/pipe`],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(big);
      await writer.close();
      const out = await child.output();
      assertEquals(out.code, 0, dec.decode(out.stderr));
      assertEquals(dec.decode(out.stdout), `PUT /pipe ${big.length} ${digest} - chunked -`);
    });
    await t.step("-d with -T is a usage error", async () => {
      const r = await client(["-d", "x", "-T", `${root}/big.bin`, `${hasher.url}/`]);
      assertEquals(r.code, EXIT_CODES.usage, r.stderr);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a body cut off by the server: exit 18 as curl, the bytes kept or, with --remove-on-error, no file", async (t) => {
  const sent = pattern(3 * 1024 * 1024 + 5);
  // Announces 8 MiB, sends 3 MiB and a bit, then closes.
  await using server = scriptedServer(async (conn, reader) => {
    await readRequestHead(reader);
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\nConnection: close\r\n\r\n";
    await writeAll(conn, enc.encode(head));
    await writeAll(conn, sent);
  });
  const dir = await Deno.makeTempDir({ prefix: "client_cut_" });
  try {
    await t.step("without the option the partial file holds exactly what arrived", async () => {
      const ours = await client(["-s", "-o", `${dir}/ours`, `${server.url}/x`]);
      const theirs = await curl(["-s", "-o", `${dir}/curl`, `${server.url}/x`]);
      assertEquals(theirs.code, EXIT_CODES.partial, theirs.stderr);
      assertEquals(ours.code, theirs.code, ours.stderr);
      assertEquals(sha256(await Deno.readFile(`${dir}/curl`)), sha256(sent));
      assertEquals(sha256(await Deno.readFile(`${dir}/ours`)), sha256(sent));
    });
    await t.step("--remove-on-error leaves no file behind", async () => {
      const args = (out: string) => ["-s", "--remove-on-error", "-o", `${dir}/${out}`, server.url];
      const ours = await client(args("ours2"));
      const theirs = await curl(args("curl2"));
      assertEquals(theirs.code, EXIT_CODES.partial, theirs.stderr);
      assertEquals(ours.code, theirs.code, ours.stderr);
      for (const name of ["curl2", "ours2"]) {
        assertEquals(await Deno.stat(`${dir}/${name}`).then(() => true, () => false), false, name);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
