/**
 * Streaming body readers: fixed length, chunked (RFC 9112 §7.1) and until
 * close, with size limits.
 *
 * @module
 */
import { concat, readFull } from "../bytes.ts";
import { HttpError } from "./errors.ts";
import { FieldList } from "./fields.ts";
import type { BodyKind } from "./heads.ts";
import type { BufferedReader } from "./reader.ts";
import { parseFields } from "./_parse.ts";
import {
  BACKSLASH,
  CR,
  DQUOTE,
  EQ,
  FIELD_VALUE,
  findLf,
  HEX,
  HTAB,
  latin1,
  LF,
  SEMI,
  SP,
  TCHAR,
} from "./_chars.ts";

/** Options of the body readers. */
export interface BodyOptions {
  /**
   * Maximum body size in bytes → HttpError 413.
   * @default {Infinity}
   */
  maxBytes?: number;
  /**
   * Maximum length of a chunk-size line, extensions included → 400.
   * @default {4096}
   */
  maxChunkLineBytes?: number;
  /**
   * Maximum size of the trailer section → 431; trailer count is bounded by
   * `maxTrailers`.
   * @default {16384}
   */
  maxTrailerBytes?: number;
  /**
   * Maximum number of trailer fields → 431.
   * @default {100}
   */
  maxTrailers?: number;
  /**
   * Receives the trailer fields of a chunked body, if any were sent.
   */
  onTrailers?: (trailers: FieldList) => void;
  /**
   * Size of the pieces read straight from the connection.
   * @default {65536}
   */
  readSize?: number;
  /**
   * Read every piece into this one buffer, and yield views of it: no array
   * is allocated per piece, so a bulk transfer holds one buffer's worth of
   * memory. A piece is valid only until the next one is asked for, so the
   * consumer must be done with it (written it out) by then.
   * @default {undefined: a fresh array per piece}
   */
  buffer?: Uint8Array;
  /**
   * With `buffer`: fill it (as far as the body goes) before yielding, so a
   * file gets a few large writes instead of one per socket read. It delays
   * each piece until the buffer is full, so leave it off when forwarding to
   * a peer that should see bytes as they come.
   * @default {false}
   */
  fill?: boolean;
}

/**
 * Trims a piece read into a fresh array: a short read into a big array is
 * copied out, so a consumer that keeps pieces does not keep mostly-empty
 * 64 KiB arrays alive.
 */
function trimPiece(piece: Uint8Array, n: number): Uint8Array {
  if (n === piece.length) return piece;
  return n < piece.length >> 1 ? piece.slice(0, n) : piece.subarray(0, n);
}

/**
 * Reads the next piece of at most `limit` bytes: into a fresh array, or into
 * `options.buffer` (filled when `options.fill`). Bytes read before the end of
 * the stream are returned first; `null` means nothing was left.
 */
async function readPiece(
  reader: BufferedReader,
  limit: number,
  options: BodyOptions,
): Promise<Uint8Array | null> {
  const into = options.buffer;
  if (into === undefined) {
    const buffered = reader.buffered;
    const piece = new Uint8Array(
      Math.min(limit, buffered > 0 ? buffered : options.readSize ?? 65536),
    );
    const n = await reader.read(piece);
    return n === null ? null : trimPiece(piece, n);
  }
  const want = Math.min(limit, into.length);
  let got = 0;
  do {
    const n = await reader.read(into.subarray(got, want));
    if (n === null) break;
    got += n;
  } while (options.fill === true && got < want);
  return got === 0 ? null : into.subarray(0, got);
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, `Cannot read body: larger than ${max} bytes`);
}

