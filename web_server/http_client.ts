/**
 * A small HTTP/1.1 client on `Deno.connect` / `Deno.startTls` and the
 * project's codec (`lib/http/`): keep-alive connection reuse per origin,
 * redirects, timeouts, a timing breakdown (DNS, connect, TLS, first byte,
 * total) and failures classified like curl's exit codes.
 *
 * The CLI in `client.ts` is a thin layer over {@linkcode HttpClient}.
 *
 * @example Fetching a page from a local server
 * ```ts
 * import { HttpClient } from "./http_client.ts";
 * await using server = Deno.serve({ port: 0, onListen() {} }, () => new Response("hi"));
 * await using client = new HttpClient();
 * const res = await client.request(`http://127.0.0.1:${server.addr.port}/`);
 * console.assert(res.status === 200 && (await res.text()) === "hi");
 * ```
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import {
  type BodyKind,
  bodyReader,
  BufferedReader,
  encodeRequestHead,
  type FieldList,
  HttpError,
  readResponseHead,
  type ResponseHead,
  writeAll,
} from "../lib/http/mod.ts";
import { concat } from "../lib/bytes.ts";

export type { BodyKind, FieldList, HttpVersion, ResponseHead } from "../lib/http/mod.ts";

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
 * A failed transfer, classified so the CLI can exit with the matching code.
 *
 * @example
 * ```ts
 * import { HttpClientError } from "./http_client.ts";
 * const err = new HttpClientError("dns", 'Cannot resolve host "x": no such name');
 * console.assert(err.exitCode === 6);
 * ```
 */
export class HttpClientError extends Error {
  /** The failure class. */
  readonly kind: FailureKind;
  /** The exit code for this class ({@linkcode EXIT_CODES}). */
  readonly exitCode: number;

  /**
   * Creates a classified client error.
   *
   * @param kind The failure class.
   * @param message What failed, then why.
   * @param options Standard error options (`cause`).
   */
  constructor(kind: FailureKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpClientError";
    this.kind = kind;
    this.exitCode = EXIT_CODES[kind];
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
   * Name resolution. The default uses the system resolver (`getaddrinfo`:
   * hosts file, then DNS).
   * @default {systemResolve}
   */
  resolve?: Resolver;
  /** Extra trusted CA certificates in PEM, for https. */
  caCerts?: string[];
  /**
   * Maximum time for resolving and connecting (TCP and TLS), in ms.
   * @default {30000}
   */
  connectTimeout?: number;
  /** Receives verbose trace lines (`* …`, `> …`, `< …`), as curl `-v` prints them. */
  trace?: (line: string) => void;
  /**
   * The User-Agent field sent unless a request sets its own.
   * @default {"netkit-client/0.1"}
   */
  userAgent?: string;
}

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
  headers?: Iterable<readonly [string, string]>;
  /** Names of default fields not to send (curl's `-H "Name:"`). */
  omitHeaders?: string[];
  /** The request body, sent with Content-Length. */
  body?: Uint8Array;
  /**
   * Maximum time for the whole transfer, body included, in ms.
   * @default {Infinity}
   */
  timeout?: number;
  /**
   * Follow up to this many redirects (301, 302, 303, 307, 308 with a
   * Location); 0 returns the redirect itself.
   * @default {0}
   */
  maxRedirects?: number;
  /** Called with each redirect response before it is followed (its body is discarded). */
  onRedirect?: (response: ClientResponse) => void;
}

/**
 * Resolves a host with the system resolver (hosts file, then DNS), IPv4 first
 * as curl's default happy-eyeballs preference tends to end up on loopback.
 *
 * @param host A host name or address literal.
 * @returns The addresses.
 *
 * @example
 * ```ts
 * import { systemResolve } from "./http_client.ts";
 * console.assert((await systemResolve("localhost")).length > 0);
 * ```
 */
export async function systemResolve(host: string): Promise<string[]> {
  const found = await lookup(host, { all: true, verbatim: true });
  const v4 = found.filter((a) => a.family === 4).map((a) => a.address);
  const v6 = found.filter((a) => a.family === 6).map((a) => a.address);
  return [...v4, ...v6];
}

/** One connection to an origin, with its read buffer. */
class Connection {
  readonly id: number;
  readonly conn: Deno.Conn;
  readonly reader: BufferedReader;
  readonly host: string;
  readonly address: string;
  /** Exchanges completed on this connection. */
  uses = 0;
  /** Set while a response is awaited; the time its first byte arrived. */
  firstByteAt = 0;
  #watching = false;
  #closed = false;

