import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { readerOf } from "./_test_util.ts";
import {
  bytesResponse,
  encodeResponse,
  type EncodeResponseOptions,
  responseBytes,
  serveFetch,
  toRequest,
} from "./fetch.ts";
import { readRequestHead, type RequestHead } from "./heads.ts";
import { RawClient } from "./testdata/raw_client.ts";

/** Every test here checks that it leaves no timer, socket or pending op behind. */
const sanitized = { sanitizeOps: true, sanitizeResources: true } as const;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A body stream that records whether it was read or cancelled. */
function tracked(text: string, length?: number) {
  const state = { pulled: false, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      state.pulled = true;
      controller.enqueue(enc.encode(text));
      controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 }); // Pulled only when someone reads.
  const headers: Record<string, string> = length !== undefined
    ? { "content-length": String(length) }
    : {};
  return { stream, state, headers };
}

interface EncodeCase {
  name: string;
  make: () => { response: Response; state?: { pulled: boolean; cancelled: boolean } };
  options?: EncodeResponseOptions;
  expect: {
    status?: number;
    chunked: boolean;
    keepAlive: boolean;
    /** The in-memory body, `null` when there is none (a stream or bodiless). */
    body: string | null;
    /** The text the stream yields, `null` when there is no stream. */
    stream: string | null;
    /** Whether head and body were joined into `wire`. */
    wire: boolean;
    has?: RegExp[];
    lacks?: RegExp[];
    pulled?: boolean;
    cancelled?: boolean;
  };
}

