/**
 * The web server's HTTP/1.1 engine: an accept loop on `Deno.listen` /
 * `Deno.listenTls` that parses requests with the project's codec
 * (`lib/http/`), calls a `(Request) => Response` handler such as
 * {@linkcode serveDir}, and writes the response.
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
 * Robustness: a parse error answers its status (400, 413, 414, 431, 501,
 * 505) and closes, since framing is lost; a request with a body is drained
 * (small) or answered and closed; one sweeper closes connections that exceed
 * the header-read, keep-alive idle or write deadlines (slowloris, clients
 * that stop reading), so one slow client only ever holds its own connection.
 *
 * @module
 */
import {
  BufferedReader,
  discardBody,
  encodeResponseHead,
  httpDate,
  HttpError,
  LAST_CHUNK,
  readRequestHead,
  type RequestHead,
  writeAll,
} from "../lib/http/mod.ts";
import { encodeChunk, reasonPhrase } from "../lib/http/mod.ts";
import { concat } from "../lib/bytes.ts";
import { inMemoryBody, isCacheable, plainResponse } from "./serve.ts";

/** What a handler learns about the connection besides the request. */
export interface RequestInfo {
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
}

/** A request handler: {@linkcode serveDir} bound to its options, for instance. */
export type Handler = (request: Request, info: RequestInfo) => Response | Promise<Response>;

/** One access-log record; {@linkcode formatCombinedLog} turns it into a line. */
export interface AccessLogEntry {
  /** The client's IP address. */
  remoteAddr: string;
  /** When the request was received. */
  time: Date;
  /** The request line as received, e.g. `GET / HTTP/1.1`. */
  requestLine: string;
  /** The response status. */
  status: number;
  /** Body bytes sent. */
  bytes: number;
  /** The `Referer` header, if any. */
  referer: string | null;
  /** The `User-Agent` header, if any. */
  userAgent: string | null;
}

/** Options of {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  /**
   * Address to listen on.
   * @default {"localhost"}
   */
  hostname?: string;
  /**
   * Port to listen on; 0 picks a free one (read it from {@linkcode HttpServer.addr}).
   * @default {8000}
   */
  port?: number;
  /** PEM certificate chain: with `key`, the server speaks HTTPS. */
  cert?: string;
  /** PEM private key for `cert`. */
  key?: string;
  /**
   * Milliseconds a client has to send a complete request head once it has
   * started one (slowloris defence; nginx's `client_header_timeout`).
   * @default {10000}
   */
  headerTimeout?: number;
  /**
   * Milliseconds an idle keep-alive connection is kept open.
   * @default {30000}
   */
  keepAliveTimeout?: number;
  /**
   * Milliseconds a response write may stall before the connection is dropped.
   * @default {60000}
   */
  writeTimeout?: number;
  /**
   * Largest request head in bytes; larger ones get 431.
   * @default {16384}
   */
  maxHeadBytes?: number;
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
  /** Receives one record per response, for the access log. */
  onLog?: (entry: AccessLogEntry) => void;
  /** Aborting it shuts the server down gracefully. */
  signal?: AbortSignal;
  /**
   * Set `SO_REUSEPORT`, so several servers (one per worker) share the port
   * and the kernel spreads connections over them, as nginx's workers do.
   * @default {false}
   */
  reusePort?: boolean;
}

const CACHE_ENTRY_MAX = (1 << 20) + 4096;
const SMALL_BODY = 64 * 1024;
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
  /** The head, followed by the body when that is small (one write per hit). */
  bytes: Uint8Array;
  /** A large body, written after `bytes` (no 1 MiB concatenation per entry). */
  body: Uint8Array | null;
  headLength: number;
  dateOffset: number;
  dateSecond: number;
  status: number;
}

interface ConnState {
  conn: Deno.Conn;
  reader: BufferedReader;
  phase: "head" | "busy" | "write";
  /** When the current phase began. */
  since: number;
  /** When the sweeper first saw bytes of the head being read (0: not yet). */
  headStart: number;
  /** Unread request bytes may remain: close gently so the response is not lost to a reset. */
  linger: boolean;
}

