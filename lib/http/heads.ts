/**
 * Request and response head parsers (RFC 9112 §2–§6) with limits and
 * request-smuggling defences, and the body framing they derive.
 *
 * @module
 */
import { HttpError } from "./errors.ts";
import { FieldList } from "./fields.ts";
import type { BufferedReader } from "./reader.ts";
import {
  connectionTokens,
  contentEnd,
  parseContentLength,
  parseFields,
  parseVersion,
  transferCodings,
} from "./_parse.ts";
import { CR, FIELD_VALUE, findLf, latin1, SP, TARGET, TCHAR } from "./_chars.ts";

export { latin1 };

/** The protocol versions this codec speaks; `HTTP/1.x` with x ≥ 1 is treated as 1.1 (RFC 9110 §6.2). */
export type HttpVersion = "HTTP/1.0" | "HTTP/1.1";

/** The form of a request-target (RFC 9112 §3.2). */
export type TargetForm = "origin" | "absolute" | "authority" | "asterisk";

/**
 * How a message body is delimited (RFC 9112 §6.3):
 * - `none`: no body (HEAD responses, 1xx/204/304, requests without framing fields);
 * - `length`: exactly `length` bytes (Content-Length);
 * - `chunked`: chunked transfer coding;
 * - `close`: until the connection closes (responses only);
 * - `tunnel`: the connection becomes a tunnel (2xx to CONNECT, 101).
 */
export type BodyKind =
  | { readonly type: "none" }
  | { readonly type: "length"; readonly length: number }
  | { readonly type: "chunked" }
  | { readonly type: "close" }
  | { readonly type: "tunnel" };

const BODY_NONE: BodyKind = Object.freeze({ type: "none" });
const BODY_CHUNKED: BodyKind = Object.freeze({ type: "chunked" });
const BODY_CLOSE: BodyKind = Object.freeze({ type: "close" });
const BODY_TUNNEL: BodyKind = Object.freeze({ type: "tunnel" });
const BODY_EMPTY: BodyKind = Object.freeze({ type: "length", length: 0 });

/** A parsed request head. */
export interface RequestHead {
  /** The method, case-sensitive as sent (RFC 9110 §9.1). */
  method: string;
  /** The request-target as sent. */
  target: string;
  /** The form of the target. */
  targetForm: TargetForm;
  /** The version (1.x with x ≥ 1 is reported as 1.1). */
  version: HttpVersion;
  /** The header fields in wire order. */
  headers: FieldList;
  /** How the body is delimited. */
  body: BodyKind;
  /** Whether the connection may be reused after this exchange (Connection, version). */
  keepAlive: boolean;
  /** Whether the client sent `Expect: 100-continue`. */
  expectContinue: boolean;
  /** The size of the head on the wire, in bytes (including the empty line). */
  headBytes: number;
}

/** A parsed response head. */
export interface ResponseHead {
  /** The version (1.x with x ≥ 1 is reported as 1.1). */
  version: HttpVersion;
  /** The status code, 100–999. */
  status: number;
  /** The reason phrase, possibly empty. */
  reason: string;
  /** The header fields in wire order. */
  headers: FieldList;
  /** How the body is delimited, given the request method. */
  body: BodyKind;
  /** Whether the connection may be reused after this response. */
  keepAlive: boolean;
  /** The size of the head on the wire, in bytes. */
  headBytes: number;
}

/** Limits and policies of {@linkcode readRequestHead}. */
export interface RequestHeadOptions {
  /**
   * Maximum size of the head (request line, fields, empty line) → 431
   * (414 when the request line alone is over it).
   * @default {16384}
   */
  maxHeadBytes?: number;
  /**
   * Maximum number of field lines → 431.
   * @default {100}
   */
  maxHeaders?: number;
  /**
   * Maximum length of the request-target → 414.
   * @default {8192}
   */
  maxTargetLength?: number;
  /**
   * Accept a bare LF as a line terminator.
   * @default {false}
   */
  allowBareLf?: boolean;
  /**
   * Require exactly one Host field in HTTP/1.1 requests (RFC 9112 §3.2).
   * @default {true}
   */
  requireHost?: boolean;
}

