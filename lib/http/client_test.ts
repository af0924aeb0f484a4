import { BufferedReader, readBody, readRequestHead, writeAll } from "./mod.ts";
import { rawServer, scriptedServer } from "./testdata/peers.ts";
import { makeTestCa } from "../testing/tls.ts";
import { refusedPort } from "../testing/ports.ts";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { HttpClient, HttpClientError } from "./client.ts";

async function assertFails(p: Promise<unknown>, kind: string, exitCode: number): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HttpClientError && err.kind === kind && err.exitCode === exitCode) return;
    throw new Error(`expected a "${kind}" failure, got ${err}`, { cause: err });
  }
  throw new Error(`expected a "${kind}" failure, got success`);
}

const enc = new TextEncoder();

function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\nContent-Length: ${enc.encode(body).length}\r\n${extra}\r\n${body}`;
}

Deno.test("HttpClient reads every body framing", async (t) => {
  const table: { name: string; reply: string; method?: string; body: string }[] = [
    { name: "Content-Length", reply: ok("hello"), body: "hello" },
    {
      name: "chunked with extensions and trailers",
      reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
      body: "hello, world",
    },
    {
      name: "until close (HTTP/1.0 style)",
      reply: "HTTP/1.0 200 OK\r\n\r\nuntil the end",
      body: "until the end",
    },
    {
      name: "HEAD with a Content-Length has no body",
      reply: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
      method: "HEAD",
      body: "",
    },
    { name: "204", reply: "HTTP/1.1 204 No Content\r\n\r\n", body: "" },
    {
      name: "304 with a Content-Length",
      reply: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
      body: "",
    },
    {
      name: "interim 100 and 103 are skipped",
      reply: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
        ok("final"),
      body: "final",
    },
    {
      name: "response with a bare-LF head",
      reply: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
      body: "ok",
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      // Close after each reply so until-close bodies end.
      await using server = rawServer(() => c.reply);
      await using client = new HttpClient();
      const res = await client.request(`${server.url}/x`, { method: c.method ?? "GET" });
      assertEquals(await res.text(), c.body);
      // The same client then fetches again: it must still work whatever the framing.
      const again = await client.request(`${server.url}/y`, { method: c.method ?? "GET" });
      assertEquals(await again.text(), c.body);
    });
  }
});

Deno.test("HttpClient reuses one keep-alive connection per origin", async (t) => {
  await t.step("three requests, one connection", async () => {
    await using server = rawServer((req) => ok(req.head.target));
    await using client = new HttpClient();
    const seen: string[] = [];
    for (const path of ["/1", "/2", "/3"]) {
      const res = await client.request(`${server.url}${path}`);
      seen.push(await res.text());
      assertEquals(res.reused, path !== "/1");
    }
    assertEquals(seen, ["/1", "/2", "/3"]);
    assertEquals(server.connections, 1);
    assertEquals(client.connectionsOpened, 1);
  });
  await t.step("Connection: close makes the next request reconnect", async () => {
    await using server = rawServer(() => ok("x", "Connection: close\r\n"));
    await using client = new HttpClient();
    for (let i = 0; i < 3; i++) await (await client.request(server.url)).discard();
    assertEquals(server.connections, 3);
  });
});

Deno.test("HttpClient retries once when a reused connection was closed by the server", async () => {
  // Replies keep-alive, then closes the connection silently after the reply.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const serve = (async () => {
    for (let k = 0; k < 2; k++) {
      const conn = await listener.accept();
      connections++;
      const reader = new BufferedReader(conn);
      const head = await readRequestHead(reader);
      await writeAll(conn, enc.encode(ok(`c${k}${head?.target}`)));
      conn.close();
    }
  })();
  await using client = new HttpClient();
  const url = `http://127.0.0.1:${listener.addr.port}`;
  assertEquals(await (await client.request(`${url}/a`)).text(), "c0/a");
  // Give the FIN time to arrive so the pooled connection is dead.
  await new Promise((r) => setTimeout(r, 20));
  const res = await client.request(`${url}/b`);
  assertEquals(await res.text(), "c1/b");
  assertEquals(res.reused, false);
  await serve;
  listener.close();
  assertEquals(connections, 2);
});

