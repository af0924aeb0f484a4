import { writeAll } from "../lib/http/mod.ts";
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { curl, get, rawRequest, startOrigin } from "./_test_util.ts";
import { MALFORMED_REQUESTS } from "../lib/testing/http_server.ts";
import { parseCidr, startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";

const LM = "Wed, 01 Jan 2025 00:00:00 GMT";

Deno.test("proxy forwards with curl -x, then serves the second request from cache", async () => {
  await using origin = await startOrigin((req) =>
    new Response(`hello ${new URL(req.url).pathname}`, {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
    })
  );
  const log: string[] = [];
  await using proxy = await startProxy({ port: 0, log: (l) => log.push(l) });
  const px = `http://127.0.0.1:${proxy.port}`;
  const first = await curl(["-x", px, `${origin.url}/a`]);
  const second = await curl(["-x", px, `${origin.url}/a`]);
  assertEquals(first.code, 0);
  assertEquals(first.replies[0]?.body, "hello /a");
  // ttl is 60 less the apparent age, which a whole-second Date can make 1 (RFC 9111 §4.2.3).
  assertMatch(
    first.replies[0]!.headers.get("cache-status")!,
    /^netkit; fwd=uri-miss; fwd-status=200; stored; ttl=(59|60)$/,
  );
  assertEquals(first.replies[0]?.headers.get("via"), `1.1 netkit:${proxy.port}`);
  assertEquals(second.replies[0]?.body, "hello /a");
  assert(second.replies[0]?.headers.get("cache-status")?.startsWith("netkit; hit; ttl="));
  assert(second.replies[0]?.headers.has("age"));
  assertEquals(origin.hits.get("/a"), 1);
  // The origin saw Via and no hop-by-hop fields.
  assertEquals(origin.seen[0]?.headers.get("via"), `1.1 netkit:${proxy.port}`);
  assertEquals(origin.seen[0]?.headers.get("proxy-connection"), null);
  assertEquals(log.length, 2);
  assert(
    /^\d+\.\d{3} +\d+ 127\.0\.0\.1 TCP_MISS\/200 \d+ GET http:\/\/127\.0\.0\.1:\d+\/a - HIER_DIRECT\/127\.0\.0\.1 text\/plain$/
      .test(log[0]!),
    log[0],
  );
  assert(/ TCP_MEM_HIT\/200 \d+ GET .* HIER_NONE\/- text\/plain$/.test(log[1]!), log[1]);
});

Deno.test("proxy applies RFC 9111 rules end to end (reverse mode)", async (t) => {
  let failing = false;
  await using origin = await startOrigin((req, n) => {
    const path = new URL(req.url).pathname;
    const h = new Headers({ "content-type": "text/plain" });
    const reply = (cc: string | null, extra: Record<string, string> = {}, status = 200) => {
      if (cc !== null) h.set("cache-control", cc);
      for (const [k, v] of Object.entries(extra)) h.set(k, v);
      return new Response(req.method === "HEAD" ? null : `${path} #${n}`, { status, headers: h });
    };
    switch (path) {
      case "/no-store":
        return reply("no-store, max-age=60");
      case "/private":
        return reply("private, max-age=60");
      case "/etag":
        if (req.headers.get("if-none-match") === '"v1"') {
          return new Response(null, {
            status: 304,
            headers: { etag: '"v1"', "cache-control": "max-age=0" },
          });
        }
        return reply("max-age=0", { etag: '"v1"' });
      case "/vary":
        return reply("max-age=60", {
          vary: "Accept-Language",
          "content-language": req.headers.get("accept-language") ?? "none",
        });
      case "/auth":
        return reply("max-age=60");
      case "/auth-public":
        return reply("public, max-age=60");
      case "/sie":
        if (failing) return new Response("down", { status: 500 });
        return reply("max-age=1, stale-if-error=600");
      case "/smaxage":
        return reply("s-maxage=60, max-age=0");
      case "/expires":
        return reply(null, {
          expires: new Date(Date.now() + 60000).toUTCString(),
          date: new Date().toUTCString(),
        });
      case "/heuristic":
        return reply(null, { "last-modified": LM });
      case "/post-target":
        return reply("max-age=60");
      case "/swr":
        // The refreshed copy stays fresh, so a slow test run cannot trigger a second refresh.
        return reply(n === 1 ? "max-age=1, stale-while-revalidate=600" : "max-age=600");
      default:
        return reply("max-age=60");
    }
  });
  await using proxy = await startProxy({ port: 0, upstream: origin.url });
  const req = (path: string, extra: Record<string, string> = {}, method = "GET") =>
    rawRequest(proxy.port, get(path, extra, method), method);
  const cs = (r: { headers: Headers } | null) => r?.headers.get("cache-status") ?? "";

  await t.step("no-store is never stored", async () => {
    await req("/no-store");
    const r = await req("/no-store");
    assertEquals(r?.body, "/no-store #2");
    assert(!cs(r).includes("stored"));
  });
  await t.step("private is not stored by a shared cache", async () => {
    await req("/private");
    assertEquals((await req("/private"))?.body, "/private #2");
  });
  await t.step(
    "a stale entry is revalidated with If-None-Match and a 304 refreshes it",
    async () => {
      assertEquals((await req("/etag"))?.body, "/etag #1");
      const r = await req("/etag");
      assertEquals(r?.body, "/etag #1");
      assert(/^netkit; fwd=stale; fwd-status=304; ttl=-?\d+$/.test(cs(r)), cs(r));
      assertEquals(origin.seen.at(-1)?.headers.get("if-none-match"), '"v1"');
    },
  );
  await t.step("Vary keeps one variant per Accept-Language", async () => {
    await req("/vary", { "accept-language": "en" });
    await req("/vary", { "accept-language": "fr" });
    const en = await req("/vary", { "accept-language": "en" });
    const fr = await req("/vary", { "accept-language": "fr" });
    assertEquals([en?.body, fr?.body], ["/vary #1", "/vary #2"]);
    assert(cs(en).includes("hit") && cs(fr).includes("hit"));
  });
  await t.step("a cached GET answers HEAD", async () => {
    await req("/head");
    const r = await req("/head", {}, "HEAD");
    assert(cs(r).includes("hit"), cs(r));
    assertEquals(r?.body, "");
    assertEquals(origin.hits.get("/head"), 1);
  });
  await t.step("a POST invalidates the cached target", async () => {
    await req("/post-target");
    assert(cs(await req("/post-target")).includes("hit"));
    const p = await rawRequest(
      proxy.port,
      "POST /post-target HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assertEquals(cs(p), "netkit; fwd=method; fwd-status=200");
    assertEquals((await req("/post-target"))?.body, "/post-target #3");
  });
  await t.step("Authorization prevents storing unless public", async () => {
    await req("/auth", { authorization: "Basic eDp5" });
    assertEquals((await req("/auth", { authorization: "Basic eDp5" }))?.body, "/auth #2");
    await req("/auth-public", { authorization: "Basic eDp5" });
    assertEquals(
      (await req("/auth-public", { authorization: "Basic eDp5" }))?.body,
      "/auth-public #1",
    );
  });
  await t.step("s-maxage overrides max-age=0", async () => {
    await req("/smaxage");
    assert(cs(await req("/smaxage")).includes("hit"));
  });
  await t.step("Expires gives freshness", async () => {
    await req("/expires");
    assert(cs(await req("/expires")).includes("hit"));
  });
  await t.step("Last-Modified gives heuristic freshness", async () => {
    await req("/heuristic");
    assert(cs(await req("/heuristic")).includes("hit"));
  });
  await t.step("client no-cache forces a refresh", async () => {
    await req("/plain");
    const r = await req("/plain", { "cache-control": "no-cache" });
    assertEquals(r?.body, "/plain #2");
    assert(cs(r).includes("fwd=request"), cs(r));
  });
  await t.step("only-if-cached on a miss gives 504", async () => {
    const r = await req("/never", { "cache-control": "only-if-cached" });
    assertEquals(r?.status, 504);
    assertEquals(origin.hits.get("/never"), undefined);
  });
  await t.step("a client conditional is answered 304 from cache", async () => {
    await req("/etag");
    const r = await req("/etag", { "if-none-match": '"v1"', "cache-control": "max-stale=100" });
    assertEquals(r?.status, 304);
  });
  await t.step("stale-if-error serves the stale copy when the origin fails", async () => {
    await req("/sie");
    await new Promise((r) => setTimeout(r, 2100));
    failing = true;
    const r = await req("/sie");
    failing = false;
    assertEquals(r?.status, 200);
    assertEquals(r?.body, "/sie #1");
    assert(cs(r).includes("fwd-status=500") && cs(r).includes("stale-if-error"), cs(r));
  });
  await t.step("stale-while-revalidate serves stale and refreshes in the background", async () => {
    await req("/swr");
    await new Promise((r) => setTimeout(r, 2100));
    const r = await req("/swr");
    assertEquals(r?.body, "/swr #1");
    assert(cs(r).includes("hit") && cs(r).includes("stale-while-revalidate"), cs(r));
    // The refresh runs in the background: poll until the new copy is served.
    let body: string | undefined;
    for (let i = 0; i < 250 && body !== "/swr #2"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      body = (await req("/swr"))?.body;
    }
    assertEquals(body, "/swr #2");
    assertEquals(origin.hits.get("/swr"), 2);
  });
});

Deno.test("proxy answers malformed and smuggling requests with 400 and keeps serving", async (t) => {
  await using origin = await startOrigin(() =>
    new Response("ok", { headers: { "cache-control": "max-age=60" } })
  );
  await using proxy = await startProxy({ port: 0, upstream: origin.url });
  const corpus: Array<readonly [string, string, number]> = [
    ...MALFORMED_REQUESTS,
    [
      "malformed chunk size",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      400,
    ],
  ];
  for (const [name, wire, status] of corpus) {
    await t.step(name, async () => {
      const r = await rawRequest(proxy.port, wire, "POST");
      assertEquals(r?.status, status);
      assert(r?.headers.get("cache-status")?.startsWith("netkit;"));
      const ok = await rawRequest(proxy.port, get("/"));
      assertEquals(ok?.status, 200);
    });
  }
  // Only the first GET reached the origin; the others were cache hits. (The
  // malformed chunked POST was forwarded head-first, but its bad chunk never was.)
  assertEquals(origin.seen.filter((r) => r.method === "GET").length, 1);
});

Deno.test("proxy streams chunked uploads, Expect: 100-continue and until-close responses", async (t) => {
  // A raw origin: echoes the body length, and answers /close without framing.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const { BufferedReader, readRequestHead, readBody } = await import("../lib/http/mod.ts");
        const r = new BufferedReader(conn);
        try {
          const head = await readRequestHead(r);
          if (head === null) return;
          if (head.expectContinue) {
            await writeAll(conn, new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"));
          }
          const body = await readBody(r, head.body);
          if (head.target.startsWith("/chunked")) {
            await writeAll(
              conn,
              new TextEncoder().encode(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
              ),
            );
          } else if (head.target === "/close") {
            await writeAll(
              conn,
              new TextEncoder().encode(
                `HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nConnection: close\r\n\r\n${
                  "z".repeat(100000)
                }`,
              ),
            );
          } else {
            const text = `got ${body.length} te=${head.headers.get("transfer-encoding")}`;
            await writeAll(
              conn,
              new TextEncoder().encode(
                `HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`,
              ),
            );
          }
        } finally {
          conn.close();
        }
      })();
    }
  })();
  try {
    await using proxy = await startProxy({ port: 0 });
    const px = `http://127.0.0.1:${proxy.port}`;
    const origin = `http://127.0.0.1:${listener.addr.port}`;
    await t.step("chunked request body", async () => {
      const r = await curl([
        "-x",
        px,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "x".repeat(5000),
        `${origin}/up`,
      ]);
      assertEquals(r.replies.at(-1)?.body, "got 5000 te=chunked");
    });
    await t.step("Expect: 100-continue is relayed", async () => {
      const r = await curl([
        "-x",
        px,
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "y".repeat(3000),
        `${origin}/up`,
      ]);
      assertEquals(r.replies[0]?.status, 100);
      assertEquals(r.replies.at(-1)?.body, "got 3000 te=null");
    });
    await t.step("a chunked response is relayed, stored, and served with a length", async () => {
      // Kept alive, so the unknown length is re-framed as chunked for the client.
      const first = await rawRequest(
        proxy.port,
        `GET ${origin}/chunked HTTP/1.1\r\nHost: x\r\n\r\n`,
      );
      assertEquals(first?.body, "hello world");
      assertEquals(first?.headers.get("transfer-encoding"), "chunked");
      const again = await rawRequest(proxy.port, get(`${origin}/chunked`));
      assertEquals(again?.body, "hello world");
      assertEquals(again?.headers.get("content-length"), "11");
    });
    await t.step("an HTTP/1.0 client gets a close-delimited body, not chunked", async () => {
      const u = await rawRequest(proxy.port, `GET ${origin}/chunked?v=1 HTTP/1.0\r\n\r\n`);
      assertEquals(u?.body, "hello world");
      assertEquals(u?.headers.get("transfer-encoding"), null);
    });
    await t.step(
      "a response delimited by close reaches the client whole and is cached",
      async () => {
        const r = await curl(["-x", px, `${origin}/close`]);
        assertEquals(r.code, 0);
        assertEquals(r.replies.at(-1)?.body.length, 100000);
        const again = await curl(["-x", px, `${origin}/close`]);
        assert(again.replies.at(-1)?.headers.get("cache-status")?.includes("hit"));
        assertEquals(again.replies.at(-1)?.body.length, 100000);
      },
    );
  } finally {
    listener.close();
    await serving;
  }
});