/**
 * Streams a body of exactly `length` bytes. Each yielded piece is a fresh
 * array the consumer may keep, unless `options.buffer` is given (then it is
 * a view of that buffer, valid until the next piece).
 *
 * @param reader The connection's buffered reader.
 * @param length The Content-Length.
 * @param options Size limit, read size, and a buffer to reuse.
 * @returns An async iterator of body pieces.
 * @throws {Deno.errors.UnexpectedEof} When the connection closes early.
 * @throws {HttpError} 413 when `length` exceeds `maxBytes`.
 *
 * @example
 * ```ts
 * import { BufferedReader, readFixed } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new Uint8Array([1, 2, 3, 4])]).getReader());
 * let n = 0;
 * for await (const piece of readFixed(r, 3)) n += piece.length;
 * assertEquals(n, 3);
 * assertEquals(r.buffered, 1);
 * ```
 */
export async function* readFixed(
  reader: BufferedReader,
  length: number,
  options: BodyOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const max = options.maxBytes ?? Infinity;
  if (length > max) throw tooLarge(max);
  let remaining = length;
  while (remaining > 0) {
    const piece = await readPiece(reader, remaining, options);
    if (piece === null) {
      throw new Deno.errors.UnexpectedEof(
        `Cannot read body: connection closed after ${length - remaining} of ${length} bytes`,
      );
    }
    remaining -= piece.length;
    yield piece;
  }
}

/**
 * Streams a body delimited by the end of the connection (responses only).
 *
 * @param reader The connection's buffered reader.
 * @param options Size limit and read size.
 * @returns An async iterator of body pieces.
 * @throws {HttpError} 413 past `maxBytes`.
 *
 * @example
 * ```ts
 * import { BufferedReader, readUntilClose } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new Uint8Array(5)]).getReader());
 * let n = 0;
 * for await (const piece of readUntilClose(r)) n += piece.length;
 * assertEquals(n, 5);
 * ```
 */
export async function* readUntilClose(
  reader: BufferedReader,
  options: BodyOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const max = options.maxBytes ?? Infinity;
  let total = 0;
  for (;;) {
    const piece = await readPiece(reader, Infinity, options);
    if (piece === null) return;
    total += piece.length;
    if (total > max) throw tooLarge(max);
    yield piece;
  }
}

/** Reads one line (CRLF required) from the reader; returns [start, contentEnd) in the buffer. */
async function readLine(
  reader: BufferedReader,
  maxBytes: number,
  what: string,
  overStatus: number,
): Promise<number> {
  let scanned = 0;
  for (;;) {
    const buf = reader.buffer;
    const s = reader.start;
    const e = reader.end;
    const lf = findLf(buf, s + scanned, e);
    if (lf >= 0) {
      if (lf === s || buf[lf - 1] !== CR) {
        throw new HttpError(400, `Cannot parse ${what}: line ends with a bare LF, not CRLF`);
      }
      if (lf + 1 - s > maxBytes) break;
      return lf + 1 - s;
    }
    scanned = e - s;
    if (scanned > maxBytes) break;
    if ((await reader.fill()) === 0) {
      throw new Deno.errors.UnexpectedEof(`Cannot read ${what}: connection closed`);
    }
  }
  throw new HttpError(overStatus, `Cannot parse ${what}: line longer than ${maxBytes} bytes`);
}

/** Validates chunk extensions in `buf[i..end)` (RFC 9112 §7.1.1). */
function checkChunkExt(buf: Uint8Array, i: number, end: number): boolean {
  // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
  const ws = (k: number) => {
    while (k < end && (buf[k] === SP || buf[k] === HTAB)) k++;
    return k;
  };
  while (i < end) {
    i = ws(i);
    if (buf[i] !== SEMI) return false;
    i = ws(i + 1);
    const ns = i;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    if (i === ns) return false;
    i = ws(i);
    if (i < end && buf[i] === EQ) {
      i = ws(i + 1);
      if (buf[i] === DQUOTE) {
        i++;
        for (;;) {
          if (i >= end) return false;
          const c = buf[i]!;
          if (c === DQUOTE) {
            i++;
            break;
          }
          if (c === BACKSLASH) {
            i++;
            if (i >= end || FIELD_VALUE[buf[i]!] !== 1) return false;
          } else if (FIELD_VALUE[c] !== 1) return false;
          i++;
        }
      } else {
        const vs = i;
        while (i < end && TCHAR[buf[i]!] === 1) i++;
        if (i === vs) return false;
      }
      i = ws(i);
    }
  }
  return true;
}

