/**
 * The web server's engine: a `(Request) => Response` handler such as
 * {@linkcode serveDir} on the project's hardened HTTP/1.1 server core
 * (`lib/http/server.ts`: accept loop, caps, deadlines, lingering close,
 * graceful shutdown), plus the response cache that makes it fast.
 *
 * Why not `Deno.serve`: measured here with wrk (1 KiB file, 64 keep-alive
 * connections, 2 cores) `Deno.serve` answering from memory did about 38k
 * req/s against nginx's 43k, so it cannot meet the "at least nginx" target;
 * a loop on `Deno.listen` did about 100k. See web_server/SERVER.md.
 *
 * What makes it fast: responses that {@linkcode isCacheable} marks (whole
 * files up to 1 MiB) are kept serialised, head and body in one buffer, and
 * replayed with one write for the same target and negotiation headers; the
 * cache is dropped whenever `Deno.watchFs` reports a change under the root.
 * Only the `Date` bytes are patched in place once a second.
 *
 * The web server reads no request bodies: a small one is drained so the
 * connection is kept, a larger one (or one the client holds back for a
 * `100 Continue`) is answered and the connection closed with a lingering
 * close; one over `maxBodySize` gets 413 from the core.
 *
 * @module
 */
import { formatHttpDate } from "../lib/http/dates.ts";
import {
  type EncodedResponse,
  encodeResponse,
  type EncodeResponseOptions,
  type FetchHandler,
  toRequest,
  writeResponse,
} from "../lib/http/fetch.ts";
import { latin1, type RequestHead } from "../lib/http/heads.ts";
import { HttpServer, type ServerConnection, type ServerOptions } from "../lib/http/server.ts";
import type { H2Request, H2Stream } from "../lib/http/h2/session.ts";
import { isCacheable, plainResponse } from "./serve.ts";

export type { FetchHandler as Handler, RequestInfo } from "../lib/http/fetch.ts";
export type { AccessLogEntry } from "../lib/http/server.ts";

/** Options of {@linkcode serveHttp}: the server core's, and the response cache's. */
export interface ServeHttpOptions extends Omit<ServerOptions, "h2"> {
  /**
   * Serve HTTP/2 as well: over TLS by ALPN, and with prior knowledge on a
   * plain port when `h2c` is set. The same handler and cache serve both.
   * @default {true}
   */
  http2?: boolean;
  /**
   * Directory whose changes invalidate the response cache; no cache when unset.
   * @default {undefined}
   */
  cacheRoot?: string;
  /**
   * Total bytes the response cache may hold.
   * @default {67108864}
   */
  cacheBytes?: number;
}

const CACHE_ENTRY_MAX = (1 << 20) + 4096;
/**
 * Bytes an entry costs beside its response and key, counted against the
 * cache's size: the entry object, its slot in the map and the HTTP/2 field
 * block made on its first HTTP/2 hit.
 */
const ENTRY_OVERHEAD = 512;
const DRAIN_MAX = 64 * 1024;
const CONDITIONAL = [
  "range",
  "if-match",
  "if-none-match",
  "if-modified-since",
  "if-unmodified-since",
];
// Methods the Fetch standard forbids in `new Request`; they can only be refused.
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

interface CacheEntry {
  /** The head followed by the body: one write per hit. */
  bytes: Uint8Array;
  /** What it counts against the cache's size: bytes, key and bookkeeping. */
  charge: number;
  headLength: number;
  dateOffset: number;
  dateSecond: number;
  status: number;
  /** The HTTP/2 field block, made on the first HTTP/2 hit; `date` is its last 29 bytes. */
  h2: Uint8Array | undefined;
  h2DateSecond: number;
}

const encoder = new TextEncoder();

/**
 * Serialised responses keyed by target and negotiation headers, dropped on
 * any change under the root, with single-flight production.
 */
class ResponseCache {
  readonly #limit: number;
  #entries = new Map<string, CacheEntry>();
  #inflight = new Map<string, Promise<void>>();
  #size = 0;
  #watcher: Deno.FsWatcher;
  /** Bumped on every change: a response built across a change is not stored. */
  generation = 0;

  constructor(watcher: Deno.FsWatcher, limit: number) {
    this.#watcher = watcher;
    this.#limit = limit;
    void (async () => {
      try {
        for await (const _event of watcher) {
          // Any change may affect any cached response (index.html, siblings): drop all.
          this.generation++;
          this.#entries.clear();
          this.#size = 0;
        }
      } catch {
        // Closed.
      }
    })();
  }

