/**
 * The one HTTP/1.1 client of the project, under the proxy's upstreams and
 * the `webclient` CLI: per-origin keep-alive pools with limits, connect,
 * TLS, head and body deadlines ({@linkcode Deadline}), one retry of a
 * request whose reused connection the server had closed, TLS with the
 * system's roots plus extra CAs, redirects, request bodies streamed while
 * the response is read, interim (1xx) responses handed to the caller, a
 * timing breakdown, and failures classified like curl's exit codes.
 *
 * @example Fetching a page from a local server
 * ```ts
 * import { HttpClient } from "./client.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * await using server = Deno.serve({ port: 0, onListen() {} }, () => new Response("hi"));
 * await using client = new HttpClient();
 * const res = await client.request(`http://127.0.0.1:${server.addr.port}/`);
 * assertEquals(res.status, 200);
 * assertEquals(await res.text(), "hi");
 * ```
 *
 * @module
 */
import { concat, writeAll } from "../bytes.ts";
import { Deadline } from "../deadline.ts";
import { bodyReader } from "./bodies.ts";
import { encodeChunk, encodeRequestHead, LAST_CHUNK } from "./encoder.ts";
import { HttpError } from "./errors.ts";
import { FieldList, type FieldsInit } from "./fields.ts";
import { type BodyKind, readResponseHead, type ResponseHead } from "./heads.ts";
import { BufferedReader } from "./reader.ts";
import { Progress } from "./_progress.ts";
import { ipFamily } from "../sockaddr.ts";

/**
 * Exit codes per failure class. They are curl's (`man curl`, EXIT CODES), so
 * scripts written against curl keep working.
 */
export const EXIT_CODES: Readonly<{
  ok: 0;
  protocol: 1;
  usage: 2;
  url: 3;
  dns: 6;
  connect: 7;
  reply: 8;
  partial: 18;
  http: 22;
  write: 23;
  read: 26;
  timeout: 28;
  tls: 35;
  redirects: 47;
  empty: 52;
  recv: 56;
  certificate: 60;
}> = Object.freeze({
  /** Success. */
  ok: 0,
  /** The URL's scheme is neither http nor https. */
  protocol: 1,
  /** Bad command-line usage. */
  usage: 2,
  /** The URL is malformed. */
  url: 3,
  /** The host name could not be resolved. */
  dns: 6,
  /** No connection could be made to any address of the host. */
  connect: 7,
  /** The server's reply is not valid HTTP/1.x. */
  reply: 8,
  /** The body ended before its announced length. */
  partial: 18,
  /** `--fail` and the status is 400 or more. */
  http: 22,
  /** Writing the output (file or stdout) failed. */
  write: 23,
  /** Reading a local file (`-d @file`) failed. */
  read: 26,
  /** A timeout (`--max-time`, `--connect-timeout`) expired. */
  timeout: 28,
  /** The TLS handshake failed. */
  tls: 35,
  /** More redirects than `--max-redirs`. */
  redirects: 47,
  /** The server closed the connection without sending anything. */
  empty: 52,
  /** Receiving data failed (connection reset…). */
  recv: 56,
  /** The server's certificate could not be verified. */
  certificate: 60,
});

/** A failure class: one of the keys of {@linkcode EXIT_CODES} other than ok and usage. */
export type FailureKind = Exclude<keyof typeof EXIT_CODES, "ok" | "usage">;

/**
 * A failed transfer, classified so a CLI can exit with the matching code
 * and a proxy can tell a timeout (504) from other failures (502).
 *
 * @example
 * ```ts
 * import { HttpClientError } from "./client.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const err = new HttpClientError("dns", 'Cannot resolve host "x": no such name');
 * assertEquals(err.exitCode, 6);
 * ```
 */
export class HttpClientError extends Error {
  /** The failure class. */
  readonly kind: FailureKind;
  /** The exit code for this class ({@linkcode EXIT_CODES}). */
  readonly exitCode: number;
  /** The last address a connection was tried to, when the failure is a refused connect. */
  readonly address: string | undefined;

  /**
   * Creates a classified client error.
   *
   * @param kind The failure class.
   * @param message What failed, then why.
   * @param options Standard error options (`cause`), and the address tried.
   */
  constructor(
    kind: FailureKind,
    message: string,
    options?: ErrorOptions & { address?: string },
  ) {
    super(message, options);
    this.name = "HttpClientError";
    this.kind = kind;
    this.exitCode = EXIT_CODES[kind];
    this.address = options?.address;
  }
}

/**
 * When each phase of a transfer ended, in milliseconds since the transfer
 * started (cumulative, as curl's `-w %{time_namelookup}` etc.). On a reused
 * connection, `dns`, `connect` and `tls` are 0.
 */
export interface Timing {
  /** Name resolution done. */
  dns: number;
  /** TCP connection established. */
  connect: number;
  /** TLS handshake done (0 for http). */
  tls: number;
  /** First byte of the response received. */
  firstByte: number;
  /** Body completely received (set when the body has been consumed). */
  total: number;
}

/** Resolves a host name to addresses, in the order to try them. */
export type Resolver = (host: string) => Promise<string[]>;