Deno.test("HttpClient sends the request head and body it is asked to", async (t) => {
  await using server = rawServer(() => ok("ok"));
  await using client = new HttpClient({ userAgent: "test-agent" });
  await t.step("defaults", async () => {
    await (await client.request(`${server.url}/p?q=1`)).discard();
    const r = server.received.at(-1)!;
    assertEquals(r.head.method, "GET");
    assertEquals(r.head.target, "/p?q=1");
    assertEquals(r.head.headers.get("host"), `127.0.0.1:${server.port}`);
    assertEquals(r.head.headers.get("user-agent"), "test-agent");
    assertEquals(r.head.headers.get("accept"), "*/*");
  });
  await t.step("a body is POSTed with Content-Length", async () => {
    await (await client.request(server.url, { body: enc.encode("a=1&b=2") })).discard();
    const r = server.received.at(-1)!;
    assertEquals(r.head.method, "POST");
    assertEquals(r.body, "a=1&b=2");
    assertEquals(r.head.headers.get("content-length"), "7");
    assertEquals(r.head.headers.get("content-type"), "application/x-www-form-urlencoded");
  });
  await t.step("a large body is streamed after the head", async () => {
    const big = "z".repeat(200_000);
    await (await client.request(server.url, { method: "PUT", body: enc.encode(big) })).discard();
    assertEquals(server.received.at(-1)!.body.length, 200_000);
  });
  await t.step("headers replace defaults, omitHeaders removes them", async () => {
    await (await client.request(server.url, {
      headers: [["Accept", "text/html"], ["X-Empty", ""], ["X-Two", "1"], ["X-Two", "2"]],
      omitHeaders: ["User-Agent"],
    })).discard();
    const h = server.received.at(-1)!.head.headers;
    assertEquals(h.getAll("accept"), ["text/html"]);
    assertEquals(h.get("x-empty"), "");
    assertEquals(h.getAll("x-two"), ["1", "2"]);
    assertEquals(h.has("user-agent"), false);
  });
  await t.step("header injection is refused", async () => {
    await assertFails(
      client.request(server.url, { headers: [["X", "a\r\nEvil: 1"]] }),
      "url",
      3,
    );
  });
  assertEquals(server.connections, 1);
});

Deno.test("HttpClient follows redirects like curl -L", async (t) => {
  await using other = rawServer((req) => ok(`other:${req.head.headers.get("authorization")}`));
  await using server = rawServer((req) => {
    const t = req.head.target;
    const redirect = (code: number, to: string) =>
      `HTTP/1.1 ${code} R\r\nLocation: ${to}\r\nContent-Length: 3\r\n\r\nbye`;
    if (t === "/302") return redirect(302, "/final");
    if (t === "/303") return redirect(303, "/final");
    if (t === "/307") return redirect(307, "/final");
    if (t === "/loop") return redirect(302, "/loop");
    if (t === "/away") return redirect(301, `${other.url}/x`);
    return ok(`${req.head.method} ${t} ${req.body}`);
  });
  await using client = new HttpClient();
  const table: { path: string; method: string; expect: string }[] = [
    { path: "/302", method: "GET", expect: "GET /final " },
    { path: "/302", method: "POST", expect: "GET /final " },
    { path: "/303", method: "PUT", expect: "GET /final " },
    { path: "/307", method: "POST", expect: "POST /final data" },
  ];
  for (const c of table) {
    await t.step(`${c.method} ${c.path}`, async () => {
      const hops: number[] = [];
      const res = await client.request(`${server.url}${c.path}`, {
        method: c.method,
        ...(c.method !== "GET" ? { body: enc.encode("data") } : {}),
        maxRedirects: 5,
        onRedirect: (r) => hops.push(r.status),
      });
      assertEquals(await res.text(), c.expect);
      assertEquals(hops.length, 1);
      assertEquals(res.url.pathname, "/final");
    });
  }
  await t.step("without maxRedirects the 3xx is returned", async () => {
    const res = await client.request(`${server.url}/302`);
    assertEquals(res.status, 302);
    assertEquals(await res.text(), "bye");
  });
  await t.step("a loop stops at the limit with exit code 47", async () => {
    await assertFails(client.request(`${server.url}/loop`, { maxRedirects: 3 }), "redirects", 47);
  });
  await t.step("Authorization is dropped on a cross-origin redirect", async () => {
    const res = await client.request(`${server.url}/away`, {
      maxRedirects: 2,
      headers: [["Authorization", "Basic Zm9vOmJhcg=="]],
    });
    assertEquals(await res.text(), "other:null");
  });
  // Every hop on the same origin reused the single connection.
  assertEquals(server.connections, 1);
});

