/**
 * The one HTTP/1.1 server core under the web server and the proxy: the
 * accept loop, connection caps, per-connection deadlines, lingering close,
 * graceful shutdown and the access-log hook. What to answer is the
 * handler's business; how connections live and die is decided here, once.
 *
 * - **Accept loop.** `accept()` failing with EMFILE or ENFILE is logged once
 *   per burst, idle keep-alive connections are closed to free descriptors
 *   (as nginx does when it runs out of connections), and the loop backs off
 *   and retries. It never stops while the server runs.
 * - **Caps** ({@linkcode ConnectionLimits}): a global limit and a
 *   per-client-address limit (nginx's `limit_conn`). Past the global cap an
 *   idle keep-alive connection is closed to make room; when there is none,
 *   or past the per-address cap, the client gets a 503 and a close.
 * - **Deadlines**, checked by one sweeper, as nginx's: the request head must
 *   be complete within `headerTimeout` of its start (`client_header_timeout`;
 *   for a new connection, of the accept); an idle keep-alive connection lives
 *   `keepAliveTimeout` (`keepalive_timeout`); a request body read and a
 *   response write may each stall at most `bodyTimeout` and `sendTimeout`
 *   (`client_body_timeout`, `send_timeout`).
 * - **Lingering close.** After an error answer to a client that may still be
 *   sending, the write side is shut and the input drained for up to
 *   `lingerTime`, or `lingerTimeout` without data, before the close: closing
 *   with unread input makes the kernel send a reset, which can destroy the
 *   answer in flight (nginx's `lingering_close`).
 * - **Shutdown** stops accepting, closes idle connections, lets requests in
 *   flight finish within a grace period, then cuts the rest.
 *
 * A handler gets the parsed head and the {@linkcode ServerConnection}; it
 * writes the response through the connection, reads the body (if it wants
 * it) through {@linkcode ServerConnection.body}, and returns whether the
 * connection may serve another request. {@linkcode serveFetch} adapts a
 * Fetch-style `(Request) => Response` handler.
 *
 * @example A raw handler that answers every request with the same bytes
 * ```ts
 * import { HttpServer } from "./server.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const reply = new TextEncoder().encode("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi");
 * await using server = new HttpServer(async (_head, conn) => {
 *   await conn.write(reply);
 *   return true;
 * }, { hostname: "127.0.0.1", port: 0 });
 * const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assertEquals(await res.text(), "hi");
 * ```
 *
 * @module
 */
import { Deadline, delay } from "../deadline.ts";
import { concat, writeAll } from "../bytes.ts";
import { type BodyOptions, bodyReader } from "./bodies.ts";
import { formatHttpDate } from "./dates.ts";
import { encodeResponseHead } from "./encoder.ts";
import { HttpError } from "./errors.ts";
import { type RequestHead, RequestHeadParser } from "./heads.ts";
import { ConnectionLimits, defaultMaxConnections } from "./limits.ts";
import { BufferedReader } from "./reader.ts";
import { Progress } from "./_progress.ts";
import { reasonPhrase } from "./status.ts";
import { listenUringSync, prepareUring, UringFailure, UringListener } from "../rawsock/uring.ts";
import { positive } from "../validate.ts";
import { ipFamily } from "../sockaddr.ts";
import type { H2Handler, H2LogEntry, H2Session } from "./h2/session.ts";

/**
 * Whether this thread can serve plain TCP on an io_uring ring: the libc
 * bindings, the ring and its notify socket are set up here, at import
 * (under FFI permission only), because the server's constructor opens its
 * listener synchronously.
 */
const uringReady = await prepareUring();

/** Whether a plain-TCP listener goes on the io_uring ring (see `ServerOptions.ioUring`). */
function useRing(options: Pick<ServerOptions, "ioUring" | "reusePort">): boolean {
  const want = options.ioUring ?? "auto";
  return want === true || (want === "auto" && !options.reusePort);
}

/** The part of `Deno.Conn` the core uses: Deno's connections and {@linkcode UringConn}s. */
type RawConn = Pick<
  Deno.Conn,
  "read" | "write" | "close" | "closeWrite" | "remoteAddr" | "localAddr"
>;

/** The part of `Deno.Listener` the core uses. */
interface RawListener {
  readonly addr: Deno.Addr;
  accept(): Promise<RawConn>;
  close(): void;
}

// The HTTP/2 codec is loaded when a connection may speak it (ALPN chose h2,
// or h2c is on): a server that only speaks HTTP/1.1 keeps it out of its heap.
let h2Codec: Promise<typeof import("./h2/session.ts")> | undefined;
function loadH2(): Promise<typeof import("./h2/session.ts")> {
  return h2Codec ??= import("./h2/session.ts");
}

/** One access-log record: what was asked, what was answered, by whom, how long it took. */
export interface AccessLogEntry {
  /** The client's IP address. */
  remoteAddr: string;
  /** When the request head was complete (or when the failure was noticed). */
  time: Date;
  /** Milliseconds from `time` until the response was written. */
  duration: number;
  /** The method, or `null` when the head could not be parsed. */
  method: string | null;
  /** The request-target as received, or `null`. */
  target: string | null;
  /** The request line as received, e.g. `GET / HTTP/1.1`, or `-`. */
  requestLine: string;
  /** The response status (0 when none was sent). */
  status: number;
  /** Body bytes sent, as the handler reports them. */
  bytes: number;
  /** Every byte written for this response, head included. */
  sent: number;
  /** The `Referer` field, if any. */
  referer: string | null;
  /** The `User-Agent` field, if any. */
  userAgent: string | null;
  /** Whatever the handler attached ({@linkcode ServerConnection.logExtra}); the proxy's cache outcome. */
  extra: unknown;
}