/** Options of {@linkcode HttpClient}. */
export interface HttpClientOptions {
  /**
   * Name resolution.
   * @default {systemResolve}
   */
  resolve?: Resolver;
  /** Extra trusted CA certificates in PEM, for https, besides the system's roots. */
  caCerts?: string[];
  /**
   * Maximum time for resolving and connecting (TCP and TLS), in ms.
   * @default {30000}
   */
  connectTimeout?: number;
  /**
   * Maximum time from sending a request to its response head, in ms
   * (nginx's `proxy_read_timeout` for the head).
   * @default {Infinity}
   */
  headTimeout?: number;
  /**
   * Maximum time a response-body read may wait for data, in ms (nginx's
   * `proxy_read_timeout` for the body).
   * @default {Infinity}
   */
  bodyTimeout?: number;
  /**
   * Idle connections kept per origin for reuse.
   * @default {16}
   */
  maxIdlePerOrigin?: number;
  /**
   * Connections open at once per origin; more requests wait for one.
   * @default {256}
   */
  maxConnectionsPerOrigin?: number;
  /**
   * How long an idle pooled connection is kept, in ms.
   * @default {30000}
   */
  idleTimeout?: number;
  /**
   * Size of the pieces a response body is read in: larger pieces move bulk
   * data faster, smaller ones hold less memory per transfer in flight.
   * @default {262144}
   */
  readSize?: number;
  /** Receives verbose trace lines (`* …`, `> …`, `< …`), as curl `-v` prints them. */
  trace?: (line: string) => void;
  /**
   * The User-Agent field sent unless a request sets its own (or asks for `exactHeaders`).
   * @default {"netkit-client/0.1"}
   */
  userAgent?: string;
}

/** How {@linkcode ClientResponse.body} reads: into one reused buffer, filled or not. */
export interface BodyReadOptions {
  /**
   * Read every piece into this buffer and yield views of it (no array per
   * piece); a piece is valid until the next one is asked for.
   * @default {undefined: a fresh array per piece}
   */
  buffer?: Uint8Array;
  /**
   * With `buffer`: fill it before yielding (as far as the body goes), for a
   * few large writes to a file. It holds bytes back until the buffer is full.
   * @default {false}
   */
  fill?: boolean;
}

/** Where {@linkcode ClientResponse.writeTo} writes: a file, stdout, a connection. */
export interface BodySink {
  /** Writes some of `p`; resolves to how many bytes it took (as `Deno.FsFile.write`). */
  write(p: Uint8Array): Promise<number>;
}

/** Options of {@linkcode ClientResponse.writeTo}. */
export interface WriteToOptions {
  /**
   * Size of the one buffer the body goes through.
   * @default {1048576}
   */
  bufferSize?: number;
  /**
   * Fill the buffer before each write (a file); off, each socket read is
   * written as it comes (a peer, a pipe).
   * @default {false}
   */
  fill?: boolean;
  /** Called after each write with the body bytes written so far (a progress meter). */
  onWrite?: (written: number) => void;
}

/** A request body: bytes (replayable), or a stream of pieces (sent chunked unless `bodyLength` is set). */
export type RequestBody = Uint8Array | AsyncIterable<Uint8Array>;

/** Options of {@linkcode HttpClient.request}. */
export interface RequestOptions {
  /**
   * The method.
   * @default {"GET", or "POST" when a body is given}
   */
  method?: string;
  /**
   * Header fields. They replace the defaults of the same name (Host,
   * User-Agent, Accept, and Content-Type for a body).
   */
  headers?: FieldsInit;
  /**
   * Send `headers` exactly as given, with no defaults and no Host added (a
   * proxy forwarding a request); the framing field for a body is still set,
   * in the given `FieldList` itself (no copy is made).
   * @default {false}
   */
  exactHeaders?: boolean;
  /** Names of default fields not to send (curl's `-H "Name:"`). */
  omitHeaders?: string[];
  /** The request body. */
  body?: RequestBody;
  /**
   * The length of a streamed body, sent as Content-Length (chunked when absent).
   * @default {undefined}
   */
  bodyLength?: number;
  /**
   * Open a new connection rather than reuse a pooled one: for a request
   * whose body cannot be replayed if the pooled connection turns out dead.
   * @default {false}
   */
  fresh?: boolean;
  /**
   * Maximum time for the whole transfer, body included, in ms.
   * @default {Infinity}
   */
  timeout?: number;
  /**
   * Maximum time until the response head, in ms.
   * @default {the client's headTimeout}
   */
  headTimeout?: number;
  /**
   * Follow up to this many redirects (301, 302, 303, 307, 308 with a
   * Location); 0 returns the redirect itself.
   * @default {0}
   */
  maxRedirects?: number;
  /** Called with each redirect response before it is followed (its body is discarded). */
  onRedirect?: (response: ClientResponse) => void;
  /** Receives interim responses (100, 103…) before the final one. */
  onInterim?: (head: ResponseHead) => void | Promise<void>;
}

let systemRoots: string[] | undefined;

/** The system's trusted roots (Debian's bundle), read once; Deno adds its own Mozilla roots. */
function systemCaCerts(): string[] {
  if (systemRoots !== undefined) return systemRoots;
  systemRoots = [];
  for (const path of ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]) {
    try {
      systemRoots = [Deno.readTextFileSync(path)];
      break;
    } catch {
      // Not this distribution's path.
    }
  }
  return systemRoots;
}

/**
 * Resolves a host with `lib/resolve.ts` (the system's order: hosts file, then
 * DNS), IPv4 first as curl's happy-eyeballs preference tends to end up on
 * loopback. The resolver is loaded on first use, so a client that only talks
 * to addresses pays nothing for it at start-up.
 *
 * @param host A host name or address literal.
 * @returns The addresses.
 * @throws {ResolveError} When the name cannot be resolved (from `lib/resolve.ts`).
 *
 * @example
 * ```ts
 * import { systemResolve } from "./client.ts";
 * import { assert } from "../testing/assert.ts";
 * assert((await systemResolve("localhost")).length > 0);
 * ```
 */
export async function systemResolve(host: string): Promise<string[]> {
  const { resolveAll } = await import("../resolve.ts");
  const found = await resolveAll(host);
  const v4 = found.filter((a) => a.family === 4).map((a) => a.address);
  const v6 = found.filter((a) => a.family === 6).map((a) => a.address);
  return [...v4, ...v6];
}

