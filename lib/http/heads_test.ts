import { bodyKind, readRequestHead, readResponseHead } from "./heads.ts";
import type { RequestHeadOptions, ResponseHeadOptions } from "./heads.ts";
import { readBody } from "./bodies.ts";
import { FieldList } from "./fields.ts";
import { HttpError } from "./errors.ts";
import type { BufferedReader } from "./reader.ts";
import { assertRejects, bytes, readerOf } from "./_test_util.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import { createRandom } from "../random.ts";

const decoder = new TextDecoder();

/** The status an error stands for: `HttpError`'s, or -1 for a truncated message. */
function httpStatus(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof Deno.errors.UnexpectedEof) return -1;
  throw err;
}

interface CorpusCase {
  name: string;
  request: string;
  status: number;
  method?: string;
  target?: string;
  body?: string;
}

const corpus: CorpusCase[] = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/requests.json", import.meta.url)),
);

/** Parses one request (head and body) and returns 200 or the error status. */
async function parseRequest(
  reader: BufferedReader,
  options: RequestHeadOptions = {},
): Promise<{ status: number; method?: string; target?: string; body?: string }> {
  try {
    const head = await readRequestHead(reader, options);
    assert(head !== null, "head expected");
    const body = await readBody(reader, head.body);
    return { status: 200, method: head.method, target: head.target, body: decoder.decode(body) };
  } catch (err) {
    return { status: httpStatus(err) };
  }
}

Deno.test("readRequestHead() answers the malformed-request and smuggling corpus", async (t) => {
  for (const pieceSize of [Infinity, 1, 7]) {
    await t.step(`delivered in pieces of ${pieceSize} bytes`, async () => {
      for (const c of corpus) {
        const got = await parseRequest(readerOf(c.request, pieceSize));
        assertEquals(got.status, c.status, c.name);
        if (c.method !== undefined) assertEquals(got.method, c.method, c.name);
        if (c.target !== undefined) assertEquals(got.target, c.target, c.name);
        if (c.body !== undefined) assertEquals(got.body, c.body, c.name);
      }
    });
  }
});