Deno.test("HttpClient classifies failures with curl's exit codes", async (t) => {
  await t.step("connection refused → 7", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = l.addr.port;
    l.close();
    await using client = new HttpClient();
    await assertFails(client.request(`http://127.0.0.1:${port}/`), "connect", 7);
  });
  await t.step("name resolution failure → 6", async () => {
    await using client = new HttpClient({
      resolve: () =>
        Promise.reject(Object.assign(new Error("no such name"), { code: "ENOTFOUND" })),
    });
    await assertFails(client.request("http://nowhere.invalid/"), "dns", 6);
  });
  await t.step("the system resolver's failure keeps lib/resolve.ts's message", async () => {
    await using client = new HttpClient();
    const err = await client.request("http://nowhere.invalid/").catch((e) => e);
    assert(err instanceof HttpClientError && err.kind === "dns", String(err));
    assertMatch(err.message, /^Cannot resolve host "nowhere\.invalid": [a-z]/);
    assertEquals((err.cause as Error).name, "ResolveError");
  });
  await t.step("a resolver that answers is used for the connection", async () => {
    await using server = rawServer(() => ok("resolved"));
    await using client = new HttpClient({ resolve: () => Promise.resolve(["127.0.0.1"]) });
    const res = await client.request(`http://some.test:${server.port}/`);
    assertEquals(await res.text(), "resolved");
    assertEquals(server.received[0]!.head.headers.get("host"), `some.test:${server.port}`);
  });
  await t.step("no reply within the timeout → 28", async () => {
    await using server = rawServer(() => new Promise<null>((r) => setTimeout(() => r(null), 500)));
    await using client = new HttpClient();
    await assertFails(client.request(server.url, { timeout: 100 }), "timeout", 28);
  });
  await t.step("a body that stalls past the timeout → 28", async () => {
    // The head arrives, the body never completes.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serve = (async () => {
      const conn = await listener.accept();
      const reader = new BufferedReader(conn);
      await readRequestHead(reader);
      await writeAll(conn, enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"));
      await new Promise((r) => setTimeout(r, 400));
      conn.close();
    })();
    await using client = new HttpClient();
    const res = await client.request(`http://127.0.0.1:${listener.addr.port}/`, { timeout: 150 });
    await assertFails(res.bytes(), "timeout", 28);
    await serve;
    listener.close();
  });
  await t.step("malformed status line → 8", async () => {
    await using server = rawServer(() => "HTTP/1.1 2000 Nope\r\n\r\n");
    await using client = new HttpClient();
    await assertFails(client.request(server.url), "reply", 8);
  });
  await t.step("conflicting Content-Length in a response → 8", async () => {
    await using server = rawServer(() =>
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    );
    await using client = new HttpClient();
    await assertFails(client.request(server.url), "reply", 8);
  });
  await t.step("malformed chunk size → 8", async () => {
    await using server = rawServer(() =>
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
    );
    await using client = new HttpClient();
    const res = await client.request(server.url);
    await assertFails(res.bytes(), "reply", 8);
  });
  await t.step("closed without a reply → 52", async () => {
    await using server = rawServer(() => null);
    await using client = new HttpClient();
    await assertFails(client.request(server.url), "empty", 52);
  });
  await t.step("body shorter than Content-Length → 18", async () => {
    await using server = rawServer(() => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    await using client = new HttpClient();
    const res = await client.request(server.url, { headers: [["Connection", "close"]] });
    await assertFails(res.bytes(), "partial", 18);
  });
  await t.step("unsupported scheme → 1, malformed URL → 3", async () => {
    await using client = new HttpClient();
    await assertFails(client.request("ftp://127.0.0.1/"), "protocol", 1);
    await assertFails(client.request("http://[::1/"), "url", 3);
  });
});