Deno.test("encodeResponse() frames each kind of response for HTTP/1.x", sanitized, async (t) => {
  const table: EncodeCase[] = [
    {
      name: "a stream with a Content-Length keeps it and goes out as is",
      make: () => {
        const s = tracked("hello", 5);
        return { response: new Response(s.stream, { headers: s.headers }), state: s.state };
      },
      expect: {
        chunked: false,
        keepAlive: true,
        body: null,
        stream: "hello",
        wire: false,
        has: [/\r\ncontent-length: 5\r\n/, /\r\nDate: [^\r]+ GMT\r\n/],
        lacks: [/transfer-encoding/i, /connection/i],
      },
    },
    {
      name: "a stream without a length goes out chunked to HTTP/1.1",
      make: () => ({ response: new Response(tracked("hello").stream) }),
      expect: {
        chunked: true,
        keepAlive: true,
        body: null,
        stream: "hello",
        wire: false,
        has: [/\r\nTransfer-Encoding: chunked\r\n/],
        lacks: [/content-length/i, /connection/i],
      },
    },
    {
      name: "a stream without a length goes out delimited by the close to HTTP/1.0",
      make: () => ({ response: new Response(tracked("hello").stream) }),
      options: { version: "HTTP/1.0" },
      expect: {
        chunked: false,
        keepAlive: false,
        body: null,
        stream: "hello",
        wire: false,
        has: [/\r\nConnection: close\r\n/],
        lacks: [/transfer-encoding/i, /content-length/i],
      },
    },
    {
      name: "HTTP/1.0 with a length may stay open: Connection: keep-alive",
      make: () => ({ response: bytesResponse(enc.encode("hello")) }),
      options: { version: "HTTP/1.0" },
      expect: {
        chunked: false,
        keepAlive: true,
        body: "hello",
        stream: null,
        wire: true,
        has: [/\r\nConnection: keep-alive\r\n/, /\r\ncontent-length: 5\r\n/],
      },
    },
    {
      name: "keepAlive false: Connection: close",
      make: () => ({ response: bytesResponse(enc.encode("hello")) }),
      options: { keepAlive: false },
      expect: {
        chunked: false,
        keepAlive: false,
        body: "hello",
        stream: null,
        wire: true,
        has: [/\r\nConnection: close\r\n/],
      },
    },
    {
      name: "HEAD: no body, the stream cancelled unread, the Content-Length kept",
      make: () => {
        const s = tracked("hello", 5);
        return { response: new Response(s.stream, { headers: s.headers }), state: s.state };
      },
      options: { method: "HEAD" },
      expect: {
        chunked: false,
        keepAlive: true,
        body: null,
        stream: null,
        wire: false,
        has: [/\r\ncontent-length: 5\r\n/],
        lacks: [/transfer-encoding/i],
        pulled: false,
        cancelled: true,
      },
    },
    {
      name: "204: no body and no framing fields",
      make: () => ({ response: new Response(null, { status: 204 }) }),
      expect: {
        status: 204,
        chunked: false,
        keepAlive: true,
        body: null,
        stream: null,
        wire: false,
        lacks: [/transfer-encoding/i, /content-length/i],
      },
    },
    {
      name: "304: no body, its validators and Content-Length kept",
      make: () => ({
        response: new Response(null, {
          status: 304,
          headers: { etag: '"v1"', "content-length": "100" },
        }),
      }),
      expect: {
        status: 304,
        chunked: false,
        keepAlive: true,
        body: null,
        stream: null,
        wire: false,
        has: [/\r\netag: "v1"\r\n/, /\r\ncontent-length: 100\r\n/],
        lacks: [/transfer-encoding/i],
      },
    },
    {
      name: "hop-by-hop fields the handler set are dropped",
      make: () => ({
        response: bytesResponse(enc.encode("hi"), {
          headers: {
            connection: "upgrade",
            "keep-alive": "timeout=5",
            "transfer-encoding": "gzip",
            "x-kept": "yes",
          },
        }),
      }),
      expect: {
        chunked: false,
        keepAlive: true,
        body: "hi",
        stream: null,
        wire: true,
        has: [/\r\nx-kept: yes\r\n/, /\r\ncontent-length: 2\r\n/],
        lacks: [/upgrade/i, /timeout=5/, /gzip/, /transfer-encoding/i, /connection/i],
      },
    },
    {
      name: "no body at all: Content-Length: 0",
      make: () => ({ response: new Response(null, { status: 201 }) }),
      expect: {
        status: 201,
        chunked: false,
        keepAlive: true,
        body: "",
        stream: null,
        wire: true,
        has: [/\r\ncontent-length: 0\r\n/],
      },
    },
    {
      name: "bufferUpTo reads a small streamed body with a length into memory",
      make: () => {
        const s = tracked("hello", 5);
        return { response: new Response(s.stream, { headers: s.headers }), state: s.state };
      },
      options: { bufferUpTo: 5 },
      expect: {
        chunked: false,
        keepAlive: true,
        body: "hello",
        stream: null,
        wire: true,
        has: [/\r\ncontent-length: 5\r\n/],
        pulled: true,
      },
    },
    {
      name: "bufferUpTo leaves a longer body streamed",
      make: () => {
        const s = tracked("hello", 5);
        return { response: new Response(s.stream, { headers: s.headers }), state: s.state };
      },
      options: { bufferUpTo: 4 },
      expect: {
        chunked: false,
        keepAlive: true,
        body: null,
        stream: "hello",
        wire: false,
        has: [/\r\ncontent-length: 5\r\n/],
        pulled: false,
      },
    },
    {
      name: "bufferUpTo frames a body shorter than its Content-Length by what was read",
      make: () => {
        const s = tracked("abc", 5);
        return { response: new Response(s.stream, { headers: s.headers }), state: s.state };
      },
      options: { bufferUpTo: 100 },
      expect: {
        chunked: false,
        keepAlive: true,
        body: "abc",
        stream: null,
        wire: true,
        has: [/\r\ncontent-length: 3\r\n/],
        lacks: [/content-length: 5/],
      },
    },
    {
      name: "joinUpTo smaller than the body keeps head and body apart",
      make: () => ({ response: bytesResponse(enc.encode("0123456789")) }),
      options: { joinUpTo: 9 },
      expect: {
        chunked: false,
        keepAlive: true,
        body: "0123456789",
        stream: null,
        wire: false,
        has: [/\r\ncontent-length: 10\r\n/],
      },
    },
  ];
  for (const row of table) {
    await t.step(row.name, async () => {
      const { response, state } = row.make();
      const encoded = await encodeResponse(response, row.options);
      const head = dec.decode(encoded.head);
      const x = row.expect;
      // Before the test reads the stream: did the encoder read or cancel it?
      if (x.pulled !== undefined) assertEquals(state!.pulled, x.pulled, "pulled");
      if (x.cancelled !== undefined) assertEquals(state!.cancelled, x.cancelled, "cancelled");
      const status = x.status ?? 200;
      assertEquals(encoded.status, status);
      assertMatch(head, new RegExp(`^HTTP/1\\.1 ${status} [^\\r]*\\r\\n`));
      assert(head.endsWith("\r\n\r\n"), "the head does not end with an empty line");
      assertEquals([encoded.chunked, encoded.keepAlive], [x.chunked, x.keepAlive]);
      assertEquals(encoded.body === null ? null : dec.decode(encoded.body), x.body);
      assertEquals(
        encoded.stream === null ? null : await new Response(encoded.stream).text(),
        x.stream,
      );
      if (x.wire) {
        assertEquals(dec.decode(encoded.wire!), head + x.body);
      } else {
        assertEquals(encoded.wire, null);
      }
      for (const re of x.has ?? []) assertMatch(head, re);
      for (const re of x.lacks ?? []) assert(!re.test(head), `${re} in ${JSON.stringify(head)}`);
      // One framing field at most (RFC 9112 §6.3).
      assert((head.match(/content-length:|transfer-encoding:/gi) ?? []).length <= 1, head);
    });
  }
});