  static open(root: string, limit: number): ResponseCache | undefined {
    try {
      return new ResponseCache(Deno.watchFs(root, { recursive: true }), limit);
    } catch {
      // No inotify (limits reached, unsupported file system): serve without a cache.
      return undefined;
    }
  }

  get(key: string): CacheEntry | undefined {
    return this.#entries.get(key);
  }

  /** The production of `key` under way, if any. */
  pending(key: string): Promise<void> | undefined {
    return this.#inflight.get(key);
  }

  /** Marks `key` as being produced; call the result when it is done (stored or not). */
  begin(key: string): () => void {
    const flight = Promise.withResolvers<void>();
    this.#inflight.set(key, flight.promise);
    return () => {
      if (this.#inflight.get(key) !== flight.promise) return;
      this.#inflight.delete(key);
      flight.resolve();
    };
  }

  store(
    key: string,
    bytes: Uint8Array,
    headLength: number,
    status: number,
  ): CacheEntry | undefined {
    if (bytes.length > CACHE_ENTRY_MAX) return undefined;
    // The key counts too: a target can be 8 KiB (64 KiB as an HTTP/2 :path),
    // and every query string names another entry of the same file.
    const size = bytes.length + key.length + ENTRY_OVERHEAD;
    while (this.#size + size > this.#limit && this.#entries.size > 0) {
      // Evict in insertion order: cheap, and good enough for a static tree.
      const [oldKey, old] = this.#entries.entries().next().value!;
      this.#entries.delete(oldKey);
      this.#size -= old.charge;
    }
    const dateOffset = bytes.indexOf(10) + 1 + "Date: ".length;
    const entry: CacheEntry = {
      bytes,
      charge: size,
      headLength,
      dateOffset,
      dateSecond: Math.floor(Date.now() / 1000),
      status,
      h2: undefined,
      h2DateSecond: 0,
    };
    this.#entries.set(key, entry);
    this.#size += size;
    return entry;
  }

  close(): void {
    try {
      this.#watcher.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Bytes the response cache keeps when no size is given (64 MiB).
 *
 * @example
 * ```ts
 * import { DEFAULT_CACHE_BYTES } from "./engine.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(DEFAULT_CACHE_BYTES, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Starts an HTTP/1.1 (or HTTPS) server that answers every request with the
 * handler, on the project's server core, with the response cache when
 * `cacheRoot` is set.
 *
 * @param handler Turns a request into a response; a throw becomes a 500.
 * @param options Address, TLS, deadlines, caps, cache and log.
 * @returns The running server.
 *
 * @example Serving a directory on a free port
 * ```ts
 * import { serveHttp } from "./engine.ts";
 * import { serveDir } from "./serve.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "A");
 * const server = serveHttp((req) => serveDir(req, { fsRoot: root }), { port: 0 });
 * const res = await fetch(`http://localhost:${server.addr.port}/a.txt`);
 * assertEquals(await res.text(), "A");
 * await server.shutdown();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function serveHttp(handler: FetchHandler, options: ServeHttpOptions = {}): HttpServer {
  const cache = options.cacheRoot !== undefined
    ? ResponseCache.open(options.cacheRoot, options.cacheBytes ?? DEFAULT_CACHE_BYTES)
    : undefined;
  const site: Site = {
    handler,
    cache,
    scheme: options.cert !== undefined ? "https" : "http",
    hostname: "",
  };
  const http2 = options.http2 ?? true;
  let server: HttpServer;
  try {
    server = new HttpServer(
      (head, conn) => answer(site, head, conn),
      {
        ...options,
        ...(http2
          ? { h2: (req, stream) => answerH2(handler, cache, server.addr.hostname, req, stream) }
          : {}),
      },
    );
  } catch (err) {
    cache?.close();
    throw err;
  }
  site.hostname = server.addr.hostname;
  void server.finished.then(() => cache?.close());
  return server;
}

/** What every HTTP/1.1 request of one server shares. */
interface Site {
  handler: FetchHandler;
  cache: ResponseCache | undefined;
  scheme: string;
  /** The listening address: the host of requests that name none. */
  hostname: string;
}

/**
 * Serves one request: a cache hit synchronously (the hot path: the core
 * writes the bytes with no async frame of ours), anything else through
 * the handler.
 */
function answer(site: Site, head: RequestHead, conn: ServerConnection): boolean | Promise<boolean> {
  const cache = site.cache;
  if (
    cache !== undefined && conn.bodyDone && head.keepAlive && !conn.closing && replayable(head)
  ) {
    const hit = cache.get(cacheKey(head));
    if (hit !== undefined) return replay(conn, head.method, hit);
  }
  return produce(site, head, conn);
}

/** Whether a response cached for this request's key may answer it: a plain HTTP/1.1 GET or HEAD. */
function replayable(head: RequestHead): boolean {
  const method = head.method;
  if ((method !== "GET" && method !== "HEAD") || head.version !== "HTTP/1.1") return false;
  const h = head.headers;
  for (let i = 0; i < CONDITIONAL.length; i++) if (h.has(CONDITIONAL[i]!)) return false;
  return true;
}

/** The cache key of a request: its target and the fields the response is negotiated on. */
function cacheKey(head: RequestHead): string {
  const h = head.headers;
  return `${head.target}\n${h.get("accept-encoding") ?? ""}\n${h.get("accept") ?? ""}`;
}

/** Serves a request the cache could not answer at once: waits for its production, or runs the handler. */
async function produce(site: Site, head: RequestHead, conn: ServerConnection): Promise<boolean> {
  const cache = site.cache;
  let keepAlive = head.keepAlive && !conn.closing;
  if (!conn.bodyDone && !(await conn.drainBody(head, DRAIN_MAX))) keepAlive = false;
  const method = head.method;

  let key: string | undefined;
  if (cache !== undefined && keepAlive && replayable(head)) {
    key = cacheKey(head);
    const hit = cache.get(key) ?? await produced(cache, key);
    if (hit !== undefined) return replay(conn, method, hit);
  }
  const done = key !== undefined && cache!.pending(key) === undefined
    ? cache!.begin(key)
    : undefined;
  try {
    const generation = cache?.generation ?? 0;
    const request = toRequest(head, { scheme: site.scheme, host: site.hostname });
    if (request === undefined && !FORBIDDEN_METHODS.has(method.toUpperCase())) keepAlive = false;
    const response = await run(site.handler, method, request, conn.remoteAddr);
    const { encoded } = await encodeAndStore(response, cache, key, generation, {
      method,
      version: head.version,
      keepAlive,
    });
    // Requests waiting for this response may go on before we write to a possibly slow client.
    done?.();
    conn.status = encoded.status;
    const sent = await writeResponse(conn, encoded);
    conn.bodyBytes = Math.max(0, sent);
    return sent >= 0 && encoded.keepAlive;
  } finally {
    done?.();
  }
}

/**
 * The response for `key` once the production under way (if any) is done:
 * single flight. A hit does not come here, so the hot path never awaits.
 */
async function produced(cache: ResponseCache, key: string): Promise<CacheEntry | undefined> {
  const pending = cache.pending(key);
  if (pending === undefined) return undefined;
  await pending;
  return cache.get(key);
}

/** Runs the handler; 405 for methods Fetch cannot express, 400 without a request, 500 on a throw. */
async function run(
  handler: FetchHandler,
  method: string,
  request: Request | undefined,
  remoteAddr: Deno.NetAddr,
): Promise<Response> {
  if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
    return plainResponse(405, { allow: "GET, HEAD" });
  }
  if (request === undefined) return plainResponse(400);
  try {
    return await handler(request, { remoteAddr });
  } catch {
    return plainResponse(500);
  }
}

/**
 * Encodes a response for the wire, and stores it in the cache when it may
 * be replayed: a whole file (200, GET, kept connection) built from files
 * unchanged since the request began.
 */
async function encodeAndStore(
  response: Response,
  cache: ResponseCache | undefined,
  key: string | undefined,
  generation: number,
  options: EncodeResponseOptions,
): Promise<{ encoded: EncodedResponse; entry: CacheEntry | undefined }> {
  const store = key !== undefined && options.keepAlive !== false && options.method === "GET" &&
    response.status === 200 && isCacheable(response) && generation === cache!.generation;
  const encoded = await encodeResponse(response, {
    ...options,
    bufferUpTo: CACHE_ENTRY_MAX,
    ...(store ? { joinUpTo: CACHE_ENTRY_MAX } : {}),
  });
  const entry = store && encoded.wire !== null
    ? cache!.store(key!, encoded.wire, encoded.head.length, encoded.status)
    : undefined;
  return { encoded, entry };
}

/** Writes a cached response (the hot path), through {@linkcode ServerConnection.end}. */
function replay(conn: ServerConnection, method: string, hit: CacheEntry): boolean {
  const second = Math.floor(Date.now() / 1000);
  if (second !== hit.dateSecond) {
    encoder.encodeInto(formatHttpDate(second * 1000), hit.bytes.subarray(hit.dateOffset));
    hit.dateSecond = second;
  }
  if (method === "HEAD") {
    conn.end(hit.bytes.subarray(0, hit.headLength));
  } else {
    conn.end(hit.bytes);
    conn.bodyBytes = hit.bytes.length - hit.headLength;
  }
  conn.status = hit.status;
  return true;
}

// The HTTP/2 codec, loaded with the first HTTP/2 request (the server core
// loads it for the connection first): HTTP/1.1 alone never pays for it.
type H2Codec = typeof import("../lib/http/h2/mod.ts");
let h2Codec: H2Codec | undefined;

/**
 * Serves one HTTP/2 request through the same handler and response cache as
 * HTTP/1.1: a cached response is replayed as its field block (made once per
 * entry) and its body bytes, shared with the HTTP/1.1 form.
 */
async function answerH2(
  handler: FetchHandler,
  cache: ResponseCache | undefined,
  hostname: string,
  req: H2Request,
  stream: H2Stream,
): Promise<void> {
  const codec = h2Codec ??= await import("../lib/http/h2/mod.ts");
  const { encodeFields, h2Field } = codec;
  const method = req.method;
  let key: string | undefined;
  if (
    cache !== undefined && (method === "GET" || method === "HEAD") &&
    CONDITIONAL.every((n) => h2Field(req, n) === null)
  ) {
    key = `${req.path}\n${h2Field(req, "accept-encoding") ?? ""}\n${h2Field(req, "accept") ?? ""}`;
    const hit = cache.get(key) ?? await produced(cache, key);
    if (hit !== undefined) return await replayH2(codec, stream, method, hit);
  }
  const done = key !== undefined && cache!.pending(key) === undefined
    ? cache!.begin(key)
    : undefined;
  try {
    const generation = cache?.generation ?? 0;
    const remoteAddr = req.remoteAddr ?? { transport: "tcp" as const, hostname: "", port: 0 };
    const response = await run(handler, method, h2ToRequest(req, hostname), remoteAddr);
    const { encoded, entry } = await encodeAndStore(response, cache, key, generation, { method });
    done?.();
    if (entry !== undefined) return await replayH2(codec, stream, method, entry);
    const block = encodeFields(h2Fields(encoded.head, null));
    await stream.respond(encoded.status, block, encoded.body ?? encoded.stream);
  } finally {
    done?.();
  }
}

/** A Fetch `Request` from an HTTP/2 request; `undefined` when it cannot be expressed. */
function h2ToRequest(req: H2Request, hostname: string): Request | undefined {
  if (!req.path.startsWith("/")) return undefined;
  try {
    return new Request(`${req.scheme}://${req.authority || hostname}${req.path}`, {
      method: req.method,
      headers: req.headers,
    });
  } catch {
    return undefined;
  }
}

const DROPPED = new Set(["connection", "keep-alive", "transfer-encoding", "date"]);

/**
 * The HTTP/2 fields of an encoded HTTP/1.1 head: `:status` first, the
 * connection-specific fields dropped, `date` last (so a cached block can
 * have its date patched in place).
 */
function h2Fields(head: Uint8Array, date: string | null): [string, string][] {
  const text = latin1(head, 0, head.length);
  const lines = text.split("\r\n");
  const fields: [string, string][] = [[":status", lines[0]!.slice(9, 12)]];
  let headDate = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "date") headDate = value;
    if (DROPPED.has(name)) continue;
    fields.push([name, value]);
  }
  fields.push(["date", date ?? headDate]);
  return fields;
}

/** Writes a cached response over HTTP/2 (the hot path). */
async function replayH2(
  codec: H2Codec,
  stream: H2Stream,
  method: string,
  hit: CacheEntry,
): Promise<void> {
  const second = Math.floor(Date.now() / 1000);
  if (hit.h2 === undefined) {
    hit.h2 = codec.encodeFields(h2Fields(hit.bytes.subarray(0, hit.headLength), formatHttpDate()));
    hit.h2DateSecond = second;
  } else if (second !== hit.h2DateSecond) {
    encoder.encodeInto(formatHttpDate(second * 1000), hit.h2.subarray(hit.h2.length - 29));
    hit.h2DateSecond = second;
  }
  await stream.respond(
    hit.status,
    hit.h2,
    method === "HEAD" ? null : hit.bytes.subarray(hit.headLength),
  );
}