Deno.test("HttpClient speaks HTTPS with a trusted CA and refuses an unknown one", async (t) => {
  await using ca = await makeTestCa({ prefix: "client_tls_" });
  using listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: ca.cert,
    key: ca.key,
  });
  const serve = (async () => {
    for (let k = 0; k < 2; k++) {
      const conn = await listener.accept();
      try {
        const reader = new BufferedReader(conn);
        const head = await readRequestHead(reader);
        if (head !== null) {
          await writeAll(conn, enc.encode(ok("secure", "Connection: close\r\n")));
        }
      } catch {
        // The untrusting client aborts the handshake.
      } finally {
        conn.close();
      }
    }
  })();
  await t.step("trusted: body and a TLS timing mark", async () => {
    await using client = new HttpClient({ caCerts: [ca.caCert] });
    const res = await client.request(`https://localhost:${listener.addr.port}/`);
    assertEquals(await res.text(), "secure");
    assert(res.timing.tls >= res.timing.connect && res.timing.tls > 0, "tls mark");
    assert(res.timing.firstByte >= res.timing.tls, "first byte after TLS");
    assert(res.timing.total >= res.timing.firstByte, "total last");
  });
  await t.step("unknown CA → 60", async () => {
    await using client = new HttpClient();
    await assertFails(
      client.request(`https://localhost:${listener.addr.port}/`),
      "certificate",
      60,
    );
  });
  await serve;
});

// ---------------------------------------------------------------------------
// Pools, retries, streamed bodies, exact heads, interim responses, deadlines.

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function* pieces(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield enc.encode(p);
}

/** What a promise rejected with, or a failure if it resolved. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection, got success");
}

/** Waits until the peer closes the connection (or it is closed under us). */
async function untilClosed(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  while ((await conn.read(buf)) !== null) {
    // Drain whatever the client still sends.
  }
}

Deno.test("HttpClient makes a request beyond maxConnectionsPerOrigin wait for a free connection", async (t) => {
  await t.step(
    "the third of three waits until a body is read, then reuses that connection",
    async () => {
      await using server = rawServer((req) => ok(req.head.target));
      await using client = new HttpClient({ maxConnectionsPerOrigin: 2 });
      const first = await client.request(`${server.url}/1`);
      const second = await client.request(`${server.url}/2`);
      let settled = false;
      const third = client.request(`${server.url}/3`).finally(() => settled = true);
      await delay(50);
      assertEquals(settled, false, "the third request waits while both connections are busy");
      assertEquals(client.connectionsOpened, 2);
      assertEquals(await first.text(), "/1");
      const res = await third;
      assertEquals(res.reused, true);
      assertEquals(res.connectionId, first.connectionId);
      assertEquals(await res.text(), "/3");
      assertEquals(await second.text(), "/2");
      assertEquals(client.connectionsOpened, 2);
      assertEquals(server.connections, 2);
    },
  );
  await t.step(
    "a waiter that times out does not take the next free connection with it",
    async () => {
      await using server = rawServer((req) => ok(req.head.target));
      await using client = new HttpClient({ maxConnectionsPerOrigin: 1 });
      const busy = await client.request(`${server.url}/busy`);
      await assertFails(client.request(`${server.url}/gives-up`, { timeout: 100 }), "timeout", 28);
      const waiting = client.request(`${server.url}/waits`, { timeout: 2000 });
      assertEquals(await busy.text(), "/busy");
      assertEquals(await (await waiting).text(), "/waits");
      assertEquals(client.connectionsOpened, 1);
    },
  );
});

Deno.test("HttpClient keeps at most maxIdlePerOrigin idle connections", async (t) => {
  for (const maxIdle of [0, 1, 2, 3]) {
    await t.step(`maxIdlePerOrigin ${maxIdle} with three connections finishing`, async () => {
      await using server = rawServer((req) => ok(req.head.target));
      await using client = new HttpClient({ maxIdlePerOrigin: maxIdle });
      const round = async () => {
        const all = await Promise.all(
          ["/a", "/b", "/c"].map((p) => client.request(server.url + p)),
        );
        for (const res of all) await res.discard();
      };
      await round();
      assertEquals(client.connectionsOpened, 3);
      assertEquals(client.idleConnections, Math.min(maxIdle, 3));
      // The next round reuses only what was kept, and opens the rest.
      await round();
      assertEquals(client.connectionsOpened, 3 + (3 - Math.min(maxIdle, 3)));
      assertEquals(client.idleConnections, Math.min(maxIdle, 3));
    });
  }
});