Deno.test(
  "bytesResponse() bodies are written from the bytes, without reading the stream",
  sanitized,
  async () => {
    const bytes = enc.encode("in memory");
    const response = bytesResponse(bytes, { status: 201, headers: { "x-a": "b" } });
    assert(responseBytes(response) === bytes);
    assertEquals(responseBytes(new Response("text")), undefined);
    const encoded = await encodeResponse(response);
    assert(encoded.body === bytes, "the body was copied or read from the stream");
    assertEquals(encoded.stream, null);
    assertMatch(dec.decode(encoded.head), /^HTTP\/1\.1 201 [^]*\r\ncontent-length: 9\r\n/);
  },
);

/** Parses a request head from wire text. */
async function parse(text: string): Promise<RequestHead> {
  const head = await readRequestHead(readerOf(text));
  if (head === null) throw new Error("no head");
  return head;
}

Deno.test(
  "toRequest() builds a Request from each request-target form, or undefined when Fetch cannot say it",
  sanitized,
  async (t) => {
    const table: {
      name: string;
      wire: string;
      options?: { scheme?: string; host?: string };
      url: string | undefined;
    }[] = [
      {
        name: "origin form with Host",
        wire: "GET /x?y=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        url: "http://example.test/x?y=1",
      },
      {
        name: "origin form over TLS",
        wire: "GET /x HTTP/1.1\r\nHost: example.test:8443\r\n\r\n",
        options: { scheme: "https" },
        url: "https://example.test:8443/x",
      },
      {
        name: "origin form without Host (HTTP/1.0): the given host",
        wire: "GET /x HTTP/1.0\r\n\r\n",
        options: { host: "fallback.test" },
        url: "http://fallback.test/x",
      },
      {
        name: "origin form without Host and no default: localhost",
        wire: "GET / HTTP/1.0\r\n\r\n",
        url: "http://localhost/",
      },
      {
        name: "absolute form: the target, not the Host field",
        wire: "GET http://other.test:8080/p?q HTTP/1.1\r\nHost: example.test\r\n\r\n",
        url: "http://other.test:8080/p?q",
      },
      {
        name: "authority form (CONNECT): undefined",
        wire: "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
        url: undefined,
      },
      {
        name: "asterisk form (OPTIONS *): undefined",
        wire: "OPTIONS * HTTP/1.1\r\nHost: example.test\r\n\r\n",
        url: undefined,
      },
      {
        name: "a Host that makes no URL (port 99999): undefined",
        wire: "GET / HTTP/1.1\r\nHost: example.test:99999\r\n\r\n",
        url: undefined,
      },
      {
        name: "an absolute target that makes no URL: undefined",
        wire: "GET http://[::1/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
        url: undefined,
      },
    ];
    for (const row of table) {
      await t.step(row.name, async () => {
        const request = toRequest(await parse(row.wire), row.options);
        assertEquals(request?.url, row.url);
      });
    }

    await t.step("method and fields are carried over", async () => {
      const request = toRequest(
        await parse("PATCH /r HTTP/1.1\r\nHost: h.test\r\nX-A: 1\r\nX-A: 2\r\nAccept: */*\r\n\r\n"),
      )!;
      assertEquals(request.method, "PATCH");
      assertEquals(request.headers.get("x-a"), "1, 2");
      assertEquals(request.headers.get("accept"), "*/*");
    });

    await t.step("a POST gets the body stream; a GET never has a body", async () => {
      const post = toRequest(
        await parse("POST /p HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\n"),
        { body: ReadableStream.from([enc.encode("he"), enc.encode("llo")]) },
      )!;
      assertEquals(await post.text(), "hello");
      const unread = ReadableStream.from([enc.encode("x")]);
      const getRequest = toRequest(await parse("GET / HTTP/1.1\r\nHost: h.test\r\n\r\n"), {
        body: unread,
      })!;
      assertEquals(getRequest.body, null);
      await unread.cancel();
    });
  },
);

