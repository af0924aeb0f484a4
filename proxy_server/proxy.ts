/**
 * A caching HTTP/1.1 proxy on `Deno.listen` and the shared codec
 * `lib/http/`: forward mode (absolute-form requests and CONNECT tunnels)
 * or reverse mode (`upstream`), keep-alive on both sides with a bounded
 * upstream pool per origin, streaming bodies, and an RFC 9111 shared cache
 * ({@link ./cache.ts} for the policy, {@link ./store.ts} for the storage).
 *
 * @example Start a reverse proxy in front of an origin, then stop it
 * ```ts
 * import { startProxy } from "./proxy.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * await using proxy = await startProxy({ port: 0, upstream: "http://127.0.0.1:9" });
 * assert(proxy.port > 0);
 * ```
 *
 * @module
 */
import { concat, writeAll } from "../lib/bytes.ts";
import { delay } from "../lib/deadline.ts";
import { type ClientResponse, HttpClient, HttpClientError } from "../lib/http/client.ts";
import { encodeChunk, encodeResponseHead, LAST_CHUNK } from "../lib/http/encoder.ts";
import { HttpError } from "../lib/http/errors.ts";
import { parseHttpDate } from "../lib/http/dates.ts";
import { FieldList, listTokens, splitList } from "../lib/http/fields.ts";
import { type ByteRange, byterangesFraming, rangesToServe } from "../lib/http/ranges.ts";
import type { RequestHead, ResponseHead } from "../lib/http/heads.ts";
import { defaultMaxConnections } from "../lib/http/limits.ts";
import {
  type AccessLogEntry,
  HttpServer,
  SERVER_DEADLINES,
  type ServerConnection,
  type ServerDeadlines,
  type ServerOptions,
  splice,
} from "../lib/http/server.ts";
import { createRandom } from "../lib/random.ts";
import {
  type CacheStatusParams,
  currentAge,
  type FieldReader,
  formatCacheStatus,
  freshnessLifetime,
  HOP_BY_HOP,
  invalidatedUris,
  isNotModified,
  mayServeStaleDisconnected,
  mayServeStaleOnError,
  parseCacheControl,
  selectAction,
  selectsVariant,
  storability,
  targetedFields,
  updateStoredFields,
  validatorFields,
  varyKey,
} from "./cache.ts";
import {
  CacheStore,
  type Entry,
  type EntryMeta,
  type EntryWriter,
  type StoreOptions,
} from "./store.ts";
import { Flight } from "./_flight.ts";
import { parseContentRange, PartStore, strongValidator } from "./_parts.ts";
import type { SharedCache, SharedEntry } from "./shared_cache.ts";
import { Metrics } from "./_metrics.ts";
import type { Loops } from "./_loops.ts";
import {
  ageOf,
  type Cidr,
  errorPage,
  type Exchange,
  listed,
  plainRequest,
  type Ready,
  readyBytes,
  resolveTarget,
  squidLine,
  withLoopback,
} from "./_hits.ts";

export { parseCidr } from "./_hits.ts";

/** Options of {@linkcode startProxy}; the client-side deadlines and caps are the server core's. */
export interface ProxyOptions
  extends ServerDeadlines, Pick<ServerOptions, "maxConnectionsPerIp" | "onWarning" | "ioUring"> {
  /**
   * Address to listen on.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * Port to listen on (0 picks a free one).
   * @default {8888}
   */
  port?: number;
  /**
   * Reverse mode: the origin to accelerate, such as `http://127.0.0.1:8080`
   * or `https://origin.example`. Without it the proxy runs in forward mode.
   * @default {undefined}
   */
  upstream?: string;
  /**
   * Extra CA certificates (PEM) trusted for `https://` upstreams, besides the system's.
   * @default {[]}
   */
  upstreamCaCerts?: string[];
  /**
   * Client connections open at once; each may hold an upstream connection too.
   * @default {defaultMaxConnections(2)}
   */
  maxConnections?: number;
  /**
   * Client networks allowed to use the proxy, as CIDRs. Loopback is always
   * allowed; nothing else is unless listed, so it never becomes an open proxy.
   * @default {[]}
   */
  allow?: string[];
  /**
   * Client networks allowed to send `PURGE` (by URL, or by `Surrogate-Key`),
   * as CIDRs. Loopback always may; anyone else gets 403.
   * @default {[]}
   */
  purgeAllow?: string[];
  /**
   * Ports CONNECT may reach.
   * @default {[443]}
   */
  connectPorts?: number[];
  /**
   * The cache store; by default a memory-only store.
   * @default {undefined}
   */
  store?: CacheStore;
  /**
   * Options for the default store, when `store` is not given.
   * @default {{}}
   */
  storeOptions?: StoreOptions;
  /**
   * Fraction (0–1) of client connections dropped before they are answered.
   * @default {0}
   */
  dropRate?: number;
  /**
   * Milliseconds to wait before sending each response.
   * @default {0}
   */
  delay?: number;
  /**
   * Seed of the random choices (`dropRate`), for reproducible runs.
   * @default {Date.now()}
   */
  seed?: number;
  /**
   * Receives one Squid-format access log line per request.
   * @default {undefined}
   */
  log?: (line: string) => void;
  /**
   * Upstream connect, response-head and body-read timeout in ms (→ 504).
   * @default {30000}
   */
  timeout?: number;
  /**
   * Largest request body accepted, in bytes (→ 413).
   * @default {1073741824}
   */
  maxBodySize?: number;
  /**
   * Idle upstream connections kept per origin: as many as the clients that
   * keep the origin busy at once, or each answer closes one and the next
   * request opens another (16 cost two thirds of the revalidation path's
   * throughput at 64 clients).
   * @default {64}
   */
  poolSize?: number;
  /**
   * Upstream connections open at once per origin; more requests wait.
   * @default {256}
   */
  maxConnectionsPerOrigin?: number;
  /**
   * The cache's name in Cache-Status and its pseudonym in Via.
   * @default {"netkit"}
   */
  name?: string;
  /**
   * Targeted cache-control fields obeyed instead of `Cache-Control` and
   * `Expires` when a response carries one (RFC 9213), in order of precedence.
   * @default {["CDN-Cache-Control"]}
   */
  cacheControlTargets?: string[];
  /**
   * Seconds of staleness up to which a stored response is served when the
   * origin cannot be reached at all (RFC 9111 §4.2.4; Squid's `max_stale`).
   * @default {604800}
   */
  maxStale?: number;
  /**
   * Seconds of staleness up to which a stored response is served when the
   * origin fails (5xx, refused, timeout) and neither the request nor the
   * response has `stale-if-error` (RFC 5861; Varnish's grace). Unset: only
   * the directives decide.
   * @default {undefined}
   */
  staleIfError?: number;
  /**
   * Serve `/metrics` (Prometheus text) and `/healthz` on this port of
   * 127.0.0.1 (0 picks a free one). Unset: no admin port.
   * @default {undefined}
   */
  adminPort?: number;
  /**
   * The tier shared with other proxies (Redis): looked up after a local miss,
   * written after every store, and told of every purge. Unset: this node's
   * cache only.
   * @default {undefined}
   */
  sharedCache?: SharedCache;
  /**
   * Event loops in all: the main loop plus `workers - 1` hit loops (Web
   * Workers on the same port, `SO_REUSEPORT`) that answer plain requests for
   * fresh objects of up to 256 KiB from copies, each keeping up to the
   * memory tier's size of them, and pass every other request to the main
   * loop (see `_loop.ts`). Off (1) with `delay` or `dropRate`.
   * @default {1}
   */
  workers?: number;
}

/** A running proxy; {@linkcode startProxy} returns it. */
export interface Proxy extends AsyncDisposable {
  /** The address it listens on. */
  readonly hostname: string;
  /** The port it listens on. */
  readonly port: number;
  /** The cache store. */
  readonly store: CacheStore;
  /** The admin port (`/metrics`, `/healthz`) on 127.0.0.1, when `adminPort` was given. */
  readonly adminPort: number | undefined;
  /**
   * Stops accepting, lets requests in flight finish (within a grace
   * period), then closes every connection and the upstream pool.
   */
  close(): Promise<void>;
}

/** What the proxy's cache logic needs to read a stored response the same way everywhere. */
interface Policy {
  via: string;
  targets: readonly string[];
}

/**
 * A shared-tier entry's memo, its `Age` and `Cache-Status` lines of one
 * second, and the whole response of that second for the body it was made
 * with (the shared tier hands out the same body again while its value in
 * Redis stays the same).
 */
interface SharedMemo {
  memo: Memo;
  age: number;
  tail: Uint8Array;
  body: Uint8Array | null;
  full: Uint8Array | null;
}

interface Memo extends Ready {
  fields: FieldList;
  /** The fields as the caching policy reads them (RFC 9213 targeted field applied). */
  policy: FieldReader;
  simple: boolean;
}

const encoder = new TextEncoder();

/** Bytes of 206 parts held in memory until they combine; a larger representation is not assembled. */
const PARTS_BUDGET = 16 << 20;

/** Size of the buffers a response body moves through on the miss path (the client's read size). */
const BODY_BUFFER = 65536;