/**
 * Answers one request: writes the response through `conn` and returns
 * whether the connection may serve another one. A request body must be read
 * (or drained) before returning `true`; otherwise the core closes the
 * connection. A thrown {@linkcode HttpError} before anything was written
 * becomes that status.
 */
export type RawHandler = (head: RequestHead, conn: ServerConnection) => boolean | Promise<boolean>;

/** Options of {@linkcode HttpServer}. */
export interface ServerOptions {
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
   * Set `SO_REUSEPORT`, so several event loops share the port.
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Serve plain TCP on an io_uring ring (`lib/rawsock/uring.ts`) where the
   * kernel has one and FFI is permitted: the reads and writes of a batch of
   * requests go to the kernel in one system call. `"auto"` uses it when this
   * loop alone serves the port (no `reusePort`): each loop's ring does the
   * kernel's completion work on its own thread, and two such loops on a
   * 2-core machine served fewer requests than one (measured; see
   * proxy_server/README.md). `false`, a host name rather than an address,
   * or TLS: Deno's sockets.
   * @default {"auto"}
   */
  ioUring?: boolean | "auto";
  /**
   * Milliseconds a client has to send a complete request head, from its
   * first byte (from the accept, for a new connection). nginx's
   * `client_header_timeout`.
   * @default {10000}
   */
  headerTimeout?: number;
  /**
   * Milliseconds an idle keep-alive connection is kept open. nginx's `keepalive_timeout`.
   * @default {30000}
   */
  keepAliveTimeout?: number;
  /**
   * Milliseconds a request-body read may wait for data. nginx's `client_body_timeout`.
   * @default {60000}
   */
  bodyTimeout?: number;
  /**
   * Milliseconds a response write may stall. nginx's `send_timeout`.
   * @default {60000}
   */
  sendTimeout?: number;
  /**
   * Milliseconds a tunnel (CONNECT) may go without traffic from or to the client.
   * Squid's `read_timeout`.
   * @default {900000}
   */
  tunnelTimeout?: number;
  /**
   * Longest lingering close, in ms. nginx's `lingering_time`.
   * @default {30000}
   */
  lingerTime?: number;
  /**
   * Longest wait for more input during a lingering close, in ms. nginx's `lingering_timeout`.
   * @default {5000}
   */
  lingerTimeout?: number;
  /**
   * Largest request head in bytes; larger ones get 431 (414 for a long request line).
   * @default {16384}
   */
  maxHeadBytes?: number;
  /**
   * Largest request body in bytes; a larger Content-Length gets 413 at once,
   * a chunked body 413 when it passes the limit. nginx's `client_max_body_size`.
   * @default {Infinity}
   */
  maxBodySize?: number;
  /**
   * Connections open at once (0: no limit).
   * @default {defaultMaxConnections()}
   */
  maxConnections?: number;
  /**
   * Connections open at once from one address (0: no limit). nginx's `limit_conn`.
   * @default {an eighth of maxConnections, between 16 and 1024}
   */
  maxConnectionsPerIp?: number;
  /**
   * Counters shared with other event loops serving the same port; they
   * enforce the caps over all of them. Made from `maxConnections` and
   * `maxConnectionsPerIp` when absent.
   * @default {undefined}
   */
  limits?: ConnectionLimits;
  /**
   * Builds a complete error response (head and body, with `Connection:
   * close`) for the answers the core gives itself: a malformed head (400,
   * 414, 431, 501, 505), a body over the limit (413), a refused connection
   * (503).
   * @default {a short text/plain answer}
   */
  errorResponse?: (status: number, message: string) => Uint8Array;
  /** Receives one record per response, for the access log. */
  onLog?: (entry: AccessLogEntry) => void;
  /**
   * Receives operational warnings (accept failures, once per burst).
   * @default {console.error}
   */
  onWarning?: (message: string) => void;
  /** Aborting it shuts the server down gracefully. */
  signal?: AbortSignal;
  /**
   * Serves HTTP/2 with this handler: over TLS when the client picks `h2` by
   * ALPN (offered before `http/1.1`), and on a plain port with prior
   * knowledge when `h2c` is set.
   * @default {undefined}
   */
  h2?: H2Handler;
  /**
   * Accept HTTP/2 with prior knowledge (the client's first bytes are the
   * HTTP/2 preface) on a plain port; needs `h2`.
   * @default {false}
   */
  h2c?: boolean;
  /**
   * `SETTINGS_MAX_CONCURRENT_STREAMS` of each HTTP/2 connection.
   * @default {100}
   */
  h2MaxStreams?: number;
  /**
   * Expect each connection to begin with a PROXY protocol v1 line (HAProxy's
   * `PROXY TCP4 client server cport sport`) and take the client's address
   * from it. For a listener only a trusted relay can reach: the line is
   * believed. A connection without a valid line is closed.
   * @default {false}
   */
  proxyProtocol?: boolean;
}

/** The names of the server's deadline options, for code that passes them on. */
export const SERVER_DEADLINES = [
  "headerTimeout",
  "keepAliveTimeout",
  "bodyTimeout",
  "sendTimeout",
  "tunnelTimeout",
  "lingerTime",
  "lingerTimeout",
] as const;

/** The server's deadline options (plain numbers: they can be posted to a worker). */
export type ServerDeadlines = Pick<ServerOptions, typeof SERVER_DEADLINES[number]>;

const IDLE = 0;
const HEAD = 1;
const BUSY = 2;
const TUNNEL = 3;
const LINGER = 4;
const H2 = 5;

const encoder = new TextEncoder();
/** Pipelined answers held for one write, at most. */
const MAX_QUEUED = 16;
/** Refusals (503 and close) in flight at once; more are closed without an answer. */
const MAX_POLITE_REFUSALS = 16;
// Lingering reads are discarded, so every lingering connection may share one buffer.
const lingerBuffer = new Uint8Array(65536);

