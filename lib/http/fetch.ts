/**
 * The Fetch API over the server core: a `Request` built from a parsed head,
 * a `Response` encoded for HTTP/1.1 (length, chunked or until close; HEAD,
 * 204 and 304 without a body), and {@linkcode serveFetch}, which runs a
 * `(Request, info) => Response` handler on {@linkcode HttpServer}.
 *
 * A handler that already holds the body in memory can say so with
 * {@linkcode bytesResponse}: the encoder then writes the bytes without
 * reading the `Response` body stream.
 *
 * @example
 * ```ts
 * import { serveFetch } from "./fetch.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * await using server = serveFetch((req) => new Response(new URL(req.url).pathname), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/a/b`);
 * assertEquals(await res.text(), "/a/b");
 * ```
 *
 * @module
 */
import { concat } from "../bytes.ts";
import { formatHttpDate } from "./dates.ts";
import { encodeChunk, encodeResponseHead, LAST_CHUNK } from "./encoder.ts";
import { HttpError } from "./errors.ts";
import type { RequestHead } from "./heads.ts";
import { HttpServer, type ServerConnection, type ServerOptions } from "./server.ts";

/** What a Fetch handler learns about the connection besides the request. */
export interface RequestInfo {
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
}

/** A Fetch-style request handler. */
export type FetchHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

const inMemory = new WeakMap<Response, Uint8Array>();
/** The most of an unread request body drained to keep the connection. */
const DRAIN_MAX = 65536;

/**
 * Makes a `Response` whose body is `body`, and remembers the bytes so the
 * encoder writes them directly (one copy less than reading the stream).
 *
 * @param body The body bytes.
 * @param init Status and headers.
 * @returns The response.
 *
 * @example
 * ```ts
 * import { bytesResponse, responseBytes } from "./fetch.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const body = new TextEncoder().encode("hi");
 * assertEquals(responseBytes(bytesResponse(body)), body);
 * assertEquals(responseBytes(new Response("hi")), undefined);
 * ```
 */
export function bytesResponse(body: Uint8Array<ArrayBuffer>, init?: ResponseInit): Response {
  const response = new Response(body, init);
  inMemory.set(response, body);
  return response;
}

/**
 * The bytes a {@linkcode bytesResponse} was made with.
 *
 * @param response Any response.
 * @returns The body bytes, or `undefined` when the body is a stream.
 */
export function responseBytes(response: Response): Uint8Array | undefined {
  return inMemory.get(response);
}

/** Options of {@linkcode toRequest}. */
export interface ToRequestOptions {
  /**
   * The scheme of the URL for origin-form targets.
   * @default {"http"}
   */
  scheme?: string;
  /**
   * The authority when the request has no Host field (HTTP/1.0).
   * @default {"localhost"}
   */
  host?: string;
  /**
   * The request body, for methods that may have one.
   * @default {undefined}
   */
  body?: ReadableStream<Uint8Array>;
}

/**
 * Builds a Fetch `Request` from a parsed head.
 *
 * @param head The head.
 * @param options Scheme, default host, body.
 * @returns The request, or `undefined` when the Fetch API cannot express it
 *   (CONNECT, TRACE, an authority- or asterisk-form target, a bad URL).
 *
 * @example
 * ```ts
 * import { toRequest } from "./fetch.ts";
 * import { FieldList } from "./fields.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const req = toRequest({
 *   method: "GET", target: "/x?y", targetForm: "origin", version: "HTTP/1.1",
 *   headers: new FieldList([["Host", "example.test"]]), body: { type: "none" },
 *   keepAlive: true, expectContinue: false, headBytes: 0,
 * });
 * assertEquals(req?.url, "http://example.test/x?y");
 * ```
 */
export function toRequest(head: RequestHead, options: ToRequestOptions = {}): Request | undefined {
  const h = head.headers;
  const url = head.targetForm === "absolute"
    ? head.target
    : head.targetForm === "origin"
    ? `${options.scheme ?? "http"}://${h.get("host") || options.host || "localhost"}${head.target}`
    : undefined;
  if (url === undefined) return undefined;
  const method = head.method;
  const withBody = options.body !== undefined && method !== "GET" && method !== "HEAD";
  try {
    return new Request(url, {
      method,
      headers: h.toHeaders(),
      ...(withBody ? { body: options.body, duplex: "half" } as RequestInit : {}),
    });
  } catch {
    return undefined;
  }
}