/**
 * Size of the buffers a body of at most this length moves through: a small
 * object's miss does not hold 64 KiB for 1 KiB (with 32 misses at once, about
 * 2 MiB of resident memory less).
 */
const SMALL_BODY_BUFFER = 4096;

/** Free body buffers; a miss takes one and gives it back, so pieces cost no allocation. */
const bodyBuffers: Uint8Array[] = [];
/** Free buffers of {@linkcode SMALL_BODY_BUFFER} bytes, for bodies that fit one. */
const smallBodyBuffers: Uint8Array[] = [];
/**
 * Free buffers a body piece is framed in for a chunked answer (a piece plus
 * its size line and CRLFs): each chunk is written before the next is framed,
 * so a chunked stream makes no garbage per piece (with a fresh array per
 * piece, a 1 GiB chunked download peaked 85 MiB over the baseline).
 */
const chunkBuffers: Uint8Array[] = [];

/** The node's own store for a body only the shared tier keeps: takes nothing. */
const DISCARD: EntryWriter = {
  write: () => Promise.resolve(true),
  commit: () => Promise.resolve(),
  abort: () => Promise.resolve(),
};

/** A 206 being received whose bytes may complete a stored representation. */
interface PendingPart {
  start: number;
  end: number;
  size: number;
  validator: string;
  pieces: Uint8Array[];
  got: number;
}

/**
 * Starts the proxy.
 *
 * @param options Listener, mode, cache and limits.
 * @returns The running proxy.
 *
 * @example A forward proxy on a free port
 * ```ts
 * import { startProxy } from "./proxy.ts";
 * const proxy = await startProxy({ port: 0 });
 * await proxy.close();
 * ```
 */
export async function startProxy(options: ProxyOptions = {}): Promise<Proxy> {
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new RangeError(`Cannot run ${workers} event loops: the number must be 1 to 64`);
  }
  const store = options.store ?? (await CacheStore.open(options.storeOptions ?? {}));
  const proxy = new ProxyServer(options, store);
  if (workers > 1) {
    try {
      await proxy.startLoops(workers - 1, options);
    } catch (err) {
      await proxy.close();
      throw err;
    }
  }
  return proxy;
}

/** Per-connection verdicts, taken once at the first request. */
interface ClientState {
  allowed: boolean;
  /** Whether it may send PURGE. */
  purge: boolean;
  drop: boolean;
}

class ProxyServer implements Proxy {
  readonly hostname: string;
  readonly port: number;
  readonly store: CacheStore;
  readonly adminPort: number | undefined;
  #server: HttpServer;
  #metrics: Metrics | undefined;
  #admin: Deno.HttpServer<Deno.NetAddr> | undefined;
  #client: HttpClient;
  #upstream: URL | undefined;
  #allow: Cidr[];
  #purgeAllow: Cidr[];
  #connectPorts: Set<number>;
  #random: () => number;
  #dropRate: number;
  #delay: number;
  #logging: boolean;
  #timeout: number;
  #name: string;
  #via: string;
  #policy: Policy;
  #maxStale: number;
  #staleIfError: { fallback?: number };
  #clients = new WeakMap<ServerConnection, ClientState>();
  #urlMemo = new Map<string, string>();
  #revalidating = new Set<string>();
  #flights = new Map<string, Flight>();
  /** 206 parts waiting for the rest of their representation (RFC 9111 §3.4). */
  #parts = new PartStore(PARTS_BUDGET);
  #shared: SharedCache | undefined;
  /** Flights whose leader found the response in the shared tier: their waiters serve it. */
  #sharedHits = new WeakMap<Flight, Entry>();
  /** The shared-tier leases that flights' leaders fetch under. */
  #leases = new WeakMap<Flight, { release(): Promise<void> }>();
  /** Memos of the shared tier's entries that the node's own store cannot keep. */
  #sharedMemos = new WeakMap<EntryMeta, SharedMemo>();
  #closed: Promise<void> | undefined;
  /** With `workers`: the hit loops, and the listener they relay connections to. */
  #loops: Loops | undefined;
  #relay: HttpServer | undefined;
  #onLog: ((entry: AccessLogEntry) => void) | undefined;