/**
 * The default error answer: `<status> <reason>` as text/plain, with `Connection: close`.
 *
 * @param status The status code.
 * @param _message Why (not sent: internals stay in the log).
 * @returns The complete response.
 *
 * @example
 * ```ts
 * import { plainErrorResponse } from "./server.ts";
 * import { assertMatch } from "../testing/assert.ts";
 * const text = new TextDecoder().decode(plainErrorResponse(431, "too big"));
 * assertMatch(text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n[^]*\r\n\r\n431 Request Header Fields Too Large\n$/);
 * ```
 */
export function plainErrorResponse(status: number, _message: string): Uint8Array {
  const body = encoder.encode(`${status} ${reasonPhrase(status) || "Error"}\n`);
  const head = encodeResponseHead({
    status,
    headers: [
      ["Date", formatHttpDate()],
      ["Content-Type", "text/plain; charset=utf-8"],
      ["Content-Length", String(body.length)],
      ["Connection", "close"],
    ],
  });
  return concat([head, body]);
}

/**
 * One client connection as a handler sees it: the buffered reader the head
 * came from, tracked writes, the request body, 100-continue, lingering
 * close and the hand-over to a tunnel. The core watches every read and
 * write for the deadlines.
 */
export class ServerConnection {
  /** The client's address (from the PROXY line when the server expects one). */
  remoteAddr: Deno.NetAddr;
  /** Whether the connection is TLS. */
  readonly secure: boolean;
  /** The read buffer the request heads are parsed from; the body follows in it. */
  readonly reader: BufferedReader;
  /** Requests answered on this connection before the current one. */
  requests = 0;
  /** The response status, for the access log (the handler sets it). */
  status = 0;
  /** Body bytes sent, for the access log (the handler sets it). */
  bodyBytes = 0;
  /** Anything the handler wants in its access-log record (`extra`). */
  logExtra: unknown = undefined;
  /** Bytes written for the current request. */
  sent = 0;

  /** @internal Phase, for the sweeper. */
  phase = HEAD;
  /** @internal When the phase began. */
  since: number;
  /** @internal Read steps (body, tunnel, linger reads), for their deadlines. */
  readonly reads: Progress;
  /** @internal Write steps, for the send deadline. */
  readonly writes: Progress;
  /** @internal A read is pending. */
  reading = false;
  /** @internal A write is pending. */
  writing = false;
  /** @internal Counted in the limits (uncounted once). */
  counted = true;
  /** @internal The address the limits counted (the socket's, before any PROXY line). */
  readonly admittedAs: string;
  /** @internal The HTTP/2 session, once the connection speaks it. */
  h2: H2Session | null = null;

  readonly #raw: RawConn;
  readonly #server: HttpServer;
  #linger = false;
  #bodyDone = true;
  #expect = false;
  #closed = false;
  #tunnel = false;
  #last: Uint8Array | null = null;
  #queued: Uint8Array[] | null = null;

  /** @internal Made by {@linkcode HttpServer}. */
  constructor(server: HttpServer, raw: RawConn, secure: boolean, now: number) {
    this.#server = server;
    this.#raw = raw;
    this.secure = secure;
    this.remoteAddr = raw.remoteAddr as Deno.NetAddr;
    this.admittedAs = this.remoteAddr.hostname;
    this.since = now;
    this.reads = new Progress(now);
    this.writes = new Progress(now);
    // Heads are read straight from the socket, with no wrapper per read: the
    // sweeper times them by phase. Body, tunnel and lingering reads are tracked.
    this.reader = new BufferedReader(raw);
  }