  constructor(id: number, conn: Deno.Conn, host: string, address: string) {
    this.id = id;
    this.conn = conn;
    this.host = host;
    this.address = address;
    const source = {
      read: async (p: Uint8Array): Promise<number | null> => {
        const n = await conn.read(p);
        if (this.#watching && n !== null && n > 0) {
          this.#watching = false;
          this.firstByteAt = performance.now();
        }
        return n;
      },
    };
    this.reader = new BufferedReader(source);
  }

  /** Starts watching for the first byte of the next response. */
  watchFirstByte(): void {
    this.firstByteAt = this.reader.buffered > 0 ? performance.now() : 0;
    this.#watching = this.firstByteAt === 0;
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

/** A timer shared by the phases of a transfer; listeners run once when it passes. */
class Deadline {
  fired = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #listeners = new Set<() => void>();

  constructor(ms: number) {
    if (Number.isFinite(ms)) {
      this.#timer = setTimeout(() => {
        this.fired = true;
        for (const fn of [...this.#listeners]) fn();
        this.#listeners.clear();
      }, Math.max(0, ms));
    }
  }

  /** Runs `fn` when the deadline passes (at once if it has); returns an unsubscribe function. */
  on(fn: () => void): () => void {
    if (this.fired) {
      fn();
      return () => {};
    }
    if (this.#timer === undefined) return () => {};
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Races a promise against the deadline; loses with a timeout error. */
  race<T>(p: Promise<T>, message: string): Promise<T> {
    if (this.#timer === undefined) return p;
    return new Promise<T>((resolve, reject) => {
      const off = this.on(() => reject(new HttpClientError("timeout", message)));
      p.then(resolve, reject).finally(off);
    });
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }
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

function originKey(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

function bareHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith("[") ? h.slice(1, -1) : h;
}

function portOf(url: URL): number {
  return url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

function isIpLiteral(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
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

/**
 * A response whose body has not been read yet. Read it once, with
 * {@linkcode ClientResponse.body}, {@linkcode ClientResponse.bytes},
 * {@linkcode ClientResponse.text} or {@linkcode ClientResponse.discard}; the
 * connection returns to the pool when the body is complete.
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
  #body: AsyncGenerator<Uint8Array, void, undefined> | null;

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
      body: AsyncGenerator<Uint8Array, void, undefined>;
    },
  ) {
    this.url = init.url;
    this.method = init.method;
    this.head = init.head;
    this.timing = init.timing;
    this.requestHead = init.requestHead;
    this.connectionId = init.connectionId;
    this.reused = init.reused;
    this.#body = init.body;
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
   * @returns The pieces.
   */
  body(): AsyncGenerator<Uint8Array, void, undefined> {
    const b = this.#body;
    if (b === null) throw new TypeError("Cannot read the response body: it was already read");
    this.#body = null;
    return b;
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
    for await (const p of this.body()) n += p.length;
    return n;
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * An HTTP/1.1 client that keeps one idle connection per origin for reuse.
 * Dispose it (or call {@linkcode HttpClient.close}) to close idle
 * connections.
 *
 * @example Two requests over one connection
 * ```ts
 * import { HttpClient } from "./http_client.ts";
 * await using server = Deno.serve({ port: 0, onListen() {} }, () => new Response("x"));
 * await using client = new HttpClient();
 * const base = `http://127.0.0.1:${server.addr.port}`;
 * await (await client.request(`${base}/a`)).discard();
 * await (await client.request(`${base}/b`)).discard();
 * console.assert(client.connectionsOpened === 1);
 * ```
 */
export class HttpClient implements AsyncDisposable {
  #idle = new Map<string, Connection>();
  #resolve: Resolver;
  #caCerts: string[] | undefined;
  #connectTimeout: number;
  #trace: ((line: string) => void) | undefined;
  #userAgent: string;
  #opened = 0;

  /**
   * Creates a client.
   *
   * @param options Resolver, CA certificates, connect timeout, trace sink, User-Agent.
   */
  constructor(options: HttpClientOptions = {}) {
    this.#resolve = options.resolve ?? systemResolve;
    this.#caCerts = options.caCerts;
    this.#connectTimeout = options.connectTimeout ?? 30000;
    this.#trace = options.trace;
    this.#userAgent = options.userAgent ?? "netkit-client/0.1";
  }

  /** How many connections this client has opened so far. */
  get connectionsOpened(): number {
    return this.#opened;
  }

  /**
   * Sends a request and reads the response head, following redirects when
   * asked. The body is left to read from the returned response.
   *
   * @param url An http or https URL (a missing scheme means http, as in curl).
   * @param options Method, headers, body, timeout, redirects.
   * @returns The response, body unread.
   * @throws {HttpClientError} Classified by failure (DNS, connect, TLS, timeout, reply…).
   */
  async request(url: string | URL, options: RequestOptions = {}): Promise<ClientResponse> {
    const target = parseUrl(url);
    const method = options.method ?? (options.body !== undefined ? "POST" : "GET");
    const body = options.body;
    const headers: [string, string][] = [...(options.headers ?? [])].map(([n, v]) => [n, v]);
    const maxRedirects = options.maxRedirects ?? 0;
    const deadline = new Deadline(options.timeout ?? Infinity);
    try {
      return await this.#follow(target, method, headers, body, deadline, maxRedirects, options);
    } catch (err) {
      deadline.clear();
      throw err;
    }
  }

  async #follow(
    target: URL,
    method: string,
    headers: [string, string][],
    body: Uint8Array | undefined,
    deadline: Deadline,
    maxRedirects: number,
    options: RequestOptions,
  ): Promise<ClientResponse> {
    for (let hop = 0;; hop++) {
      const hooks = { done: () => {} };
      const res = await this.#exchange(
        target,
        method,
        headers,
        body,
        deadline,
        hooks,
        options.omitHeaders ?? [],
      );
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
      next = parseUrl(next);
      // As curl: 303 turns anything but HEAD into GET; 301/302 turn POST into
      // GET (what browsers do; RFC 9110 §15.4.2 allows it).
      if (
        (res.status === 303 && method !== "HEAD") ||
        ((res.status === 301 || res.status === 302) && method === "POST")
      ) {
        method = "GET";
        body = undefined;
        headers = headers.filter(([n]) => !/^content-(length|type)$/i.test(n));
      }
      // Credentials do not follow a redirect to another origin (curl's default).
      if (originKey(next) !== originKey(target)) {
        headers = headers.filter(([n]) => !/^(authorization|cookie)$/i.test(n));
      }
      this.#trace?.(`* Issue another request to this URL: '${next.href}'`);
      target = next;
    }
  }

  async #connect(url: URL, deadline: Deadline, start: number, timing: Timing): Promise<Connection> {
    const host = bareHost(url);
    const port = portOf(url);
    const connectDeadline = new Deadline(this.#connectTimeout);
    const race = <T>(p: Promise<T>, what: string): Promise<T> =>
      deadline.race(connectDeadline.race(p, what), what);
    try {
      let addresses: string[];
      if (isIpLiteral(host)) {
        addresses = [host];
      } else {
        try {
          addresses = await race(this.#resolve(host), `Cannot resolve host "${host}": timed out`);
        } catch (err) {
          if (err instanceof HttpClientError) throw err;
          const code = (err as { code?: string }).code ?? "";
          const why = code === "ENOTFOUND" ? "no such name" : (err as Error).message;
          throw new HttpClientError("dns", `Cannot resolve host "${host}": ${why}`, {
            cause: err,
          });
        }
        if (addresses.length === 0) {
          throw new HttpClientError("dns", `Cannot resolve host "${host}": no addresses`);
        }
      }
      timing.dns = performance.now() - start;
      let tcp: Deno.TcpConn | undefined;
      let address = "";
      let lastError: unknown;
      for (const a of addresses) {
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
          { cause: lastError },
        );
      }
      timing.connect = performance.now() - start;
      this.#trace?.(`* Connected to ${host} (${address}) port ${port}`);
      let conn: Deno.Conn = tcp;
      if (url.protocol === "https:") {
        const tls = await Deno.startTls(tcp, {
          hostname: host,
          ...(this.#caCerts !== undefined ? { caCerts: this.#caCerts } : {}),
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
      return new Connection(this.#opened - 1, conn, host, address);
    } finally {
      connectDeadline.clear();
    }
  }

  async #exchange(
    url: URL,
    method: string,
    userHeaders: [string, string][],
    body: Uint8Array | undefined,
    deadline: Deadline,
    hooks: { done: () => void },
    omit: string[],
  ): Promise<ClientResponse> {
    const timing: Timing = { dns: 0, connect: 0, tls: 0, firstByte: 0, total: 0 };
    const key = originKey(url);
    const fields = this.#requestFields(url, method, userHeaders, body, omit);
    const target = url.pathname + url.search;
    let headBytes: Uint8Array;
    try {
      headBytes = encodeRequestHead({ method, target, headers: fields });
    } catch (err) {
      throw new HttpClientError("url", `Cannot build the request: ${(err as Error).message}`);
    }
    const wire = body !== undefined && body.length <= 65536 ? concat([headBytes, body]) : headBytes;
    const requestHead = new TextDecoder().decode(headBytes);
    const start = performance.now();

    for (let attempt = 0;; attempt++) {
      let conn = this.#idle.get(key);
      const reused = conn !== undefined && attempt === 0;
      if (conn !== undefined) this.#idle.delete(key);
      if (!reused) {
        conn?.close();
        conn = await this.#connect(url, deadline, start, timing);
      } else {
        this.#trace?.(`* Re-using existing connection #${conn!.id} with host ${conn!.host}`);
      }
      const c = conn!;
      const off = deadline.on(() => c.close());
      const what = `Cannot fetch "${url.href}"`;
      try {
        this.#traceHead(">", requestHead);
        c.watchFirstByte();
        await writeAll(c.conn, wire);
        if (wire === headBytes && body !== undefined) await writeAll(c.conn, body);
        let head: ResponseHead | null;
        for (;;) {
          head = await readResponseHead(c.reader, { requestMethod: method });
          if (head === null || head.status >= 200 || head.status === 101) break;
          this.#traceResponseHead(head); // interim 1xx: skip it (RFC 9110 §15.2)
        }
        if (head === null) {
          // A reused connection the server closed while idle: retry once on a
          // fresh one, as curl does; nothing was received, so it is safe.
          c.close();
          if (reused) continue;
          throw new HttpClientError("empty", `${what}: the server closed the connection`);
        }
        timing.firstByte = (c.firstByteAt || performance.now()) - start;
        this.#traceResponseHead(head);
        const response = new ClientResponse({
          url,
          method,
          head,
          timing,
          requestHead,
          connectionId: c.id,
          reused,
          body: this.#body(c, key, head, { deadline, off, hooks, start, timing, what }),
        });
        return response;
      } catch (err) {
        off();
        c.close();
        if (deadline.fired) {
          throw new HttpClientError("timeout", `${what}: timed out`, { cause: err });
        }
        if (reused && c.firstByteAt === 0 && !(err instanceof HttpClientError)) {
          continue; // the idle connection was dead: retry once on a new one
        }
        throw receiveError(err, what);
      }
    }
  }

  async *#body(
    c: Connection,
    key: string,
    head: ResponseHead,
    ctx: {
      deadline: Deadline;
      off: () => void;
      hooks: { done: () => void };
      start: number;
      timing: Timing;
      what: string;
    },
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let complete = false;
    try {
      for await (const piece of bodyReader(c.reader, head.body, { readSize: 262144 })) yield piece;
      complete = true;
    } catch (err) {
      if (ctx.deadline.fired) throw new HttpClientError("timeout", `${ctx.what}: timed out`);
      throw receiveError(err, ctx.what);
    } finally {
      ctx.timing.total = performance.now() - ctx.start;
      ctx.off();
      ctx.hooks.done();
      c.uses++;
      if (complete && head.keepAlive && !c.closed) {
        this.#idle.get(key)?.close();
        this.#idle.set(key, c);
        this.#trace?.(`* Connection #${c.id} to host ${c.host} left intact`);
      } else {
        c.close();
        this.#trace?.(`* Closing connection #${c.id}`);
      }
    }
  }

  #requestFields(
    url: URL,
    method: string,
    user: [string, string][],
    body: Uint8Array | undefined,
    omit: string[],
  ): [string, string][] {
    const defaults: [string, string][] = [
      ["Host", url.host],
      ["User-Agent", this.#userAgent],
      ["Accept", "*/*"],
    ];
    if (body !== undefined) {
      defaults.push(["Content-Length", String(body.length)]);
      defaults.push(["Content-Type", "application/x-www-form-urlencoded"]);
    } else if (method === "POST" || method === "PUT") {
      defaults.push(["Content-Length", "0"]);
    }
    const userNames = new Set(user.map(([n]) => n.toLowerCase()));
    for (const n of omit) userNames.add(n.toLowerCase());
    const out = defaults.filter(([n]) => !userNames.has(n.toLowerCase()));
    for (const [n, v] of user) {
      // The Content-Length of a body is never the user's to break.
      if (body !== undefined && n.toLowerCase() === "content-length") continue;
      out.push([n, v]);
    }
    if (body !== undefined && userNames.has("content-length")) {
      out.push(["Content-Length", String(body.length)]);
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

  /** Closes the idle connections. */
  close(): void {
    for (const c of this.#idle.values()) c.close();
    this.#idle.clear();
  }

  /** Closes the idle connections (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