const encoder = new TextEncoder();

/**
 * A running server: its address, a promise that settles when it has stopped,
 * and graceful shutdown.
 *
 * @example
 * ```ts
 * import { serveHttp } from "./engine.ts";
 * await using server = serveHttp(() => new Response("hi"), { port: 0 });
 * const res = await fetch(`http://localhost:${server.addr.port}/`);
 * console.assert((await res.text()) === "hi");
 * ```
 */
export class HttpServer implements AsyncDisposable {
  /** The address the server listens on. */
  readonly addr: Deno.NetAddr;
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  #listener: Deno.Listener;
  #handler: Handler;
  #options: ServeHttpOptions;
  #conns = new Set<ConnState>();
  #tasks = new Set<Promise<void>>();
  #closing = false;
  #shutdown: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval>;
  #watcher: Deno.FsWatcher | undefined;
  #cache = new Map<string, CacheEntry>();
  #inflight = new Map<string, Promise<void>>();
  #cacheSize = 0;
  #generation = 0;
  #scheme: string;

  /**
   * Starts listening; prefer {@linkcode serveHttp}.
   *
   * @param handler The request handler.
   * @param options Address, TLS, limits, cache and log.
   */
  constructor(handler: Handler, options: ServeHttpOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    const hostname = options.hostname ?? "localhost";
    const port = options.port ?? 8000;
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("Cannot start HTTPS: both a certificate and a key are needed");
    }
    this.#listener = options.cert !== undefined
      ? Deno.listenTls({
        hostname,
        port,
        cert: options.cert,
        key: options.key!,
        alpnProtocols: ["http/1.1"],
        reusePort: options.reusePort ?? false,
      })
      : Deno.listen({ hostname, port, reusePort: options.reusePort ?? false });
    this.#scheme = options.cert !== undefined ? "https" : "http";
    this.addr = this.#listener.addr as Deno.NetAddr;
    if (options.cacheRoot !== undefined) this.#watch(options.cacheRoot);
    this.#sweeper = setInterval(() => this.#sweep(), 500);
    options.signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
    this.finished = this.#acceptLoop();
  }

  /**
   * Stops accepting, closes idle connections, lets in-flight responses
   * finish (they carry `Connection: close`), then closes the rest.
   *
   * @param graceMs How long in-flight responses may take before they are cut.
   * @returns Resolves when the server has stopped.
   */
  shutdown(graceMs = 10_000): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#closing = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      this.#watcher?.close();
      for (const s of this.#conns) if (s.phase === "head" && s.reader.buffered === 0) close(s.conn);
      const all = Promise.all([...this.#tasks]);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cut = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          for (const s of this.#conns) close(s.conn);
          resolve();
        }, graceMs);
      });
      await Promise.race([all, cut]);
      clearTimeout(timer);
      await all;
      clearInterval(this.#sweeper);
      await this.finished;
    })();
    return this.#shutdown;
  }

  /** Shuts the server down gracefully. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  #watch(root: string): void {
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(root, { recursive: true });
    } catch {
      // No inotify (limits reached, unsupported file system): serve without a cache.
      return;
    }
    this.#watcher = watcher;
    const task = (async () => {
      try {
        for await (const _event of watcher) {
          // Any change may affect any cached response (index.html, siblings): drop all.
          this.#generation++;
          this.#cache.clear();
          this.#cacheSize = 0;
        }
      } catch {
        // Closed.
      }
    })();
    this.#track(task);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closing || err instanceof Deno.errors.BadResource) break;
        // EMFILE and friends: back off instead of spinning.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (this.#closing) {
        close(conn);
        continue;
      }
      this.#track(this.#connection(conn));
    }
  }

  #sweep(): void {
    const now = Date.now();
    const o = this.#options;
    for (const s of this.#conns) {
      if (s.phase === "head" && s.reader.buffered > 0) {
        // The head timeout runs from its first byte (seen to within one sweep),
        // not from the start of an idle keep-alive wait.
        if (s.headStart === 0) s.headStart = now;
        if (now - s.headStart > (o.headerTimeout ?? 10_000)) close(s.conn);
        continue;
      }
      const limit = s.phase === "head"
        ? o.keepAliveTimeout ?? 30_000
        : s.phase === "write"
        ? o.writeTimeout ?? 60_000
        : Infinity;
      if (now - s.since > limit) close(s.conn);
    }
  }

  async #connection(conn: Deno.Conn): Promise<void> {
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const reader = new BufferedReader(conn);
    const state: ConnState = {
      conn,
      reader,
      phase: "head",
      since: Date.now(),
      headStart: 0,
      linger: false,
    };
    this.#conns.add(state);
    const remote = conn.remoteAddr as Deno.NetAddr;
    try {
      for (;;) {
        state.phase = "head";
        state.since = Date.now();
        state.headStart = 0;
        if (this.#closing && reader.buffered === 0) break;
        let head: RequestHead | null;
        try {
          head = await readRequestHead(reader, {
            maxHeadBytes: this.#options.maxHeadBytes ?? 16384,
          });
        } catch (err) {
          if (err instanceof HttpError) {
            state.phase = "write";
            state.since = Date.now();
            await this.#sendError(conn, err.status, remote);
            state.linger = true;
          }
          break;
        }
        if (head === null) break;
        state.phase = "busy";
        const keep = await this.#exchange(state, head, remote);
        if (!keep) break;
      }
      if (state.linger) await linger(conn);
    } catch {
      // The peer reset or the sweeper closed the connection: nothing to answer.
    } finally {
      this.#conns.delete(state);
      close(conn);
    }
  }

  async #sendError(conn: Deno.Conn, status: number, remote: Deno.NetAddr): Promise<void> {
    const body = encoder.encode(`${status} ${reasonPhrase(status) || "Error"}\n`);
    const head = encodeResponseHead({
      status,
      headers: [
        ["Date", httpDate()],
        ["Content-Type", "text/plain; charset=utf-8"],
        ["Content-Length", String(body.length)],
        ["Connection", "close"],
      ],
    });
    await writeAll(conn, concat([head, body]));
    this.#options.onLog?.({
      remoteAddr: remote.hostname,
      time: new Date(),
      requestLine: "-",
      status,
      bytes: body.length,
      referer: null,
      userAgent: null,
    });
  }

  /** Serves one request; returns whether the connection may serve another. */
  async #exchange(state: ConnState, head: RequestHead, remote: Deno.NetAddr): Promise<boolean> {
    const { reader } = state;
    const h = head.headers;
    const http10 = head.version === "HTTP/1.0";
    let keepAlive = head.keepAlive && !this.#closing;
    if (head.body.type !== "none" && !(head.body.type === "length" && head.body.length === 0)) {
      // We serve no request bodies; drain a small one to keep the connection,
      // else answer and close (RFC 9112 §9.3: a server may close instead).
      if (head.expectContinue || head.body.type === "length" && head.body.length > DRAIN_MAX) {
        keepAlive = false;
        state.linger = true;
      } else {
        try {
          await discardBody(reader, head.body, { maxBytes: DRAIN_MAX });
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          keepAlive = false;
          state.linger = true;
        }
      }
    }
    const method = head.method;
    const log = this.#options.onLog;
    const time = log ? new Date() : undefined;

    // Hot path: a replayable response for the same target and negotiation.
    let key: string | undefined;
    if (
      this.#watcher !== undefined && (method === "GET" || method === "HEAD") &&
      keepAlive && !http10 && CONDITIONAL.every((n) => !h.has(n))
    ) {
      key = `${head.target}\n${h.get("accept-encoding") ?? ""}\n${h.get("accept") ?? ""}`;
      const hit = this.#cache.get(key);
      if (hit !== undefined) return this.#replay(state, head, remote, hit, time);
      // Single flight: when the same response is being produced, wait and replay it.
      const pending = this.#inflight.get(key);
      if (pending !== undefined) {
        await pending;
        const hit = this.#cache.get(key);
        if (hit !== undefined) return this.#replay(state, head, remote, hit, time);
      }
    }
    let done: (() => void) | undefined;
    if (key !== undefined && !this.#inflight.has(key)) {
      const flight = Promise.withResolvers<void>();
      const k = key;
      this.#inflight.set(k, flight.promise);
      done = () => {
        if (this.#inflight.get(k) !== flight.promise) return;
        this.#inflight.delete(k);
        flight.resolve();
      };
    }
    try {
      return await this.#produce(state, head, remote, key, keepAlive, time, done);
    } finally {
      done?.();
    }
  }

  /** Writes a cached response (the hot path). */
  async #replay(
    state: ConnState,
    head: RequestHead,
    remote: Deno.NetAddr,
    hit: CacheEntry,
    time: Date | undefined,
  ): Promise<boolean> {
    const second = Math.floor(Date.now() / 1000);
    if (second !== hit.dateSecond) {
      encoder.encodeInto(httpDate(second * 1000), hit.bytes.subarray(hit.dateOffset));
      hit.dateSecond = second;
    }
    state.phase = "write";
    state.since = Date.now();
    const conn = state.conn;
    if (head.method === "HEAD") {
      await writeAll(conn, hit.bytes.subarray(0, hit.headLength));
    } else {
      await writeAll(conn, hit.bytes);
      if (hit.body !== null) await writeAll(conn, hit.body);
    }
    if (time !== undefined) {
      const size = hit.bytes.length - hit.headLength + (hit.body?.length ?? 0);
      this.#log(head, remote, time, hit.status, head.method === "HEAD" ? 0 : size);
    }
    return true;
  }

  /** The slow path: build a Request, call the handler, write and maybe cache the response. */
  async #produce(
    state: ConnState,
    head: RequestHead,
    remote: Deno.NetAddr,
    key: string | undefined,
    keepAliveIn: boolean,
    time: Date | undefined,
    ready: (() => void) | undefined,
  ): Promise<boolean> {
    const { conn } = state;
    const h = head.headers;
    const method = head.method;
    const http10 = head.version === "HTTP/1.0";
    const log = this.#options.onLog;
    let keepAlive = keepAliveIn;

    const generation = this.#generation;
    let response: Response;
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) {
      response = plainResponse(405, { allow: "GET, HEAD" });
    } else {
      let request: Request | undefined;
      try {
        const url = head.targetForm === "absolute"
          ? head.target
          : head.targetForm === "origin"
          ? `${this.#scheme}://${h.get("host") || this.addr.hostname}${head.target}`
          : undefined;
        if (url !== undefined) request = new Request(url, { method, headers: h.toHeaders() });
      } catch {
        request = undefined;
      }
      if (request === undefined) {
        response = plainResponse(400);
        keepAlive = false;
      } else {
        try {
          response = await this.#handler(request, { remoteAddr: remote });
        } catch {
          response = plainResponse(500);
        }
      }
    }

    const status = response.status;
    const fields: [string, string][] = [["Date", httpDate()]];
    for (const [name, value] of response.headers) {
      if (name === "connection" || name === "transfer-encoding" || name === "keep-alive") continue;
      fields.push([name, value]);
    }
    const bodiless = method === "HEAD" || status === 204 || status === 304 || status < 200;
    const length = response.headers.get("content-length");
    let body: Uint8Array | undefined;
    let stream: ReadableStream<Uint8Array> | null = null;
    let chunked = false;
    if (bodiless) {
      await response.body?.cancel().catch(() => {});
    } else if (response.body === null) {
      body = new Uint8Array(0);
      if (length === null) fields.push(["content-length", "0"]);
    } else if (inMemoryBody(response) !== undefined) {
      body = inMemoryBody(response)!;
      await response.body?.cancel().catch(() => {});
    } else if (length !== null && Number(length) <= CACHE_ENTRY_MAX) {
      body = await response.bytes();
      if (String(body.length) !== length) {
        // The file changed size while being read: send what we have, correctly framed.
        fields.splice(fields.findIndex(([n]) => n === "content-length"), 1);
        fields.push(["content-length", String(body.length)]);
      }
    } else {
      stream = response.body;
      if (length === null) {
        if (http10) keepAlive = false; // Delimited by close (RFC 9112 §6.3 item 8).
        else {
          chunked = true;
          fields.push(["Transfer-Encoding", "chunked"]);
        }
      }
    }
    if (!keepAlive) fields.push(["Connection", "close"]);
    else if (http10) fields.push(["Connection", "keep-alive"]);
    const headBytes = encodeResponseHead({ status, headers: fields });

    let all = headBytes;
    let small = false;
    if (body !== undefined) {
      const store = this.#cacheable(key, response, generation, keepAlive) && method === "GET";
      // One buffer, one write: a separate small head write costs the client an
      // extra wakeup per response. Cached entries pay the copy once.
      small = body.length <= SMALL_BODY || store;
      if (small) all = concat([headBytes, body]);
      if (store) this.#store(key!, all, null, headBytes.length, status);
    }
    // Requests waiting for this response may go on before we write to a possibly slow client.
    ready?.();
    state.phase = "write";
    state.since = Date.now();
    let sent = 0;
    if (body !== undefined) {
      await writeAll(conn, all);
      if (!small) await writeAll(conn, body);
      sent = body.length;
    } else if (stream !== null) {
      await writeAll(conn, headBytes);
      try {
        for await (const chunk of stream) {
          state.since = Date.now();
          await writeAll(conn, chunked ? encodeChunk(chunk) : chunk);
          sent += chunk.length;
        }
      } catch {
        // A read failed mid-body: the framing is broken, so close.
        return false;
      }
      if (chunked) await writeAll(conn, LAST_CHUNK);
    } else {
      await writeAll(conn, headBytes);
    }
    if (log) this.#log(head, remote, time!, status, sent);
    return keepAlive;
  }

  #cacheable(
    key: string | undefined,
    response: Response,
    generation: number,
    keepAlive: boolean,
  ): boolean {
    // Only a response built from files unchanged since the request started.
    return key !== undefined && keepAlive && response.status === 200 && isCacheable(response) &&
      generation === this.#generation && this.#watcher !== undefined;
  }

  #store(
    key: string,
    bytes: Uint8Array,
    body: Uint8Array | null,
    headLength: number,
    status: number,
  ): void {
    const size = bytes.length + (body?.length ?? 0);
    if (size > CACHE_ENTRY_MAX) return;
    const limit = this.#options.cacheBytes ?? 64 * 1024 * 1024;
    while (this.#cacheSize + size > limit && this.#cache.size > 0) {
      // Evict in insertion order: cheap, and good enough for a static tree.
      const [oldKey, old] = this.#cache.entries().next().value!;
      this.#cache.delete(oldKey);
      this.#cacheSize -= old.bytes.length + (old.body?.length ?? 0);
    }
    const dateOffset = bytes.indexOf(10) + 1 + "Date: ".length;
    this.#cache.set(key, {
      bytes,
      body,
      headLength,
      dateOffset,
      dateSecond: Math.floor(Date.now() / 1000),
      status,
    });
    this.#cacheSize += size;
  }

  #log(head: RequestHead, remote: Deno.NetAddr, time: Date, status: number, bytes: number): void {
    this.#options.onLog?.({
      remoteAddr: remote.hostname,
      time,
      requestLine: `${head.method} ${head.target} ${head.version}`,
      status,
      bytes,
      referer: head.headers.get("referer"),
      userAgent: head.headers.get("user-agent"),
    });
  }
}