/**
 * Streams a chunked body (RFC 9112 §7.1), strictly: chunk sizes are 1–15
 * hex digits, extensions must be well-formed, every chunk ends in CRLF.
 * Trailer fields are parsed and handed to `onTrailers`.
 *
 * @param reader The connection's buffered reader.
 * @param options Limits and the trailer callback.
 * @returns An async iterator of body pieces (the decoded data).
 * @throws {HttpError} 400 on malformed framing, 413 past `maxBytes`, 431 for trailers over limits.
 * @throws {Deno.errors.UnexpectedEof} When the connection closes early.
 *
 * @example
 * ```ts
 * import { BufferedReader, readChunked } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const wire = new TextEncoder().encode("3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n");
 * const r = new BufferedReader(ReadableStream.from([wire]).getReader());
 * let text = "";
 * for await (const p of readChunked(r, { onTrailers: (t) => assertEquals(t.get("t"), "v") })) {
 *   text += new TextDecoder().decode(p);
 * }
 * assertEquals(text, "abc");
 * ```
 */
export async function* readChunked(
  reader: BufferedReader,
  options: BodyOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const max = options.maxBytes ?? Infinity;
  const maxLine = options.maxChunkLineBytes ?? 4096;
  const what = "chunked body";
  let total = 0;
  for (;;) {
    const lineLen = await readLine(reader, maxLine, what, 400);
    const buf = reader.buffer;
    const s = reader.start;
    const ce = s + lineLen - 2;
    let i = s;
    while (i < ce && buf[i] === 48) i++; // leading zeros are valid and not significant
    const digits = i;
    let size = 0;
    while (i < ce && HEX[buf[i]!]! >= 0) {
      size = size * 16 + HEX[buf[i]!]!;
      i++;
    }
    // At most 13 significant hex digits keeps the size below 2^53 (exact).
    if (i === s || i - digits > 13) {
      throw new HttpError(400, `Cannot parse ${what}: invalid chunk size`);
    }
    if (i < ce && !checkChunkExt(buf, i, ce)) {
      throw new HttpError(400, `Cannot parse ${what}: malformed chunk extension`);
    }
    reader.consume(lineLen);
    if (size === 0) break;
    total += size;
    if (total > max) throw tooLarge(max);
    let remaining = size;
    while (remaining > 0) {
      const piece = await readPiece(reader, remaining, options);
      if (piece === null) {
        throw new Deno.errors.UnexpectedEof(`Cannot read ${what}: connection closed mid-chunk`);
      }
      remaining -= piece.length;
      yield piece;
    }
    while (reader.buffered < 2) {
      if ((await reader.fill()) === 0) {
        throw new Deno.errors.UnexpectedEof(`Cannot read ${what}: connection closed after chunk`);
      }
    }
    const b = reader.buffer;
    if (b[reader.start] !== CR || b[reader.start + 1] !== LF) {
      throw new HttpError(400, `Cannot parse ${what}: chunk data not followed by CRLF`);
    }
    reader.consume(2);
  }
  // Trailer section: field lines up to an empty line (§7.1.2).
  const maxTrailerBytes = options.maxTrailerBytes ?? 16384;
  const maxTrailers = options.maxTrailers ?? 100;
  const names: string[] = [];
  const values: string[] = [];
  let trailerBytes = 0;
  for (;;) {
    const lineLen = await readLine(reader, maxTrailerBytes - trailerBytes, "trailer section", 431);
    trailerBytes += lineLen;
    if (lineLen === 2) {
      reader.consume(2);
      break;
    }
    const buf = reader.buffer;
    const s = reader.start;
    parseFields(
      buf,
      latin1(buf, s, s + lineLen),
      s,
      s,
      s + lineLen,
      names,
      values,
      names.length,
      maxTrailers,
      false,
      400,
      431,
      "trailer section",
    );
    reader.consume(lineLen);
  }
  if (names.length > 0) options.onTrailers?.(FieldList.fromArrays(names, values));
}

