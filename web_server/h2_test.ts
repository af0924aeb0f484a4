/**
 * HTTP/2 end to end: curl over h2 (TLS, ALPN) and h2c (prior knowledge)
 * gets the HTTP/1.1 answers for the shared request corpus and the server's
 * other behaviours; nghttp and h2load drive it; a raw-frame client scripts
 * the known attacks, each closed with its RFC 9113 error code while curl is
 * still served.
 */
import assert from "node:assert/strict";
import { encodeFields } from "../lib/http/h2/hpack.ts";
import { H2_ERROR, H2_PREFACE } from "../lib/http/h2/session.ts";
import type { AccessLogEntry } from "../lib/http/server.ts";
import { connectionNoDelay } from "../lib/rawsock/tcp_listener.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { type CorpusRequest, makeCorpus } from "./_corpus.ts";
import { startCluster } from "./cluster.ts";
import { serveHttp, type ServeHttpOptions } from "./engine.ts";
import { serveDir, type ServeDirOptions } from "./serve.ts";

const decoder = new TextDecoder("latin1");

interface CurlAnswer {
  version: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Runs curl and splits what it printed (`-i`) into status, fields and body. */
async function curl(url: string, request: CorpusRequest, flags: string[]): Promise<CurlAnswer> {
  const [method, , headers] = request;
  const args = ["-s", "-i", "--path-as-is", ...flags];
  args.push(...(method === "HEAD" ? ["-I"] : ["-X", method]));
  for (const [name, value] of Object.entries(headers)) args.push("-H", `${name}: ${value}`);
  const out = await new Deno.Command("curl", { args: [...args, url], stdout: "piped" }).output();
  assert.equal(out.code, 0, `curl ${args.join(" ")} ${url}: exit ${out.code}`);
  const text = decoder.decode(out.stdout);
  const split = text.indexOf("\r\n\r\n");
  const lines = text.slice(0, split).split("\r\n");
  const [version, status] = lines[0]!.split(" ");
  const fields: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    // Connection management is HTTP/1.1's alone (RFC 9113 §8.2.2); the clock differs.
    if (["date", "connection", "keep-alive", "transfer-encoding"].includes(name)) continue;
    fields[name] = line.slice(colon + 1).trim();
  }
  let body = text.slice(split + 4);
  const boundary = /boundary=(\S+)/.exec(fields["content-type"] ?? "")?.[1];
  if (boundary !== undefined) {
    // Each multipart response draws its own boundary.
    body = body.replaceAll(boundary, "BOUNDARY");
    fields["content-type"] = fields["content-type"]!.replace(boundary, "BOUNDARY");
  }
  return { version: version!, status: Number(status), headers: fields, body };
}

/** Serves `root` over TLS (h2 by ALPN) and over plain TCP with h2c; the same options to both. */
async function servers(
  serve: ServeDirOptions & { fsRoot: string },
  options: ServeHttpOptions = {},
) {
  const ca = await makeTestCa({ prefix: "netkit_h2_" });
  const log: AccessLogEntry[] = [];
  const common = {
    hostname: "127.0.0.1",
    port: 0,
    cacheRoot: serve.fsRoot,
    onLog: (e: AccessLogEntry) => log.push(e),
    ...options,
  };
  const tls = serveHttp((req) => serveDir(req, serve), { ...common, cert: ca.cert, key: ca.key });
  const plain = serveHttp((req) => serveDir(req, serve), { ...common, h2c: true });
  return {
    https: `https://localhost:${tls.addr.port}`,
    http: `http://127.0.0.1:${plain.addr.port}`,
    tlsFlags: ["--cacert", ca.caPath],
    plain,
    log,
    async [Symbol.asyncDispose]() {
      await Promise.all([tls.shutdown(), plain.shutdown()]);
      await ca[Symbol.asyncDispose]();
    },
  };
}

