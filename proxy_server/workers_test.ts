import { readBody } from "../lib/http/bodies.ts";
import { readResponseHead } from "../lib/http/heads.ts";
import { ConnectionLimits } from "../lib/http/limits.ts";
import { BufferedReader } from "../lib/http/reader.ts";
import { HttpServer } from "../lib/http/server.ts";
import { freePort } from "../lib/testing/ports.ts";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { startTask } from "../lib/testing/http_server.ts";
import { curl, rawRequest, type Reply, startOrigin } from "./_test_util.ts";
import { HitLoop, VERSION_SLOTS } from "./_loop.ts";
import { startProxy } from "./proxy.ts";

/** A keep-alive request on a fresh connection: a hit loop may answer it. */
function fresh(port: number, path: string, extra = "", method = "GET"): Promise<Reply | null> {
  return rawRequest(port, `${method} ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`, method);
}

/** The value of one series in a Prometheus text. */
function series(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

/** Several requests, one after another, on one keep-alive connection: status and body of each. */
async function sequence(port: number, paths: string[]): Promise<Array<[number, string]>> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new BufferedReader(conn);
  const out: Array<[number, string]> = [];
  for (const path of paths) {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    const head = await readResponseHead(reader);
    assert(head !== null, `no answer to ${path}`);
    out.push([head.status, new TextDecoder().decode(await readBody(reader, head.body))]);
  }
  return out;
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

Deno.test("--workers 2: hit loops answer fresh hits, relay the rest, and see every change at once", async (t) => {
  let version = 1;
  await using origin = await startOrigin((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/stream") {
      return new Response(ReadableStream.from([new TextEncoder().encode("streamed\n")]), {
        headers: { "cache-control": "no-store" },
      });
    }
    if (req.method === "POST") {
      version++;
      return new Response("changed\n");
    }
    return new Response(`${path} v${version}\n`, {
      headers: {
        "cache-control": "max-age=600",
        "content-type": "text/plain",
        etag: `"v${version}"`,
      },
    });
  });
  const lines: string[] = [];
  await using proxy = await startProxy({
    port: 0,
    upstream: origin.url,
    workers: 2,
    adminPort: 0,
    log: (line) => lines.push(line),
  });
  const port = proxy.port;
  const metrics = async () =>
    await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();

  await t.step(
    "40 connections: every answer a hit, both loops answer, one origin request",
    async () => {
      assertEquals((await fresh(port, "/a"))?.body, "/a v1\n");
      for (let i = 0; i < 40; i++) {
        const r = await fresh(port, "/a");
        assertEquals(r?.status, 200);
        assertEquals(r?.body, "/a v1\n");
        assert(r?.headers.get("cache-status")?.includes("hit"), r?.headers.get("cache-status")!);
      }
      assertEquals(origin.hits.get("/a"), 1);
      const text = await metrics();
      // SO_REUSEPORT spreads connections by their addresses: over 40, each loop gets some.
      assert(series(text, 'netkit_proxy_loop_requests_total{loop="1"}') > 0, text);
      assert(series(text, 'netkit_proxy_loop_requests_total{loop="0"}') > 0, text);
      assertEquals(series(text, 'netkit_proxy_requests_total{result="TCP_MEM_HIT"}'), 40);
      // The hit loop's access-log lines reach the log.
      await until(() => lines.filter((l) => l.includes("TCP_MEM_HIT/200")).length === 40);
      assertEquals(lines.filter((l) => l.includes("TCP_MEM_HIT/200")).length, 40);
    },
  );

  await t.step(
    "after an invalidating POST or a PURGE, no loop answers with the old copy",
    async () => {
      for (let round = 0; round < 10; round++) {
        if (round % 2 === 0) {
          // RFC 9111 §4.4: a successful POST invalidates the target URI.
          assertEquals((await fresh(port, "/a", "Content-Length: 0\r\n", "POST"))?.status, 200);
        } else {
          assertEquals(
            (await curl(["-X", "PURGE", `http://127.0.0.1:${port}/a`])).replies[0]?.status,
            200,
          );
          version++;
        }
        for (let i = 0; i < 10; i++) {
          assertEquals((await fresh(port, "/a"))?.body, `/a v${version}\n`, `round ${round}`);
        }
      }
    },
  );

  await t.step("conditional, range and HEAD requests through either loop", async () => {
    for (let i = 0; i < 20; i++) {
      const etag = `"v${version}"`;
      assertEquals((await fresh(port, "/a", `If-None-Match: ${etag}\r\n`))?.status, 304);
      const part = await fresh(port, "/a", "Range: bytes=0-1\r\n");
      assertEquals([part?.status, part?.body], [206, "/a"]);
      const head = await fresh(port, "/a", "", "HEAD");
      assertEquals([head?.status, head?.body], [200, ""]);
      assertEquals(head?.headers.get("content-length"), String(`/a v${version}\n`.length));
    }
  });

  await t.step(
    "after a request the main loop answers, a hit loop answers the connection's hits again",
    async () => {
      const before = series(await metrics(), 'netkit_proxy_loop_requests_total{loop="1"}');
      // Each connection starts with a miss; over 12, the kernel gives the hit loop some.
      for (let i = 0; i < 12; i++) {
        const path = `/s${i}`;
        const replies = await sequence(port, [path, path, path, "/stream", path]);
        const body = `${path} v${version}\n`;
        assertEquals(replies, [
          [200, body],
          [200, body],
          [200, body],
          // Chunked (no length from the origin): that connection goes over for good.
          [200, "streamed\n"],
          [200, body],
        ]);
      }
      const after = series(await metrics(), 'netkit_proxy_loop_requests_total{loop="1"}');
      // Without the hand-back, every connection the hit loop accepted would have been
      // relayed from its first request on, and the hit loop would answer nothing here.
      assert(after > before, `hit loop answered ${after - before} requests`);
    },
  );

  await t.step(
    "a connection of misses only goes over to the main loop, answers intact",
    async () => {
      for (let c = 0; c < 4; c++) {
        const paths = Array.from({ length: 40 }, (_, i) => `/q${c}-${i}`);
        paths.push(paths[0]!, paths[1]!);
        const replies = await sequence(port, paths);
        assertEquals(replies, paths.map((p) => [200, `${p} v${version}\n`]));
      }
    },
  );

  await t.step("a relayed connection keeps the client's address in the log", async () => {
    // curl from 127.0.0.2: misses, so every connection a hit loop accepted is relayed.
    for (let i = 0; i < 20; i++) {
      const r = await curl(["--interface", "127.0.0.2", `http://127.0.0.1:${port}/m${i}`]);
      assertEquals(r.replies[0]?.body, `/m${i} v${version}\n`);
    }
    const misses = lines.filter((l) => / GET http:\/\/127\.0\.0\.1:\d+\/m\d+ /.test(l));
    assertEquals(misses.length, 20);
    for (const l of misses) assertEquals(l.split(/ +/)[2], "127.0.0.2", l);
  });
});