  constructor(options: ProxyOptions, store: CacheStore) {
    this.store = store;
    if (options.upstream !== undefined) {
      const u = new URL(options.upstream);
      if (u.protocol !== "http:" && u.protocol !== "https:") {
        throw new TypeError(
          `Cannot use upstream "${options.upstream}": only http: and https: are supported`,
        );
      }
      this.#upstream = u;
    }
    this.#allow = withLoopback(options.allow ?? []);
    this.#purgeAllow = withLoopback(options.purgeAllow ?? []);
    this.#connectPorts = new Set(options.connectPorts ?? [443]);
    this.#random = createRandom(options.seed ?? Date.now());
    this.#dropRate = options.dropRate ?? 0;
    this.#delay = options.delay ?? 0;
    this.#timeout = options.timeout ?? 30000;
    this.#name = options.name ?? "netkit";
    const log = options.log;
    const metrics = options.adminPort !== undefined ? new Metrics() : undefined;
    this.#metrics = metrics;
    // The access log's entry carries the cache outcome the metrics count too.
    this.#logging = log !== undefined || metrics !== undefined;
    const onLog = (entry: AccessLogEntry) => {
      if (metrics !== undefined) {
        const code = (entry.extra as Exchange | undefined)?.code ?? "NONE_NONE";
        metrics.request(code, { sent: entry.sent, ms: entry.duration });
      }
      if (log !== undefined) log(squidLine(entry));
    };
    this.#client = new HttpClient({
      connectTimeout: this.#timeout,
      headTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
      maxIdlePerOrigin: options.poolSize ?? 64,
      maxConnectionsPerOrigin: options.maxConnectionsPerOrigin ?? 256,
      // 64 KiB pieces: a download in flight holds little memory per client.
      readSize: 65536,
      ...(options.upstreamCaCerts !== undefined ? { caCerts: options.upstreamCaCerts } : {}),
    });
    const { log: _log, ...rest } = options;
    this.#onLog = this.#logging ? onLog : undefined;
    const several = (options.workers ?? 1) > 1;
    this.#server = new HttpServer((head, conn) => this.#handle(head, conn), {
      ...pick(rest),
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 8888,
      maxBodySize: options.maxBodySize ?? 1 << 30,
      maxConnections: options.maxConnections ?? defaultMaxConnections(2),
      errorResponse: (status, message) =>
        errorPage(this.#name, this.#via, status, message, "bypass", false),
      ...(this.#logging ? { onLog } : {}),
      // Several loops share the port, and the caps count for all of them together.
      ...(several ? { reusePort: true } : {}),
    });
    const addr = this.#server.addr;
    this.hostname = addr.hostname;
    this.port = addr.port;
    // received-by = pseudonym ":" port (RFC 9110 §7.6.3): the port tells two
    // chained instances apart, so loop detection does not mistake one for the other.
    this.#via = `1.1 ${this.#name}:${this.port}`;
    this.#policy = {
      via: this.#via,
      targets: options.cacheControlTargets ?? ["CDN-Cache-Control"],
    };
    this.#maxStale = options.maxStale ?? 604800;
    if (metrics !== undefined) {
      const admin = Deno.serve({
        hostname: "127.0.0.1",
        port: options.adminPort ?? 0,
        onListen() {},
      }, (req: Request) => this.#adminAnswer(req, metrics));
      this.#admin = admin;
      this.adminPort = admin.addr.port;
    }
    this.#staleIfError = options.staleIfError !== undefined
      ? { fallback: options.staleIfError }
      : {};
    this.#shared = options.sharedCache;
    this.#shared?.onInvalidate(async ({ urls, tags }) => {
      for (const url of urls) await this.store.deleteUrl(url);
      await this.store.deleteTags(tags);
    });
    if (metrics !== undefined && this.#shared !== undefined) {
      const shared = this.#shared;
      metrics.shared = () => shared.stats;
    }
  }

  /**
   * Starts the hit loops of {@linkcode ProxyOptions.workers} and the relay
   * listener they hand connections to.
   *
   * @param count How many hit loops.
   * @param options The proxy's options.
   */
  async startLoops(count: number, options: ProxyOptions): Promise<void> {
    const { log: _log, ...rest } = options;
    // Connections relayed by the hit loops were counted there: no caps here.
    this.#relay = new HttpServer((head, conn) => this.#handle(head, conn), {
      ...pick(rest),
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: true,
      maxConnections: 0,
      maxConnectionsPerIp: 0,
      maxBodySize: options.maxBodySize ?? 1 << 30,
      errorResponse: (status, message) =>
        errorPage(this.#name, this.#via, status, message, "bypass", false),
      ...(this.#onLog !== undefined ? { onLog: this.#onLog } : {}),
    });
    const limits = this.#server.limits;
    const log = options.log;
    // Loaded only when there are hit loops.
    const { Loops }: typeof import("./_loops.ts") = await import(
      new URL("./_loops.ts", import.meta.url).href
    );
    this.#loops = await Loops.start(count, {
      hostname: options.hostname ?? "127.0.0.1",
      port: this.port,
      relayPort: this.#relay.addr.port,
      upstream: this.#upstream?.href ?? null,
      allow: options.allow ?? [],
      name: this.#name,
      via: this.#via,
      serveHits: this.#delay === 0 && this.#dropRate === 0,
      // Posted to the workers: the deadlines only (onWarning is a function).
      core: {
        ...pick(rest, [...SERVER_DEADLINES, "ioUring"]),
        maxBodySize: options.maxBodySize ?? 1 << 30,
      },
      counters: limits.buffer,
      maxConnections: limits.maxConnections,
      maxConnectionsPerIp: limits.maxConnectionsPerIp,
      budget: this.store.memorySize,
      logging: log !== undefined,
      metrics: this.#metrics !== undefined,
    }, (lines) => {
      if (log !== undefined) { for (const line of lines) log(line); }
    });
    const loops = this.#loops;
    this.store.onChange = (url) => {
      loops.changed(url);
      // The entry now visible under the URI (the old one while a write is
      // under way, the new one once it commits) is posted again.
      if (this.store.varyOf(url) !== "") return;
      const entry = this.store.get(url);
      if (entry !== undefined) this.#offer(entry, memoOf(entry, this.#policy));
    };
  }

  /** Posts a copy of a fresh entry stored without Vary to the hit loops. */
  #offer(entry: Entry, memo: Memo): void {
    const loops = this.#loops;
    if (loops === undefined) return;
    const { url, key, status } = entry.meta;
    const body = entry.body;
    if (key !== url || body === null || !memo.simple) return;
    loops.offer(url, (slot, version) => ({
      url,
      slot,
      version,
      prefix: memo.prefix,
      body,
      lifetime: memo.lifetime,
      initialAge: memo.initialAge,
      responseTime: memo.responseTime,
      status,
      type: memo.fields.get("content-type"),
    }));
  }

  /** Answers the admin port: `/metrics` and `/healthz`. */
  async #adminAnswer(req: Request, metrics: Metrics): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === "/healthz") {
      return new Response("ok\n", { headers: { "content-type": "text/plain" } });
    }
    if (path !== "/metrics") return new Response("not found\n", { status: 404 });
    const s = this.store;
    const loops = await this.#loops?.counts() ?? [];
    return new Response(
      metrics.render({
        memoryObjects: s.memoryObjects,
        memoryBytes: s.memoryBytes,
        diskObjects: s.diskObjects,
        diskBytes: s.diskBytes,
      }, loops),
      { headers: { "content-type": "text/plain; version=0.0.4" } },
    );
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#admin?.shutdown();
      if (this.#loops !== undefined) this.store.onChange = undefined;
      // The hit loops' relayed connections end as the relay listener closes them.
      await Promise.all([this.#server.shutdown(), this.#relay?.shutdown(), this.#loops?.stop()]);
      this.#client.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #clientState(conn: ServerConnection): ClientState {
    let st = this.#clients.get(conn);
    if (st === undefined) {
      const ip = conn.remoteAddr.hostname;
      st = {
        allowed: listed(ip, this.#allow),
        purge: listed(ip, this.#purgeAllow),
        drop: this.#dropRate > 0 && this.#random() < this.#dropRate,
      };
      this.#clients.set(conn, st);
    }
    return st;
  }

  /**
   * Answers one client request; returns whether the connection may be kept.
   * A fresh hit in memory is answered synchronously (no async frame per
   * request); everything else takes {@linkcode #answer}.
   */
  #handle(head: RequestHead, conn: ServerConnection): boolean | Promise<boolean> {
    const st = this.#clientState(conn);
    const x: Exchange = { code: "TCP_MISS", hier: "HIER_NONE/-", type: null, url: head.target };
    if (this.#logging) conn.logExtra = x;
    if (st.allowed && !st.drop && this.#quickHit(conn, head, x)) return true;
    return this.#answer(head, conn, st, x);
  }

  /**
   * Serves a plain GET or HEAD of a URI already resolved, stored without
   * Vary, from memory when it is fresh ({@linkcode #leanHit}); `false` when
   * the request needs the full path.
   */
  #quickHit(conn: ServerConnection, head: RequestHead, x: Exchange): boolean {
    const method = head.method;
    if ((method !== "GET" && method !== "HEAD") || head.body.type !== "none") return false;
    const url = this.#urlMemo.get(head.target);
    if (url === undefined || this.store.varyOf(url) !== "" || head.headers.has("via")) return false;
    const entry = this.store.get(url);
    if (entry === undefined) return false;
    x.url = url;
    return this.#leanHit(conn, head, x, entry, Date.now());
  }

  /** The rest of {@linkcode #handle}: access control, then {@linkcode #dispatch}. */
  async #answer(
    head: RequestHead,
    conn: ServerConnection,
    st: ClientState,
    x: Exchange,
  ): Promise<boolean> {
    // A purging client need not be allowed to use the proxy otherwise.
    if (!st.allowed && !(head.method === "PURGE" && st.purge)) {
      x.code = "TCP_DENIED";
      await this.#sendError(
        conn,
        403,
        "Access denied: your address may not use this proxy.",
        "bypass",
        false,
      );
      return false;
    }
    if (st.drop) {
      // The simulated loss: the client gets no answer at all, as when a packet
      // train is lost; the connection is closed without a response.
      x.code = "NONE_ABORTED";
      return false;
    }
    try {
      return await this.#dispatch(conn, head, x);
    } catch (err) {
      // A malformed request or client body: the core answers it when nothing
      // was sent yet. Anything else (a client or upstream gone): close.
      if (err instanceof HttpError && conn.sent === 0) {
        x.code = "NONE_NONE";
        throw err;
      }
      return false;
    }
  }

  /** Sends an error page. */
  async #sendError(
    conn: ServerConnection,
    status: number,
    message: string,
    fwd: NonNullable<CacheStatusParams["fwd"]>,
    keepAlive: boolean,
    detail?: string,
  ): Promise<void> {
    conn.status = status;
    // Logged as Squid logs its own error pages.
    if (conn.logExtra !== undefined) (conn.logExtra as Exchange).type = "text/html";
    await conn.write(errorPage(this.#name, this.#via, status, message, fwd, keepAlive, detail));
  }

  /** Resolves the absolute URI (cache key) of a request, or throws a 400. */
  #targetUrl(head: RequestHead): string {
    const raw = head.target;
    const memo = this.#urlMemo.get(raw);
    if (memo !== undefined) return memo;
    const href = resolveTarget(head, this.#upstream);
    if (this.#urlMemo.size > 10000) this.#urlMemo.clear();
    this.#urlMemo.set(raw, href);
    return href;
  }

  async #dispatch(conn: ServerConnection, head: RequestHead, x: Exchange): Promise<boolean> {
    if (head.method === "CONNECT") return await this.#tunnel(conn, head, x);
    const via = head.headers.get("via");
    if (via !== null && splitList(via).includes(this.#via)) {
      x.code = "TCP_DENIED";
      await this.#sendError(conn, 508, "Forwarding loop detected.", "bypass", false);
      return false;
    }
    if (head.method === "PURGE") return await this.#purge(conn, head, x, this.#clientState(conn));
    const url = this.#targetUrl(head);
    x.url = url;
    const isGet = head.method === "GET";
    if (!isGet && head.method !== "HEAD") {
      return await this.#forward(conn, head, x, url, null);
    }
    // A body on GET or HEAD has no meaning (RFC 9110 §9.3.1): read and drop it.
    if (head.body.type !== "none") {
      for await (const _ of conn.body(head)) {
        // Dropped.
      }
    }
    const vary = this.store.varyOf(url);
    if (vary === undefined) return await this.#miss(conn, head, x, url, "uri-miss", url);
    let key = url;
    if (vary !== "") {
      const vk = varyKey(vary, head.headers);
      if (vk === null) return await this.#miss(conn, head, x, url, "vary-miss", null);
      key = `${url}\n${vk}`;
    }
    const entry = this.store.get(key);
    if (entry === undefined) {
      return await this.#miss(conn, head, x, url, vary === "" ? "miss" : "vary-miss", key);
    }
    const now = Date.now();
    if (this.#leanHit(conn, head, x, entry, now)) return true;
    return await this.#fromStore(conn, head, x, url, { entry, now });
  }

  /**
   * The lean path: a plain request for a fresh, unconditional entry in
   * memory, answered with its stored bytes through
   * {@linkcode ServerConnection.end}; `false` when it does not apply.
   */
  #leanHit(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    entry: Entry,
    now: number,
  ): boolean {
    const memo = memoOf(entry, this.#policy);
    const body = entry.body;
    if (!memo.simple || body === null || this.#delay !== 0 || !plainRequest(head, conn)) {
      return false;
    }
    const age = ageOf(memo, now);
    if (age >= memo.lifetime) return false;
    conn.end(readyBytes(memo, body, age, this.#name, head.method !== "GET"));
    if (this.#loops !== undefined) this.#offer(entry, memo);
    x.code = "TCP_MEM_HIT";
    conn.status = entry.meta.status;
    if (this.#logging) x.type = memo.fields.get("content-type");
    return true;
  }

  /**
   * Answers `PURGE`: by `Surrogate-Key` when the request carries one, else by
   * the target URI (all its variants); 200 when something was evicted from
   * both tiers, 404 when nothing was stored, 403 for a client outside
   * loopback and `purgeAllow` (as Varnish's and Squid's purge ACLs).
   */
  async #purge(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    st: ClientState,
  ): Promise<boolean> {
    const keepAlive = head.keepAlive && !conn.closing;
    if (head.body.type !== "none") {
      for await (const _ of conn.body(head)) {
        // A body on PURGE has no meaning: read and drop it.
      }
    }
    if (!st.purge) {
      x.code = "TCP_DENIED";
      await this.#sendError(
        conn,
        403,
        "Access denied: your address may not purge.",
        "bypass",
        false,
      );
      return false;
    }
    const tags = head.headers.get("surrogate-key");
    let n: number;
    let what: string;
    if (tags !== null) {
      const list = tags.split(/\s+/).filter((t) => t !== "");
      n = Math.max(await this.store.deleteTags(list), await this.#shared?.purgeTags(list) ?? 0);
      what = `surrogate key ${list.join(" ")}`;
    } else {
      const url = this.#targetUrl(head);
      x.url = url;
      this.#parts.delete(url);
      n = Math.max(await this.store.deleteUrl(url), await this.#shared?.purgeUrls([url]) ?? 0);
      what = url;
    }
    if (n === 0) {
      await this.#sendError(conn, 404, `Nothing stored for ${what}.`, "bypass", keepAlive);
    } else {
      await this.#sendError(conn, 200, `Purged ${n} object(s) for ${what}.`, "bypass", keepAlive);
    }
    return keepAlive;
  }

  async #onlyIfCached(conn: ServerConnection, head: RequestHead): Promise<boolean> {
    // RFC 9111 §5.2.1.7: no stored response satisfies it → 504.
    const keepAlive = head.keepAlive && !conn.closing;
    await this.#sendError(
      conn,
      504,
      "The response is not cached (only-if-cached).",
      "miss",
      keepAlive,
      "only-if-cached",
    );
    return keepAlive;
  }

  async #miss(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    url: string,
    why: "uri-miss" | "vary-miss" | "miss",
    collapseKey: string | null,
  ): Promise<boolean> {
    if (parseCacheControl(head.headers.get("cache-control")).has("only-if-cached")) {
      return await this.#onlyIfCached(conn, head);
    }
    // Only an unconditional GET shares a response: a conditional asks for a
    // different answer than the whole 200 the others want. Ranges are cut from that whole.
    const h = head.headers;
    const unconditional = head.method === "GET" && !h.has("if-none-match") &&
      !h.has("if-modified-since") && !h.has("if-match") && !h.has("if-unmodified-since");
    if (collapseKey === null || !unconditional) {
      const found = head.method === "GET" || head.method === "HEAD"
        ? await this.#shared?.lookup(url, h)
        : undefined;
      if (found) return await this.#sharedHit(conn, head, x, url, await this.#fromShared(found));
      return await this.#forward(conn, head, x, url, null, why);
    }
    const ranged = h.has("range");
    const flight = this.#flights.get(collapseKey);
    if (flight === undefined || !flight.shared) {
      const lead = new Flight();
      this.#flights.set(collapseKey, lead);
      let lease: { release(): Promise<void> } | undefined;
      try {
        // Before the origin: another node may have stored it, or be fetching
        // it under a lease, which this waits on.
        const claim = await this.#shared?.claim(url, collapseKey, h);
        if (claim?.entry !== undefined) {
          const entry = await this.#fromShared(claim.entry);
          this.#sharedHits.set(lead, entry);
          lead.end(false);
          return await this.#sharedHit(conn, head, x, url, entry);
        }
        lease = claim?.lease;
        if (lease !== undefined) this.#leases.set(lead, lease);
        return ranged
          ? await this.#rangeMiss(conn, head, x, url, why, lead)
          : await this.#forward(conn, head, x, url, null, why, lead);
      } finally {
        lead.end(false);
        if (this.#flights.get(collapseKey) === lead) this.#flights.delete(collapseKey);
        await lease?.release();
      }
    }
    // Joined now, so that the body is kept for this request from its first piece.
    const reader = flight.join();
    if (this.#metrics !== undefined) this.#metrics.collapsedWaiters++;
    const shared = await flight.head;
    const fromShared = this.#sharedHits.get(flight);
    if (fromShared !== undefined && selectsVariant(fromShared, h)) {
      reader.leave();
      return await this.#sharedHit(conn, head, x, url, fromShared);
    }
    // Not storable, or stored under another Vary key than this request's:
    // fetch on our own (RFC 9111 §4.1), without joining another flight.
    if (
      shared === null ||
      (shared.varyKey !== "" && varyKey(shared.head.headers.get("vary"), h) !== shared.varyKey)
    ) {
      reader.leave();
      return ranged
        ? await this.#rangeMiss(conn, head, x, url, why)
        : await this.#forward(conn, head, x, url, null, why);
    }
    x.hier = "HIER_NONE/-";
    const ranges = ranged ? rangesOf(h, shared.head) : undefined;
    try {
      return await this.#pipeResponse(
        conn,
        {
          head: shared.head,
          body: () => reader.body(),
          upload: Promise.resolve(),
        },
        head,
        x,
        {
          url,
          requestTime: shared.requestTime,
          responseTime: shared.responseTime,
          keepAlive: head.keepAlive && !conn.closing,
          fwd: why,
          collapsed: true,
          ...(ranges !== undefined ? { ranges } : {}),
        },
      );
    } finally {
      // A HEAD, a 304 or a failed answer reads no body: its pieces need not be kept.
      reader.leave();
    }
  }

  /**
   * Takes an entry the shared tier had into the node's own store. When the
   * store cannot keep it (its memory is off, or the body is over its object
   * size), the entry's memo (fields, encoded head) is kept with its metadata,
   * which the shared tier hands out again for the same stored response, so a
   * hit does not parse and encode the head again.
   */
  #fromShared(found: SharedEntry): Entry | Promise<Entry> {
    const { meta, body } = found;
    // Nothing to copy into a store that cannot keep it (nor an older variant there to replace).
    if (body.length <= this.store.storableSize || this.store.varyOf(meta.url) !== undefined) {
      return copyToStore(this.store, found);
    }
    let kept = this.#sharedMemos.get(meta);
    if (kept === undefined) {
      const memo = memoOf({ meta, body, memo: undefined }, this.#policy);
      kept = { memo, age: -1, tail: new Uint8Array(0), body: null, full: null };
      this.#sharedMemos.set(meta, kept);
    }
    return { meta, body, memo: kept.memo };
  }

  /**
   * Answers with an entry the shared tier had: a plain request for a fresh
   * response in one write through {@linkcode ServerConnection.end}, as
   * {@linkcode #leanHit} does for memory; anything else through {@linkcode #fromStore}.
   */
  #sharedHit(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    url: string,
    entry: Entry,
  ): boolean | Promise<boolean> {
    const memo = memoOf(entry, this.#policy);
    const h = head.headers;
    const body = entry.body;
    if (
      !memo.simple || body === null || this.#delay !== 0 || !head.keepAlive || conn.closing ||
      head.version !== "HTTP/1.1" || h.has("cache-control") || h.has("pragma") ||
      h.has("if-none-match") || h.has("if-modified-since") || h.has("range")
    ) {
      return this.#fromStore(conn, head, x, url, { entry, shared: true });
    }
    const age = Math.floor(memo.initialAge + (Date.now() - entry.meta.responseTime) / 1000);
    if (age >= memo.lifetime) {
      return this.#fromStore(conn, head, x, url, { entry, shared: true });
    }
    // The fields that change each second, kept for that second.
    const kept = this.#sharedMemos.get(entry.meta);
    const mine = kept?.memo === memo ? kept : undefined;
    let tail = kept?.age === age ? kept.tail : undefined;
    if (tail === undefined) {
      tail = encoder.encode(
        `Age: ${age}\r\nCache-Status: ${
          formatCacheStatus(this.#name, { hit: true, ttl: memo.lifetime - age, detail: "shared" })
        }\r\n\r\n`,
      );
      if (mine !== undefined) {
        mine.age = age;
        mine.tail = tail;
        mine.full = null;
      }
    }
    const size = memo.prefix.length + tail.length;
    let full = mine?.body === body ? mine.full : null;
    if (full === null) {
      full = new Uint8Array(size + body.length);
      full.set(memo.prefix, 0);
      full.set(tail, memo.prefix.length);
      full.set(body, size);
      if (mine !== undefined) {
        mine.body = body;
        mine.full = full;
      }
    }
    // Written as it is, never changed: several connections may be writing it at once.
    conn.end(head.method === "GET" ? full : full.subarray(0, size));
    x.code = "TCP_SHARED_HIT";
    conn.status = entry.meta.status;
    if (this.#logging) x.type = memo.fields.get("content-type");
    return true;
  }

  /**
   * Answers a range request that missed (RFC 9111 §3.3–3.4): the whole
   * representation is fetched without `Range` and `If-Range`, stored, and the
   * ranges are cut from it as it streams, so the next range is a hit. When
   * the origin says the whole is larger than the store keeps, that fetch is
   * dropped and the request goes upstream as it came, its 206 relayed.
   */
  async #rangeMiss(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    url: string,
    why: "uri-miss" | "vary-miss" | "miss",
    flight?: Flight,
  ): Promise<boolean> {
    const target = new URL(url);
    const fields = forwardFields(head.headers, this.#via, target);
    fields.delete("range");
    fields.delete("if-range");
    const requestTime = Date.now();
    let res: ClientResponse;
    try {
      res = await this.#client.request(target, {
        method: "GET",
        headers: fields,
        exactHeaders: true,
      });
    } catch (err) {
      return await this.#upstreamFailed(conn, head, x, null, err, why);
    }
    x.hier = `HIER_DIRECT/${res.remoteAddress}`;
    const responseTime = Date.now();
    const up = res.head;
    const size = up.body.type === "length" ? up.body.length : undefined;
    if (up.status === 200 && size !== undefined && size > this.store.storableSize) {
      await res.cancel();
      return await this.#forward(conn, head, x, url, null, why);
    }
    const ranges = rangesOf(head.headers, up);
    return await this.#pipeResponse(conn, res, head, x, {
      url,
      requestTime,
      responseTime,
      keepAlive: head.keepAlive && !conn.closing,
      fwd: why,
      ...(ranges !== undefined ? { ranges } : {}),
      ...(flight !== undefined ? { flight } : {}),
    });
  }

  /**
   * Answers from a stored entry, the node's own or one the shared tier had
   * (then copied into the node's own store): a hit when it is fresh or within
   * stale-while-revalidate, else a revalidation.
   */
  async #fromStore(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    url: string,
    found: { entry: Entry; shared?: boolean; now?: number },
  ): Promise<boolean> {
    const { entry, shared = false } = found;
    const h = head.headers;
    const action = selectAction(h, {
      status: entry.meta.status,
      headers: memoOf(entry, this.#policy).policy,
      requestTime: entry.meta.requestTime,
      responseTime: entry.meta.responseTime,
    }, found.now !== undefined ? { now: found.now } : {});
    if (action.kind === "validate") {
      if (parseCacheControl(h.get("cache-control")).has("only-if-cached")) {
        return await this.#onlyIfCached(conn, head);
      }
      const validate = { key: entry.meta.key, entry, reason: action.reason };
      return await this.#forward(conn, head, x, url, validate);
    }
    const stale = action.kind === "stale-hit";
    if (stale) this.#backgroundRevalidate(url, entry.meta.key, entry, head);
    // Which tier answered wins over staleness: the shared tier's code and detail.
    x.code = shared
      ? "TCP_SHARED_HIT"
      : stale
      ? "TCP_STALE_HIT"
      : entry.body !== null
      ? "TCP_MEM_HIT"
      : "TCP_HIT";
    const detail = shared ? "shared" : stale ? "stale-while-revalidate" : undefined;
    return await this.#serveStored(conn, head, x, entry, action.age, {
      hit: true,
      ttl: action.ttl,
      ...(detail !== undefined ? { detail } : {}),
    });
  }

  /** Serves a stored response (fully or as 304 to a conditional request). */
  async #serveStored(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    entry: Entry,
    age: number,
    status: CacheStatusParams,
  ): Promise<boolean> {
    const memo = memoOf(entry, this.#policy);
    const keepAlive = head.keepAlive && !conn.closing;
    conn.status = entry.meta.status;
    x.type = memo.fields.get("content-type");
    const extra = `Age: ${age}\r\nCache-Status: ${formatCacheStatus(this.#name, status)}\r\n${
      keepAlive
        ? (head.version === "HTTP/1.0" ? "Connection: keep-alive\r\n" : "")
        : "Connection: close\r\n"
    }`;
    if (this.#delay > 0) await delay(this.#delay);
    if (isNotModified(head.headers, memo.fields, { responseTime: entry.meta.responseTime })) {
      // Answer the client's own conditional from the cache (RFC 9110 §13.2.2).
      const fields = new FieldList();
      for (const [n, v] of memo.fields) {
        if (n === "content-length" || n === "content-type" || n === "content-encoding") continue;
        fields.append(n, v);
      }
      fields.append("Via", this.#via);
      await conn.write(concat([
        encodeResponseHead({ status: 304, headers: fields }).subarray(0, -2),
        encoder.encode(extra + "\r\n"),
      ]));
      conn.status = 304;
      if (x.code === "TCP_MEM_HIT" || x.code === "TCP_HIT") x.code = "TCP_IMS_HIT";
      return keepAlive;
    }
    const ranges = head.method === "GET" && entry.meta.status === 200 && head.headers.has("range")
      ? rangesToServe(head.headers, {
        size: entry.meta.bodyLength,
        etag: memo.fields.get("etag"),
        lastModified: parseHttpDate(memo.fields.get("last-modified")),
      })
      : undefined;
    let headBytes: Uint8Array;
    let parts: Uint8Array[] | null = null;
    if (ranges === undefined || !ascending(ranges)) {
      headBytes = concat([memo.prefix, encoder.encode(extra + "\r\n")]);
    } else {
      // RFC 9111 §3.4 / RFC 9110 §14: a range of a stored complete response is a 206
      // (or a 416) built here, with the stored fields, so the origin is not asked.
      const answer = rangeAnswer(memo.fields, ranges, entry.meta.bodyLength, this.#via);
      conn.status = answer.status;
      parts = answer.parts;
      headBytes = concat([
        encodeResponseHead({ status: answer.status, headers: answer.fields }).subarray(0, -2),
        encoder.encode(extra + "\r\n"),
      ]);
      if (answer.status === 416) {
        await conn.write(headBytes);
        return keepAlive;
      }
    }
    let body: Uint8Array | ReadableStream<Uint8Array> | undefined = entry.body ?? undefined;
    if (body === undefined && head.method === "GET") {
      body = await this.store.openBody(entry.meta.key);
      if (body === undefined) {
        // Discarded as corrupt: never served. Tell the client to retry.
        await this.#sendError(
          conn,
          503,
          "The cached copy was corrupt and has been discarded; retry.",
          "miss",
          false,
        );
        return false;
      }
    }
    if (head.method === "HEAD" || body === undefined) {
      await conn.write(headBytes);
      return keepAlive;
    }
    if (ranges !== undefined && ranges.length > 0 && ascending(ranges)) {
      const pieces = rangedBody(body instanceof Uint8Array ? [body] : body, ranges, parts);
      if (body instanceof Uint8Array) {
        const out = [headBytes];
        for await (const piece of pieces) out.push(piece);
        await conn.write(concat(out));
      } else {
        await conn.write(headBytes);
        for await (const piece of pieces) await conn.write(piece);
      }
      return keepAlive;
    }
    if (body instanceof Uint8Array) {
      await conn.write(concat([headBytes, body]));
      return keepAlive;
    }
    await conn.write(headBytes);
    for await (const chunk of body) await conn.write(chunk);
    return keepAlive;
  }

  #backgroundRevalidate(url: string, key: string, entry: Entry, head: RequestHead): void {
    if (this.#revalidating.has(key)) return;
    this.#revalidating.add(key);
    const fields = head.headers.clone();
    const task = (async () => {
      try {
        const target = new URL(url);
        const out = forwardFields(fields, this.#via, target);
        out.delete("if-none-match");
        out.delete("if-modified-since");
        for (const [n, v] of validatorFields(memoOf(entry, this.#policy).fields)) out.set(n, v);
        const requestTime = Date.now();
        const res = await this.#client.request(target, {
          method: "GET",
          headers: out,
          exactHeaders: true,
        });
        const responseTime = Date.now();
        if (res.status === 304) {
          await res.discard();
          await this.#apply304(entry, res.head, requestTime, responseTime);
        } else if (res.status === 200) {
          const x: Exchange = { code: "TCP_REFRESH_MODIFIED", hier: "-", type: null, url };
          await this.#pipeResponse(null, res, { method: "GET", headers: fields }, x, {
            url,
            requestTime,
            responseTime,
            keepAlive: false,
            fwd: null,
          });
        } else {
          await res.discard();
        }
      } catch {
        // A failed background refresh leaves the stale entry; the next request retries.
      } finally {
        this.#revalidating.delete(key);
      }
    })();
    this.#server.track(task);
  }

  async #apply304(
    entry: Entry,
    res: ResponseHead,
    requestTime: number,
    responseTime: number,
  ): Promise<Entry> {
    const update: Array<[string, string]> = [];
    for (const [n, v] of res.headers) update.push([n.toLowerCase(), v]);
    const meta: EntryMeta = {
      ...entry.meta,
      fields: updateStoredFields(entry.meta.fields, update),
      requestTime,
      responseTime,
    };
    await this.store.updateMeta(entry.meta.key, meta);
    const updated = this.store.get(entry.meta.key) ?? { meta, body: entry.body, memo: undefined };
    if (this.#shared !== undefined) {
      // Other nodes would otherwise find the shared copy stale and revalidate it too.
      const policy = { fields: memoOf(updated, this.#policy).policy, ...this.#staleIfError };
      this.#server.track(this.#shared.refresh(entry.meta, meta, policy).then(() => {}, () => {}));
    }
    return updated;
  }

  /**
   * Forwards a request upstream and relays the response, storing it when
   * allowed. `validate` holds the stored entry being revalidated, if any.
   */
  async #forward(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    url: string,
    validate: { key: string; entry: Entry; reason: "stale" | "request" } | null,
    why: "uri-miss" | "vary-miss" | "miss" = "miss",
    flight?: Flight,
  ): Promise<boolean> {
    const target = new URL(url);
    const isSafe = head.method === "GET" || head.method === "HEAD";
    const keepAlive = head.keepAlive && !conn.closing;
    const fields = forwardFields(head.headers, this.#via, target);
    if (validate !== null) {
      // Revalidate our copy with our validators; the client's own conditional is
      // answered from the result (RFC 9111 §4.3.2).
      fields.delete("if-none-match");
      fields.delete("if-modified-since");
      for (const [n, v] of validatorFields(memoOf(validate.entry, this.#policy).fields)) {
        fields.set(n, v);
      }
    }
    const hasBody = head.body.type !== "none" &&
      !(head.body.type === "length" && head.body.length === 0);
    const fwdReason: CacheStatusParams["fwd"] = validate !== null
      ? validate.reason
      : !isSafe
      ? "method"
      : why;
    const requestTime = Date.now();
    let res: ClientResponse;
    try {
      res = await this.#client.request(target, {
        method: head.method,
        headers: fields,
        exactHeaders: true,
        ...(hasBody
          ? {
            body: conn.body(head),
            ...(head.body.type === "length" ? { bodyLength: head.body.length } : {}),
          }
          : {}),
        // A body cannot be replayed, and an unsafe request must not be repeated:
        // never risk a pooled connection the origin may have closed (HAProxy's "safe" reuse).
        fresh: hasBody || !isSafe,
        onInterim: async (interim) => {
          // 103 Early Hints and friends pass through (RFC 9110 §15.2); our own
          // 100 Continue already went out when the body was first read.
          if (interim.status === 100 || head.version === "HTTP/1.0") return;
          await conn.write(
            encodeResponseHead({ status: interim.status, headers: interim.headers }),
          );
          conn.sent = 0;
        },
      });
    } catch (err) {
      // The client's body was malformed or too large: the core answers it.
      if (err instanceof HttpError) throw err;
      return await this.#upstreamFailed(conn, head, x, validate, err, fwdReason);
    }
    x.hier = `HIER_DIRECT/${res.remoteAddress}`;
    if (res.status === 101) {
      await res.cancel();
      return await this.#upstreamFailed(
        conn,
        head,
        x,
        validate,
        new HttpClientError("reply", "Cannot proxy a protocol upgrade"),
        fwdReason,
      );
    }
    const responseTime = Date.now();

    // Revalidation outcomes.
    if (validate !== null && res.status === 304) {
      await res.discard();
      const updated = await this.#apply304(validate.entry, res.head, requestTime, responseTime);
      x.code = "TCP_REFRESH_UNMODIFIED";
      const ttl = freshnessLifetime(updated.meta.status, memoOf(updated, this.#policy).policy, {
        responseTime,
      })
        .lifetime;
      const age = currentAge(memoOf(updated, this.#policy).fields, {
        ...updated.meta,
        now: Date.now(),
      });
      return await this.#serveStored(conn, head, x, updated, age, {
        fwd: validate.reason,
        fwdStatus: 304,
        ttl: ttl - age,
      });
    }
    if (validate !== null && res.status >= 500) {
      const memo = memoOf(validate.entry, this.#policy);
      const age = currentAge(memo.fields, { ...validate.entry.meta, now: Date.now() });
      if (
        mayServeStaleOnError(head.headers, memo.policy, {
          staleness: age - memo.lifetime,
          ...this.#staleIfError,
        })
      ) {
        await res.discard().catch(() => {});
        x.code = "TCP_REFRESH_FAIL_OLD";
        return await this.#serveStored(conn, head, x, validate.entry, age, {
          fwd: validate.reason,
          fwdStatus: res.status,
          ttl: memo.lifetime - age,
          detail: "stale-if-error",
        });
      }
    }
    if (validate?.reason === "request") x.code = "TCP_CLIENT_REFRESH_MISS";
    else if (validate !== null) x.code = "TCP_REFRESH_MODIFIED";

    const keep = await this.#pipeResponse(conn, res, head, x, {
      url,
      requestTime,
      responseTime,
      keepAlive,
      fwd: fwdReason,
      ...(flight !== undefined ? { flight } : {}),
    });

    // RFC 9111 §4.4: a successful unsafe request invalidates what it names.
    if (!isSafe) {
      const uris = invalidatedUris(head.method, url, {
        status: res.status,
        headers: res.headers,
      });
      for (const u of uris) {
        this.#parts.delete(u);
        await this.store.deleteUrl(u);
      }
      await this.#shared?.purgeUrls(uris);
    }
    return keep;
  }

  async #upstreamFailed(
    conn: ServerConnection,
    head: RequestHead,
    x: Exchange,
    validate: { key: string; entry: Entry; reason: "stale" | "request" } | null,
    err: unknown,
    fwd: NonNullable<CacheStatusParams["fwd"]>,
  ): Promise<boolean> {
    if (validate !== null) {
      const memo = memoOf(validate.entry, this.#policy);
      const age = currentAge(memo.fields, { ...validate.entry.meta, now: Date.now() });
      const staleness = age - memo.lifetime;
      const detail = mayServeStaleOnError(head.headers, memo.policy, {
          staleness,
          ...this.#staleIfError,
        })
        ? "stale-if-error"
        : mayServeStaleDisconnected(head.headers, memo.policy, {
            staleness,
            maxStale: this.#maxStale,
          })
        ? "disconnected"
        : undefined;
      if (detail !== undefined) {
        x.code = "TCP_REFRESH_FAIL_OLD";
        return await this.#serveStored(conn, head, x, validate.entry, age, {
          fwd: validate.reason,
          ttl: memo.lifetime - age,
          detail,
        });
      }
    }
    const timeout = err instanceof HttpClientError && err.kind === "timeout";
    this.#metrics?.upstreamError(timeout ? "timeout" : "error");
    // As Squid: a refused connection was still forwarded, to that address.
    if (err instanceof HttpClientError && err.address !== undefined) {
      x.hier = `HIER_DIRECT/${err.address}`;
    }
    const status = timeout ? 504 : 502;
    const why = err instanceof Error ? err.message : String(err);
    x.code = "TCP_MISS";
    await this.#sendError(
      conn,
      status,
      timeout
        ? `The upstream server did not answer in time: ${why}`
        : `The upstream server could not be reached: ${why}`,
      fwd,
      false,
      timeout ? "timeout" : "connect-failed",
    );
    return false;
  }

  /**
   * Relays a response from upstream to the client (or nowhere, for a
   * background refresh), teeing it into the store when it is storable.
   * A truncated upstream body aborts the store write and the client connection.
   */
  async #pipeResponse(
    conn: ServerConnection | null,
    res: Pick<ClientResponse, "head" | "body" | "upload">,
    req: { method: string; headers: FieldList; version?: string },
    x: Exchange,
    ctx: {
      url: string;
      requestTime: number;
      responseTime: number;
      keepAlive: boolean;
      fwd: CacheStatusParams["fwd"] | null;
      /** Publish the response to these waiters (the leader of a collapsed miss). */
      flight?: Flight;
      /** Relay a response another request is storing (a collapsed waiter). */
      collapsed?: boolean;
      /**
       * Send the client these ascending ranges of the 200 (with a known
       * length) as a 206, or a 416 when empty, while the whole is stored.
       */
      ranges?: readonly ByteRange[];
    },
  ): Promise<boolean> {
    const { url, requestTime, responseTime } = ctx;
    const up = res.head;
    if (conn !== null) conn.status = up.status;
    x.type = up.headers.get("content-type");
    const policy = targetedFields(up.headers, this.#policy.targets);
    let verdict = storability(req, { status: up.status, headers: policy });
    // Larger than this node's store keeps, as the origin says: not written
    // here, and collapsed waiters fetch on their own rather than share a body
    // held whole. The shared tier may still take it (its own size limit).
    const tooBig = verdict.storable && up.body.type === "length" &&
      up.body.length > this.store.storableSize;
    const sharedOnly = tooBig && this.#shared !== undefined &&
      (up.body.type === "length" && up.body.length <= this.#shared.maxObjectSize);
    if (tooBig && !sharedOnly) verdict = { storable: false, reason: "size" };
    const stored = stripHopByHop(up.headers);
    let writer = null;
    let key = url;
    let flight = ctx.flight;
    if (verdict.storable && !ctx.collapsed) {
      const vary = up.headers.get("vary");
      const vk = varyKey(vary, req.headers);
      if (vk !== null && vk !== "") key = `${url}\n${vk}`;
      const storedFields: Array<[string, string]> = [];
      for (const [n, v] of stored) {
        const lower = n.toLowerCase();
        if (lower === "content-length") continue;
        storedFields.push([lower, v]);
      }
      if (vary === null) {
        // A new response without Vary replaces every variant stored before.
        if ((this.store.varyOf(url) ?? "") !== "") await this.store.deleteUrl(url);
      }
      const meta: EntryMeta = {
        key,
        url,
        status: up.status,
        reason: up.reason,
        fields: storedFields,
        requestTime,
        responseTime,
        bodyLength: 0,
      };
      writer = sharedOnly ? DISCARD : this.store.beginWrite(meta);
      if (this.#shared !== undefined) {
        writer = this.#shared.tee(writer, meta, { fields: policy, ...this.#staleIfError });
      }
      if (sharedOnly) {
        flight?.publish(null);
        flight = undefined;
      } else flight?.publish({ head: up, varyKey: vk ?? "", requestTime, responseTime });
    } else {
      flight?.publish(null);
      // Other nodes wait for this fill: nothing will be stored, so release them now, not at its end.
      if (flight !== undefined) void this.#leases.get(flight)?.release();
      flight = undefined;
    }
    let part = up.status === 206 && req.method === "GET" && !ctx.collapsed
      ? this.#partOf(req, up, policy)
      : undefined;
    const isHeadReq = req.method === "HEAD";
    const hasBody = up.body.type === "length" || up.body.type === "chunked" ||
      up.body.type === "close";
    let clientChunked = false;
    let pending: Uint8Array | null = null;
    let keep = ctx.keepAlive && up.body.type !== "tunnel";
    let cutter: RangeCutter | undefined;
    if (conn !== null) {
      let status = up.status;
      let out = stored.clone();
      out.append("Via", this.#via);
      if (ctx.ranges !== undefined && up.body.type === "length") {
        const answer = rangeAnswer(stored, ctx.ranges, up.body.length, this.#via);
        status = conn.status = answer.status;
        out = answer.fields;
        cutter = new RangeCutter(ctx.ranges, answer.parts);
      }
      const ttl = verdict.storable
        ? freshnessLifetime(up.status, policy, { responseTime }).lifetime -
          currentAge(up.headers, { requestTime, responseTime, now: responseTime })
        : undefined;
      const params: CacheStatusParams = { fwd: ctx.fwd ?? "miss", fwdStatus: up.status };
      if (verdict.storable) params.stored = true;
      if (ctx.collapsed) params.collapsed = true;
      if (ttl !== undefined) params.ttl = ttl;
      if (!verdict.storable && req.method === "GET") params.detail = verdict.reason;
      out.append("Cache-Status", formatCacheStatus(this.#name, params));
      if (up.body.type === "chunked" || up.body.type === "close") out.delete("content-length");
      if (cutter !== undefined) {
        // The range answer's own Content-Length stands.
      } else if (up.body.type === "length") out.set("Content-Length", String(up.body.length));
      else if (hasBody && !isHeadReq) {
        if (req.version === "HTTP/1.0" || !keep) keep = false;
        else {
          clientChunked = true;
          out.set("Transfer-Encoding", "chunked");
        }
      }
      if (!keep) out.set("Connection", "close");
      // An HTTP/1.0 client keeps the connection only when told so (RFC 9112 §9.3).
      else if (req.version === "HTTP/1.0") out.set("Connection", "keep-alive");
      if (this.#delay > 0) await delay(this.#delay);
      // The head goes out with the first piece of body: one write, not two, for
      // the common small response (this is most of the miss path's added latency).
      pending = cutter === undefined
        ? encodeResponseHead({ status, reason: up.reason, headers: out })
        : encodeResponseHead({ status, headers: out });
    }
    let complete = false;
    // A client that goes away while others wait on this response (or while it
    // is being stored) does not stop the download: it ends only its own answer.
    let clientGone: unknown = undefined;
    // Origin → client and origin → store through one reused buffer: each write
    // completes before the next read into it. Only the pieces the flight keeps
    // for waiters (and parts) are copied.
    const small = up.body.type === "length" && up.body.length <= SMALL_BODY_BUFFER;
    const pool = small ? smallBodyBuffers : bodyBuffers;
    const buffer = pool.pop() ?? new Uint8Array(small ? SMALL_BODY_BUFFER : BODY_BUFFER);
    let framing: Uint8Array | undefined;
    try {
      for await (const chunk of res.body({ buffer })) {
        if (flight !== undefined) {
          flight.push(flight.keeping ? chunk.slice() : chunk);
        }
        if (this.#metrics !== undefined && !ctx.collapsed) {
          this.#metrics.upstreamBytes += chunk.length;
        }
        if (conn !== null && clientGone === undefined) {
          let data = clientChunked
            ? encodeChunk(chunk, framing ??= chunkBuffers.pop() ?? new Uint8Array(BODY_BUFFER + 32))
            : chunk;
          let bodyBytes = chunk.length;
          if (cutter !== undefined) {
            const pieces = cutter.cut(chunk);
            data = pieces.length === 1 ? pieces[0]! : concat(pieces);
            bodyBytes = data.length;
          }
          try {
            if (pending !== null || data.length > 0) {
              await conn.write(pending === null ? data : concat([pending, data]));
            }
          } catch (err) {
            // The store (or the waiters) still want the rest of the body.
            if (flight === undefined && (cutter === undefined || writer === null)) throw err;
            clientGone = err;
          }
          pending = null;
          conn.bodyBytes += bodyBytes;
        }
        if (writer !== null && !(await writer.write(chunk))) {
          writer = null;
          flight?.unshare();
        }
        if (part !== undefined) {
          part.pieces.push(chunk.slice());
          part.got += chunk.length;
          if (part.got > part.end - part.start + 1) part = undefined;
        }
      }
      if (pending !== null && conn !== null && clientGone === undefined) {
        await conn.write(clientChunked ? concat([pending, LAST_CHUNK]) : pending);
        clientChunked = false;
        pending = null;
      }
      complete = true;
    } finally {
      if (pool.length < 64) pool.push(buffer);
      if (framing !== undefined && chunkBuffers.length < 64) chunkBuffers.push(framing);
      if (!complete) {
        // Truncated or reset upstream (or a client gone): never store, and make
        // the client see the failure by closing instead of ending the message.
        await writer?.abort();
        x.code += "_ABORTED";
      }
      flight?.end(complete);
    }
    if (clientGone !== undefined) {
      if (writer !== null) await writer.commit();
      return false;
    }
    if (clientChunked && conn !== null) await conn.write(LAST_CHUNK);
    if (!(await res.upload.then(() => true, () => false))) {
      // The client's upload failed after the answer came: the exchange is broken.
      await writer?.abort();
      return false;
    }
    if (writer !== null) await writer.commit();
    if (part !== undefined && part.got === part.end - part.start + 1) {
      await this.#combine(url, part, stored, { requestTime, responseTime });
    }
    return keep;
  }

  /**
   * A 206 that may be kept as a part (RFC 9111 §3.4): one range with a known
   * complete length the store could hold, a strong validator, no `Vary`, and
   * storable but for its status.
   */
  #partOf(
    req: { method: string; headers: FieldList },
    up: ResponseHead,
    policy: FieldReader,
  ): PendingPart | undefined {
    const range = parseContentRange(up.headers.get("content-range"));
    if (range === undefined || range.size > Math.min(this.store.storableSize, PARTS_BUDGET)) {
      return undefined;
    }
    if (up.headers.has("vary") || !storability(req, { status: 200, headers: policy }).storable) {
      return undefined;
    }
    const validator = strongValidator((name) => up.headers.get(name));
    if (validator === undefined) return undefined;
    return { ...range, validator, pieces: [], got: 0 };
  }

  /**
   * Keeps a received part; when the parts held for the URI now cover the
   * whole representation, stores it as a 200 with the newest part's fields.
   */
  async #combine(
    url: string,
    part: PendingPart,
    fields: FieldList,
    times: { requestTime: number; responseTime: number },
  ): Promise<void> {
    const own: Array<[string, string]> = [];
    for (const [n, v] of fields) {
      const lower = n.toLowerCase();
      if (lower !== "content-length" && lower !== "content-range") own.push([lower, v]);
    }
    const whole = this.#parts.add({
      url,
      start: part.start,
      bytes: concat(part.pieces),
      size: part.size,
      fields: own,
      ...times,
    }, part.validator);
    if (whole === undefined) return;
    await this.store.putWhole({
      key: url,
      url,
      status: 200,
      reason: "OK",
      fields: whole.fields,
      requestTime: whole.requestTime,
      responseTime: whole.responseTime,
      bodyLength: 0,
    }, whole.pieces);
  }

  async #tunnel(conn: ServerConnection, head: RequestHead, x: Exchange): Promise<boolean> {
    x.url = head.target;
    if (this.#upstream !== undefined) {
      x.code = "TCP_DENIED";
      await this.#sendError(
        conn,
        405,
        "CONNECT is not available in reverse mode.",
        "method",
        false,
      );
      return false;
    }
    const colon = head.target.lastIndexOf(":");
    const host = head.target.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(head.target.slice(colon + 1));
    if (!this.#connectPorts.has(port)) {
      x.code = "TCP_DENIED";
      await this.#sendError(conn, 403, `CONNECT to port ${port} is not allowed.`, "method", false);
      return false;
    }
    let upstream: Deno.TcpConn;
    try {
      upstream = await this.#client.connectTcp(host, port);
    } catch (err) {
      const timeout = err instanceof HttpClientError && err.kind === "timeout";
      await this.#sendError(conn, timeout ? 504 : 502, (err as Error).message, "method", false);
      return false;
    }
    x.code = "TCP_TUNNEL";
    conn.status = 200;
    x.hier = `HIER_DIRECT/${upstream.remoteAddr.hostname}`;
    try {
      const client = conn.tunnel();
      await client.write(encodeResponseHead({
        status: 200,
        reason: "Connection established",
        headers: [["Via", this.#via]],
      }));
      if (client.buffered.length > 0) await writeAll(upstream, client.buffered);
      await splice(client, upstream);
    } finally {
      try {
        upstream.close();
      } catch {
        // Already closed.
      }
    }
    return false;
  }
}

/**
 * Whether ranges are in increasing order without overlap, so one pass over a
 * streamed body yields them; others are answered whole (RFC 9110 §14.2 lets a
 * server ignore Range).
 */
function ascending(ranges: readonly ByteRange[]): boolean {
  for (let i = 1; i < ranges.length; i++) if (ranges[i]!.start <= ranges[i - 1]!.end) return false;
  return true;
}

/**
 * Yields the bytes of ascending ranges from a body, in one pass, each range
 * preceded by its multipart head when `parts` is given (then the closing
 * delimiter comes last). Reading stops after the last range.
 */
async function* rangedBody(
  body: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  ranges: readonly ByteRange[],
  parts: Uint8Array[] | null,
): AsyncGenerator<Uint8Array> {
  const cutter = new RangeCutter(ranges, parts);
  for await (const chunk of body) {
    yield* cutter.cut(chunk);
    if (cutter.done) return;
  }
}

/**
 * The ranges a request asks of a 200 with a known length, when they can be cut
 * in one pass; the client's `If-Range` is evaluated against the validators the
 * origin sent (RFC 9110 §13.1.5). `undefined`: answer the whole.
 */
function rangesOf(request: FieldList, up: ResponseHead): readonly ByteRange[] | undefined {
  if (up.status !== 200 || up.body.type !== "length") return undefined;
  const ranges = rangesToServe(request, {
    size: up.body.length,
    etag: up.headers.get("etag"),
    lastModified: parseHttpDate(up.headers.get("last-modified")),
  });
  return ranges !== undefined && ascending(ranges) ? ranges : undefined;
}

/**
 * Cuts ascending ranges out of a body that arrives in pieces, in one pass,
 * each range preceded by its multipart head when `parts` is given (the
 * closing delimiter comes after the last range).
 */
class RangeCutter {
  #ranges: readonly ByteRange[];
  #parts: Uint8Array[] | null;
  #i = 0;
  #pos = 0;

  constructor(ranges: readonly ByteRange[], parts: Uint8Array[] | null) {
    this.#ranges = ranges;
    this.#parts = parts;
  }

  /** Whether every range has been cut. */
  get done(): boolean {
    return this.#i >= this.#ranges.length;
  }

  /** The pieces of the answer in `chunk`, the body's next bytes (views of it, or multipart heads). */
  cut(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    const ranges = this.#ranges;
    const parts = this.#parts;
    const pos = this.#pos;
    if (pos === 0 && this.#i === 0 && parts !== null) out.push(parts[0]!);
    while (this.#i < ranges.length) {
      const r = ranges[this.#i]!;
      const from = Math.max(r.start - pos, 0);
      if (from >= chunk.length) break;
      const to = Math.min(r.end - pos + 1, chunk.length);
      out.push(chunk.subarray(from, to));
      if (r.end - pos + 1 > chunk.length) break;
      this.#i++;
      if (parts !== null) out.push(parts[this.#i]!);
    }
    this.#pos += chunk.length;
    return out;
  }
}

/**
 * The head of the answer to ascending ranges of a representation of `size`
 * bytes with `fields`: a 206 with `Content-Range`, or `multipart/byteranges`
 * with its part heads, or, for no range at all, a 416 (RFC 9110 §14, §15.5.17).
 */
function rangeAnswer(
  fields: Iterable<[string, string]>,
  ranges: readonly ByteRange[],
  size: number,
  via: string,
): { status: number; fields: FieldList; parts: Uint8Array[] | null } {
  const out = new FieldList();
  if (ranges.length === 0) {
    out.append("Content-Range", `bytes */${size}`);
    out.append("Content-Length", "0");
    out.append("Via", via);
    return { status: 416, fields: out, parts: null };
  }
  let type = "application/octet-stream";
  for (const [n, v] of fields) {
    const lower = n.toLowerCase();
    if (lower === "content-type") type = v;
    if (
      lower === "content-length" || lower === "content-range" ||
      (ranges.length > 1 && lower === "content-type")
    ) continue;
    out.append(n, v);
  }
  out.append("Via", via);
  let parts: Uint8Array[] | null = null;
  let length: number;
  if (ranges.length === 1) {
    const r = ranges[0]!;
    out.append("Content-Range", `bytes ${r.start}-${r.end}/${size}`);
    length = r.end - r.start + 1;
  } else {
    const boundary = `netkit-byteranges-${crypto.randomUUID().replaceAll("-", "")}`;
    const framing = byterangesFraming(ranges, { size, type, boundary });
    parts = framing.parts;
    length = framing.length;
    out.append("Content-Type", `multipart/byteranges; boundary=${boundary}`);
  }
  out.append("Content-Length", String(length));
  return { status: 206, fields: out, parts };
}

/** The server-core settings a proxy passes through, without its own options. */
function pick(
  options: Omit<ProxyOptions, "log">,
  names: readonly (keyof ServerOptions & keyof ProxyOptions)[] = [
    ...SERVER_DEADLINES,
    "maxConnectionsPerIp",
    "onWarning",
    "ioUring",
  ],
): Partial<ServerOptions> {
  const out: Partial<ServerOptions> = {};
  for (const name of names) {
    if (options[name] !== undefined) (out as Record<string, unknown>)[name] = options[name];
  }
  return out;
}

/** Removes hop-by-hop fields, including those the Connection field names (RFC 9110 §7.6.1). */
function stripHopByHop(headers: FieldList): FieldList {
  const listed = new Set<string>();
  for (const v of headers.getAll("connection")) {
    for (const t of listTokens(v)) listed.add(t);
  }
  const out = new FieldList();
  for (const [n, v] of headers) {
    const lower = n.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    out.append(n, v);
  }
  return out;
}

/** The fields to send upstream: hop-by-hop removed, Host from the URI, Via appended. */
function forwardFields(headers: FieldList, via: string, target: URL): FieldList {
  const out = stripHopByHop(headers);
  out.delete("content-length");
  // The client's 100-continue was answered here, when its body was first read.
  out.delete("expect");
  // RFC 9112 §3.2.2: with an absolute-form target, Host is replaced by its authority.
  out.set("Host", target.host);
  out.append("Via", via);
  return out;
}

function memoOf(entry: Entry, { via, targets }: Policy): Memo {
  const m = entry.memo as Memo | undefined;
  if (m !== undefined) return m;
  const fields = new FieldList(entry.meta.fields);
  const policy = targetedFields(fields, targets);
  const { lifetime } = freshnessLifetime(entry.meta.status, policy, {
    responseTime: entry.meta.responseTime,
  });
  // currentAge at the moment of receipt is the corrected initial age (§4.2.3).
  const initialAge = currentAge(fields, { ...entry.meta, now: entry.meta.responseTime });
  const cc = parseCacheControl(policy.get("cache-control"));
  const out = new FieldList();
  for (const [n, v] of fields) if (n !== "age") out.append(n, v);
  out.append("Via", via);
  out.set("Content-Length", String(entry.meta.bodyLength));
  const prefix = encodeResponseHead({
    status: entry.meta.status,
    reason: entry.meta.reason,
    headers: out,
  });
  const memo: Memo = {
    fields,
    policy,
    lifetime,
    initialAge,
    simple: !cc.has("no-cache"),
    prefix: prefix.subarray(0, prefix.length - 2),
    responseTime: entry.meta.responseTime,
    ageSecond: -1,
    full: null,
    head: null,
  };
  entry.memo = memo;
  return memo;
}

/**
 * Copies an entry read from the shared tier into a node's own store, so the
 * next request for it is a local hit.
 *
 * @param store The node-local store.
 * @param found The entry.
 * @returns The stored entry, as the store's `get` returns it.
 */
async function copyToStore(store: CacheStore, found: SharedEntry): Promise<Entry> {
  const { meta, body } = found;
  await store.putWhole(meta, [body]);
  return store.get(meta.key) ?? { meta, body, memo: undefined };
}