/** Asks each request over HTTP/1.1, h2 and h2c and checks the three answers are the same. */
async function sameAnswers(
  t: Deno.TestContext,
  s: Awaited<ReturnType<typeof servers>>,
  requests: CorpusRequest[],
): Promise<void> {
  for (const request of requests) {
    const [method, target, headers] = request;
    await t.step(`${method} ${target} ${JSON.stringify(headers)}`, async () => {
      const h1 = await curl(s.https + target, request, [...s.tlsFlags, "--http1.1"]);
      const h2 = await curl(s.https + target, request, [...s.tlsFlags, "--http2"]);
      const h2c = await curl(s.http + target, request, ["--http2-prior-knowledge"]);
      assert.equal(h1.version, "HTTP/1.1");
      assert.equal(h2.version, "HTTP/2");
      assert.equal(h2c.version, "HTTP/2");
      const strip = ({ status, headers, body }: CurlAnswer) => ({ status, headers, body });
      assert.deepEqual(strip(h2), strip(h1));
      assert.deepEqual(strip(h2c), strip(h1));
    });
  }
}

Deno.test("curl over h2 and h2c gets the HTTP/1.1 answers to the request corpus, twice (the second from the cache)", async (t) => {
  await using corpus = await makeCorpus();
  await using s = await servers({ fsRoot: corpus.root, compression: false });
  await sameAnswers(t, s, corpus.requests);
  await sameAnswers(t, s, corpus.requests);
  await t.step("the access log names the protocol", () => {
    const lines = s.log.map((e) => e.requestLine);
    assert.ok(lines.includes("GET /file.txt HTTP/2.0"), lines.slice(0, 5).join("\n"));
    assert.ok(lines.includes("GET /file.txt HTTP/1.1"));
  });
});

Deno.test("over h2, compression, precompressed files, listings, SPA fallback and the 404 page are those of HTTP/1.1", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_h2_site_" });
  try {
    const text = "the quick brown fox jumps over the lazy dog\n".repeat(200);
    await Deno.writeTextFile(`${root}/big.txt`, text);
    await Deno.writeTextFile(`${root}/pre.js`, "console.log('plain');\n".repeat(100));
    await Deno.writeFile(`${root}/pre.js.gz`, new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
    await Deno.writeTextFile(`${root}/404.html`, "<h1>not here</h1>\n");
    await Deno.mkdir(`${root}/files`);
    await Deno.writeTextFile(`${root}/files/a.txt`, "a");
    await Deno.writeTextFile(`${root}/index.html`, "<h1>app</h1>\n");
    await using s = await servers({ fsRoot: root, spa: true });
    await sameAnswers(t, s, [
      ["GET", "/big.txt", { "Accept-Encoding": "br" }],
      ["GET", "/big.txt", { "Accept-Encoding": "gzip" }],
      ["GET", "/pre.js", { "Accept-Encoding": "gzip" }],
      ["GET", "/files/", {}],
      ["GET", "/files/?sort=size&order=desc", {}],
      ["GET", "/files/", { Accept: "application/json" }],
      ["GET", "/some/route", {}],
      ["GET", "/missing.txt", {}],
    ]);
    await t.step("a compressed body decodes to the file", async () => {
      const out = await new Deno.Command("curl", {
        args: ["-s", "--compressed", "--http2-prior-knowledge", `${s.http}/big.txt`],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(out.stdout), text);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("nghttp and h2load drive the server over h2 and h2c", async (t) => {
  await using corpus = await makeCorpus();
  await using s = await servers({ fsRoot: corpus.root });
  const run = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return decoder.decode(out.stdout) + decoder.decode(out.stderr);
  };
  await t.step("nghttp fetches over h2c and h2, with our SETTINGS", async () => {
    for (
      const url of [`${s.http}/file.txt`, `${s.https.replace("localhost", "127.0.0.1")}/file.txt`]
    ) {
      const out = await run("nghttp", ["-nv", url]);
      assert.match(out, /recv SETTINGS frame <length=18, flags=0x00, stream_id=0>/);
      assert.match(out, /\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):100\]/);
      assert.match(out, /recv \(stream_id=\d+\) :status: 200/);
      assert.match(out, /recv DATA frame <length=\d+, flags=0x01, stream_id=\d+>/);
    }
  });
  await t.step(
    "h2load: 4,000 requests over 8 connections, 10 streams each, all succeed",
    async () => {
      for (const url of [`${s.http}/file.txt`, `${s.https}/data.bin`]) {
        const out = await run("h2load", ["-n", "4000", "-c", "8", "-m", "10", url]);
        assert.match(out, /requests: 4000 total, 4000 started, 4000 done, 4000 succeeded/);
        assert.match(out, /status codes: 4000 2xx/);
      }
    },
  );
});

// ---- A raw-frame client, for the attacks --------------------------------------------------

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Uint8Array;
}

function frame(
  type: number,
  flags: number,
  id: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length << 8 | type);
  out[4] = flags;
  view.setUint32(5, id);
  out.set(payload, 9);
  return out;
}

function u32(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, i) => new DataView(out.buffer).setUint32(i * 4, v));
  return out;
}