/** A response ready for the wire; see {@linkcode encodeResponse}. */
export interface EncodedResponse {
  /** The status code. */
  status: number;
  /** The head bytes. */
  head: Uint8Array;
  /** The body, when it is in memory (empty for a bodiless response). */
  body: Uint8Array | null;
  /** The head and a small body joined, for one write; `null` when not joined. */
  wire: Uint8Array | null;
  /** The body stream, when it is not in memory. */
  stream: ReadableStream<Uint8Array> | null;
  /** Whether the stream goes out chunked. */
  chunked: boolean;
  /** Whether the connection may serve another request afterwards. */
  keepAlive: boolean;
}

/** Options of {@linkcode encodeResponse}. */
export interface EncodeResponseOptions {
  /**
   * The request's method (HEAD gets no body).
   * @default {"GET"}
   */
  method?: string;
  /**
   * The request's version (an HTTP/1.0 client gets no chunked coding).
   * @default {"HTTP/1.1"}
   */
  version?: string;
  /**
   * Whether the connection may be kept after this response.
   * @default {true}
   */
  keepAlive?: boolean;
  /**
   * Read a streamed body with a Content-Length up to this size into memory
   * (so it can be cached or sent in one write).
   * @default {0}
   */
  bufferUpTo?: number;
  /**
   * Join a body up to this size with the head, for one write: a separate
   * small head write costs the client an extra wakeup per response.
   * @default {65536}
   */
  joinUpTo?: number;
}

/**
 * Encodes a Fetch `Response` for HTTP/1.1: a `Date`, framing by length,
 * chunked or close, `Connection` as needed; hop-by-hop fields the handler
 * set are dropped.
 *
 * @param response The response.
 * @param options The request's method and version, keep-alive, buffering.
 * @returns The encoded response.
 *
 * @example
 * ```ts
 * import { encodeResponse } from "./fetch.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const enc = await encodeResponse(new Response("hi"), { keepAlive: false });
 * const text = new TextDecoder().decode(enc.head);
 * assertEquals(enc.chunked, true);
 * assertEquals(text.includes("Connection: close\r\n"), true);
 * ```
 */
export async function encodeResponse(
  response: Response,
  options: EncodeResponseOptions = {},
): Promise<EncodedResponse> {
  const method = options.method ?? "GET";
  const http10 = options.version === "HTTP/1.0";
  let keepAlive = options.keepAlive ?? true;
  const status = response.status;
  const fields: [string, string][] = [["Date", formatHttpDate()]];
  for (const [name, value] of response.headers) {
    if (name === "connection" || name === "transfer-encoding" || name === "keep-alive") continue;
    fields.push([name, value]);
  }
  const bodiless = method === "HEAD" || status === 204 || status === 304 || status < 200;
  const length = response.headers.get("content-length");
  let body: Uint8Array | null = null;
  let stream: ReadableStream<Uint8Array> | null = null;
  let chunked = false;
  const held = inMemory.get(response);
  if (bodiless) {
    await response.body?.cancel().catch(() => {});
  } else if (response.body === null) {
    body = new Uint8Array(0);
    if (length === null) fields.push(["content-length", "0"]);
  } else if (held !== undefined) {
    body = held;
    await response.body.cancel().catch(() => {});
    if (length === null) fields.push(["content-length", String(held.length)]);
  } else if (length !== null && Number(length) <= (options.bufferUpTo ?? 0)) {
    body = await response.bytes();
    if (String(body.length) !== length) {
      // The source changed size while being read: send what we have, framed right.
      fields.splice(fields.findIndex(([n]) => n === "content-length"), 1);
      fields.push(["content-length", String(body.length)]);
    }
  } else {
    stream = response.body;
    if (length === null) {
      if (http10) keepAlive = false; // Delimited by the close (RFC 9112 §6.3 item 8).
      else {
        chunked = true;
        fields.push(["Transfer-Encoding", "chunked"]);
      }
    }
  }
  if (!keepAlive) fields.push(["Connection", "close"]);
  else if (http10) fields.push(["Connection", "keep-alive"]);
  const head = encodeResponseHead({ status, headers: fields });
  const join = body !== null && body.length <= (options.joinUpTo ?? 65536);
  return {
    status,
    head,
    body,
    wire: join ? concat([head, body!]) : null,
    stream,
    chunked,
    keepAlive,
  };
}