  /** Reads from the socket, marking the read for the body, tunnel and linger deadlines. */
  async #read(p: Uint8Array): Promise<number | null> {
    this.reading = true;
    this.reads.step();
    try {
      return await this.#raw.read(p);
    } finally {
      this.reads.step();
      this.reading = false;
    }
  }

  /** Steps through a body reader, marking each step for the body deadline. */
  async *#tracked(
    pieces: AsyncGenerator<Uint8Array, void, undefined>,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for (;;) {
        this.reading = true;
        this.reads.step();
        const step = await pieces.next();
        this.reading = false;
        this.reads.step();
        if (step.done) return;
        yield step.value;
      }
    } finally {
      this.reading = false;
      await pieces.return();
    }
  }

  /** @internal Resets the per-request state before the handler runs. */
  begin(head: RequestHead): void {
    this.status = 0;
    this.bodyBytes = 0;
    this.logExtra = undefined;
    this.sent = 0;
    const body = head.body;
    this.#bodyDone = body.type === "none" || (body.type === "length" && body.length === 0);
    this.#expect = head.expectContinue && !this.#bodyDone;
  }

  /** Whether the request body was read to its end, or there was none. */
  get bodyDone(): boolean {
    return this.#bodyDone;
  }

  /** @internal Whether a lingering close was asked for. */
  get lingering(): boolean {
    return this.#linger;
  }

  /** @internal Whether the connection was handed over to a tunnel. */
  get tunnelled(): boolean {
    return this.#tunnel;
  }

  /** Whether the server is shutting down: answer with `Connection: close`. */
  get closing(): boolean {
    return this.#server.closing;
  }

  /**
   * Writes all of `data`, watched by the send deadline.
   *
   * @param data The bytes.
   * @returns Resolves when the kernel has taken every byte.
   */
  async write(data: Uint8Array): Promise<void> {
    // Answers of earlier pipelined requests go first, in the same write.
    if (this.#queued !== null) data = this.withQueued(data);
    const raw = this.#raw;
    this.writing = true;
    try {
      let off = 0;
      while (off < data.length) {
        this.writes.step();
        off += await raw.write(off === 0 ? data : data.subarray(off));
      }
    } finally {
      this.writes.step();
      this.writing = false;
    }
    this.sent += data.length;
  }

  /**
   * Writes `data` as the whole rest of the response, without waiting: the
   * core finishes the write (watched by the send deadline) before it reads
   * the next request or closes. A handler that answers from memory can so
   * return synchronously. Nothing may be written after it.
   *
   * @param data The bytes.
   */
  end(data: Uint8Array): void {
    if (this.#last !== null) throw new TypeError("Cannot end a response twice");
    this.#last = data;
  }

  /** @internal Holds a pipelined request's answer to go out with the next write. */
  queue(data: Uint8Array): void {
    (this.#queued ??= []).push(data);
  }

  /** @internal How many answers are held by {@linkcode queue}. */
  get queued(): number {
    return this.#queued?.length ?? 0;
  }

  /** @internal `data` after the held answers, which are released. */
  withQueued(data: Uint8Array): Uint8Array {
    const queued = this.#queued;
    if (queued === null) return data;
    this.#queued = null;
    queued.push(data);
    return concat(queued);
  }

  /** @internal The bytes {@linkcode end} left to write, taken once. */
  takeLast(): Uint8Array | null {
    const last = this.#last;
    this.#last = null;
    return last;
  }

  /**
   * Sends `100 Continue` if the client asked for it (`Expect: 100-continue`)
   * and nothing has been sent for this request yet. {@linkcode body} calls it
   * before its first read.
   *
   * @returns Resolves when it is written.
   */
  async sendContinue(): Promise<void> {
    if (!this.#expect) return;
    this.#expect = false;
    if (this.sent !== 0) return;
    await this.write(CONTINUE);
    // The interim answer is not the response: a 413 may still replace it.
    this.sent = 0;
  }

  /**
   * The request body, as pieces; the server's `maxBodySize` applies (→
   * {@linkcode HttpError} 413), and the body deadline watches each read.
   *
   * @param head The head whose body follows.
   * @param options Reader options (a smaller `maxBytes`, a read size).
   * @returns The pieces.
   */
  async *body(
    head: RequestHead,
    options: BodyOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#bodyDone) return;
    await this.sendContinue();
    const max = Math.min(options.maxBytes ?? Infinity, this.#server.maxBodySize);
    yield* this.#tracked(bodyReader(this.reader, head.body, { ...options, maxBytes: max }));
    this.#bodyDone = true;
  }

  /**
   * Reads and drops a small request body so the connection can be reused;
   * a body over `maxBytes`, or one the client is waiting to send after a
   * `100 Continue` we did not send, is left unread and the connection is
   * marked for a lingering close.
   *
   * @param head The head whose body follows.
   * @param maxBytes The most worth draining.
   * @returns Whether the body was drained (the connection may be reused).
   * @throws {HttpError} A malformed body (a bad chunk size, say), after
   *   marking the connection for a lingering close; the core answers its
   *   status when nothing was sent yet.
   */
  async drainBody(head: RequestHead, maxBytes: number): Promise<boolean> {
    if (this.#bodyDone) return true;
    if (this.#expect || (head.body.type === "length" && head.body.length > maxBytes)) {
      this.linger();
      return false;
    }
    try {
      for await (const _ of this.#tracked(bodyReader(this.reader, head.body, { maxBytes }))) {
        // Dropped.
      }
      this.#bodyDone = true;
      return true;
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      this.linger();
      // Too large to drain is fine, but a malformed body makes the request bad (400).
      if (err.status !== 413) throw err;
      return false;
    }
  }

  /** Closes the connection after this response with a lingering close. */
  linger(): void {
    this.#linger = true;
  }

  /**
   * Hands the connection over to a tunnel (CONNECT): the deadlines become
   * the tunnel's idle timeout, and the connection is closed when the
   * handler returns.
   *
   * @returns The client's bytes already read past the head, and functions to move data.
   */
  tunnel(): Tunnel {
    this.#tunnel = true;
    this.phase = TUNNEL;
    return {
      buffered: this.reader.takeBuffered(),
      read: (p) => this.#read(p),
      write: (p) => this.write(p),
      closeWrite: () => this.#raw.closeWrite(),
    };
  }

  /** @internal Completes the TLS handshake; returns the ALPN protocol chosen, if any. */
  async handshake(): Promise<string | null> {
    const info = await (this.#raw as Deno.TlsConn).handshake();
    return info.alpnProtocol;
  }

  /** @internal One read straight from the socket, untracked (request heads). */
  readSome(p: Uint8Array): Promise<number | null> {
    return this.#raw.read(p);
  }

  /** @internal One write straight to the socket; the caller tracks it. */
  writeSome(p: Uint8Array): Promise<number> {
    return this.#raw.write(p);
  }

  /** @internal Shuts the write side (lingering close). */
  closeWrite(): Promise<void> {
    return this.#raw.closeWrite();
  }

  /** @internal Reads straight from the socket, tracked (lingering close). */
  readRaw(p: Uint8Array): Promise<number | null> {
    return this.#read(p);
  }

  /** Whether the connection was closed (by the core, a deadline, or {@linkcode close}). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the connection now (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#raw.close();
    } catch {
      // Already closed by the peer.
    }
  }
}

/** A connection handed over to a tunnel; see {@linkcode ServerConnection.tunnel}. */
export interface Tunnel {
  /** Bytes the client sent after the head, already read. */
  buffered: Uint8Array;
  /** Reads from the client. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes all of `p` to the client. */
  write(p: Uint8Array): Promise<void>;
  /** Shuts the client's write side (the far end has finished). */
  closeWrite(): Promise<void>;
}

/**
 * Moves bytes both ways between a tunnelled client and another connection
 * until both directions have ended, passing each end on as a half-close;
 * then closes the other connection.
 *
 * @param client The client's side ({@linkcode ServerConnection.tunnel}).
 * @param other The far side.
 */
export async function splice(client: Tunnel, other: Deno.Conn): Promise<void> {
  const close = () => {
    try {
      other.close();
    } catch {
      // Already closed.
    }
  };
  await Promise.all([
    // Either side gone: the other direction ends too when the sockets close.
    pump((p) => client.read(p), (p) => writeAll(other, p), () => other.closeWrite())
      .catch(close),
    pump((p) => other.read(p), (p) => client.write(p), () => client.closeWrite())
      .catch(() => {}),
  ]);
  close();
}

/** Copies one direction of a {@linkcode splice} until its end, then passes the end on. */
async function pump(
  read: (p: Uint8Array) => Promise<number | null>,
  write: (p: Uint8Array) => Promise<void>,
  end: () => Promise<void>,
): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await read(buf);
    if (n === null) break;
    await write(buf.subarray(0, n));
  }
  await end();
}

const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");

/** The longest PROXY v1 line, CRLF included (HAProxy's specification). */
const PROXY_LINE_MAX = 107;

/**
 * Reads a PROXY protocol v1 line from the start of a connection and sets
 * the connection's client address from it (`UNKNOWN` keeps the socket's).
 * The head deadline covers it.
 *
 * @returns Whether a valid line was read.
 */
async function readProxyLine(c: ServerConnection): Promise<boolean> {
  const r = c.reader;
  for (;;) {
    const got = r.peek();
    const cr = got.indexOf(0x0d);
    if (cr >= 0 && cr + 1 < got.length) {
      if (got[cr + 1] !== 0x0a || cr + 2 > PROXY_LINE_MAX) return false;
      const line = String.fromCharCode(...got.subarray(0, cr));
      r.consume(cr + 2);
      const f = line.split(" ");
      if (f[0] !== "PROXY") return false;
      if (f[1] === "UNKNOWN") return true;
      if (f.length !== 6 || (f[1] !== "TCP4" && f[1] !== "TCP6")) return false;
      const port = Number(f[4]);
      if (ipFamily(f[2]!) === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
        return false;
      }
      c.remoteAddr = { transport: "tcp", hostname: f[2]!, port };
      return true;
    }
    if (got.length >= PROXY_LINE_MAX || (await r.fill()) === 0) return false;
  }
}

/**
 * A running server: its address, the caps it enforces, a promise that
 * settles when it has stopped, and graceful shutdown.
 *
 * @example
 * ```ts
 * import { HttpServer } from "./server.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const server = new HttpServer(() => false, { hostname: "127.0.0.1", port: 0 });
 * assertEquals(server.addr.hostname, "127.0.0.1");
 * await server.shutdown();
 * ```
 */
export class HttpServer implements AsyncDisposable {
  /** The address the server listens on. */
  readonly addr: Deno.NetAddr;
  #transport: "io_uring" | "deno";
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** The connection caps and counters. */
  readonly limits: ConnectionLimits;
  /** Largest request body. */
  readonly maxBodySize: number;

  #listener: RawListener;
  #secure: boolean;
  #handler: RawHandler;
  #conns = new Set<ServerConnection>();
  #tasks = new Set<Promise<void>>();
  #closing = false;
  #shutdown: Promise<void> | undefined;
  #refusing = 0;
  #sweeper: ReturnType<typeof setInterval>;
  #headerTimeout: number;
  #keepAliveTimeout: number;
  #bodyTimeout: number;
  #sendTimeout: number;
  #tunnelTimeout: number;
  #lingerTime: number;
  #lingerTimeout: number;
  #maxHeadBytes: number;
  #errorResponse: (status: number, message: string) => Uint8Array;
  #onLog: ((entry: AccessLogEntry) => void) | undefined;
  #warn: (message: string) => void;
  #h2: H2Handler | undefined;
  #h2c: boolean;
  #listenOptions: Deno.TcpListenOptions;
  #h2MaxStreams: number;
  #proxyProtocol: boolean;

  /**
   * Starts listening and serving.
   *
   * @param handler Answers each request.
   * @param options Address, TLS, deadlines, caps, log.
   */
  constructor(handler: RawHandler, options: ServerOptions = {}) {
    this.#handler = handler;
    const hostname = options.hostname ?? "localhost";
    const port = options.port ?? 8000;
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("Cannot start HTTPS: both a certificate and a key are needed");
    }
    this.#headerTimeout = positive("headerTimeout", options.headerTimeout ?? 10_000);
    this.#keepAliveTimeout = positive("keepAliveTimeout", options.keepAliveTimeout ?? 30_000);
    this.#bodyTimeout = positive("bodyTimeout", options.bodyTimeout ?? 60_000);
    this.#sendTimeout = positive("sendTimeout", options.sendTimeout ?? 60_000);
    this.#tunnelTimeout = positive("tunnelTimeout", options.tunnelTimeout ?? 900_000);
    this.#lingerTime = positive("lingerTime", options.lingerTime ?? 30_000);
    this.#lingerTimeout = positive("lingerTimeout", options.lingerTimeout ?? 5_000);
    this.#maxHeadBytes = options.maxHeadBytes ?? 16384;
    this.maxBodySize = options.maxBodySize ?? Infinity;
    this.limits = options.limits ?? new ConnectionLimits({
      maxConnections: options.maxConnections ?? defaultMaxConnections(),
      ...(options.maxConnectionsPerIp !== undefined
        ? { maxConnectionsPerIp: options.maxConnectionsPerIp }
        : {}),
    });
    this.#errorResponse = options.errorResponse ?? plainErrorResponse;
    this.#onLog = options.onLog;
    this.#warn = options.onWarning ?? ((m) => console.error(m));
    this.#secure = options.cert !== undefined;
    this.#h2 = options.h2;
    // A TLS listener always shares its port, so reloadTls can open the next
    // one beside it before closing it.
    this.#listenOptions = {
      hostname,
      port,
      reusePort: this.#secure || (options.reusePort ?? false),
    };
    this.#listener = this.#secure
      ? this.#listenTls(options.cert!, options.key!)
      : (uringReady && useRing(options) && listenUringSync({
        ...this.#listenOptions,
        // Deno.listen's "localhost" binds the IPv4 loopback.
        hostname: hostname === "localhost" ? "127.0.0.1" : hostname,
      })) || Deno.listen(this.#listenOptions);
    this.#h2c = options.h2c ?? false;
    this.#h2MaxStreams = options.h2MaxStreams ?? 100;
    this.#proxyProtocol = options.proxyProtocol ?? false;
    this.addr = this.#listener.addr as Deno.NetAddr;
    this.#transport = this.#listener instanceof UringListener ? "io_uring" : "deno";
    // Sweep often enough for the shortest deadline, at most twice a second.
    // Every deadline counts: progress is only seen at a sweep, so a deadline
    // shorter than the sweep interval would fire at the next sweep.
    const shortest = Math.min(
      this.#headerTimeout,
      this.#keepAliveTimeout,
      this.#bodyTimeout,
      this.#sendTimeout,
      this.#tunnelTimeout,
      this.#lingerTime,
      this.#lingerTimeout,
    );
    const every = Math.max(20, Math.min(500, Math.floor(shortest / 4)));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    options.signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
    this.finished = this.#acceptLoop();
  }

  #listenTls(cert: string, key: string): Deno.TlsListener {
    return Deno.listenTls({
      ...this.#listenOptions,
      cert,
      key,
      alpnProtocols: this.#h2 !== undefined ? ["h2", "http/1.1"] : ["http/1.1"],
    });
  }

  /**
   * Serves new TLS connections with another certificate and key; the
   * connections already open keep theirs and are not disturbed. A new
   * listener opens on the same port, then the old one closes.
   *
   * @param cert PEM certificate chain.
   * @param key PEM private key.
   * @throws {Error} A certificate or key Deno refuses; the old one stays in use.
   */
  reloadTls(cert: string, key: string): void {
    if (!this.#secure) throw new TypeError("Cannot reload TLS: the server speaks plain HTTP");
    if (this.#closing) return;
    const next = this.#listenTls(cert, key);
    const old = this.#listener;
    this.#listener = next;
    try {
      old.close();
    } catch {
      // Already closed.
    }
  }

  /** Whether {@linkcode shutdown} has begun. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Connections open on this event loop now. */
  get connections(): number {
    return this.#conns.size;
  }

  /**
   * Stops accepting, closes idle connections, lets requests in flight
   * finish (their handlers see {@linkcode ServerConnection.closing} and
   * answer with `Connection: close`), then closes the rest.
   *
   * @param graceMs How long requests in flight may take before they are cut.
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
      for (const c of this.#conns) {
        if (c.phase === IDLE || (c.phase === HEAD && c.reader.buffered === 0)) c.close();
        else if (c.phase === H2) c.h2?.goaway();
      }
      // Past the grace period, cut what is left; the tasks then end.
      using grace = new Deadline(graceMs);
      grace.on(() => {
        for (const c of this.#conns) c.close();
      });
      await Promise.all([...this.#tasks]);
      await this.finished;
      clearInterval(this.#sweeper);
    })();
    return this.#shutdown;
  }

  /** Shuts the server down gracefully. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * Runs a background task (a cache refresh, say) that shutdown waits for.
   *
   * @param task The task.
   */
  track(task: Promise<void>): void {
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 10;
    for (;;) {
      let raw: RawConn;
      const listener = this.#listener;
      try {
        raw = await listener.accept();
      } catch (err) {
        // A reload closed this listener: go on with the new one.
        if (listener !== this.#listener && !this.#closing) continue;
        if (this.#closing || err instanceof Deno.errors.BadResource) break;
        if (err instanceof UringFailure) {
          // The ring closed its listener and connections: serve on Deno's sockets.
          try {
            this.#listener = Deno.listen({ ...this.#listenOptions, port: this.addr.port });
            this.#transport = "deno";
            this.#warn(`${err.message}; serving on Deno's sockets from now on`);
            continue;
          } catch (listenErr) {
            this.#warn(`${err.message}; cannot listen again: ${(listenErr as Error).message}`);
            break;
          }
        }
        // EMFILE, ENFILE, ENOBUFS, ECONNABORTED: never fatal. Free what can be
        // freed, back off, try again; say so once per burst (over every loop).
        if (this.limits.claimWarning()) {
          this.#warn(
            `accept() failed: ${
              (err as Error).message
            }; closing idle connections and retrying (logged once per burst)`,
          );
        }
        this.#reclaimIdle(16);
        await delay(backoff);
        backoff = Math.min(backoff * 2, 500);
        continue;
      }
      backoff = 10;
      if (this.#closing) {
        try {
          raw.close();
        } catch {
          // Already closed.
        }
        continue;
      }
      this.track(this.#run(raw));
    }
  }

  /**
   * What carries plain TCP: `"io_uring"` (the ring of `lib/rawsock/uring.ts`)
   * or `"deno"` (Deno's sockets, always for TLS, and from the moment a ring
   * fails: its connections are closed and the port is listened on again).
   */
  get transport(): "io_uring" | "deno" {
    return this.#transport;
  }

  /** Closes up to `n` idle keep-alive connections, oldest first; returns how many. */
  #reclaimIdle(n: number): number {
    let closed = 0;
    for (const c of this.#conns) {
      if (closed >= n) break;
      if (c.phase !== IDLE || c.reader.buffered > 0) continue;
      this.#uncount(c);
      c.close();
      closed++;
    }
    return closed;
  }

  #uncount(c: ServerConnection): void {
    if (!c.counted) return;
    c.counted = false;
    this.limits.release(c.admittedAs);
  }

  async #run(raw: RawConn): Promise<void> {
    const remote = raw.remoteAddr as Deno.NetAddr;
    let admission = this.limits.admit(remote.hostname);
    if (admission === "global" && this.#reclaimIdle(1) > 0) {
      admission = this.limits.admit(remote.hostname);
    }
    if (admission !== "ok") {
      await this.#refuse(raw, remote, admission);
      return;
    }
    const c = new ServerConnection(this, raw, this.#secure, Date.now());
    this.#conns.add(c);
    try {
      if ("setNoDelay" in raw) (raw as Deno.TcpConn).setNoDelay(true);
      if (this.#proxyProtocol && !(await readProxyLine(c))) return;
      await this.#serve(c);
      if (c.lingering) await this.#lingerClose(c);
    } catch {
      // The peer reset, or a deadline closed the connection: nothing to answer.
    } finally {
      this.#conns.delete(c);
      this.#uncount(c);
      c.close();
    }
  }

  async #refuse(raw: RawConn, remote: Deno.NetAddr, why: "global" | "per-ip"): Promise<void> {
    const message = why === "global"
      ? "Too many connections to this server"
      : `Too many connections from ${remote.hostname}`;
    const reply = this.#errorResponse(503, message);
    // Under a flood, refusals must not hold descriptors of their own: past a
    // few in flight, the answer is a bare close.
    const polite = this.#refusing < MAX_POLITE_REFUSALS;
    if (polite) {
      this.#refusing++;
      try {
        // A fresh socket's send buffer is empty: this write does not wait on the client.
        await raw.write(reply);
      } catch {
        // Gone already.
      } finally {
        this.#refusing--;
      }
    }
    try {
      raw.close();
    } catch {
      // Already closed.
    }
    this.#logError(remote, 503, polite ? reply.length : 0);
  }

  /** Whether the client speaks HTTP/2: chose it by ALPN, or (h2c) sent the preface. */
  async #speaksH2(c: ServerConnection): Promise<boolean> {
    if (this.#h2 === undefined) return false;
    if (this.#secure) {
      if ((await c.handshake()) !== "h2") return false;
      await loadH2();
      return true;
    }
    if (!this.#h2c) return false;
    const { H2_PREFACE } = await loadH2();
    const r = c.reader;
    for (;;) {
      const got = r.peek();
      const n = Math.min(got.length, H2_PREFACE.length);
      for (let i = 0; i < n; i++) if (got[i] !== H2_PREFACE[i]) return false;
      if (n === H2_PREFACE.length) return true;
      if ((await r.fill()) === 0) return false;
    }
  }

  async #serveH2(c: ServerConnection): Promise<void> {
    c.phase = H2;
    const onLog = this.#onLog;
    // Loaded already: #speaksH2 said yes.
    const { h2Field, H2Session } = await loadH2();
    const session = new H2Session(
      { write: (b) => c.write(b), close: () => c.close() },
      c.reader,
      this.#h2!,
      {
        maxConcurrentStreams: this.#h2MaxStreams,
        idleTimeout: this.#keepAliveTimeout,
        headerTimeout: this.#headerTimeout,
        stallTimeout: this.#sendTimeout,
        remoteAddr: c.remoteAddr,
        ...(onLog !== undefined
          ? { onLog: (e: H2LogEntry) => onLog(this.#h2Entry(c, e, h2Field)) }
          : {}),
      },
    );
    c.h2 = session;
    if (this.#closing) session.goaway();
    await session.run();
  }

  #h2Entry(
    c: ServerConnection,
    e: H2LogEntry,
    h2Field: (r: H2LogEntry["request"], name: string) => string | null,
  ): AccessLogEntry {
    const r = e.request;
    return {
      remoteAddr: c.remoteAddr.hostname,
      time: new Date(e.time),
      duration: Date.now() - e.time,
      method: r.method,
      target: r.path,
      requestLine: `${r.method} ${r.path} HTTP/2.0`,
      status: e.status,
      bytes: e.bytes,
      sent: e.bytes,
      referer: h2Field(r, "referer"),
      userAgent: h2Field(r, "user-agent"),
      extra: undefined,
    };
  }

  async #serve(c: ServerConnection): Promise<void> {
    if (await this.#speaksH2(c)) return await this.#serveH2(c);
    // The head is parsed synchronously and the handler may answer
    // synchronously (ServerConnection.end): on the keep-alive path the only
    // awaits are this loop's own read and write, so a request allocates no
    // async frames of its own.
    const parser = new RequestHeadParser({ maxHeadBytes: this.#maxHeadBytes });
    const reader = c.reader;
    // A pipelined head already parsed (its predecessor's answer is queued),
    // or the error its parse raised.
    let next: RequestHead | null = null;
    let nextError: unknown = null;
    for (;;) {
      let head: RequestHead | null = next;
      next = null;
      if (c.requests > 0) {
        c.phase = reader.buffered > 0 ? HEAD : IDLE;
        c.since = Date.now();
        if (this.#closing && reader.buffered === 0 && head === null) return;
      }
      try {
        if (nextError !== null) throw nextError;
        while (head === null && (head = parser.take(reader)) === null) {
          // Heads are read untracked (the sweeper times them by phase).
          const n = reader.eof ? 0 : reader.added(await c.readSome(reader.room()));
          if (n === 0 && parser.ended(reader)) return;
        }
      } catch (err) {
        if (err instanceof HttpError) await this.#fail(c, err.status, err.message, null);
        return;
      }
      c.phase = BUSY;
      c.begin(head);
      const time = this.#onLog !== undefined ? Date.now() : 0;
      if (head.body.type === "length" && head.body.length > this.maxBodySize) {
        await this.#fail(
          c,
          413,
          `Cannot accept a body of ${head.body.length} bytes: the limit is ${this.maxBodySize}`,
          head,
          time,
        );
        return;
      }
      let keep: boolean;
      try {
        const answered = this.#handler(head, c);
        keep = typeof answered === "boolean" ? answered : await answered;
        const last = c.takeLast();
        if (last !== null) {
          // When the next request is already buffered, its answer joins this
          // one: pipelined answers go out in one write, as nginx's do.
          if (
            keep && head.keepAlive && c.bodyDone && reader.buffered > 0 && !this.#closing &&
            !c.lingering && !c.tunnelled && c.queued < MAX_QUEUED
          ) {
            try {
              next = parser.take(reader);
            } catch (err) {
              nextError = err;
            }
          }
          if (next !== null) c.queue(last);
          else {
            // ServerConnection.write's steps, in this loop's frame.
            const out = c.withQueued(last);
            c.writing = true;
            c.writes.step();
            let off = await c.writeSome(out);
            while (off < out.length) {
              c.writes.step();
              off += await c.writeSome(out.subarray(off));
            }
            c.writes.step();
            c.writing = false;
          }
          c.sent += last.length;
        }
      } catch (err) {
        if (err instanceof HttpError && c.sent === 0 && !c.tunnelled) {
          c.takeLast();
          await this.#fail(c, err.status, err.message, head, time);
        } else {
          if (time !== 0) this.#log(c, head, time);
          // Answers queued for earlier pipelined requests are still due.
          if (c.queued > 0) await c.write(new Uint8Array(0));
        }
        return;
      }
      if (time !== 0) this.#log(c, head, time);
      c.requests++;
      if (!c.bodyDone && !c.tunnelled) {
        // The handler left the body unread: the next request's framing is lost,
        // and closing with unread input would reset the answer just written.
        c.linger();
        return;
      }
      if (!keep || !head.keepAlive || c.lingering || c.tunnelled || this.#closing) return;
    }
  }

  /** Answers an error the core found itself, then closes with a lingering close. */
  async #fail(
    c: ServerConnection,
    status: number,
    message: string,
    head: RequestHead | null,
    time = Date.now(),
  ): Promise<void> {
    c.phase = BUSY;
    c.status = status;
    const reply = this.#errorResponse(status, message);
    c.linger();
    try {
      await c.write(reply);
    } finally {
      if (this.#onLog !== undefined) {
        c.bodyBytes = 0;
        c.logExtra = undefined;
        if (head !== null) this.#log(c, head, time || Date.now());
        else this.#logError(c.remoteAddr, status, c.sent);
      }
    }
  }

  async #lingerClose(c: ServerConnection): Promise<void> {
    c.phase = LINGER;
    c.since = Date.now();
    c.reads.restart(c.since);
    try {
      await c.closeWrite();
    } catch {
      return;
    }
    // Read and drop until the client closes, or the sweeper ends it (lingerTime, lingerTimeout).
    while ((await c.readRaw(lingerBuffer)) !== null) {
      // Dropped.
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of this.#conns) {
      const readStill = c.reads.stillFor(now);
      const writeStill = c.writes.stillFor(now);
      switch (c.phase) {
        case IDLE:
          if (c.reader.buffered > 0) {
            // The next request has begun: its head deadline runs from here (within a sweep).
            c.phase = HEAD;
            c.since = now;
          } else if (now - c.since > this.#keepAliveTimeout) c.close();
          break;
        case HEAD:
          if (now - c.since > this.#headerTimeout) c.close();
          break;
        case BUSY:
          if (c.reading && readStill > this.#bodyTimeout) c.close();
          else if (c.writing && writeStill > this.#sendTimeout) c.close();
          break;
        case TUNNEL:
          if (c.writing && writeStill > this.#sendTimeout) c.close();
          else if (Math.min(readStill, writeStill) > this.#tunnelTimeout) c.close();
          break;
        case LINGER:
          if (now - c.since > this.#lingerTime || readStill > this.#lingerTimeout) {
            c.close();
          }
          break;
        case H2:
          // A client that stops reading; the session times the rest itself.
          if (c.writing && writeStill > this.#sendTimeout) c.close();
          else c.h2?.sweep(now);
          break;
      }
    }
  }

  #log(c: ServerConnection, head: RequestHead, time: number): void {
    const h = head.headers;
    this.#onLog!({
      remoteAddr: c.remoteAddr.hostname,
      time: new Date(time),
      duration: Date.now() - time,
      method: head.method,
      target: head.target,
      requestLine: `${head.method} ${head.target} ${head.version}`,
      status: c.status,
      bytes: c.bodyBytes,
      sent: c.sent,
      referer: h.get("referer"),
      userAgent: h.get("user-agent"),
      extra: c.logExtra,
    });
  }

  #logError(remote: Deno.NetAddr, status: number, sent: number): void {
    this.#onLog?.({
      remoteAddr: remote.hostname,
      time: new Date(),
      duration: 0,
      method: null,
      target: null,
      requestLine: "-",
      status,
      bytes: 0,
      sent,
      referer: null,
      userAgent: null,
      extra: undefined,
    });
  }
}