/** Limits and context of {@linkcode readResponseHead}. */
export interface ResponseHeadOptions {
  /**
   * The method of the request this response answers (HEAD and CONNECT change
   * the framing).
   * @default {"GET"}
   */
  requestMethod?: string;
  /**
   * Maximum size of the head → HttpError 502.
   * @default {65536}
   */
  maxHeadBytes?: number;
  /**
   * Maximum number of field lines → HttpError 502.
   * @default {200}
   */
  maxHeaders?: number;
  /**
   * Accept a bare LF as a line terminator (curl and browsers do).
   * @default {true}
   */
  allowBareLf?: boolean;
}

const MAX_EMPTY_LINES = 8;

/** Where a head scan stopped, so it resumes there after more bytes arrive. */
interface ScanState {
  scanned: number;
  lineStart: number;
  emptyLines: number;
  firstLineEnd: number;
  /** Lines ended so far, the start line included. */
  lines: number;
}

/**
 * Looks for the end of a head in the reader's buffer without awaiting. The
 * scan resumes where it stopped, so a slow sender costs O(n), not O(n²).
 * Returns the head length from `reader.start`, or -1 when more bytes are
 * needed.
 */
function scanHead(
  reader: BufferedReader,
  st: ScanState,
  maxBytes: number,
  firstLineStatus: number,
  what: string,
  overStatus: number,
): number {
  for (;;) {
    const buf = reader.buffer;
    const s = reader.start;
    const e = reader.end;
    let i = findLf(buf, s + st.scanned, e);
    let restart = false;
    while (i >= 0) {
      const rel = i - s;
      const len = rel - st.lineStart;
      if (len === 0 || (len === 1 && buf[i - 1] === CR)) {
        if (st.lineStart !== 0) {
          if (rel + 1 > maxBytes) {
            const status = st.firstLineEnd > maxBytes ? firstLineStatus : overStatus;
            throw new HttpError(status, `Cannot read ${what}: longer than ${maxBytes} bytes`);
          }
          return rel + 1;
        }
        // An empty line before the start line (RFC 9112 §2.2): skip it.
        if (++st.emptyLines > MAX_EMPTY_LINES) {
          throw new HttpError(400, `Cannot read ${what}: too many empty lines before it`);
        }
        reader.consume(rel + 1);
        st.scanned = 0;
        restart = true;
        break;
      }
      if (st.lineStart === 0) st.firstLineEnd = rel;
      st.lineStart = rel + 1;
      st.lines++;
      i = findLf(buf, i + 1, e);
    }
    if (restart) continue;
    st.scanned = e - s;
    if (st.scanned >= maxBytes) {
      const status = st.lineStart === 0 ? firstLineStatus : overStatus;
      throw new HttpError(status, `Cannot read ${what}: longer than ${maxBytes} bytes`);
    }
    return -1;
  }
}

/** Fills the reader until a head is complete; -1 on EOF before any byte. */
async function scanHeadSlow(
  reader: BufferedReader,
  st: ScanState,
  maxBytes: number,
  firstLineStatus: number,
  what: string,
  overStatus: number,
): Promise<number> {
  for (;;) {
    if ((await reader.fill()) === 0) return endOfInput(reader, what);
    const len = scanHead(reader, st, maxBytes, firstLineStatus, what, overStatus);
    if (len >= 0) return len;
  }
}

/** At end of input: -1 when nothing was buffered (a clean close), else the error for a cut head. */
function endOfInput(reader: BufferedReader, what: string): -1 {
  if (reader.buffered === 0) return -1;
  throw new Deno.errors.UnexpectedEof(
    `Cannot read ${what}: connection closed after ${reader.buffered} bytes of it`,
  );
}