Deno.test("HttpClient forgets an origin once nothing is open, idle or awaited there", async (t) => {
  await t.step("200 refused origins leave no pool behind", async () => {
    // A reserved port no test running in parallel can take (one from
    // freePort() could be, by another test's server): connects are refused.
    using reserved = await refusedPort();
    await using client = new HttpClient();
    for (let i = 0; i < 200; i++) {
      // 200 origins: 127.0.0.2 to 127.0.0.201, all on the reserved port.
      await assertFails(
        client.request(`http://127.0.0.${i + 2}:${reserved.port}/`),
        "connect",
        7,
      );
    }
    assertEquals(client.origins, 0);
  });
  await t.step("a pool lives while it holds an idle connection, and goes with it", async () => {
    await using server = rawServer((req) => ok(req.head.target));
    await using client = new HttpClient({ idleTimeout: 100 });
    await (await client.request(`${server.url}/1`)).discard();
    assertEquals([client.origins, client.idleConnections], [1, 1]);
    await delay(250);
    assertEquals([client.origins, client.idleConnections], [0, 0]);
    // And comes back on the next request.
    assertEquals(await (await client.request(`${server.url}/2`)).text(), "/2");
    assertEquals(client.origins, 1);
  });
});

Deno.test("HttpClient does not reuse a connection idle for longer than idleTimeout", async (t) => {
  await using server = rawServer((req) => ok(req.head.target));
  await using client = new HttpClient({ idleTimeout: 100 });
  await t.step("within idleTimeout the pooled connection is reused", async () => {
    await (await client.request(`${server.url}/1`)).discard();
    const res = await client.request(`${server.url}/2`);
    assertEquals(res.reused, true);
    await res.discard();
    assertEquals(client.connectionsOpened, 1);
  });
  await t.step("past idleTimeout it is closed, and a new one is opened", async () => {
    await delay(250);
    assertEquals(client.idleConnections, 0, "the sweeper closed the idle connection");
    const res = await client.request(`${server.url}/3`);
    assertEquals(res.reused, false);
    assertEquals(await res.text(), "/3");
    assertEquals(client.connectionsOpened, 2);
    assertEquals(server.connections, 2);
  });
});

Deno.test("HttpClient retries a request on a reused connection the server closed only when it is replayable and idempotent", async (t) => {
  const table: {
    name: string;
    method: string;
    body?: () => Uint8Array | AsyncIterable<Uint8Array>;
    retried: boolean;
  }[] = [
    { name: "GET is retried", method: "GET", retried: true },
    {
      name: "PUT with a byte body is retried",
      method: "PUT",
      body: () => enc.encode("p"),
      retried: true,
    },
    { name: "POST is not retried", method: "POST", body: () => enc.encode("p"), retried: false },
    {
      name: "PUT with a streamed body is not retried",
      method: "PUT",
      body: () => pieces("p"),
      retried: false,
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      // Each connection answers one request keep-alive, then closes silently.
      await using server = scriptedServer(async (conn, reader, index) => {
        const head = await readRequestHead(reader);
        if (head === null) return;
        await readBody(reader, head.body);
        await writeAll(conn, enc.encode(ok(`c${index}`)));
      });
      await using client = new HttpClient();
      assertEquals(await (await client.request(`${server.url}/a`)).text(), "c0");
      // Give the FIN time to arrive so the pooled connection is dead.
      await delay(20);
      const second = client.request(`${server.url}/b`, {
        method: c.method,
        ...(c.body !== undefined ? { body: c.body() } : {}),
      });
      if (c.retried) {
        const res = await second;
        assertEquals(await res.text(), "c1");
        assertEquals(res.reused, false);
        assertEquals(server.connections, 2);
      } else {
        const err = await rejection(second);
        assert(err instanceof HttpClientError, `a classified failure, got ${err}`);
        assert(["empty", "recv"].includes(err.kind), err.kind);
        assertEquals(server.connections, 1, "no second connection");
      }
    });
  }
});