function settings(...pairs: [number, number][]): Uint8Array {
  const out = new Uint8Array(pairs.length * 6);
  const view = new DataView(out.buffer);
  pairs.forEach(([k, v], i) => {
    view.setUint16(i * 6, k);
    view.setUint32(i * 6 + 2, v);
  });
  return frame(4, 0, 0, out);
}

const GET = (path: string) =>
  encodeFields([[":method", "GET"], [":scheme", "http"], [":path", path], [
    ":authority",
    "localhost",
  ]]);

/** A connection speaking raw HTTP/2 with prior knowledge; it reads every frame the server sends. */
class RawClient implements AsyncDisposable {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  #conn: Deno.Conn;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.closed = this.#read();
  }

  static async open(port: number, first: Uint8Array = settings()): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawClient(conn);
    await client.send(H2_PREFACE, first);
    return client;
  }

  /** Writes frames; a server that has closed the connection is not an error here. */
  async send(...parts: Uint8Array[]): Promise<boolean> {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    try {
      for (let off = 0; off < all.length;) off += await this.#conn.write(all.subarray(off));
      return true;
    } catch {
      return false;
    }
  }

  async #read(): Promise<void> {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) return;
        const joined = new Uint8Array(buf.length + n);
        joined.set(buf);
        joined.set(chunk.subarray(0, n), buf.length);
        buf = joined;
        while (buf.length >= 9) {
          const length = (buf[0]! << 16) | (buf[1]! << 8) | buf[2]!;
          if (buf.length < 9 + length) break;
          this.frames.push({
            type: buf[3]!,
            flags: buf[4]!,
            id: new DataView(buf.buffer, buf.byteOffset + 5, 4).getUint32(0) & 0x7fffffff,
            payload: buf.slice(9, 9 + length),
          });
          buf = buf.subarray(9 + length);
        }
      }
    } catch {
      // Reset by the server.
    }
  }

  /** The error code of the server's GOAWAY, once the connection has closed. */
  async goaway(): Promise<number | undefined> {
    await this.closed;
    const g = this.frames.find((f) => f.type === 7);
    return g === undefined ? undefined : new DataView(g.payload.buffer).getUint32(4);
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed by the server.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }
}