/**
 * Streams a body of any kind: dispatches on `kind` to
 * {@linkcode readFixed}, {@linkcode readChunked} or {@linkcode readUntilClose}.
 * `none` and `tunnel` yield nothing.
 *
 * @param reader The connection's buffered reader.
 * @param kind The framing, usually `head.body`.
 * @param options Limits.
 * @returns An async iterator of body pieces.
 *
 * @example
 * ```ts
 * import { bodyReader, BufferedReader } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new Uint8Array(4)]).getReader());
 * for await (const p of bodyReader(r, { type: "length", length: 4 })) assertEquals(p.length, 4);
 * ```
 */
export function bodyReader(
  reader: BufferedReader,
  kind: BodyKind,
  options: BodyOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  switch (kind.type) {
    case "length":
      return readFixed(reader, kind.length, options);
    case "chunked":
      return readChunked(reader, options);
    case "close":
      return readUntilClose(reader, options);
    default:
      return (async function* () {})();
  }
}

/**
 * Wraps a body as a `ReadableStream`, e.g. to build a Fetch `Response` or
 * `Request`. Cancelling the stream stops reading (the connection then cannot
 * be reused unless the rest of the body is discarded).
 *
 * @param reader The connection's buffered reader.
 * @param kind The framing, usually `head.body`.
 * @param options Limits.
 * @returns A byte stream of the body.
 *
 * @example
 * ```ts
 * import { bodyStream, BufferedReader } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new TextEncoder().encode("hi")]).getReader());
 * const text = await new Response(bodyStream(r, { type: "length", length: 2 })).text();
 * assertEquals(text, "hi");
 * ```
 */
export function bodyStream(
  reader: BufferedReader,
  kind: BodyKind,
  options: BodyOptions = {},
): ReadableStream<Uint8Array> {
  const it = bodyReader(reader, kind, options);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return();
    },
  });
}

/**
 * Reads a whole body into one array.
 *
 * @param reader The connection's buffered reader.
 * @param kind The framing, usually `head.body`.
 * @param options Limits (set `maxBytes` for untrusted peers).
 * @returns The body bytes.
 *
 * @example
 * ```ts
 * import { BufferedReader, readBody } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new TextEncoder().encode("abc")]).getReader());
 * assertEquals((await readBody(r, { type: "close" })).length, 3);
 * ```
 */
export async function readBody(
  reader: BufferedReader,
  kind: BodyKind,
  options: BodyOptions = {},
): Promise<Uint8Array> {
  if (kind.type === "length") {
    const max = options.maxBytes ?? Infinity;
    if (kind.length > max) throw tooLarge(max);
    const out = new Uint8Array(kind.length);
    const got = await readFull(reader, out);
    if (got < out.length) {
      throw new Deno.errors.UnexpectedEof(
        `Cannot read body: connection closed after ${got} of ${kind.length} bytes`,
      );
    }
    return out;
  }
  const pieces: Uint8Array[] = [];
  for await (const p of bodyReader(reader, kind, options)) pieces.push(p);
  if (pieces.length === 1) return pieces[0]!;
  return concat(pieces);
}

/**
 * Reads and drops a body, so the connection can serve the next message.
 *
 * @param reader The connection's buffered reader.
 * @param kind The framing, usually `head.body`.
 * @param options Limits (`maxBytes` bounds what is worth draining).
 * @returns The number of body bytes dropped.
 *
 * @example
 * ```ts
 * import { BufferedReader, discardBody } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const r = new BufferedReader(ReadableStream.from([new Uint8Array(10)]).getReader());
 * assertEquals(await discardBody(r, { type: "length", length: 10 }), 10);
 * ```
 */
export async function discardBody(
  reader: BufferedReader,
  kind: BodyKind,
  options: BodyOptions = {},
): Promise<number> {
  let total = 0;
  for await (const p of bodyReader(reader, kind, options)) total += p.length;
  return total;
}
