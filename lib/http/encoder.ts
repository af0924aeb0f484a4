/**
 * Serialisers: request and response heads (validated, so no header
 * injection passes), and the chunked transfer coding.
 *
 * @module
 */
import { FieldList, type FieldsInit } from "./fields.ts";
import type { HttpVersion } from "./heads.ts";
import { reasonPhrase } from "./status.ts";
import { COLON, CR, FIELD_VALUE, HTAB, LF, SP, TARGET, TCHAR } from "./_chars.ts";

/** The bytes of the last chunk and an empty trailer section: `0\r\n\r\n`. */
export const LAST_CHUNK: Uint8Array = Uint8Array.of(48, CR, LF, CR, LF);
/** The bytes `\r\n`. */
export const CRLF: Uint8Array = Uint8Array.of(CR, LF);

const HEX_DIGITS = "0123456789abcdef";

/**
 * Encodes one chunk of a chunked body: hex size, CRLF, data, CRLF. An empty
 * `data` would end the body, so it encodes to an empty array instead.
 *
 * @param data The chunk data.
 * @param into A buffer to encode into when it is large enough (a stream
 *   that writes each chunk before encoding the next reuses one, and makes
 *   no garbage per chunk); the result is then a view of it.
 * @returns The chunk bytes.
 *
 * @example
 * ```ts
 * import { encodeChunk } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const bytes = encodeChunk(new TextEncoder().encode("hello"));
 * assertEquals(new TextDecoder().decode(bytes), "5\r\nhello\r\n");
 * const scratch = new Uint8Array(64);
 * assertEquals(encodeChunk(new TextEncoder().encode("hi"), scratch).buffer, scratch.buffer);
 * ```
 */
export function encodeChunk(data: Uint8Array, into?: Uint8Array): Uint8Array {
  const n = data.length;
  if (n === 0) return new Uint8Array(0);
  let digits = 0;
  for (let v = n; v > 0; v = Math.floor(v / 16)) digits++;
  const size = digits + 4 + n;
  const out = into !== undefined && into.length >= size
    ? into.subarray(0, size)
    : new Uint8Array(size);
  for (let v = n, k = digits - 1; k >= 0; k--, v = Math.floor(v / 16)) {
    out[k] = HEX_DIGITS.charCodeAt(v % 16);
  }
  out[digits] = CR;
  out[digits + 1] = LF;
  out.set(data, digits + 2);
  out[digits + 2 + n] = CR;
  out[digits + 3 + n] = LF;
  return out;
}

/**
 * A transform that encodes a byte stream with the chunked transfer coding,
 * ending with the last chunk (`0\r\n\r\n`).
 *
 * @example
 * ```ts
 * import { ChunkedEncoderStream } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const out = ReadableStream.from([new TextEncoder().encode("ab")]).pipeThrough(new ChunkedEncoderStream());
 * assertEquals(await new Response(out).text(), "2\r\nab\r\n0\r\n\r\n");
 * ```
 */
export class ChunkedEncoderStream extends TransformStream<Uint8Array, Uint8Array> {
  /** Creates the encoder. */
  constructor() {
    super({
      transform(chunk, controller) {
        if (chunk.length > 0) controller.enqueue(encodeChunk(chunk));
      },
      flush(controller) {
        controller.enqueue(LAST_CHUNK.slice());
      },
    });
  }
}

/**
 * Builds a head in a reused scratch buffer, validating and encoding each
 * string in the same pass (one JS loop per string is ~5x cheaper here than a
 * validating regex plus TextEncoder on the joined string).
 */
class HeadWriter {
  buf = new Uint8Array(2048);
  len = 0;

  reset(): void {
    this.len = 0;
  }

  #room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  /** Writes a token (method, field name); returns false on a non-tchar. */
  token(str: string): boolean {
    const n = str.length;
    if (n === 0) return false;
    this.#room(n);
    const buf = this.buf;
    let at = this.len;
    for (let i = 0; i < n; i++) {
      const c = str.charCodeAt(i);
      if (c > 0x7f || TCHAR[c] !== 1) return false;
      buf[at++] = c;
    }
    this.len = at;
    return true;
  }

  /** Writes a field value, reason or target: Latin-1, no controls but HTAB (when allowed). */
  text(str: string, allowed: Uint8Array): boolean {
    const n = str.length;
    this.#room(n);
    const buf = this.buf;
    let at = this.len;
    for (let i = 0; i < n; i++) {
      const c = str.charCodeAt(i);
      if (c > 0xff || allowed[c] !== 1) return false;
      buf[at++] = c;
    }
    this.len = at;
    return true;
  }