/** curl over h2c: the status of a GET. */
async function curlStatus(base: string, path = "/file.txt"): Promise<string> {
  const out = await new Deno.Command("curl", {
    args: [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code} %{http_version}",
      "--http2-prior-knowledge",
      base + path,
    ],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("each known HTTP/2 attack is closed with its RFC 9113 error while curl is served", async (t) => {
  await using corpus = await makeCorpus();
  await Deno.writeFile(`${corpus.root}/big.bin`, new Uint8Array(200_000));
  await using s = await servers({ fsRoot: corpus.root }, { sendTimeout: 1000 });
  const port = s.plain.addr.port;
  const attack = async (run: (c: RawClient) => Promise<void>): Promise<number | undefined> => {
    await using c = await RawClient.open(port);
    // A real client is served during the attack and after it.
    const [, during] = await Promise.all([run(c), curlStatus(s.http)]);
    assert.equal(during, "200 2");
    const code = await c.goaway();
    assert.equal(await curlStatus(s.http), "200 2");
    return code;
  };
  await t.step("rapid reset: 10,000 streams opened and reset", async () => {
    const code = await attack(async (c) => {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 10_000; i++) {
        const id = 1 + 2 * i;
        parts.push(frame(1, 0x5, id, GET("/file.txt")), frame(3, 0, id, u32(H2_ERROR.CANCEL)));
      }
      await c.send(...parts);
    });
    assert.equal(code, H2_ERROR.ENHANCE_YOUR_CALM);
  });
  await t.step("an endless CONTINUATION: 16 KiB frames that never end the block", async () => {
    const code = await attack(async (c) => {
      await c.send(frame(1, 0x1, 1, GET("/file.txt")));
      const junk = frame(9, 0, 1, new Uint8Array(16384).fill(0x40));
      for (let i = 0; i < 1000; i++) if (!(await c.send(junk))) break;
    });
    assert.equal(code, H2_ERROR.ENHANCE_YOUR_CALM);
  });
  await t.step("an endless CONTINUATION of empty frames", async () => {
    const code = await attack(async (c) => {
      const parts = [frame(1, 0x1, 1, GET("/file.txt"))];
      for (let i = 0; i < 10_000; i++) parts.push(frame(9, 0, 1));
      await c.send(...parts);
    });
    assert.equal(code, H2_ERROR.ENHANCE_YOUR_CALM);
  });
  await t.step("an HPACK table bomb: one 4 KiB entry referenced 4,000 times", async () => {
    const code = await attack(async (c) => {
      const name = new TextEncoder().encode("x-bomb");
      const value = new Uint8Array(4000).fill(0x61);
      // Literal with incremental indexing, new name (RFC 7541 §6.2.1); 4000 = 127 + 3873.
      const insert = [0x40, name.length, ...name, 0x7f, 0xa1, 0x1e, ...value];
      const refs = new Array(4000).fill(0x80 | 62); // the entry just inserted
      const block = new Uint8Array([...GET("/file.txt"), ...insert, ...refs]);
      await c.send(frame(1, 0x5, 1, block.subarray(0, 16384)));
    });
    assert.equal(code, H2_ERROR.COMPRESSION_ERROR);
  });
  await t.step("a SETTINGS flood: 10,000 frames", async () => {
    const code = await attack(async (c) => {
      await c.send(...new Array(10_000).fill(settings([4, 65535])));
    });
    assert.equal(code, H2_ERROR.ENHANCE_YOUR_CALM);
  });
  await t.step("a PING flood: 10,000 frames", async () => {
    const code = await attack(async (c) => {
      await c.send(...new Array(10_000).fill(frame(6, 0, 0, new Uint8Array(8))));
    });
    assert.equal(code, H2_ERROR.ENHANCE_YOUR_CALM);
  });
  await t.step("a zero-window stall: a large body requested, the window never opened", async () => {
    await using c = await RawClient.open(port, settings([4, 0]));
    await c.send(frame(1, 0x5, 1, GET("/big.bin")));
    // The send deadline (1 s here) ends it; the server keeps serving meanwhile.
    assert.equal(await curlStatus(s.http), "200 2");
    assert.equal(await c.goaway(), H2_ERROR.ENHANCE_YOUR_CALM);
    assert.ok(c.frames.some((f) => f.type === 1 && f.id === 1), "the response head came");
    assert.ok(!c.frames.some((f) => f.type === 0 && f.id === 1 && f.payload.length > 0));
  });
});

Deno.test("h2 streams: the concurrency limit, a client's reset, and GOAWAY on graceful shutdown", async (t) => {
  await using corpus = await makeCorpus();
  await Deno.writeFile(`${corpus.root}/big.bin`, new Uint8Array(200_000));
  await using s = await servers({ fsRoot: corpus.root });
  const port = s.plain.addr.port;
  await t.step("past 100 open streams, a new one is refused", async () => {
    await using c = await RawClient.open(port, settings([4, 0]));
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 101; i++) parts.push(frame(1, 0x5, 1 + 2 * i, GET("/big.bin")));
    parts.push(frame(6, 0, 0, new Uint8Array(8))); // a PING: its ACK says all was read
    await c.send(...parts);
    while (!c.frames.some((f) => f.type === 6)) await new Promise((r) => setTimeout(r, 10));
    const resets = c.frames.filter((f) => f.type === 3);
    assert.deepEqual(resets.map((f) => [f.id, new DataView(f.payload.buffer).getUint32(0)]), [
      [201, H2_ERROR.REFUSED_STREAM],
    ]);
  });
  await t.step("a reset stream stops, and the connection serves the next one", async () => {
    await using c = await RawClient.open(port, settings([4, 0]));
    await c.send(frame(1, 0x5, 1, GET("/big.bin")), frame(3, 0, 1, u32(H2_ERROR.CANCEL)));
    // Open the windows: only the new stream's data may come.
    await c.send(settings([4, 1 << 20]), frame(8, 0, 0, u32(1 << 20)));
    await c.send(frame(1, 0x5, 3, GET("/file.txt")));
    while (!c.frames.some((f) => f.type === 0 && f.id === 3 && (f.flags & 1))) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(!c.frames.some((f) => f.type === 0 && f.id === 1));
  });
  await t.step("shutdown sends GOAWAY (NO_ERROR) and finishes the stream in flight", async () => {
    const c = await RawClient.open(port, settings([4, 0]));
    await c.send(frame(1, 0x5, 1, GET("/big.bin")));
    while (!c.frames.some((f) => f.type === 1)) await new Promise((r) => setTimeout(r, 10));
    const stopped = s.plain.shutdown();
    while (!c.frames.some((f) => f.type === 7)) await new Promise((r) => setTimeout(r, 10));
    // Now let the body flow: it completes before the server closes.
    await c.send(settings([4, 1 << 20]), frame(8, 0, 0, u32(1 << 20)));
    assert.equal(await c.goaway(), H2_ERROR.NO_ERROR);
    const data = c.frames.filter((f) => f.type === 0 && f.id === 1);
    assert.equal(data.reduce((n, f) => n + f.payload.length, 0), 200_000);
    assert.ok(data.at(-1)!.flags & 1);
    await stopped;
    c.close();
  });
});