Deno.test("readRequestHead() enforces head, field-count and target limits and honours allowBareLf and requireHost", async (t) => {
  const table: { name: string; wire: string; options?: RequestHeadOptions; status: number }[] = [
    {
      name: "target over maxTargetLength → 414",
      wire: `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
      status: 414,
    },
    {
      name: "request line over maxHeadBytes → 414",
      wire: `GET /${"a".repeat(20000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
      status: 414,
    },
    {
      name: "fields over maxHeadBytes → 431",
      wire: `GET / HTTP/1.1\r\nHost: a\r\nX: ${"v".repeat(17000)}\r\n\r\n`,
      status: 431,
    },
    {
      name: "101 fields → 431",
      wire: `GET / HTTP/1.1\r\nHost: a\r\n${"X: y\r\n".repeat(100)}\r\n`,
      status: 431,
    },
    {
      name: "100 fields → accepted",
      wire: `GET / HTTP/1.1\r\nHost: a\r\n${"X: y\r\n".repeat(99)}\r\n`,
      status: 200,
    },
    {
      name: "custom maxHeaders",
      wire: `GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n`,
      options: { maxHeaders: 2 },
      status: 431,
    },
    {
      name: "custom maxHeadBytes",
      wire: `GET / HTTP/1.1\r\nHost: a\r\nX: ${"v".repeat(100)}\r\n\r\n`,
      options: { maxHeadBytes: 64 },
      status: 431,
    },
    {
      name: "allowBareLf accepts LF-only heads",
      wire: "GET / HTTP/1.1\nHost: a\n\n",
      options: { allowBareLf: true },
      status: 200,
    },
    {
      name: "requireHost: false accepts a Host-less HTTP/1.1 request",
      wire: "GET / HTTP/1.1\r\n\r\n",
      options: { requireHost: false },
      status: 200,
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      for (const piece of [Infinity, 1000]) {
        assertEquals((await parseRequest(readerOf(c.wire, piece), c.options)).status, c.status);
      }
    });
  }
});

Deno.test("readRequestHead() returns null on a clean close; a truncated head, body or chunk throws UnexpectedEof", async () => {
  assertEquals(await readRequestHead(readerOf("")), null);
  await assertRejects(
    () => readRequestHead(readerOf("GET / HTTP/1.1\r\nHost: a\r\n")),
    (e) => e instanceof Deno.errors.UnexpectedEof,
    "truncated head",
  );
  await assertRejects(
    () => readBody(readerOf("hel"), { type: "length", length: 5 }),
    (e) => e instanceof Deno.errors.UnexpectedEof,
    "truncated body",
  );
  await assertRejects(
    () => readBody(readerOf("5\r\nhel"), { type: "chunked" }),
    (e) => e instanceof Deno.errors.UnexpectedEof,
    "truncated chunk",
  );
});

Deno.test("readRequestHead() reports keep-alive, Expect, target form and the fields as received", async (t) => {
  const table = [
    { wire: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", keepAlive: true },
    { wire: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", keepAlive: false },
    { wire: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", keepAlive: false },
    { wire: "GET / HTTP/1.0\r\n\r\n", keepAlive: false },
    { wire: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", keepAlive: true },
    { wire: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", keepAlive: false },
  ];
  for (const c of table) {
    await t.step(JSON.stringify(c.wire), async () => {
      const head = await readRequestHead(readerOf(c.wire));
      assertEquals(head?.keepAlive, c.keepAlive);
    });
  }
  await t.step("Expect: 100-continue", async () => {
    const head = await readRequestHead(
      readerOf("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
    );
    assert(head?.expectContinue === true);
    assertEquals(head.body, { type: "length", length: 3 });
  });
  await t.step("target forms", async () => {
    const forms: [string, string][] = [
      ["GET /x HTTP/1.1", "origin"],
      ["GET http://h/x HTTP/1.1", "absolute"],
      ["CONNECT h:443 HTTP/1.1", "authority"],
      ["OPTIONS * HTTP/1.1", "asterisk"],
    ];
    for (const [line, form] of forms) {
      const head = await readRequestHead(readerOf(`${line}\r\nHost: h\r\n\r\n`));
      assertEquals(head?.targetForm, form, line);
    }
  });
  await t.step("raw names, order and headBytes are kept", async () => {
    const wire = "GET / HTTP/1.1\r\nHost: a\r\nX-B: 1\r\nx-a:  two  \r\nX-B: 3\r\n\r\n";
    const head = await readRequestHead(readerOf(wire));
    assertEquals([...head!.headers], [["Host", "a"], ["X-B", "1"], ["x-a", "two"], ["X-B", "3"]]);
    assertEquals(head!.headers.get("x-b"), "1, 3");
    assertEquals(head!.headBytes, wire.length);
  });
  await t.step("obs-text in values decodes as Latin-1", async () => {
    const head = await readRequestHead(
      readerOf("GET / HTTP/1.1\r\nHost: a\r\nX: caf\u00e9\r\n\r\n"),
    );
    assertEquals(head!.headers.get("x"), "caf\u00e9");
  });
});

Deno.test("readRequestHead() leaves pipelined requests in the buffer", async (t) => {
  const wire = "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
    "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n" +
    "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  for (const piece of [Infinity, 1, 5, 13]) {
    await t.step(`pieces of ${piece}`, async () => {
      const r = readerOf(wire, piece);
      const seen: string[] = [];
      for (;;) {
        const head = await readRequestHead(r);
        if (head === null) break;
        seen.push(`${head.target}:${decoder.decode(await readBody(r, head.body))}`);
      }
      assertEquals(seen, ["/1:abc", "/2:de", "/3:"]);
    });
  }
  await t.step("takeBuffered() hands over the bytes after a CONNECT head", async () => {
    const r = readerOf("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01");
    const head = await readRequestHead(r);
    assertEquals(head?.body, { type: "none" });
    assertEquals([...r.takeBuffered()], [0x16, 3, 1]);
    assertEquals(r.buffered, 0);
  });
});

Deno.test("readResponseHead() frames bodies per RFC 9112 §6.3, reports keep-alive and reason, and answers a malformed head with 502", async (t) => {
  const table: {
    name: string;
    wire: string;
    options?: ResponseHeadOptions;
    body?: unknown;
    keepAlive?: boolean;
    status?: number;
    reason?: string;
  }[] = [
    {
      name: "Content-Length",
      wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
      body: { type: "length", length: 5 },
      keepAlive: true,
      reason: "OK",
    },
    {
      name: "chunked",
      wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      body: { type: "chunked" },
      keepAlive: true,
    },
    {
      name: "no framing → until close",
      wire: "HTTP/1.1 200 OK\r\n\r\n",
      body: { type: "close" },
      keepAlive: false,
    },
    {
      name: "Transfer-Encoding wins over Content-Length, and the connection closes",
      wire: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      body: { type: "chunked" },
      keepAlive: false,
    },
    {
      name: "final coding not chunked → until close",
      wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      body: { type: "close" },
      keepAlive: false,
    },
    {
      name: "Transfer-Encoding in HTTP/1.0 → until close",
      wire: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
      body: { type: "close" },
      keepAlive: false,
    },
    {
      name: "HEAD response has no body",
      wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
      options: { requestMethod: "HEAD" },
      body: { type: "none" },
      keepAlive: true,
    },
    { name: "204", wire: "HTTP/1.1 204 No Content\r\n\r\n", body: { type: "none" } },
    {
      name: "304 with Content-Length",
      wire: "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
      body: { type: "none" },
    },
    { name: "100 Continue", wire: "HTTP/1.1 100 Continue\r\n\r\n", body: { type: "none" } },
    {
      name: "101 is a tunnel",
      wire: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
      body: { type: "tunnel" },
      keepAlive: false,
    },
    {
      name: "2xx to CONNECT is a tunnel",
      wire: "HTTP/1.1 200 Connection established\r\n\r\n",
      options: { requestMethod: "CONNECT" },
      body: { type: "tunnel" },
      reason: "Connection established",
    },
    {
      name: "HTTP/1.0 keep-alive",
      wire: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
      keepAlive: true,
    },
    {
      name: "HTTP/1.0 default close",
      wire: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
      keepAlive: false,
    },
    {
      name: "Connection: close",
      wire: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
      keepAlive: false,
    },
    { name: "status line without reason", wire: "HTTP/1.1 200\r\n\r\n", reason: "" },
    { name: "status line with empty reason", wire: "HTTP/1.1 404 \r\n\r\n", reason: "" },
    { name: "bare LF accepted by default", wire: "HTTP/1.1 200 OK\nContent-Length: 0\n\n" },
    {
      name: "bare LF refused on request",
      wire: "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
      options: { allowBareLf: false },
      status: 502,
    },
    { name: "two-digit status", wire: "HTTP/1.1 20 OK\r\n\r\n", status: 502 },
    { name: "status 099", wire: "HTTP/1.1 099 X\r\n\r\n", status: 502 },
    { name: "HTTP/2 status line", wire: "HTTP/2 200 OK\r\n\r\n", status: 502 },
    { name: "HTTP/2.0 version", wire: "HTTP/2.0 200 OK\r\n\r\n", status: 502 },
    { name: "status glued to reason", wire: "HTTP/1.1 200OK\r\n\r\n", status: 502 },
    {
      name: "conflicting Content-Length",
      wire: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      status: 502,
    },
    { name: "obs-fold", wire: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", status: 502 },
    {
      name: "too many fields",
      wire: `HTTP/1.1 200 OK\r\n${"X: y\r\n".repeat(201)}\r\n`,
      status: 502,
    },
    {
      name: "head over maxHeadBytes",
      wire: `HTTP/1.1 200 OK\r\nX: ${"y".repeat(200)}\r\n\r\n`,
      options: { maxHeadBytes: 100 },
      status: 502,
    },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      try {
        const head = await readResponseHead(readerOf(c.wire), c.options);
        assert(head !== null);
        assertEquals(c.status, undefined, "expected an error");
        if (c.body !== undefined) assertEquals(head.body, c.body);
        if (c.keepAlive !== undefined) assertEquals(head.keepAlive, c.keepAlive);
        if (c.reason !== undefined) assertEquals(head.reason, c.reason);
      } catch (err) {
        if (c.status === undefined) throw err;
        assertEquals(httpStatus(err), c.status);
      }
    });
  }
});

Deno.test("bodyKind() re-derives framing after fields change", async (t) => {
  await t.step("request", () => {
    const h = new FieldList([["Host", "a"]]);
    assertEquals(bodyKind({ method: "GET", version: "HTTP/1.1", headers: h }), { type: "none" });
    h.set("Content-Length", "4");
    assertEquals(bodyKind({ method: "POST", version: "HTTP/1.1", headers: h }), {
      type: "length",
      length: 4,
    });
    h.set("Transfer-Encoding", "chunked");
    let status = 0;
    try {
      bodyKind({ method: "POST", version: "HTTP/1.1", headers: h });
    } catch (err) {
      status = httpStatus(err);
    }
    assertEquals(status, 400);
    h.delete("content-length");
    assertEquals(bodyKind({ method: "POST", version: "HTTP/1.1", headers: h }), {
      type: "chunked",
    });
  });
  await t.step("response", () => {
    const h = new FieldList();
    const head = { status: 200, version: "HTTP/1.1" as const, headers: h };
    assertEquals(bodyKind(head), { type: "close" });
    assertEquals(bodyKind(head, { requestMethod: "HEAD" }), { type: "none" });
    assertEquals(bodyKind(head, { requestMethod: "CONNECT" }), { type: "tunnel" });
    h.append("Content-Length", "0");
    assertEquals(bodyKind(head), { type: "length", length: 0 });
  });
});

Deno.test("the parsers fail only with HttpError or UnexpectedEof on mutated input", async () => {
  // Deterministic mutations (seeded PRNG) of every corpus entry: flipped,
  // inserted and deleted bytes, fed in odd-sized pieces. Any other exception
  // (TypeError, RangeError…) or a hang would be a parser bug.
  const next = createRandom(0x9e3779b9);
  const rand = (n: number) => Math.floor(next() * n);
  const interesting = [0, 9, 10, 13, 32, 44, 48, 58, 59, 65, 0x7f, 0x80, 0xff];
  let parsed = 0;
  let rejected = 0;
  for (let round = 0; round < 20; round++) {
    for (const c of corpus) {
      const bytesIn = [...bytes(c.request)];
      for (let m = 1 + rand(4); m > 0; m--) {
        const at = rand(bytesIn.length + 1);
        const b = rand(2) === 0 ? interesting[rand(interesting.length)]! : rand(256);
        const op = rand(3);
        if (op === 0) bytesIn.splice(at, 1, b);
        else if (op === 1) bytesIn.splice(at, 0, b);
        else bytesIn.splice(at, 1);
      }
      const wire = Uint8Array.from(bytesIn);
      for (const parse of ["request", "response"] as const) {
        const r = readerOf(wire, 1 + rand(17));
        try {
          if (parse === "request") {
            const head = await readRequestHead(r);
            if (head !== null) await readBody(r, head.body, { maxBytes: 1 << 16 });
          } else {
            const head = await readResponseHead(r);
            if (head !== null) await readBody(r, head.body, { maxBytes: 1 << 16 });
          }
          parsed++;
        } catch (err) {
          if (!(err instanceof HttpError) && !(err instanceof Deno.errors.UnexpectedEof)) {
            throw new Error(`unexpected ${err} for ${JSON.stringify(decoder.decode(wire))}`);
          }
          rejected++;
        }
      }
    }
  }
  assert(parsed > 0 && rejected > 0, `parsed ${parsed}, rejected ${rejected}`);
});