/**
 * Parses request heads from a reader's buffer without awaiting: a loop that
 * does its own reads (the server core) calls {@linkcode take} after each
 * fill, and the scan resumes where it stopped, so a slow sender costs O(n).
 * Keeping the parse synchronous spares each request the frame of an async
 * call, which a keep-alive loop otherwise allocates per request.
 *
 * @example
 * ```ts
 * import { BufferedReader, RequestHeadParser } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const wire = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
 * const reader = new BufferedReader(ReadableStream.from([wire]).getReader());
 * const parser = new RequestHeadParser();
 * assertEquals(parser.take(reader), null);
 * await reader.fill();
 * assertEquals(parser.take(reader)!.target, "/");
 * ```
 */
export class RequestHeadParser {
  readonly #options: RequestHeadOptions;
  readonly #maxHeadBytes: number;
  readonly #st: ScanState = { scanned: 0, lineStart: 0, emptyLines: 0, firstLineEnd: 0, lines: 0 };

  /**
   * Makes a parser with the limits of every head it reads.
   *
   * @param options Limits and policies, as {@linkcode readRequestHead} takes them.
   */
  constructor(options: RequestHeadOptions = {}) {
    this.#options = options;
    this.#maxHeadBytes = options.maxHeadBytes ?? 16384;
  }