  /** Writes pre-encoded bytes. */
  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Writes an ASCII string known to be valid (digits, constants). */
  ascii(str: string): void {
    const n = str.length;
    this.#room(n);
    const buf = this.buf;
    let at = this.len;
    for (let i = 0; i < n; i++) buf[at++] = str.charCodeAt(i);
    this.len = at;
  }

  crlf(): void {
    this.#room(2);
    this.buf[this.len++] = CR;
    this.buf[this.len++] = LF;
  }

  /** A copy of what was written. */
  take(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  /** Copies what was written into `into` at `offset`; returns the end offset. */
  copyTo(into: Uint8Array, offset: number): number {
    const end = offset + this.len;
    if (offset < 0 || end > into.length) {
      throw new RangeError(
        `Cannot encode HTTP head: ${this.len} bytes do not fit at offset ${offset} of ${into.length}`,
      );
    }
    into.set(this.len === this.buf.length ? this.buf : this.buf.subarray(0, this.len), offset);
    return end;
  }
}

const writer = new HeadWriter();
const COLON_SP = Uint8Array.of(COLON, SP);

function writeField(w: HeadWriter, name: string, value: string): void {
  if (!w.token(name)) {
    throw new TypeError(`Cannot encode HTTP head: invalid field name "${name}"`);
  }
  w.bytes(COLON_SP);
  // Leading and trailing whitespace is not part of a value (RFC 9110 §5.5).
  let from = 0;
  let to = value.length;
  while (from < to && (value.charCodeAt(from) === SP || value.charCodeAt(from) === HTAB)) from++;
  while (to > from && (value.charCodeAt(to - 1) === SP || value.charCodeAt(to - 1) === HTAB)) to--;
  const v = from === 0 && to === value.length ? value : value.slice(from, to);
  if (!w.text(v, FIELD_VALUE)) {
    throw new TypeError(
      `Cannot encode HTTP head: the value of "${name}" holds a control or non-Latin-1 character`,
    );
  }
  w.crlf();
}

function writeFields(w: HeadWriter, headers: FieldsInit | undefined): void {
  if (headers === undefined) return;
  if (headers instanceof FieldList) {
    const n = headers.size;
    for (let i = 0; i < n; i++) writeField(w, headers.nameAt(i)!, headers.valueAt(i)!);
    return;
  }
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i] as readonly [string, string];
      writeField(w, pair[0], pair[1]);
    }
    return;
  }
  const pairs: Iterable<readonly [string, string]> =
    headers instanceof Headers || Symbol.iterator in headers
      ? headers as Iterable<readonly [string, string]>
      : Object.entries(headers);
  for (const [name, value] of pairs) writeField(w, name, value);
}

/** What {@linkcode encodeRequestHead} needs. */
export interface RequestHeadInit {
  /** The method (a token). */
  method: string;
  /** The request-target (no spaces or controls). */
  target: string;
  /** Header fields, written in order. */
  headers?: FieldsInit;
  /**
   * The version to send.
   * @default {"HTTP/1.1"}
   */
  version?: HttpVersion;
}

/**
 * Serialises a request head (request line, fields, empty line). Names and
 * values are validated so no header injection can pass through.
 *
 * @param head Method, target, fields, version.
 * @returns The head bytes.
 * @throws {TypeError} On an invalid method, target, field name or value.
 *
 * @example
 * ```ts
 * import { encodeRequestHead } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const bytes = encodeRequestHead({ method: "GET", target: "/", headers: { Host: "a" } });
 * assertEquals(new TextDecoder().decode(bytes), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
 * ```
 */
export function encodeRequestHead(head: RequestHeadInit): Uint8Array {
  writeRequestHead(writer, head);
  return writer.take();
}

/** Options of {@linkcode encodeRequestHeadInto} and {@linkcode encodeResponseHeadInto}. */
export interface EncodeIntoOptions {
  /**
   * Where in the destination to start writing.
   * @default {0}
   */
  offset?: number;
}