Deno.test("proxy reports failures: 502, 504, 413, truncated bodies never stored", async (t) => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  let resets = 0;
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  // An origin that promises 100000 bytes, sends 1000 and resets.
  const broken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const breaking = (async () => {
    for await (const conn of broken) {
      resets++;
      const buf = new Uint8Array(4096);
      await conn.read(buf);
      await writeAll(
        conn,
        new TextEncoder().encode(
          `HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nCache-Control: max-age=60\r\n\r\n${
            "a".repeat(1000)
          }`,
        ),
      );
      conn.close();
    }
  })();
  try {
    await using proxy = await startProxy({ port: 0, timeout: 300, maxBodySize: 1000 });
    const px = `http://127.0.0.1:${proxy.port}`;
    await t.step("unreachable upstream gives 502 with an HTML body", async () => {
      const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = free.addr.port;
      free.close();
      const r = await curl(["-x", px, `http://127.0.0.1:${port}/`]);
      assertEquals(r.replies[0]?.status, 502);
      assert(r.replies[0]?.body.includes("<h1>502 Bad Gateway</h1>"));
    });
    await t.step("a request that loops back into the proxy gets 508", async () => {
      const r = await curl(["-x", px, `${px}/loop`]);
      assertEquals(r.replies[0]?.status, 508);
    });
    await t.step("a silent upstream gives 504", async () => {
      const r = await curl(["-x", px, `http://127.0.0.1:${silent.addr.port}/`]);
      assertEquals(r.replies[0]?.status, 504);
    });
    await t.step("a body over the limit gives 413", async () => {
      const r = await curl([
        "-x",
        px,
        "--data-binary",
        "b".repeat(2000),
        `http://127.0.0.1:${silent.addr.port}/`,
      ]);
      assertEquals(r.replies[0]?.status, 413);
    });
    await t.step("a reset mid-body fails the client and caches nothing", async () => {
      const url = `http://127.0.0.1:${broken.addr.port}/file`;
      const r1 = await curl(["-x", px, url]);
      assertEquals(r1.code, 18); // curl: partial file
      const r2 = await curl(["-x", px, url]);
      assertEquals(r2.code, 18);
      assertEquals(resets, 2);
      assertEquals(proxy.store.size, 0);
    });
  } finally {
    silent.close();
    broken.close();
    await accepting;
    await breaking;
    for (const c of held) c.close();
  }
});