/**
 * A TLS connection, handshake done. A reset is retried: a connection the
 * kernel queues on a listener that a reload is closing is reset (the limit
 * SERVER.md documents), and that is not what this test is about.
 */
async function handshaken(port: number, caCert: string): Promise<Deno.TlsConn> {
  for (let attempt = 1;; attempt++) {
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
    try {
      await conn.handshake();
      return conn;
    } catch (err) {
      conn.close();
      if (!(err instanceof Deno.errors.ConnectionReset) || attempt === 5) throw err;
    }
  }
}

Deno.test("every TLS connection of every loop skips Nagle, before and after a certificate reload", async () => {
  await using ca = await makeTestCa({ prefix: "netkit_h2_nodelay_" });
  const root = await Deno.makeTempDir({ prefix: "netkit_h2_nodelay_" });
  const cluster = await startCluster({
    serve: { fsRoot: root },
    hostname: "127.0.0.1",
    port: 0,
    cert: ca.cert,
    key: ca.key,
    cache: false,
    log: null,
  }, 2);
  try {
    // Twelve connections land on both loops (the kernel spreads them by port);
    // each is checked on the server's side while it is open.
    const check = async () => {
      for (let i = 0; i < 12; i++) {
        const conn = await handshaken(cluster.addr.port, ca.caCert);
        try {
          const port = (conn.localAddr as Deno.NetAddr).port;
          let noDelay = await connectionNoDelay(cluster.addr.port, port);
          // Accepted a moment after the client's handshake returns: look again until it is.
          for (let tries = 0; noDelay === undefined && tries < 100; tries++) {
            await new Promise((r) => setTimeout(r, 10));
            noDelay = await connectionNoDelay(cluster.addr.port, port);
          }
          assert.equal(noDelay, true, `connection ${i} from port ${port}`);
        } finally {
          conn.close();
        }
      }
    };
    await check();
    const next = await ca.issue(["127.0.0.1"]);
    await cluster.reloadTls(next.cert, next.key);
    await check();
  } finally {
    await cluster.stop();
    await Deno.remove(root, { recursive: true });
  }
});