Deno.test("serveFetch() runs a Fetch handler on the server core", sanitized, async (t) => {
  const peers: number[] = [];
  await using server = serveFetch(async (request, info) => {
    peers.push(info.remoteAddr.port);
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/throw":
        throw new Error("handler bug");
      case "/echo":
        return new Response(`${request.method} ${await request.text()}`);
      case "/stream":
        return new Response(ReadableStream.from(["a", "bc", "def"].map((s) => enc.encode(s))));
      default:
        return new Response(`path ${url.pathname}`);
    }
  }, { hostname: "127.0.0.1", port: 0, onWarning: () => {} });
  const port = server.addr.port;

  await t.step("a POST body, chunked or with a length, reaches the handler", async () => {
    using c = await RawClient.connect(port);
    await c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    await c.send("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    const chunked = await c.response("POST");
    assertEquals([chunked.status, chunked.body], [200, "POST hello world"]);
    await c.send("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    assertEquals((await c.response("PUT")).body, "PUT body");
  });

  await t.step("a throwing handler gives 500, and the connection goes on", async () => {
    using c = await RawClient.connect(port);
    await c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
    const res = await c.response();
    assertEquals(res.status, 500);
    await c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    assertEquals((await c.response()).body, "path /after");
  });

  await t.step("two requests ride one keep-alive connection", async () => {
    using c = await RawClient.connect(port);
    peers.length = 0;
    await c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    const one = await c.response();
    await c.send("GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    const two = await c.response();
    assertEquals([one.body, two.body], ["path /one", "path /two"]);
    assertEquals(one.head.headers.get("connection"), null);
    assertEquals(peers, [c.conn.localAddr.port, c.conn.localAddr.port]);
    assertEquals(server.connections, 1);
  });

  await t.step(
    "a body the handler ignores is drained, so the next request is answered",
    async () => {
      using c = await RawClient.connect(port);
      await c.send(
        "POST /ignored HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nskip meGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      assertEquals((await c.response("POST")).body, "path /ignored");
      assertEquals((await c.response()).body, "path /next");
    },
  );

  await t.step(
    "a streamed response is chunked for HTTP/1.1 and delimited by the close for 1.0",
    async () => {
      using c = await RawClient.connect(port);
      await c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
      const res = await c.response();
      assertEquals([res.head.headers.get("transfer-encoding"), res.body], ["chunked", "abcdef"]);
      using old = await RawClient.connect(port);
      await old.send("GET /stream HTTP/1.0\r\n\r\n");
      const end = await old.untilClose(2000);
      assertMatch(end.text, /^HTTP\/1\.1 200 [^]*\r\nConnection: close\r\n\r\nabcdef$/);
    },
  );

  await t.step("HEAD gets the head alone, and the connection goes on", async () => {
    using c = await RawClient.connect(port);
    await c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n");
    const head = await c.response("HEAD");
    assertEquals([head.status, head.body], [200, ""]);
    assertEquals((await c.response()).body, "path /g");
  });
});

Deno.test(
  "serveFetch() answers a request body over maxBodySize or malformed with the core's 413 or 400, not a 500",
  sanitized,
  async (t) => {
    let handled = 0;
    await using server = serveFetch(async (request) => {
      handled++;
      return new Response(await request.text());
    }, { hostname: "127.0.0.1", port: 0, maxBodySize: 10, onWarning: () => {} });
    const table = [
      { name: "chunked, 20 bytes", chunks: `14\r\n${"z".repeat(20)}\r\n0\r\n\r\n`, status: 413 },
      { name: "chunked, a bad chunk size", chunks: "zz\r\nhello\r\n0\r\n\r\n", status: 400 },
      { name: "chunked, 10 bytes", chunks: `a\r\n${"z".repeat(10)}\r\n0\r\n\r\n`, status: 200 },
    ];
    for (const row of table) {
      await t.step(`${row.name}: ${row.status}`, async () => {
        handled = 0;
        using c = await RawClient.connect(server.addr.port);
        await c.send(
          `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${row.chunks}`,
        );
        const res = await c.response("POST");
        assertEquals([res.status, handled], [row.status, 1]);
        assertEquals(res.head.headers.get("connection"), "close");
        assertEquals((await c.untilClose(1000)).text, "");
      });
    }
  },
);