/**
 * Serialises a request head into a caller-owned buffer, avoiding the
 * allocation of {@linkcode encodeRequestHead} (allocating a fresh
 * `Uint8Array` costs about as much as encoding a small head).
 *
 * @param head Method, target, fields, version.
 * @param into The destination buffer.
 * @param options Where to start writing.
 * @returns The offset just past the head.
 * @throws {TypeError} On an invalid method, target, field name or value.
 * @throws {RangeError} When the head does not fit.
 *
 * @example
 * ```ts
 * import { encodeRequestHeadInto } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const buf = new Uint8Array(256);
 * const end = encodeRequestHeadInto({ method: "GET", target: "/", headers: [["Host", "a"]] }, buf);
 * assertEquals(new TextDecoder().decode(buf.subarray(0, end)), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
 * ```
 */
export function encodeRequestHeadInto(
  head: RequestHeadInit,
  into: Uint8Array,
  options: EncodeIntoOptions = {},
): number {
  writeRequestHead(writer, head);
  return writer.copyTo(into, options.offset ?? 0);
}

function writeRequestHead(w: HeadWriter, head: RequestHeadInit): void {
  w.reset();
  if (!w.token(head.method)) {
    throw new TypeError(`Cannot encode HTTP head: invalid method "${head.method}"`);
  }
  w.bytes(SP_BYTE);
  if (head.target === "" || !w.text(head.target, TARGET)) {
    throw new TypeError(`Cannot encode HTTP head: invalid request-target "${head.target}"`);
  }
  w.bytes(SP_BYTE);
  w.ascii(head.version ?? "HTTP/1.1");
  w.crlf();
  writeFields(w, head.headers);
  w.crlf();
}

/** What {@linkcode encodeResponseHead} needs. */
export interface ResponseHeadInit {
  /** The status code, 100–999. */
  status: number;
  /**
   * The reason phrase.
   * @default {reasonPhrase(status)}
   */
  reason?: string;
  /** Header fields, written in order. */
  headers?: FieldsInit;
  /**
   * The version to send.
   * @default {"HTTP/1.1"}
   */
  version?: HttpVersion;
}

const statusLineCache = new Map<number, Uint8Array>();
const SP_BYTE = Uint8Array.of(SP);

/**
 * Serialises a response head (status line, fields, empty line).
 *
 * @param head Status, reason, fields, version.
 * @returns The head bytes.
 * @throws {TypeError} On an invalid status, reason, field name or value.
 *
 * @example
 * ```ts
 * import { encodeResponseHead } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const bytes = encodeResponseHead({ status: 404, headers: [["Content-Length", "0"]] });
 * assertEquals(new TextDecoder().decode(bytes), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
 * ```
 */
export function encodeResponseHead(head: ResponseHeadInit): Uint8Array {
  writeResponseHead(writer, head);
  return writer.take();
}

/**
 * Serialises a response head into a caller-owned buffer (for example a
 * per-connection write buffer that also takes a small body), avoiding the
 * allocation of {@linkcode encodeResponseHead}.
 *
 * @param head Status, reason, fields, version.
 * @param into The destination buffer.
 * @param options Where to start writing.
 * @returns The offset just past the head.
 * @throws {TypeError} On an invalid status, reason, field name or value.
 * @throws {RangeError} When the head does not fit.
 *
 * @example
 * ```ts
 * import { encodeResponseHeadInto } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const buf = new Uint8Array(256);
 * const end = encodeResponseHeadInto({ status: 204 }, buf, { offset: 10 });
 * assertEquals(end, 10 + "HTTP/1.1 204 No Content\r\n\r\n".length);
 * ```
 */
export function encodeResponseHeadInto(
  head: ResponseHeadInit,
  into: Uint8Array,
  options: EncodeIntoOptions = {},
): number {
  writeResponseHead(writer, head);
  return writer.copyTo(into, options.offset ?? 0);
}

function writeResponseHead(w: HeadWriter, head: ResponseHeadInit): void {
  const { status } = head;
  w.reset();
  const cacheable = head.reason === undefined && head.version === undefined;
  let line = cacheable ? statusLineCache.get(status) : undefined;
  if (line === undefined) {
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new TypeError(`Cannot encode HTTP head: invalid status ${status}`);
    }
    w.ascii(`${head.version ?? "HTTP/1.1"} ${status} `);
    if (!w.text(head.reason ?? reasonPhrase(status), FIELD_VALUE)) {
      throw new TypeError(`Cannot encode HTTP head: the reason phrase holds a control character`);
    }
    w.crlf();
    line = w.take();
    if (cacheable) statusLineCache.set(status, line);
    w.reset();
  }
  w.bytes(line);
  writeFields(w, head.headers);
  w.crlf();
}