Deno.test("--workers 2: close() stops every loop and frees the port", async () => {
  await using origin = await startOrigin(() =>
    new Response("x", { headers: { "cache-control": "max-age=60" } })
  );
  const proxy = await startProxy({ port: 0, upstream: origin.url, workers: 2 });
  for (let i = 0; i < 10; i++) assertEquals((await fresh(proxy.port, "/"))?.body, "x");
  await proxy.close();
  // A loop still bound would hold the port (without SO_REUSEPORT this listen fails then).
  const l = Deno.listen({ hostname: "127.0.0.1", port: proxy.port });
  l.close();
});

Deno.test("deno task proxy --workers 2 logs every loop's requests, up to SIGTERM", async () => {
  await using origin = await startOrigin(() =>
    new Response("page", {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
    })
  );
  const dir = await Deno.makeTempDir({ prefix: "netkit_proxy_workers_" });
  try {
    await using proxy = await startTask("proxy", [
      "-p",
      "0",
      "-u",
      origin.url,
      "--workers",
      "2",
      "--access-log",
      `${dir}/access.log`,
    ]);
    for (let i = 0; i < 30; i++) assertEquals((await fresh(proxy.port, "/p"))?.body, "page");
    assertEquals(await proxy.stop("SIGTERM"), 0);
    const lines = (await Deno.readTextFile(`${dir}/access.log`)).trim().split("\n");
    assertEquals(lines.filter((l) => l.includes(" TCP_MISS/200 ")).length, 1);
    assertEquals(lines.filter((l) => l.includes(" TCP_MEM_HIT/200 ")).length, 29);
    assertEquals(origin.hits.get("/p"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a hit loop sends a GET again when the main loop closed the connection it kept", async () => {
  // A stand-in for the main loop's relay listener that closes idle connections after 200 ms.
  const answer = new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
  const clients: string[] = [];
  await using relay = new HttpServer((_head, conn) => {
    clients.push(conn.remoteAddr.hostname);
    conn.end(answer);
    return true;
  }, { hostname: "127.0.0.1", port: 0, proxyProtocol: true, keepAliveTimeout: 200 });
  const port = freePort();
  const loop = new HitLoop({
    index: 1,
    hostname: "127.0.0.1",
    port,
    relayPort: relay.addr.port,
    upstream: "http://127.0.0.1:1/",
    allow: [],
    name: "netkit",
    via: "1.1 netkit",
    serveHits: true,
    core: {},
    counters: new ConnectionLimits().buffer,
    maxConnections: 0,
    versions: new SharedArrayBuffer(VERSION_SLOTS * 4),
    budget: 0,
    logging: false,
    metrics: false,
  }, () => {});
  try {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const reader = new BufferedReader(conn);
    for (let i = 0; i < 2; i++) {
      // The second request finds the kept connection closed by the stand-in.
      if (i === 1) await new Promise((r) => setTimeout(r, 500));
      await conn.write(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
      const head = await readResponseHead(reader);
      assertEquals(head?.status, 200);
      assertEquals(new TextDecoder().decode(await readBody(reader, head!.body)), "ok\n");
    }
    // Both reached the stand-in, named as the client (the PROXY line) on both connections.
    assertEquals(clients, ["127.0.0.1", "127.0.0.1"]);
  } finally {
    await loop.stop();
  }
});
