import { BufferedReader } from "./reader.ts";
import { FieldList } from "./fields.ts";
import { readRequestHead, readResponseHead } from "./heads.ts";
import { encodeResponseHead, encodeResponseHeadInto } from "./encoder.ts";
import { readChunked } from "./bodies.ts";

const typical = new TextEncoder().encode(
  "GET /static/app.js?v=3 HTTP/1.1\r\n" +
    "Host: localhost:8000\r\n" +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n" +
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
    "Accept-Language: en-US,en;q=0.5\r\n" +
    "Accept-Encoding: gzip, deflate, br\r\n" +
    "Connection: keep-alive\r\n" +
    "Referer: http://localhost:8000/\r\n" +
    'If-None-Match: "5f3e-18c1a2b3c4d"\r\n' +
    "Cache-Control: max-age=0\r\n" +
    "Sec-Fetch-Mode: navigate\r\n" +
    "\r\n",
);

/** A source that serves the same bytes forever, like a keep-alive client. */
class Repeat {
  #data: Uint8Array;
  constructor(data: Uint8Array) {
    this.#data = data;
  }
  read(p: Uint8Array): Promise<number> {
    const n = Math.min(p.length, this.#data.length);
    p.set(this.#data.subarray(0, n));
    return Promise.resolve(n);
  }
}

const reader = new BufferedReader(new Repeat(typical));

Deno.bench("readRequestHead(): typical browser GET (11 fields)", async () => {
  const head = await readRequestHead(reader);
  if (head === null || head.headers.get("if-none-match") === null) throw new Error("parse");
});

const small = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
const smallReader = new BufferedReader(new Repeat(small));
Deno.bench("readRequestHead(): wrk-style GET (1 field)", async () => {
  await readRequestHead(smallReader);
});

const fields = new FieldList([
  ["Content-Type", "text/html; charset=utf-8"],
  ["Content-Length", "1024"],
  ["ETag", '"5f3e-18c1a2b3c4d"'],
  ["Last-Modified", "Wed, 25 Nov 2026 18:00:00 GMT"],
  ["Date", "Wed, 25 Nov 2026 18:00:00 GMT"],
]);
Deno.bench("encodeResponseHead(): 200 with 5 fields", () => {
  encodeResponseHead({ status: 200, headers: fields });
});

const out = new Uint8Array(4096);
Deno.bench("encodeResponseHeadInto(): 200 with 5 fields, caller's buffer", () => {
  encodeResponseHeadInto({ status: 200, headers: fields }, out);
});

const nginxHead = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 25 Nov 2026 19:07:31 GMT\r\n" +
    "Content-Type: text/html\r\nContent-Length: 1024\r\n" +
    "Last-Modified: Wed, 25 Nov 2026 19:07:30 GMT\r\nConnection: keep-alive\r\n" +
    'ETag: "6b0731f2-400"\r\nAccept-Ranges: bytes\r\n\r\n',
);
const responseReader = new BufferedReader(new Repeat(nginxHead));
Deno.bench("readResponseHead(): nginx 200 (8 fields)", async () => {
  await readResponseHead(responseReader);
});

const chunkedWire = (() => {
  const piece = "1000\r\n" + "x".repeat(4096) + "\r\n";
  return new TextEncoder().encode(piece.repeat(256) + "0\r\n\r\n");
})();
Deno.bench("readChunked(): 1 MiB in 4 KiB chunks", async () => {
  const r = new BufferedReader(ReadableStream.from([chunkedWire]).getReader());
  let n = 0;
  for await (const p of readChunked(r)) n += p.length;
  if (n !== 1 << 20) throw new Error("size");
});