/** One connection to an origin, with its read buffer. */
class Connection {
  readonly id: number;
  readonly conn: Deno.Conn;
  readonly reader: BufferedReader;
  readonly key: string;
  readonly host: string;
  readonly address: string;
  /** Exchanges completed on this connection. */
  uses = 0;
  /** In the pool. */
  idle = false;
  /** Returns to the pool, for the idle deadline. */
  readonly releases: Progress;
  /** A read is pending. */
  reading = false;
  /** Read steps, for the body deadline. */
  readonly reads: Progress;
  /** The response body is being read: the head has its own deadline. */
  inBody = false;
  /** A response head is awaited, for at most `headLimit` ms. */
  awaitingHead = false;
  /** The head deadline of the current request, in ms. */
  headLimit = 0;
  /** Response heads awaited, for the head deadline. */
  readonly headWaits: Progress;
  /** Closed by the sweeper because a deadline passed. */
  timedOut = false;
  /** Where the first byte of the awaited response is recorded (the request's own). */
  #firstByte: { at: number } | null = null;
  #closed = false;

  constructor(id: number, conn: Deno.Conn, key: string, host: string, address: string) {
    this.id = id;
    this.conn = conn;
    this.key = key;
    this.host = host;
    this.address = address;
    const now = Date.now();
    this.releases = new Progress(now);
    this.reads = new Progress(now);
    this.headWaits = new Progress(now);
    const read = async (p: Uint8Array): Promise<number | null> => {
      this.reading = true;
      this.reads.step();
      try {
        const n = await conn.read(p);
        const mark = this.#firstByte;
        if (mark !== null && n !== null && n > 0) {
          this.#firstByte = null;
          mark.at = performance.now();
        }
        return n;
      } finally {
        this.reads.step();
        this.reading = false;
      }
    };
    this.reader = new BufferedReader({ read });
  }

  /**
   * Records in `mark` when the first byte of the next response arrives (now,
   * when bytes are already buffered).
   *
   * @param mark The request's own record; `at` stays 0 until a byte arrives.
   */
  watchFirstByte(mark: { at: number }): void {
    if (this.reader.buffered > 0) {
      mark.at = performance.now();
      this.#firstByte = null;
    } else this.#firstByte = mark;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the peer or a timeout: nothing left to release.
    }
  }
}

/** Per-origin pool: idle connections (most recent last), open count, waiters for a slot. */
interface Pool {
  /** The origin's key in the client's pools. */
  key: string;
  idle: Connection[];
  open: number;
  waiters: Array<() => void>;
}

/** Parses a URL the way curl does (no scheme means http). */
function parseUrl(input: string | URL): URL {
  if (input instanceof URL) return input;
  const text = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(input) ? input : `http://${input}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new HttpClientError("url", `Cannot parse URL "${input}": malformed`);
  }
  return checkUrl(url, input);
}

function checkUrl(url: URL, input: string | URL): URL {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HttpClientError(
      "protocol",
      `Cannot fetch "${input}": protocol "${url.protocol.slice(0, -1)}" not supported`,
    );
  }
  if (url.hostname === "") {
    throw new HttpClientError("url", `Cannot parse URL "${input}": no host`);
  }
  return url;
}

function bareHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") ? h.slice(1, -1) : h;
}

function portOf(url: URL): number {
  return url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

function originKey(url: URL): string {
  return `${url.protocol}//${bareHost(url)}:${portOf(url)}`;
}