  /**
   * Parses the head at the start of the reader's buffer and consumes it.
   *
   * @param reader The connection's buffered reader.
   * @returns The head, or `null` when it is not complete yet: fill the reader and call again.
   * @throws {HttpError} On malformed input or exceeded limits, with the status to answer.
   */
  take(reader: BufferedReader): RequestHead | null {
    const st = this.#st;
    const len = scanHead(reader, st, this.#maxHeadBytes, 414, REQUEST_HEAD, 431);
    if (len < 0) return null;
    const lines = st.lines;
    st.scanned =
      st.lineStart =
      st.emptyLines =
      st.firstLineEnd =
      st.lines =
        0;
    return parseRequestHead(reader, len, this.#options, lines - 1);
  }

  /**
   * Whether the input ended cleanly between heads; call it when a fill
   * returned 0 (end of stream).
   *
   * @param reader The reader that reached its end.
   * @returns `true` when no byte of a next head was buffered.
   * @throws {Deno.errors.UnexpectedEof} When the input ended in the middle of a head.
   */
  ended(reader: BufferedReader): boolean {
    return endOfInput(reader, REQUEST_HEAD) === -1;
  }
}

const REQUEST_HEAD = "request head";

/**
 * Reads and parses one request head from the reader, enforcing the limits
 * and smuggling defences described in the module documentation. The body (if
 * any) stays in the reader; read it with {@linkcode readBody} or
 * {@linkcode bodyReader} according to `head.body`.
 *
 * @param reader The connection's buffered reader.
 * @param options Limits and policies.
 * @returns The head, or `null` when the connection closed cleanly before any byte.
 * @throws {HttpError} On malformed input or exceeded limits, with the status to answer.
 * @throws {Deno.errors.UnexpectedEof} When the connection closed in the middle of the head.
 *
 * @example
 * ```ts
 * import { BufferedReader, readRequestHead } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const wire = new TextEncoder().encode("GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n");
 * const head = await readRequestHead(new BufferedReader(ReadableStream.from([wire]).getReader()));
 * assertEquals(head!.target, "/a?b");
 * assertEquals(head!.headers.get("host"), "x");
 * ```
 */
export async function readRequestHead(
  reader: BufferedReader,
  options: RequestHeadOptions = {},
): Promise<RequestHead | null> {
  const parser = new RequestHeadParser(options);
  for (;;) {
    const head = parser.take(reader);
    if (head !== null) return head;
    if ((await reader.fill()) === 0 && parser.ended(reader)) return null;
  }
}

/** Parses the complete request head of `len` bytes at the reader's start, and consumes it. */
function parseRequestHead(
  reader: BufferedReader,
  len: number,
  options: RequestHeadOptions,
  fieldLines: number,
): RequestHead {
  const maxTarget = options.maxTargetLength ?? 8192;
  const allowBareLf = options.allowBareLf ?? false;
  const what = REQUEST_HEAD;
  const buf = reader.buffer;
  const s = reader.start;
  const end = s + len;
  const str = latin1(buf, s, end);

  // Request line: method SP request-target SP HTTP-version (RFC 9112 §3).
  const lf0 = findLf(buf, s, end);
  const ce0 = contentEnd(buf, s, lf0, allowBareLf, 400, what);
  let i = s;
  while (TCHAR[buf[i]!] === 1) i++;
  if (i === s || buf[i] !== SP) {
    throw new HttpError(400, `Cannot parse ${what}: malformed method in request line`);
  }
  const method = str.slice(0, i - s);
  const ts = ++i;
  while (TARGET[buf[i]!] === 1) i++;
  if (i === ts || buf[i] !== SP) {
    throw new HttpError(400, `Cannot parse ${what}: malformed request-target`);
  }
  if (i - ts > maxTarget) {
    throw new HttpError(414, `Cannot parse ${what}: request-target longer than ${maxTarget}`);
  }
  const target = str.slice(ts - s, i - s);
  const minor = parseVersion(buf, i + 1, ce0, 400, what);
  const version: HttpVersion = minor === 0 ? "HTTP/1.0" : "HTTP/1.1";

  let targetForm: TargetForm;
  const t0 = buf[ts];
  if (t0 === 47 /* / */) targetForm = "origin";
  else if (method === "CONNECT") targetForm = "authority";
  else if (t0 === 42 /* * */ && i - ts === 1) targetForm = "asterisk";
  else if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(target)) targetForm = "absolute";
  else throw new HttpError(400, `Cannot parse ${what}: invalid request-target "${target}"`);
  if (method === "CONNECT" && (t0 === 47 || !/^[^/?#@\s]+:[0-9]+$/.test(target))) {
    throw new HttpError(400, `Cannot parse ${what}: CONNECT needs host:port, not "${target}"`);
  }
  if (targetForm === "asterisk" && method !== "OPTIONS") {
    throw new HttpError(400, `Cannot parse ${what}: "*" is only valid with OPTIONS`);
  }

  // Lists of the exact size (the scan counted the lines): pushing onto `[]`
  // makes room for 17 lines per list.
  const size = Math.min(fieldLines, options.maxHeaders ?? 100);
  const names = new Array<string>(size);
  const values = new Array<string>(size);
  const f = parseFields(
    buf,
    str,
    s,
    lf0 + 1,
    end,
    names,
    values,
    0,
    options.maxHeaders ?? 100,
    allowBareLf,
    400,
    431,
    what,
  );
  reader.consume(len);
  if (f.count !== size) names.length = values.length = f.count;

  if (minor >= 1 && (options.requireHost ?? true) && f.host !== 1) {
    throw new HttpError(
      400,
      `Cannot parse ${what}: HTTP/1.1 needs exactly one Host field, got ${f.host}`,
    );
  }
  if (f.host > 1) throw new HttpError(400, `Cannot parse ${what}: several Host fields`);
  if (f.host === 1 && /[\s/?#@\\]/.test(f.hostValue)) {
    throw new HttpError(400, `Cannot parse ${what}: invalid Host "${f.hostValue}"`);
  }

  let body: BodyKind = BODY_NONE;
  if (f.transferEncoding !== null) {
    if (f.contentLength !== null) {
      throw new HttpError(400, `Cannot parse ${what}: both Content-Length and Transfer-Encoding`);
    }
    if (minor === 0) {
      throw new HttpError(400, `Cannot parse ${what}: Transfer-Encoding in HTTP/1.0 (§6.1)`);
    }
    const codings = transferCodings(f.transferEncoding, 400, what);
    if (codings[codings.length - 1] !== "chunked") {
      throw new HttpError(400, `Cannot parse ${what}: the final transfer coding is not chunked`);
    }
    if (codings.length > 1) {
      const other = codings.find((c) => c !== "chunked");
      if (other === undefined) {
        throw new HttpError(400, `Cannot parse ${what}: chunked applied more than once`);
      }
      throw new HttpError(501, `Cannot parse ${what}: transfer coding "${other}" not supported`);
    }
    body = BODY_CHUNKED;
  } else if (f.contentLength !== null) {
    const n = parseContentLength(f.contentLength, 400, what);
    body = n === 0 ? BODY_EMPTY : { type: "length", length: n };
  }

  const conn = connectionTokens(f.connection);
  const keepAlive = !conn.includes("close") && (minor >= 1 || conn.includes("keep-alive"));
  const expectContinue = f.expect !== null && f.expect.toLowerCase() === "100-continue";
  return {
    method,
    target,
    targetForm,
    version,
    headers: FieldList.fromArrays(names, values),
    body,
    keepAlive,
    expectContinue,
    headBytes: len,
  };
}

/**
 * Reads and parses one response head. Interim 1xx responses (other than
 * 101) are returned like any other: the caller loops until a final status.
 *
 * @param reader The connection's buffered reader.
 * @param options The request method (for HEAD/CONNECT framing), limits, policies.
 * @returns The head, or `null` when the connection closed before any byte.
 * @throws {HttpError} Status 502 on a malformed or over-limit head.
 * @throws {Deno.errors.UnexpectedEof} When the connection closed in the middle of the head.
 *
 * @example
 * ```ts
 * import { BufferedReader, readResponseHead } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const wire = new TextEncoder().encode("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n");
 * const head = await readResponseHead(new BufferedReader(ReadableStream.from([wire]).getReader()));
 * assertEquals(head!.status, 204);
 * assertEquals(head!.body.type, "none");
 * ```
 */
export async function readResponseHead(
  reader: BufferedReader,
  options: ResponseHeadOptions = {},
): Promise<ResponseHead | null> {
  const maxHeadBytes = options.maxHeadBytes ?? 65536;
  const allowBareLf = options.allowBareLf ?? true;
  const what = "response head";
  const st: ScanState = { scanned: 0, lineStart: 0, emptyLines: 0, firstLineEnd: 0, lines: 0 };
  let len = scanHead(reader, st, maxHeadBytes, 502, what, 502);
  if (len < 0) len = await scanHeadSlow(reader, st, maxHeadBytes, 502, what, 502);
  if (len < 0) return null;
  const buf = reader.buffer;
  const s = reader.start;
  const end = s + len;
  const str = latin1(buf, s, end);

  // Status line: HTTP-version SP 3DIGIT SP [reason] (RFC 9112 §4); the SP
  // before an empty reason is optional here, as many servers omit it.
  const lf0 = findLf(buf, s, end);
  const ce0 = contentEnd(buf, s, lf0, allowBareLf, 502, what);
  if (ce0 - s < 12 || buf[s + 8] !== SP) {
    throw new HttpError(502, `Cannot parse ${what}: malformed status line`);
  }
  const minor = parseVersion(buf, s, s + 8, 502, what);
  const d0 = buf[s + 9]! - 48;
  const d1 = buf[s + 10]! - 48;
  const d2 = buf[s + 11]! - 48;
  if (
    d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 ||
    (ce0 > s + 12 && buf[s + 12] !== SP)
  ) {
    throw new HttpError(502, `Cannot parse ${what}: malformed status code`);
  }
  for (let k = s + 13; k < ce0; k++) {
    if (FIELD_VALUE[buf[k]!] !== 1) {
      throw new HttpError(502, `Cannot parse ${what}: invalid byte in reason phrase`);
    }
  }
  const status = d0 * 100 + d1 * 10 + d2;
  const reason = ce0 > s + 13 ? str.slice(13, ce0 - s) : "";

  const names: string[] = [];
  const values: string[] = [];
  const f = parseFields(
    buf,
    str,
    s,
    lf0 + 1,
    end,
    names,
    values,
    0,
    options.maxHeaders ?? 200,
    allowBareLf,
    502,
    502,
    what,
  );
  reader.consume(len);

  const method = options.requestMethod ?? "GET";
  const conn = connectionTokens(f.connection);
  let keepAlive = !conn.includes("close") && (minor >= 1 || conn.includes("keep-alive"));
  let body: BodyKind;
  if (status === 101 || (method === "CONNECT" && status >= 200 && status < 300)) {
    body = BODY_TUNNEL;
    keepAlive = false;
  } else if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    body = BODY_NONE;
  } else if (f.transferEncoding !== null) {
    const codings = transferCodings(f.transferEncoding, 502, what);
    // §6.1: TE in HTTP/1.0 means faulty framing; §6.3: a non-chunked final
    // coding means read until close. With Content-Length too, TE wins and the
    // connection must not be reused.
    if (minor === 0 || codings[codings.length - 1] !== "chunked") {
      body = BODY_CLOSE;
    } else {
      if (codings.length > 1) {
        throw new HttpError(
          502,
          `Cannot parse ${what}: transfer codings "${codings.join(", ")}" not supported`,
        );
      }
      body = BODY_CHUNKED;
    }
    if (f.contentLength !== null) keepAlive = false;
  } else if (f.contentLength !== null) {
    const n = parseContentLength(f.contentLength, 502, what);
    body = n === 0 ? BODY_EMPTY : { type: "length", length: n };
  } else {
    body = BODY_CLOSE;
  }
  if (body.type === "close") keepAlive = false;
  return {
    version: minor === 0 ? "HTTP/1.0" : "HTTP/1.1",
    status,
    reason,
    headers: FieldList.fromArrays(names, values),
    body,
    keepAlive,
    headBytes: len,
  };
}

/** Options of {@linkcode bodyKind}. */
export interface BodyKindOptions {
  /**
   * For a response head: the method of the request it answers.
   * @default {"GET"}
   */
  requestMethod?: string;
}

/**
 * Returns how a message's body is delimited (RFC 9112 §6.3). The parsers
 * already compute this as `head.body`; this function re-derives it for a
 * head whose fields were changed, e.g. by a proxy before forwarding.
 *
 * @param head A request head (has `method`) or a response head (has `status`).
 * @param options The request method, for responses.
 * @returns The body kind.
 * @throws {HttpError} When the framing fields are invalid (400 for requests, 502 for responses).
 *
 * @example
 * ```ts
 * import { bodyKind, FieldList } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const kind = bodyKind({ status: 200, version: "HTTP/1.1", headers: new FieldList({ "Content-Length": "5" }) });
 * assertEquals(kind, { type: "length", length: 5 });
 * ```
 */
export function bodyKind(
  head:
    | { method: string; version: HttpVersion; headers: FieldList }
    | { status: number; version: HttpVersion; headers: FieldList },
  options: BodyKindOptions = {},
): BodyKind {
  const h = head.headers;
  const te = h.getAll("transfer-encoding");
  const cl = h.getAll("content-length");
  if ("method" in head) {
    const what = "request";
    if (te.length > 0) {
      if (cl.length > 0) {
        throw new HttpError(400, `Cannot frame ${what}: both Content-Length and Transfer-Encoding`);
      }
      const codings = transferCodings(te, 400, what);
      if (head.version === "HTTP/1.0" || codings.length !== 1 || codings[0] !== "chunked") {
        throw new HttpError(400, `Cannot frame ${what}: unsupported Transfer-Encoding`);
      }
      return BODY_CHUNKED;
    }
    if (cl.length > 0) {
      const n = parseContentLength(cl, 400, what);
      return n === 0 ? BODY_EMPTY : { type: "length", length: n };
    }
    return BODY_NONE;
  }
  const what = "response";
  const method = options.requestMethod ?? "GET";
  const status = head.status;
  if (status === 101 || (method === "CONNECT" && status >= 200 && status < 300)) {
    return BODY_TUNNEL;
  }
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) return BODY_NONE;
  if (te.length > 0) {
    const codings = transferCodings(te, 502, what);
    if (head.version === "HTTP/1.0" || codings[codings.length - 1] !== "chunked") {
      return BODY_CLOSE;
    }
    return BODY_CHUNKED;
  }
  if (cl.length > 0) {
    const n = parseContentLength(cl, 502, what);
    return n === 0 ? BODY_EMPTY : { type: "length", length: n };
  }
  return BODY_CLOSE;
}