/**
 * Half-closes and drains for a moment before the close, as nginx's
 * `lingering_close`: closing a socket with unread input sends a reset, which
 * can destroy the response still in flight to the client.
 */
async function linger(conn: Deno.Conn): Promise<void> {
  try {
    await conn.closeWrite();
  } catch {
    return;
  }
  const timer = setTimeout(() => close(conn), 1000);
  const buf = new Uint8Array(16384);
  try {
    for (let total = 0; total < 1 << 20;) {
      const n = await conn.read(buf);
      if (n === null) break;
      total += n;
    }
  } catch {
    // Closed by the timer or reset by the peer.
  } finally {
    clearTimeout(timer);
  }
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Starts an HTTP/1.1 (or HTTPS) server that answers every request with the handler.
 *
 * @param handler Turns a request into a response; a throw becomes a 500.
 * @param options Address, TLS, limits, cache and log.
 * @returns The running server.
 *
 * @example Serving a directory on a free port
 * ```ts
 * import { serveHttp } from "./engine.ts";
 * import { serveDir } from "./serve.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "A");
 * const server = serveHttp((req) => serveDir(req, { fsRoot: root }), { port: 0 });
 * const res = await fetch(`http://localhost:${server.addr.port}/a.txt`);
 * console.assert((await res.text()) === "A");
 * await server.shutdown();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function serveHttp(handler: Handler, options: ServeHttpOptions = {}): HttpServer {
  return new HttpServer(handler, options);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function quote(text: string | null): string {
  if (text === null) return "-";
  // Apache escapes quotes, backslashes and controls so a line cannot be forged.
  return text.replace(
    // deno-lint-ignore no-control-regex
    /["\\\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * Formats an access-log record in the Combined Log Format of Apache and
 * nginx: `host - - [day/Mon/year:HH:MM:SS +0000] "request" status bytes "referer" "agent"`.
 *
 * @param entry The record.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatCombinedLog } from "./engine.ts";
 * const line = formatCombinedLog({
 *   remoteAddr: "127.0.0.1", time: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
 *   requestLine: "GET / HTTP/1.1", status: 200, bytes: 12, referer: null, userAgent: "curl/8",
 * });
 * console.assert(line === '127.0.0.1 - - [02/Jan/2024:03:04:05 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"');
 * ```
 */
export function formatCombinedLog(entry: AccessLogEntry): string {
  const t = entry.time;
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${p(t.getUTCDate())}/${MONTHS[t.getUTCMonth()]}/${t.getUTCFullYear()}:${
    p(t.getUTCHours())
  }:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())} +0000`;
  // CLF writes "-" for an empty body.
  const bytes = entry.bytes === 0 ? "-" : String(entry.bytes);
  return `${entry.remoteAddr} - - [${stamp}] "${
    quote(entry.requestLine)
  }" ${entry.status} ${bytes} "${quote(entry.referer)}" "${quote(entry.userAgent)}"`;
}

/**
 * A buffered line writer for access logs: lines are batched and written at
 * most every 100 ms, so logging costs no write per request.
 *
 * @example
 * ```ts
 * import { LogWriter } from "./engine.ts";
 * const chunks: Uint8Array[] = [];
 * const log = new LogWriter({ write: (p) => (chunks.push(p.slice()), Promise.resolve(p.length)) });
 * log.write("one");
 * await log.close();
 * console.assert(new TextDecoder().decode(chunks[0]) === "one\n");
 * ```
 */
export class LogWriter {
  #out: { write(p: Uint8Array): Promise<number> };
  #lines: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  /**
   * Creates a writer.
   *
   * @param out Where lines go: `Deno.stdout`, or an opened file.
   */
  constructor(out: { write(p: Uint8Array): Promise<number> }) {
    this.#out = out;
  }

  /**
   * Queues one line (a newline is added).
   *
   * @param line The line.
   */
  write(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length >= 512) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), 100);
  }

  /**
   * Writes every queued line.
   *
   * @returns Resolves when they are written.
   */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return this.#flushing;
    const data = encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    this.#flushing = this.#flushing.then(() => writeAll(this.#out, data)).catch(() => {});
    return this.#flushing;
  }

  /**
   * Flushes and stops the timer.
   *
   * @returns Resolves when everything is written.
   */
  async close(): Promise<void> {
    await this.flush();
  }
}