Deno.test("HttpClient streams an AsyncIterable body chunked, or with bodyLength as Content-Length", async (t) => {
  await using server = rawServer(() => ok("ok"));
  await using client = new HttpClient();
  const table: {
    name: string;
    bodyLength?: number;
    framing: string;
    contentLength: string | null;
    transferEncoding: string | null;
  }[] = [
    {
      name: "without bodyLength: chunked",
      framing: "chunked",
      contentLength: null,
      transferEncoding: "chunked",
    },
    {
      name: "with bodyLength: Content-Length",
      bodyLength: 12,
      framing: "length",
      contentLength: "12",
      transferEncoding: null,
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      const res = await client.request(`${server.url}/up`, {
        method: "PUT",
        body: pieces("hello", "", ", ", "world"),
        ...(c.bodyLength !== undefined ? { bodyLength: c.bodyLength } : {}),
      });
      await res.upload;
      assertEquals(await res.text(), "ok");
      const r = server.received.at(-1)!;
      assertEquals(r.head.method, "PUT");
      assertEquals(r.head.body.type, c.framing);
      assertEquals(r.head.headers.get("content-length"), c.contentLength);
      assertEquals(r.head.headers.get("transfer-encoding"), c.transferEncoding);
      assertEquals(r.body, "hello, world");
    });
  }
  assertEquals(server.connections, 1, "the connection is reused after a streamed body");
  for (const bodyLength of [11, 20]) {
    await t.step(
      `a source that does not match bodyLength ${bodyLength} fails the request`,
      async () => {
        // The peer waits for the announced length, so no answer comes first.
        const err = await rejection(client.request(`${server.url}/up`, {
          method: "PUT",
          body: pieces("hello", ", ", "world"),
          bodyLength,
        }));
        assert(err instanceof RangeError, `a RangeError, got ${err}`);
        assertMatch(err.message, /^Cannot send the request body: .*bodyLength/);
        assertEquals(client.idleConnections, 0, "the connection is not reused");
      },
    );
  }
});

Deno.test("HttpClient hands a failing body source's own error to the caller", async (t) => {
  await t.step("request() rejects with it when the source fails before the response", async () => {
    // The peer reads the whole body before answering, so no answer comes.
    await using server = rawServer(() => ok("never"));
    await using client = new HttpClient();
    const boom = new Error("the source broke");
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield enc.encode("part");
      throw boom;
    }
    const err = await rejection(client.request(server.url, { method: "PUT", body: failing() }));
    assert(err === boom, `the source's own error, got ${err}`);
    assertEquals(client.idleConnections, 0);
  });
  await t.step("upload rejects with it when the response came first", async () => {
    // The peer answers as soon as the head is in, then waits for the client to go.
    await using server = scriptedServer(async (conn, reader) => {
      await readRequestHead(reader);
      await writeAll(conn, enc.encode(ok("early")));
      await untilClosed(conn);
    });
    await using client = new HttpClient();
    const boom = new Error("the source broke late");
    const go = Promise.withResolvers<void>();
    async function* late(): AsyncGenerator<Uint8Array> {
      yield enc.encode("part");
      await go.promise;
      throw boom;
    }
    const res = await client.request(server.url, { method: "PUT", body: late() });
    assertEquals(res.status, 200);
    go.resolve();
    const err = await rejection(res.upload);
    assert(err === boom, `the source's own error, got ${err}`);
    await res.cancel();
    assertEquals(client.idleConnections, 0, "a connection with a broken upload is not pooled");
  });
});

