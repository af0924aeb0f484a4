import { BufferedReader, readRequestHead, writeAll } from "./mod.ts";
import { rawServer } from "./testdata/peers.ts";
import { makeTestCa } from "../testing/tls.ts";
import { assert, assertEquals } from "../testing/assert.ts";
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