/** Classifies a socket-level error from a read or write. */
function receiveError(err: unknown, what: string): HttpClientError {
  if (err instanceof HttpClientError) return err;
  if (err instanceof HttpError) {
    return new HttpClientError("reply", `${what}: ${err.message}`, { cause: err });
  }
  if (err instanceof Deno.errors.UnexpectedEof) {
    return new HttpClientError("partial", `${what}: ${err.message}`, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new HttpClientError("recv", `${what}: ${msg}`, { cause: err });
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** Where discarded bodies are read: shared, since nothing reads it back. */
const DISCARD_BUFFER = new Uint8Array(65536);

/**
 * A response whose body has not been read yet. Read it once, with
 * {@linkcode ClientResponse.body}, {@linkcode ClientResponse.bytes},
 * {@linkcode ClientResponse.text} or {@linkcode ClientResponse.discard}; the
 * connection returns to the pool when the body is complete and the request
 * body was sent.
 */
export class ClientResponse {
  /** The URL that was fetched (after redirects). */
  readonly url: URL;
  /** The method that was sent. */
  readonly method: string;
  /** The parsed head. */
  readonly head: ResponseHead;
  /** Timing marks; `total` is set when the body has been read. */
  readonly timing: Timing;
  /** The request head as sent, for verbose output. */
  readonly requestHead: string;
  /** Which connection served it (0, 1, …), to see reuse. */
  readonly connectionId: number;
  /** Whether the connection had served an earlier exchange. */
  readonly reused: boolean;
  /** The address the connection went to. */
  readonly remoteAddress: string;
  /**
   * Settles when a streamed request body has been sent; rejects with the
   * body source's own error (a proxy's client sent a bad chunk, say).
   */
  readonly upload: Promise<void>;
  #body: AsyncGenerator<Uint8Array, void, undefined> | null;
  #cancelled: { value: boolean };
  #read: BodyReadOptions;

  /** @internal Built by {@linkcode HttpClient}. */
  constructor(
    init: {
      url: URL;
      method: string;
      head: ResponseHead;
      timing: Timing;
      requestHead: string;
      connectionId: number;
      reused: boolean;
      remoteAddress: string;
      upload: Promise<void>;
      body: AsyncGenerator<Uint8Array, void, undefined>;
      cancelled: { value: boolean };
      read: BodyReadOptions;
    },
  ) {
    this.url = init.url;
    this.method = init.method;
    this.head = init.head;
    this.timing = init.timing;
    this.requestHead = init.requestHead;
    this.connectionId = init.connectionId;
    this.reused = init.reused;
    this.remoteAddress = init.remoteAddress;
    this.upload = init.upload;
    this.#body = init.body;
    this.#cancelled = init.cancelled;
    this.#read = init.read;
  }

  /** The status code. */
  get status(): number {
    return this.head.status;
  }

  /** The header fields. */
  get headers(): FieldList {
    return this.head.headers;
  }

  /** How the body is delimited on the wire. */
  get bodyKind(): BodyKind {
    return this.head.body;
  }

  /**
   * The body as an async iterator of byte pieces (usable once).
   *
   * @param options A buffer to read every piece into (then each piece is
   *   valid until the next is asked for), and whether to fill it first.
   * @returns The pieces.
   */
  body(options: BodyReadOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    const b = this.#body;
    if (b === null) throw new TypeError("Cannot read the response body: it was already read");
    this.#body = null;
    // The generator has not started: it reads these when first pulled.
    Object.assign(this.#read, options);
    return b;
  }

  /**
   * Streams the body into `sink` through one reused buffer: no allocation
   * per piece, so memory stays flat whatever the body's size. Each write
   * completes before the next read into the buffer.
   *
   * @param sink A file, stdout, a connection: anything with `write(p)`.
   * @param options Buffer size, filling, and a progress callback.
   * @returns The number of body bytes written.
   * @throws {HttpClientError} `write` when the sink fails; the receive
   *   failures of {@linkcode ClientResponse.body} (`partial`, `recv`, `timeout`…).
   *
   * @example Saving a body to a file
   * ```ts
   * import { HttpClient } from "./client.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * await using server = Deno.serve({ port: 0, onListen() {} }, () => new Response("saved"));
   * await using client = new HttpClient();
   * const res = await client.request(`http://127.0.0.1:${server.addr.port}/`);
   * const path = await Deno.makeTempFile();
   * {
   *   using file = await Deno.open(path, { write: true });
   *   assertEquals(await res.writeTo(file, { fill: true }), 5);
   * }
   * assertEquals(await Deno.readTextFile(path), "saved");
   * await Deno.remove(path);
   * ```
   */
  async writeTo(sink: BodySink, options: WriteToOptions = {}): Promise<number> {
    const buffer = new Uint8Array(options.bufferSize ?? 1 << 20);
    let written = 0;
    for await (const piece of this.body({ buffer, fill: options.fill ?? false })) {
      try {
        await writeAll(sink, piece);
      } catch (err) {
        throw new HttpClientError("write", `Cannot write the body: ${(err as Error).message}`, {
          cause: err,
        });
      }
      written += piece.length;
      options.onWrite?.(written);
    }
    return written;
  }

  /**
   * Reads the whole body.
   *
   * @returns The body bytes.
   */
  async bytes(): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    for await (const p of this.body()) pieces.push(p);
    return concat(pieces);
  }

  /**
   * Reads the whole body as UTF-8 text.
   *
   * @returns The text.
   */
  async text(): Promise<string> {
    return new TextDecoder().decode(await this.bytes());
  }

  /**
   * Reads and drops the body, so the connection can be reused.
   *
   * @returns The number of bytes dropped.
   */
  async discard(): Promise<number> {
    let n = 0;
    // Nobody looks at the bytes, so every discard may share one buffer.
    for await (const p of this.body({ buffer: DISCARD_BUFFER })) n += p.length;
    return n;
  }

  /** Closes the connection without reading the body (it is not reused). */
  async cancel(): Promise<void> {
    const b = this.#body;
    if (b === null) return;
    this.#body = null;
    this.#cancelled.value = true;
    // Starting the generator runs its clean-up, which closes the connection.
    await b.next().catch(() => {});
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * An HTTP/1.1 client with per-origin keep-alive pools. Dispose it (or call
 * {@linkcode HttpClient.close}) to close the idle connections.
 *
 * @example Two requests over one connection
 * ```ts
 * import { HttpClient } from "./client.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * await using server = Deno.serve({ port: 0, onListen() {} }, () => new Response("x"));
 * await using client = new HttpClient();
 * const base = `http://127.0.0.1:${server.addr.port}`;
 * await (await client.request(`${base}/a`)).discard();
 * await (await client.request(`${base}/b`)).discard();
 * assertEquals(client.connectionsOpened, 1);
 * ```
 */
export class HttpClient implements AsyncDisposable {
  #pools = new Map<string, Pool>();
  #active = new Set<Connection>();
  #resolve: Resolver;
  #caCerts: string[] | undefined;
  #connectTimeout: number;
  #headTimeout: number;
  #bodyTimeout: number;
  #maxIdle: number;
  #maxPerOrigin: number;
  #idleTimeout: number;
  #trace: ((line: string) => void) | undefined;
  #userAgent: string;
  #readSize: number;
  #opened = 0;
  #closed = false;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #sweepEvery = Infinity;

  /**
   * Creates a client.
   *
   * @param options Resolver, CAs, deadlines, pool sizes, trace sink, User-Agent.
   */
  constructor(options: HttpClientOptions = {}) {
    this.#resolve = options.resolve ?? systemResolve;
    this.#caCerts = options.caCerts;
    this.#connectTimeout = options.connectTimeout ?? 30000;
    this.#headTimeout = options.headTimeout ?? Infinity;
    this.#bodyTimeout = options.bodyTimeout ?? Infinity;
    this.#maxIdle = options.maxIdlePerOrigin ?? 16;
    this.#maxPerOrigin = options.maxConnectionsPerOrigin ?? 256;
    this.#idleTimeout = options.idleTimeout ?? 30000;
    this.#trace = options.trace;
    this.#userAgent = options.userAgent ?? "netkit-client/0.1";
    this.#readSize = options.readSize ?? 262144;
  }

  /** How many connections this client has opened so far. */
  get connectionsOpened(): number {
    return this.#opened;
  }

  /** How many origins have a pool now: a connection open, idle or awaited. */
  get origins(): number {
    return this.#pools.size;
  }

  /** How many connections sit idle in the pools now. */
  get idleConnections(): number {
    let n = 0;
    for (const pool of this.#pools.values()) n += pool.idle.length;
    return n;
  }

  /**
   * Sends a request and reads the response head, following redirects when
   * asked. The body is left to read from the returned response.
   *
   * @param url An http or https URL (a missing scheme means http, as in curl).
   * @param options Method, headers, body, deadlines, redirects.
   * @returns The response, body unread.
   * @throws {HttpClientError} Classified by failure (DNS, connect, TLS, timeout, reply…).
   */
  async request(url: string | URL, options: RequestOptions = {}): Promise<ClientResponse> {
    const target = parseUrl(url);
    const deadline = new Deadline(options.timeout ?? Infinity);
    try {
      return await this.#follow(target, options, deadline);
    } catch (err) {
      deadline.clear();
      throw err;
    }
  }

  async #follow(target: URL, options: RequestOptions, deadline: Deadline): Promise<ClientResponse> {
    let method = options.method ?? (options.body !== undefined ? "POST" : "GET");
    let body = options.body;
    // The list is copied before any change a redirect makes; `exactHeaders` sets its framing in place.
    let headers = options.headers instanceof FieldList
      ? options.headers
      : new FieldList(options.headers);
    const maxRedirects = options.maxRedirects ?? 0;
    for (let hop = 0;; hop++) {
      const hooks = { done: () => {} };
      const res = await this.#exchange(target, method, headers, body, options, deadline, hooks);
      const location = res.headers.get("location");
      if (maxRedirects === 0 || !REDIRECTS.has(res.status) || location === null) {
        // The deadline covers the body too: it ends when the body does.
        hooks.done = () => deadline.clear();
        return res;
      }
      if (hop >= maxRedirects) {
        await res.discard().catch(() => {});
        throw new HttpClientError(
          "redirects",
          `Cannot fetch "${target.href}": more than ${maxRedirects} redirects`,
        );
      }
      options.onRedirect?.(res);
      // A redirect body is small and worth draining to keep the connection.
      await res.discard();
      let next: URL;
      try {
        next = new URL(location, target);
      } catch {
        throw new HttpClientError("reply", `Cannot follow redirect: bad Location "${location}"`);
      }
      next = checkUrl(next, next);
      // As curl: 303 turns anything but HEAD into GET; 301/302 turn POST into
      // GET (what browsers do; RFC 9110 §15.4.2 allows it).
      if (
        (res.status === 303 && method !== "HEAD") ||
        ((res.status === 301 || res.status === 302) && method === "POST")
      ) {
        method = "GET";
        body = undefined;
        headers = headers.clone();
        headers.delete("content-length");
        headers.delete("content-type");
      }
      // Credentials do not follow a redirect to another origin (curl's default).
      if (originKey(next) !== originKey(target)) {
        headers = headers.clone();
        headers.delete("authorization");
        headers.delete("cookie");
      }
      this.#trace?.(`* Issue another request to this URL: '${next.href}'`);
      target = next;
    }
  }

  #pool(key: string): Pool {
    let pool = this.#pools.get(key);
    if (pool === undefined) this.#pools.set(key, pool = { key, idle: [], open: 0, waiters: [] });
    return pool;
  }

  /** Takes an idle connection (unless `fresh`), or opens one when the origin has a free slot. */
  async #acquire(
    url: URL,
    fresh: boolean,
    deadline: Deadline,
    start: number,
    timing: Timing,
  ): Promise<{ c: Connection; reused: boolean }> {
    const key = originKey(url);
    const pool = this.#pool(key);
    for (;;) {
      if (!fresh) {
        let c: Connection | undefined;
        // The sweeper closes connections idle too long; a closed one is dropped here.
        while ((c = pool.idle.pop()) !== undefined) {
          if (!c.closed) {
            c.idle = false;
            return { c, reused: true };
          }
          this.#destroy(c);
        }
      }
      if (pool.open < this.#maxPerOrigin) break;
      if (fresh && pool.idle.length > 0) {
        // Make room: an idle connection is worth less than a waiting request.
        this.#destroy(pool.idle.shift()!);
        continue;
      }
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => pool.waiters.push(wake = resolve));
      try {
        await deadline.race(
          woken,
          () => new HttpClientError("timeout", `Cannot connect to ${url.host}: timed out waiting`),
        );
      } catch (err) {
        // A waiter that gave up must not swallow the wake-up of the next one.
        const i = pool.waiters.indexOf(wake);
        if (i >= 0) pool.waiters.splice(i, 1);
        else pool.waiters.shift()?.(); // woken as it gave up: pass the turn on
        throw err;
      }
    }
    pool.open++;
    try {
      const c = await this.#connect(url, key, deadline, start, timing);
      this.#active.add(c);
      this.#sweep();
      return { c, reused: false };
    } catch (err) {
      this.#slotFreed(pool);
      throw err;
    }
  }

  #slotFreed(pool: Pool): void {
    pool.open--;
    const next = pool.waiters.shift();
    if (next !== undefined) next();
    else if (pool.open === 0 && pool.idle.length === 0 && this.#pools.get(pool.key) === pool) {
      // Nothing open, idle or awaited: forget the origin, or a client that
      // meets many origins (a forward proxy) keeps one pool per origin ever tried.
      this.#pools.delete(pool.key);
    }
  }

  /** Returns a connection to its pool, or closes it. */
  #release(c: Connection, reusable: boolean): void {
    const pool = this.#pool(c.key);
    if (!reusable || this.#closed || c.closed || c.reader.buffered > 0) {
      this.#destroy(c);
      return;
    }
    if (this.#maxIdle <= 0) {
      this.#destroy(c);
      return;
    }
    if (pool.idle.length >= this.#maxIdle) this.#destroy(pool.idle.shift()!);
    c.idle = true;
    c.releases.step();
    pool.idle.push(c);
    pool.waiters.shift()?.();
  }

  /** Closes a connection and frees its slot (once). */
  #destroy(c: Connection): void {
    if (!this.#active.delete(c)) return;
    c.close();
    const pool = this.#pool(c.key);
    const i = pool.idle.indexOf(c);
    if (i >= 0) pool.idle.splice(i, 1);
    this.#slotFreed(pool);
  }

  /**
   * Starts the sweeper that expires idle connections, late response heads
   * and stalled body reads: one timer for the client, not one per request.
   * It runs at a quarter of the shortest deadline (at most once a second).
   *
   * @param shortest A deadline a request is about to need, in ms.
   */
  #sweep(shortest = Infinity): void {
    const every = Math.max(
      20,
      Math.min(
        1000,
        this.#bodyTimeout / 4,
        this.#idleTimeout / 4,
        this.#headTimeout / 4,
        shortest / 4,
      ),
    );
    if (this.#sweeper !== undefined && every >= this.#sweepEvery) return;
    clearInterval(this.#sweeper);
    this.#sweepEvery = every;
    const sweeper = this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const c of this.#active) {
        const idleStill = c.releases.stillFor(now);
        const readStill = c.reads.stillFor(now);
        const headStill = c.headWaits.stillFor(now);
        if (c.idle) {
          if (idleStill > this.#idleTimeout) this.#destroy(c);
        } else if (
          (c.awaitingHead && headStill > c.headLimit) ||
          (c.inBody && c.reading && readStill > this.#bodyTimeout)
        ) {
          c.timedOut = true;
          c.close();
        }
      }
      if (this.#active.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, every);
    // The sweeper alone must not keep a process alive.
    Deno.unrefTimer(sweeper);
  }

  /**
   * Resolves `host` and connects to each of its addresses in turn, as far as
   * `race` lets it: the part of a connection that requests and tunnels share.
   */
  async #openTcp(
    host: string,
    port: number,
    race: <T>(p: Promise<T>, what: string) => Promise<T>,
    start: number,
    timing: Timing,
  ): Promise<{ tcp: Deno.TcpConn; address: string }> {
    let addresses: string[];
    if (ipFamily(host) !== undefined) {
      addresses = [host];
    } else {
      try {
        addresses = await race(this.#resolve(host), `Cannot resolve host "${host}": timed out`);
      } catch (err) {
        if (err instanceof HttpClientError) throw err;
        // lib/resolve.ts's ResolveError already says 'Cannot resolve host "x": why';
        // an injected resolver's error gives the why.
        const message = err instanceof Error && err.name === "ResolveError"
          ? err.message
          : `Cannot resolve host "${host}": ${(err as Error).message}`;
        throw new HttpClientError("dns", message, { cause: err });
      }
      if (addresses.length === 0) {
        throw new HttpClientError("dns", `Cannot resolve host "${host}": no addresses`);
      }
    }
    timing.dns = performance.now() - start;
    let tcp: Deno.TcpConn | undefined;
    let address = "";
    let lastError: unknown;
    let tried = "";
    for (const a of addresses) {
      tried = a;
      this.#trace?.(`*   Trying ${a.includes(":") ? `[${a}]` : a}:${port}...`);
      const attempt = Deno.connect({ hostname: a, port });
      try {
        tcp = await race(attempt, `Cannot connect to ${host} port ${port}: timed out`);
        address = a;
        break;
      } catch (err) {
        // A connect that completes after a timeout must not leak its socket.
        attempt.then((c) => c.close(), () => {});
        if (err instanceof HttpClientError) throw err;
        lastError = err;
      }
    }
    if (tcp === undefined) {
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      throw new HttpClientError(
        "connect",
        `Cannot connect to ${host} port ${port}: ${why.replace(/ \(os error \d+\)$/, "")}`,
        { cause: lastError, address: tried },
      );
    }
    tcp.setNoDelay(true);
    timing.connect = performance.now() - start;
    return { tcp, address };
  }

  /**
   * Opens a TCP connection to `host` and `port` as the client's requests
   * do (its resolver, each address in turn, its connect timeout), for a
   * tunnel such as a proxy's `CONNECT`. The caller owns the connection.
   *
   * @param host A host name or an IP address (IPv6 without brackets).
   * @param port The TCP port.
   * @returns The connection, with Nagle's algorithm off.
   * @throws {HttpClientError} `dns`, `connect` or `timeout`, worded as for requests.
   *
   * @example A tunnel to a local listener
   * ```ts
   * import { HttpClient } from "./client.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
   * await using client = new HttpClient();
   * const accepted = listener.accept();
   * using conn = await client.connectTcp("127.0.0.1", listener.addr.port);
   * using peer = await accepted;
   * assertEquals(conn.remoteAddr.port, listener.addr.port);
   * assertEquals(peer.remoteAddr.port, conn.localAddr.port);
   * ```
   */
  async connectTcp(host: string, port: number): Promise<Deno.TcpConn> {
    using deadline = new Deadline(this.#connectTimeout);
    const race = <T>(p: Promise<T>, what: string): Promise<T> =>
      deadline.race(p, () => new HttpClientError("timeout", what));
    const timing: Timing = { dns: 0, connect: 0, tls: 0, firstByte: 0, total: 0 };
    return (await this.#openTcp(host, port, race, performance.now(), timing)).tcp;
  }

  async #connect(
    url: URL,
    key: string,
    deadline: Deadline,
    start: number,
    timing: Timing,
  ): Promise<Connection> {
    const host = bareHost(url);
    const port = portOf(url);
    using connectDeadline = new Deadline(this.#connectTimeout);
    const race = <T>(p: Promise<T>, what: string): Promise<T> => {
      const timeout = () => new HttpClientError("timeout", what);
      return deadline.race(connectDeadline.race(p, timeout), timeout);
    };
    const { tcp, address } = await this.#openTcp(host, port, race, start, timing);
    this.#trace?.(`* Connected to ${host} (${address}) port ${port}`);
    let conn: Deno.Conn = tcp;
    if (url.protocol === "https:") {
      const tls = await Deno.startTls(tcp, {
        hostname: host,
        caCerts: [...systemCaCerts(), ...(this.#caCerts ?? [])],
      });
      conn = tls;
      try {
        await race(tls.handshake(), `Cannot connect to ${host} port ${port}: TLS timed out`);
      } catch (err) {
        try {
          tls.close();
        } catch {
          // Already closed.
        }
        if (err instanceof HttpClientError) throw err;
        const msg = err instanceof Error ? err.message : String(err);
        const kind = /certificate|UnknownIssuer|NotValidForName|Expired/i.test(msg)
          ? "certificate"
          : "tls";
        throw new HttpClientError(kind, `TLS handshake with ${host} failed: ${msg}`, {
          cause: err,
        });
      }
      timing.tls = performance.now() - start;
      this.#trace?.(`* TLS handshake with ${host} done`);
    }
    this.#opened++;
    return new Connection(this.#opened - 1, conn, key, host, address);
  }

  async #exchange(
    url: URL,
    method: string,
    userHeaders: FieldList,
    body: RequestBody | undefined,
    options: RequestOptions,
    deadline: Deadline,
    hooks: { done: () => void },
  ): Promise<ClientResponse> {
    const timing: Timing = { dns: 0, connect: 0, tls: 0, firstByte: 0, total: 0 };
    const bytes = body instanceof Uint8Array ? body : undefined;
    const streamed = body !== undefined && !(body instanceof Uint8Array) ? body : undefined;
    const fields = options.exactHeaders
      ? this.#exactFields(userHeaders, bytes, streamed, options.bodyLength)
      : this.#requestFields(url, method, userHeaders, bytes, streamed, options);
    const target = url.pathname + url.search;
    let headBytes: Uint8Array;
    try {
      headBytes = encodeRequestHead({ method, target, headers: fields });
    } catch (err) {
      throw new HttpClientError("url", `Cannot build the request: ${(err as Error).message}`);
    }
    const wire = bytes !== undefined && bytes.length <= 65536
      ? concat([headBytes, bytes])
      : headBytes;
    const requestHead = this.#trace !== undefined ? new TextDecoder().decode(headBytes) : "";
    const start = performance.now();
    // A streamed body cannot be sent twice, and a non-idempotent request
    // must not be repeated unless it surely never reached the server.
    const replayable = streamed === undefined && IDEMPOTENT.has(method);
    const chunked = streamed !== undefined && options.bodyLength === undefined;
    const what = `Cannot fetch "${url.href}"`;

    for (let attempt = 0;; attempt++) {
      const fresh = (options.fresh ?? false) || attempt > 0;
      const { c, reused } = await this.#acquire(url, fresh, deadline, start, timing);
      if (reused) this.#trace?.(`* Re-using existing connection #${c.id} with host ${c.host}`);
      const off = deadline.on(() => c.close());
      let upload: Promise<void> = Promise.resolve();
      let uploadError: unknown = undefined;
      const firstByte = { at: 0 };
      try {
        this.#traceHead(">", requestHead);
        c.watchFirstByte(firstByte);
        await writeAll(c.conn, wire);
        if (wire === headBytes && bytes !== undefined) await writeAll(c.conn, bytes);
        if (streamed !== undefined) {
          upload = pump(c.conn, streamed, chunked, options.bodyLength);
          // A failed upload ends the exchange: the connection is unusable.
          upload.catch((err) => {
            uploadError = err;
            c.close();
          });
        }
        const head = await this.#readFinal(c, method, options);
        if (head === null) {
          // A reused connection the server closed while idle: retry once on a
          // fresh one, as curl does; nothing was received, so it is safe.
          this.#destroy(c);
          off();
          if (uploadError !== undefined) throw uploadError;
          if (reused && replayable) continue;
          throw new HttpClientError("empty", `${what}: the server closed the connection`);
        }
        timing.firstByte = (firstByte.at || performance.now()) - start;
        this.#traceResponseHead(head);
        const cancelled = { value: false };
        const read: BodyReadOptions = {};
        return new ClientResponse({
          url,
          method,
          head,
          timing,
          requestHead,
          connectionId: c.id,
          reused,
          remoteAddress: c.address,
          upload,
          cancelled,
          read,
          body: this.#body(c, head, upload, {
            deadline,
            off,
            hooks,
            start,
            timing,
            what,
            cancelled,
            read,
          }),
        });
      } catch (err) {
        off();
        this.#destroy(c);
        // The caller's own body source failed (which closed the connection):
        // that is the caller's error to see.
        if (uploadError !== undefined) throw uploadError;
        if (deadline.expired) {
          throw new HttpClientError("timeout", `${what}: timed out`, { cause: err });
        }
        if (
          reused && replayable && firstByte.at === 0 && !(err instanceof HttpClientError) &&
          !(err instanceof HttpError)
        ) {
          continue; // the idle connection was dead: retry once on a new one
        }
        throw receiveError(err, what);
      }
    }
  }

  /** Reads heads until a final one, handing interim ones to the caller; `null` on a clean EOF. */
  async #readFinal(
    c: Connection,
    method: string,
    options: RequestOptions,
  ): Promise<ResponseHead | null> {
    const limit = options.headTimeout ?? this.#headTimeout;
    if (Number.isFinite(limit)) {
      // The sweeper closes the connection when the head is late.
      c.headLimit = limit;
      c.headWaits.step();
      c.awaitingHead = true;
      this.#sweep(limit);
    }
    try {
      for (;;) {
        const head = await readResponseHead(c.reader, { requestMethod: method });
        if (head === null || head.status >= 200 || head.status === 101) return head;
        // Interim responses (100 Continue, 103 Early Hints): RFC 9110 §15.2.
        this.#traceResponseHead(head);
        await options.onInterim?.(head);
      }
    } catch (err) {
      if (c.timedOut) {
        throw new HttpClientError(
          "timeout",
          `Cannot read the response from ${c.host}: no answer in ${limit} ms`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      c.awaitingHead = false;
    }
  }

  async *#body(
    c: Connection,
    head: ResponseHead,
    upload: Promise<void>,
    ctx: {
      deadline: Deadline;
      off: () => void;
      hooks: { done: () => void };
      start: number;
      timing: Timing;
      what: string;
      cancelled: { value: boolean };
      read: BodyReadOptions;
    },
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let complete = false;
    c.inBody = true;
    try {
      if (ctx.cancelled.value) return;
      const options = { readSize: this.#readSize, ...ctx.read };
      for await (const piece of bodyReader(c.reader, head.body, options)) yield piece;
      complete = true;
    } catch (err) {
      if (ctx.deadline.expired) throw new HttpClientError("timeout", `${ctx.what}: timed out`);
      if (c.closed && !(err instanceof HttpError)) {
        throw new HttpClientError("timeout", `${ctx.what}: the body stalled`, { cause: err });
      }
      throw receiveError(err, ctx.what);
    } finally {
      c.inBody = false;
      ctx.timing.total = performance.now() - ctx.start;
      ctx.off();
      ctx.hooks.done();
      c.uses++;
      const sent = await upload.then(() => true, () => false);
      if (complete && sent && head.keepAlive && !c.closed) {
        this.#release(c, true);
        this.#trace?.(`* Connection #${c.id} to host ${c.host} left intact`);
      } else {
        this.#destroy(c);
        this.#trace?.(`* Closing connection #${c.id}`);
      }
    }
  }

  #exactFields(
    fields: FieldList,
    bytes: Uint8Array | undefined,
    streamed: RequestBody | undefined,
    bodyLength: number | undefined,
  ): FieldList {
    const out = fields;
    out.delete("content-length");
    out.delete("transfer-encoding");
    if (bytes !== undefined) out.set("Content-Length", String(bytes.length));
    else if (streamed !== undefined) {
      if (bodyLength !== undefined) out.set("Content-Length", String(bodyLength));
      else out.set("Transfer-Encoding", "chunked");
    }
    return out;
  }

  #requestFields(
    url: URL,
    method: string,
    user: FieldList,
    bytes: Uint8Array | undefined,
    streamed: RequestBody | undefined,
    options: RequestOptions,
  ): FieldList {
    const defaults: [string, string][] = [
      ["Host", url.host],
      ["User-Agent", this.#userAgent],
      ["Accept", "*/*"],
    ];
    if (bytes !== undefined) {
      defaults.push(["Content-Length", String(bytes.length)]);
      defaults.push(["Content-Type", "application/x-www-form-urlencoded"]);
    } else if (streamed !== undefined) {
      if (options.bodyLength !== undefined) {
        defaults.push(["Content-Length", String(options.bodyLength)]);
      } else defaults.push(["Transfer-Encoding", "chunked"]);
    } else if (method === "POST" || method === "PUT") {
      defaults.push(["Content-Length", "0"]);
    }
    const userNames = new Set<string>();
    for (const [n] of user) userNames.add(n.toLowerCase());
    for (const n of options.omitHeaders ?? []) userNames.add(n.toLowerCase());
    const framing = bytes !== undefined || streamed !== undefined;
    const out = new FieldList(
      defaults.filter(([n]) =>
        !userNames.has(n.toLowerCase()) ||
        (framing && /^(content-length|transfer-encoding)$/i.test(n))
      ),
    );
    for (const [n, v] of user) {
      // The framing of a body is never the user's to break.
      if (framing && /^(content-length|transfer-encoding)$/i.test(n)) continue;
      out.append(n, v);
    }
    return out;
  }

  #traceHead(prefix: string, head: string): void {
    if (this.#trace === undefined) return;
    for (const line of head.split("\r\n").slice(0, -1)) this.#trace(`${prefix} ${line}`.trimEnd());
  }

  #traceResponseHead(head: ResponseHead): void {
    if (this.#trace === undefined) return;
    this.#trace(`< ${head.version} ${head.status} ${head.reason}`.trimEnd());
    for (const [n, v] of head.headers) this.#trace(`< ${n}: ${v}`);
    this.#trace("<");
  }

  /** Closes the idle connections; connections in use close when their exchange ends. */
  close(): void {
    this.#closed = true;
    for (const pool of this.#pools.values()) {
      for (const c of [...pool.idle]) this.#destroy(c);
    }
    if (this.#active.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Closes the idle connections (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/** Streams a request body, chunked or as is (then exactly `length` bytes). */
async function pump(
  conn: Deno.Conn,
  body: AsyncIterable<Uint8Array>,
  chunked: boolean,
  length: number | undefined,
): Promise<void> {
  let sent = 0;
  for await (const piece of body) {
    if (piece.length === 0) continue;
    sent += piece.length;
    // Bytes past the announced length would be read as the next request.
    if (!chunked && length !== undefined && sent > length) {
      throw new RangeError(`Cannot send the request body: longer than its bodyLength ${length}`);
    }
    await writeAll(conn, chunked ? encodeChunk(piece) : piece);
  }
  if (!chunked && length !== undefined && sent < length) {
    throw new RangeError(
      `Cannot send the request body: ${sent} bytes, shorter than its bodyLength ${length}`,
    );
  }
  if (chunked) await writeAll(conn, LAST_CHUNK);
}