Deno.test("proxy cache survives a restart (disk tier)", async () => {
  await using origin = await startOrigin(() =>
    new Response("persist", { headers: { "cache-control": "max-age=600" } })
  );
  const dir = await Deno.makeTempDir();
  try {
    {
      await using proxy = await startProxy({
        port: 0,
        upstream: origin.url,
        store: await CacheStore.open({ dir }),
      });
      assertEquals((await rawRequest(proxy.port, get("/p")))?.body, "persist");
    }
    const log: string[] = [];
    await using proxy = await startProxy({
      port: 0,
      upstream: origin.url,
      store: await CacheStore.open({ dir }),
      log: (l) => log.push(l),
    });
    const r = await rawRequest(proxy.port, get("/p"));
    assertEquals(r?.body, "persist");
    assert(r?.headers.get("cache-status")?.includes("hit"));
    assertEquals(origin.hits.get("/p"), 1);
    assert(log[0]?.includes(" TCP_HIT/200 "), log[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proxy tunnels CONNECT to an HTTPS origin and refuses other ports", async (t) => {
  await using ca = await makeTestCa({ prefix: "proxy_tls_" });
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: ca.cert,
    key: ca.key,
    onListen() {},
  }, () => new Response("secret over tls"));
  try {
    const port = server.addr.port;
    const log: string[] = [];
    await using proxy = await startProxy({
      port: 0,
      connectPorts: [port],
      log: (l) => log.push(l),
    });
    const px = `http://127.0.0.1:${proxy.port}`;
    await t.step("the TLS session passes through untouched", async () => {
      const r = await curl(["-x", px, "--cacert", ca.caPath, `https://127.0.0.1:${port}/`]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.replies.at(-1)?.body, "secret over tls");
      // The tunnel is logged when both directions have closed.
      for (let i = 0; i < 100 && log.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert(
        log.some((l) => / TCP_TUNNEL\/200 \d+ CONNECT 127\.0\.0\.1:\d+ /.test(l)),
        log.join("\n"),
      );
    });
    await t.step("CONNECT to a port not listed is 403", async () => {
      const r = await rawRequest(
        proxy.port,
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
      );
      assertEquals(r?.status, 403);
    });
    await t.step(
      "CONNECT to a name that does not resolve is 502, worded as the client's",
      async () => {
        const r = await rawRequest(
          proxy.port,
          `CONNECT nowhere.invalid:${port} HTTP/1.1\r\nHost: nowhere.invalid:${port}\r\n\r\n`,
        );
        assertEquals(r?.status, 502);
        assertMatch(r?.body ?? "", /Cannot resolve host &quot;nowhere\.invalid&quot;/);
      },
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("proxy drops connections at --drop-rate and delays at --delay", async () => {
  await using origin = await startOrigin(() => new Response("x"));
  {
    await using proxy = await startProxy({ port: 0, upstream: origin.url, dropRate: 1, seed: 1 });
    assertEquals(await rawRequest(proxy.port, get("/")), null);
  }
  await using proxy = await startProxy({ port: 0, upstream: origin.url, delay: 150 });
  const t0 = performance.now();
  assertEquals((await rawRequest(proxy.port, get("/")))?.status, 200);
  assert(performance.now() - t0 >= 150);
});

Deno.test("parseCidr() reads IPv4 and IPv6 networks and rejects junk", () => {
  assertEquals(parseCidr("10.1.0.0/16").prefix, 16);
  assertEquals(parseCidr("::1").prefix, 128);
  assertEquals(parseCidr("fd00::/8").bytes[0], 0xfd);
  for (const bad of ["10.0.0.0/33", "300.0.0.1", "nope", "10.0.0.0/"]) {
    let threw = false;
    try {
      parseCidr(bad);
    } catch (err) {
      threw = err instanceof TypeError;
    }
    assert(threw, bad);
  }
});

Deno.test("proxy obeys CDN-Cache-Control and serves stale when the origin hangs up", async (t) => {
  // A raw origin, so it can close a connection without answering, as an origin that
  // crashed mid-request does (the cache-tests' "disconnect").
  let hangUp = false;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(8192);
        let text = "";
        while (!text.includes("\r\n\r\n")) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
        }
        const path = text.split(" ")[1] ?? "/";
        const fields: Record<string, string> = {
          // Already older than max-age: stale from the moment it is stored.
          "/stale": "Cache-Control: max-age=5\r\nAge: 10",
          "/stale-mr": "Cache-Control: max-age=5, must-revalidate\r\nAge: 10",
          "/cdn": "Cache-Control: no-store\r\nCDN-Cache-Control: max-age=600",
          "/cdn-named": "CDN-Cache-Control: no-store\r\nEdge-Cache-Control: max-age=600",
        };
        if (!hangUp && text !== "") {
          const body = `${path} body`;
          await writeAll(
            conn,
            new TextEncoder().encode(
              `HTTP/1.1 200 OK\r\n${fields[path] ?? ""}\r\nContent-Length: ${body.length}\r\n` +
                `Connection: close\r\n\r\n${body}`,
            ),
          ).catch(() => {});
        }
        conn.close();
      })();
    }
  })();
  try {
    await using proxy = await startProxy({
      port: 0,
      upstream: `http://127.0.0.1:${listener.addr.port}`,
      cacheControlTargets: ["Edge-Cache-Control", "CDN-Cache-Control"],
    });
    const req = (path: string) => rawRequest(proxy.port, get(path));
    const cs = (r: { headers: Headers } | null) => r?.headers.get("cache-status") ?? "";
    await t.step("CDN-Cache-Control max-age stores despite Cache-Control: no-store", async () => {
      assertMatch(cs(await req("/cdn")), /stored; ttl=600/);
      const r = await req("/cdn");
      assertMatch(cs(r), /^netkit; hit; ttl=/);
      // RFC 9213 §2.1: the field is forwarded unchanged, for caches further down.
      assertEquals(r?.headers.get("cdn-cache-control"), "max-age=600");
    });
    await t.step("a named target takes precedence over CDN-Cache-Control", async () => {
      assertMatch(cs(await req("/cdn-named")), /stored; ttl=600/);
      assertMatch(cs(await req("/cdn-named")), /^netkit; hit;/);
    });
    await t.step("a stale copy answers when the origin closes without a response", async () => {
      assertMatch(cs(await req("/stale")), /stored; ttl=-5/);
      assertMatch(cs(await req("/stale-mr")), /stored; ttl=-5/);
      hangUp = true;
      const r = await req("/stale");
      assertEquals(r?.status, 200);
      assertEquals(r?.body, "/stale body");
      assertMatch(cs(r), /^netkit; fwd=stale; ttl=-\d+; detail=disconnected$/);
      // must-revalidate forbids it (RFC 9111 §5.2.2.2): the failure shows.
      assertEquals((await req("/stale-mr"))?.status, 502);
    });
  } finally {
    listener.close();
    await served.catch(() => {});
  }
});