/**
 * Writes an encoded response.
 *
 * @param conn The connection.
 * @param encoded From {@linkcode encodeResponse}.
 * @returns The body bytes sent, or -1 when the body stream failed midway
 *   (the framing is then broken: close the connection).
 */
export async function writeResponse(
  conn: ServerConnection,
  encoded: EncodedResponse,
): Promise<number> {
  if (encoded.wire !== null) {
    await conn.write(encoded.wire);
    return encoded.body!.length;
  }
  await conn.write(encoded.head);
  if (encoded.body !== null) {
    await conn.write(encoded.body);
    return encoded.body.length;
  }
  if (encoded.stream === null) return 0;
  let sent = 0;
  try {
    for await (const chunk of encoded.stream) {
      await conn.write(encoded.chunked ? encodeChunk(chunk) : chunk);
      sent += chunk.length;
    }
  } catch {
    return -1;
  }
  if (encoded.chunked) await conn.write(LAST_CHUNK);
  return sent;
}

/** Options of {@linkcode serveFetch}: those of the server core. */
export type ServeFetchOptions = ServerOptions;

/**
 * Answers one request with a Fetch handler: builds the `Request` (with the
 * body as a stream), calls the handler (a throw becomes a 500; a request
 * body over `maxBodySize` or malformed, the core's 413 or 400), writes the
 * response, and drains what the handler left of the body.
 *
 * @param handler The Fetch handler.
 * @param head The parsed head.
 * @param conn The connection.
 * @returns Whether the connection may serve another request.
 */
export async function answerFetch(
  handler: FetchHandler,
  head: RequestHead,
  conn: ServerConnection,
): Promise<boolean> {
  const keepAlive = head.keepAlive && !conn.closing;
  let bodyError: unknown;
  const body = head.body.type === "none" ? undefined : ReadableStream.from(
    (async function* () {
      try {
        yield* conn.body(head);
      } catch (err) {
        bodyError = err;
        throw err;
      }
    })(),
  );
  const request = toRequest(head, {
    scheme: conn.secure ? "https" : "http",
    ...(body !== undefined ? { body } : {}),
  });
  let response: Response;
  if (request === undefined) {
    response = new Response(null, { status: head.method === "CONNECT" ? 501 : 400 });
  } else {
    try {
      response = await handler(request, { remoteAddr: conn.remoteAddr });
    } catch (err) {
      // The client's fault, not the handler's: the core answers with the status and closes.
      if (err === bodyError && err instanceof HttpError) throw err;
      response = new Response(null, { status: 500 });
    }
  }
  // A body the handler left unread is drained afterwards when small; one the
  // client holds back for a 100 Continue, or a large one, ends the connection,
  // and the response says so (RFC 9110 §10.1.1).
  const drainable = conn.bodyDone ||
    (!head.expectContinue && (head.body.type !== "length" || head.body.length <= DRAIN_MAX));
  const encoded = await encodeResponse(response, {
    method: head.method,
    version: head.version,
    keepAlive: keepAlive && request !== undefined && drainable,
  });
  conn.status = encoded.status;
  const sent = await writeResponse(conn, encoded);
  conn.bodyBytes = Math.max(0, sent);
  if (sent < 0 || !encoded.keepAlive) {
    if (!conn.bodyDone) conn.linger();
    return false;
  }
  return await conn.drainBody(head, DRAIN_MAX);
}

/**
 * Starts a server that answers every request with a Fetch handler, on the
 * hardened core ({@linkcode HttpServer}).
 *
 * @param handler Turns a request into a response; a throw becomes a 500.
 * @param options Address, TLS, deadlines, caps, log.
 * @returns The running server.
 */
export function serveFetch(handler: FetchHandler, options: ServeFetchOptions = {}): HttpServer {
  return new HttpServer((head, conn) => answerFetch(handler, head, conn), options);
}