Deno.test("HttpClient with exactHeaders sends the fields as given plus the body's framing", async (t) => {
  const seen: { fields: [string, string][]; body: string }[] = [];
  // Accepts a request without Host, which rawServer's parser would refuse.
  await using server = scriptedServer(async (conn, reader) => {
    for (;;) {
      const head = await readRequestHead(reader, { requireHost: false });
      if (head === null) return;
      const body = new TextDecoder().decode(await readBody(reader, head.body));
      seen.push({ fields: [...head.headers], body });
      await writeAll(conn, enc.encode(ok("ok")));
    }
  });
  await using client = new HttpClient({ userAgent: "never-sent" });
  const table: {
    name: string;
    method: string;
    headers: [string, string][];
    body?: () => Uint8Array | AsyncIterable<Uint8Array>;
    bodyLength?: number;
    expect: [string, string][];
  }[] = [
    {
      name: "no body: the fields alone, without Host, User-Agent or Accept",
      method: "GET",
      headers: [["X-B", "2"], ["x-a", "1"], ["X-B", "3"]],
      expect: [["X-B", "2"], ["x-a", "1"], ["X-B", "3"]],
    },
    {
      name: "a byte body: its real Content-Length replaces a given one, no Content-Type added",
      method: "POST",
      headers: [["Host", "given.example"], ["Content-Length", "99"], ["X-A", "1"]],
      body: () => enc.encode("hello"),
      expect: [["Host", "given.example"], ["X-A", "1"], ["Content-Length", "5"]],
    },
    {
      name: "a streamed body: chunked, replacing a given Content-Length",
      method: "PUT",
      headers: [["X-A", "1"], ["Content-Length", "3"]],
      body: () => pieces("hel", "lo"),
      expect: [["X-A", "1"], ["Transfer-Encoding", "chunked"]],
    },
    {
      name: "a streamed body with bodyLength: Content-Length, replacing a given Transfer-Encoding",
      method: "PUT",
      headers: [["Transfer-Encoding", "chunked"], ["X-A", "1"]],
      body: () => pieces("hel", "lo"),
      bodyLength: 5,
      expect: [["X-A", "1"], ["Content-Length", "5"]],
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      const res = await client.request(`${server.url}/exact`, {
        method: c.method,
        headers: c.headers,
        exactHeaders: true,
        ...(c.body !== undefined ? { body: c.body() } : {}),
        ...(c.bodyLength !== undefined ? { bodyLength: c.bodyLength } : {}),
      });
      assertEquals(await res.text(), "ok");
      const got = seen.at(-1)!;
      assertEquals(got.fields, c.expect);
      assertEquals(got.body, c.body !== undefined ? "hello" : "");
    });
  }
});

Deno.test("HttpClient hands a 103 Early Hints to onInterim before the final response", async () => {
  const hinted = Promise.withResolvers<void>();
  // The final response is only sent once the client has seen the 103.
  await using server = scriptedServer(async (conn, reader) => {
    await readRequestHead(reader);
    await writeAll(
      conn,
      enc.encode("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"),
    );
    await hinted.promise;
    await writeAll(conn, enc.encode(ok("final", "Connection: close\r\n")));
  });
  await using client = new HttpClient();
  const events: string[] = [];
  const res = await client.request(server.url, {
    timeout: 2000,
    onInterim: (head) => {
      events.push(`${head.status} ${head.headers.get("link")}`);
      hinted.resolve();
    },
  });
  events.push(`${res.status} ${await res.text()}`);
  assertEquals(events, ["103 </style.css>; rel=preload", "200 final"]);
});

Deno.test("HttpClient fails with kind timeout when the head or the body stalls", async (t) => {
  // The head never comes: the peer reads the request and waits.
  await using silent = scriptedServer(async (conn, reader) => {
    await readRequestHead(reader);
    await untilClosed(conn);
  });
  // The head and 3 of 100 body bytes come, then nothing.
  await using stalled = scriptedServer(async (conn, reader) => {
    await readRequestHead(reader);
    await writeAll(conn, enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"));
    await untilClosed(conn);
  });
  await t.step("the client's headTimeout", async () => {
    await using client = new HttpClient({ headTimeout: 150 });
    await assertFails(client.request(silent.url), "timeout", 28);
  });
  await t.step("a request's own headTimeout", async () => {
    await using client = new HttpClient();
    await assertFails(client.request(silent.url, { headTimeout: 150 }), "timeout", 28);
  });
  await t.step("bodyTimeout closes the connection of a stalled body", async () => {
    await using client = new HttpClient({ bodyTimeout: 150 });
    const res = await client.request(stalled.url);
    assertEquals(res.status, 200);
    await assertFails(res.bytes(), "timeout", 28);
    assertEquals(client.idleConnections, 0);
  });
  await t.step("bodyTimeout bounds each wait for body data, not the whole body", async () => {
    await using slow = scriptedServer(async (conn, reader) => {
      await readRequestHead(reader);
      await writeAll(conn, enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
      for (const ch of "abcde") {
        await delay(60);
        await writeAll(conn, enc.encode(ch));
      }
      await untilClosed(conn);
    });
    await using client = new HttpClient({ bodyTimeout: 150 });
    const res = await client.request(slow.url);
    assertEquals(await res.text(), "abcde");
  });
  await t.step("bodyTimeout does not cut a head that is slower than it", async () => {
    await using late = scriptedServer(async (conn, reader) => {
      await readRequestHead(reader);
      await delay(300);
      await writeAll(conn, enc.encode(ok("late")));
      await untilClosed(conn);
    });
    await using client = new HttpClient({ bodyTimeout: 100, headTimeout: 2000 });
    const res = await client.request(late.url);
    assertEquals(await res.text(), "late");
  });
});

Deno.test("HttpClient cancel() closes the connection, so the next request opens a new one", async () => {
  await using server = rawServer((req) => ok(`body of ${req.head.target}`));
  await using client = new HttpClient();
  const first = await client.request(`${server.url}/1`);
  await first.cancel();
  assertEquals(client.idleConnections, 0);
  const second = await client.request(`${server.url}/2`);
  assertEquals(second.reused, false);
  assertEquals(await second.text(), "body of /2");
  assertEquals(client.connectionsOpened, 2);
  assertEquals(server.connections, 2);
});

Deno.test("HttpClient with fresh: true opens a new connection even with an idle one pooled", async (t) => {
  await t.step("the pooled connection stays for later requests", async () => {
    await using server = rawServer((req) => ok(req.head.target));
    await using client = new HttpClient();
    await (await client.request(`${server.url}/1`)).discard();
    assertEquals(client.idleConnections, 1);
    const res = await client.request(`${server.url}/2`, { fresh: true });
    assertEquals(res.reused, false);
    assertEquals(await res.text(), "/2");
    assertEquals(client.connectionsOpened, 2);
    assertEquals(client.idleConnections, 2);
    const later = await client.request(`${server.url}/3`);
    assertEquals(later.reused, true);
    await later.discard();
    assertEquals(server.connections, 2);
  });
  await t.step("at maxConnectionsPerOrigin it closes the idle one to make room", async () => {
    await using server = rawServer((req) => ok(req.head.target));
    await using client = new HttpClient({ maxConnectionsPerOrigin: 1 });
    await (await client.request(`${server.url}/1`)).discard();
    const res = await client.request(`${server.url}/2`, { fresh: true, timeout: 2000 });
    assertEquals(res.reused, false);
    assertEquals(await res.text(), "/2");
    assertEquals(client.connectionsOpened, 2);
    assertEquals(client.idleConnections, 1);
  });
});

Deno.test("HttpClient writeTo() streams a body through one buffer and classifies sink failures", async (t) => {
  const body = "0123456789".repeat(1000);
  await using server = rawServer(() => ok(body));
  await using client = new HttpClient();
  await t.step("every write is a view of the one buffer; the connection is kept", async () => {
    const res = await client.request(`${server.url}/a`);
    const buffers = new Set<ArrayBufferLike>();
    let text = "";
    const seen: number[] = [];
    const n = await res.writeTo({
      write(p) {
        buffers.add(p.buffer);
        text += new TextDecoder().decode(p);
        return Promise.resolve(p.length);
      },
    }, { bufferSize: 4096, fill: true, onWrite: (w) => seen.push(w) });
    assertEquals(n, body.length);
    assertEquals(text, body);
    assertEquals(buffers.size, 1);
    // Filled: full 4 KiB writes, then the tail.
    assertEquals(seen, [4096, 8192, 10000]);
    assertEquals(client.idleConnections, 1);
  });
  await t.step("a failing sink is a write failure (23) and the connection is dropped", async () => {
    const res = await client.request(`${server.url}/b`);
    assertEquals(res.reused, true);
    const sink = { write: () => Promise.reject(new Error("disk full")) };
    await assertFails(res.writeTo(sink), "write", 23);
    assertEquals(client.idleConnections, 0);
    const next = await client.request(`${server.url}/c`);
    assertEquals(next.reused, false);
    assertEquals(await next.discard(), body.length);
  });
});
