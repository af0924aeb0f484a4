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
 * await using proxy = await startProxy({ port: 0, upstream: "http://127.0.0.1:9" });
 * console.assert(proxy.port > 0);
 * ```
 *
 * @module
 */
import {
  bodyReader,
  BufferedReader,
  discardBody,
  encodeChunk,
  encodeRequestHead,
  encodeResponseHead,
  FieldList,
  HttpError,
  LAST_CHUNK,
  readRequestHead,
  readResponseHead,
  reasonPhrase,
  type RequestHead,
  type ResponseHead,
  writeAll,
} from "../lib/http/mod.ts";
import { concat } from "../lib/bytes.ts";
import {
  type CacheStatusParams,
  currentAge,
  formatCacheStatus,
  freshnessLifetime,
  HOP_BY_HOP,
  invalidatedUris,
  isNotModified,
  mayServeStaleOnError,
  parseCacheControl,
  selectAction,
  storability,
  updateStoredFields,
  validatorFields,
  varyKey,
} from "./cache.ts";
import { CacheStore, type Entry, type EntryMeta, type StoreOptions } from "./store.ts";

/** Options of {@linkcode startProxy}. */
export interface ProxyOptions {
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
   * Reverse mode: the origin to accelerate, such as `http://127.0.0.1:8080`.
   * Without it the proxy runs in forward mode.
   * @default {undefined}
   */
  upstream?: string;
  /**
   * Client networks allowed to use the proxy, as CIDRs. Loopback is always
   * allowed; nothing else is unless listed, so it never becomes an open proxy.
   * @default {[]}
   */
  allow?: string[];
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
   * Upstream connect and response-head timeout in ms (→ 504).
   * @default {30000}
   */
  timeout?: number;
  /**
   * Largest request body accepted, in bytes (→ 413).
   * @default {1073741824}
   */
  maxBodySize?: number;
  /**
   * Idle upstream connections kept per origin.
   * @default {16}
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
}

/** A running proxy; {@linkcode startProxy} returns it. */
export interface Proxy extends AsyncDisposable {
  /** The address it listens on. */
  readonly hostname: string;
  /** The port it listens on. */
  readonly port: number;
  /** The cache store. */
  readonly store: CacheStore;
  /** Stops listening, closes every connection and waits for handlers. */
  close(): Promise<void>;
}

interface Upstream {
  conn: Deno.TcpConn;
  reader: BufferedReader;
  key: string;
  peer: string;
}

interface Memo {
  fields: FieldList;
  lifetime: number;
  initialAge: number;
  simple: boolean;
  prefix: Uint8Array;
  ageSecond: number;
  ttl: number;
  full: Uint8Array | null;
  head: Uint8Array | null;
}

const encoder = new TextEncoder();

/** Parsed CIDR. */
interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

/**
 * Parses a CIDR such as `10.0.0.0/8` or `fd00::/8` (a bare address means one host).
 *
 * @param text The CIDR text.
 * @returns The network bytes and prefix length.
 * @throws {TypeError} When the text is not a CIDR.
 *
 * @example
 * ```ts
 * import { parseCidr } from "./proxy.ts";
 * console.assert(parseCidr("10.0.0.0/8").prefix === 8);
 * ```
 */
export function parseCidr(text: string): { bytes: Uint8Array; prefix: number } {
  const [addr = "", len] = text.split("/");
  const bytes = parseIp(addr);
  if (bytes === undefined) throw new TypeError(`Cannot parse CIDR "${text}": bad address`);
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len ?? "0").trim() === "") {
    throw new TypeError(`Cannot parse CIDR "${text}": bad prefix length`);
  }
  return { bytes, prefix };
}

function parseIp(text: string): Uint8Array | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const b = v4.slice(1).map(Number);
    return b.every((x) => x <= 255) ? Uint8Array.from(b) : undefined;
  }
  if (!text.includes(":")) return undefined;
  let t = text.replace(/^\[|\]$/g, "");
  const mapped = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  let tail: number[] = [];
  if (mapped) {
    const v = parseIp(mapped[2]!);
    if (v === undefined) return undefined;
    tail = [(v[0]! << 8) | v[1]!, (v[2]! << 8) | v[3]!];
    t = mapped[1]!.endsWith("::") ? mapped[1]! : mapped[1]!.slice(0, -1);
  }
  const halves = t.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((x) => parseInt(x, 16)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - rest.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const words = [...head, ...new Array(fill).fill(0), ...rest, ...tail];
  if (words.some((w) => !Number.isFinite(w) || w < 0 || w > 0xffff)) return undefined;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

function inCidr(ip: Uint8Array, cidr: Cidr): boolean {
  if (ip.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== (cidr.bytes[i]! & mask)) return false;
  }
  return true;
}

function normaliseClientIp(host: string): Uint8Array | undefined {
  const b = parseIp(host);
  if (b === undefined || b.length === 4) return b;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is checked as IPv4.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return b.slice(12);
  }
  return b;
}

/** A small seeded PRNG (mulberry32), so that --seed makes drops reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** Squid's native access log line (`logformat squid`). */
function squidLine(
  start: number,
  client: string,
  code: string,
  status: number,
  bytes: number,
  method: string,
  url: string,
  hier: string,
  type: string | null,
): string {
  const elapsed = String(Date.now() - start).padStart(6);
  return `${(start / 1000).toFixed(3)} ${elapsed} ${client} ${code}/${
    String(status).padStart(3, "0")
  } ${bytes} ${method} ${url} - ${hier} ${type ?? "-"}`;
}

/** Per-request facts gathered for the log and Cache-Status. */
interface Exchange {
  start: number;
  client: string;
  method: string;
  url: string;
  code: string;
  status: number;
  bytes: number;
  hier: string;
  type: string | null;
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
  const store = options.store ?? (await CacheStore.open(options.storeOptions ?? {}));
  return new ProxyServer(options, store);
}

class ProxyServer implements Proxy {
  readonly hostname: string;
  readonly port: number;
  readonly store: CacheStore;
  #listener: Deno.TcpListener;
  #upstream: URL | undefined;
  #allow: Cidr[];
  #connectPorts: Set<number>;
  #random: () => number;
  #dropRate: number;
  #delay: number;
  #log: ((line: string) => void) | undefined;
  #timeout: number;
  #maxBody: number;
  #poolSize: number;
  #maxPerOrigin: number;
  #name: string;
  #via: string;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #idle = new Map<string, Upstream[]>();
  #active = new Map<string, number>();
  #waiters = new Map<string, Array<() => void>>();
  #urlMemo = new Map<string, string>();
  #revalidating = new Set<string>();
  #closed = false;
  #acceptLoop: Promise<void>;

  constructor(options: ProxyOptions, store: CacheStore) {
    this.store = store;
    this.#listener = Deno.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 8888,
    });
    const addr = this.#listener.addr;
    this.hostname = addr.hostname;
    this.port = addr.port;
    if (options.upstream !== undefined) {
      const u = new URL(options.upstream);
      if (u.protocol !== "http:") {
        this.#listener.close();
        throw new TypeError(`Cannot use upstream "${options.upstream}": only http: is supported`);
      }
      this.#upstream = u;
    }
    this.#allow = [
      parseCidr("127.0.0.0/8"),
      parseCidr("::1/128"),
      ...(options.allow ?? []).map(parseCidr),
    ];
    this.#connectPorts = new Set(options.connectPorts ?? [443]);
    this.#random = mulberry32(options.seed ?? Date.now());
    this.#dropRate = options.dropRate ?? 0;
    this.#delay = options.delay ?? 0;
    this.#log = options.log;
    this.#timeout = options.timeout ?? 30000;
    this.#maxBody = options.maxBodySize ?? 1 << 30;
    this.#poolSize = options.poolSize ?? 16;
    this.#maxPerOrigin = options.maxConnectionsPerOrigin ?? 256;
    this.#name = options.name ?? "netkit";
    // received-by = pseudonym ":" port (RFC 9110 §7.6.3): the port tells two
    // chained instances apart, so loop detection does not mistake one for the other.
    this.#via = `1.1 ${this.#name}:${this.port}`;
    this.#acceptLoop = this.#accept();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      try {
        conn.setNoDelay(true);
      } catch {
        // Already closed by the peer.
      }
      this.#conns.add(conn);
      const task = this.#serve(conn).catch(() => {}).finally(() => {
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        this.#tasks.delete(task);
      });
      this.#tasks.add(task);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    await this.#acceptLoop;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
    for (const list of this.#idle.values()) for (const u of list) this.#destroy(u);
    this.#idle.clear();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    for (const list of this.#idle.values()) for (const u of list) this.#destroy(u);
    this.#idle.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #emit(x: Exchange): void {
    if (this.#log === undefined) return;
    this.#log(
      squidLine(x.start, x.client, x.code, x.status, x.bytes, x.method, x.url, x.hier, x.type),
    );
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const client = conn.remoteAddr.hostname;
    const ip = normaliseClientIp(client);
    const reader = new BufferedReader(conn);
    const drop = this.#dropRate > 0 && this.#random() < this.#dropRate;
    if (ip === undefined || !this.#allow.some((c) => inCidr(ip, c))) {
      const start = Date.now();
      const head = await readRequestHead(reader).catch(() => null);
      const bytes = await this.#sendError(
        conn,
        403,
        "Access denied: your address may not use this proxy.",
        "bypass",
        false,
      );
      this.#emit({
        start,
        client,
        method: head?.method ?? "-",
        url: head?.target ?? "-",
        code: "TCP_DENIED",
        status: 403,
        bytes,
        hier: "HIER_NONE/-",
        type: "text/html",
      });
      return;
    }
    for (;;) {
      const start = Date.now();
      let head: RequestHead | null;
      try {
        head = await readRequestHead(reader);
      } catch (err) {
        if (err instanceof HttpError) {
          const bytes = await this.#sendError(conn, err.status, err.message, "bypass", false);
          this.#emit({
            start,
            client,
            method: "NONE",
            url: "error:invalid-request",
            code: "NONE_NONE",
            status: err.status,
            bytes,
            hier: "HIER_NONE/-",
            type: "text/html",
          });
        }
        return;
      }
      if (head === null) return;
      if (drop) {
        // The simulated loss: the client gets no answer at all, as when a packet
        // train is lost; the connection is closed without a response.
        this.#emit({
          start,
          client,
          method: head.method,
          url: head.target,
          code: "NONE_ABORTED",
          status: 0,
          bytes: 0,
          hier: "HIER_NONE/-",
          type: null,
        });
        return;
      }
      const x: Exchange = {
        start,
        client,
        method: head.method,
        url: head.target,
        code: "TCP_MISS",
        status: 0,
        bytes: 0,
        hier: "HIER_NONE/-",
        type: null,
      };
      let keep: boolean;
      try {
        keep = await this.#handle(conn, reader, head, x);
      } catch (err) {
        if (err instanceof HttpError && x.status === 0) {
          x.bytes += await this.#sendError(conn, err.status, err.message, "bypass", false);
          x.status = err.status;
          x.code = "NONE_NONE";
        }
        keep = false;
      }
      this.#emit(x);
      if (!keep || !head.keepAlive) return;
    }
  }

  /** Builds and sends a short HTML error page; returns the bytes sent. */
  async #sendError(
    conn: Deno.Conn,
    status: number,
    message: string,
    fwd: NonNullable<CacheStatusParams["fwd"]>,
    keepAlive: boolean,
    detail?: string,
  ): Promise<number> {
    const title = `${status} ${reasonPhrase(status)}`;
    const body = encoder.encode(
      `<!DOCTYPE html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1>` +
        `<p>${escapeHtml(message)}</p><hr><address>${this.#name} proxy</address></body></html>\n`,
    );
    const fields: Array<[string, string]> = [
      ["Content-Type", "text/html; charset=utf-8"],
      ["Content-Length", String(body.length)],
      ["Cache-Status", formatCacheStatus(this.#name, detail ? { fwd, detail } : { fwd })],
      ["Via", this.#via],
    ];
    if (!keepAlive) fields.push(["Connection", "close"]);
    const head = encodeResponseHead({ status, headers: fields });
    try {
      await writeAll(conn, concat([head, body]));
    } catch {
      return 0;
    }
    return head.length + body.length;
  }

  /** Resolves the absolute URI (cache key) of a request, or throws a 400. */
  #targetUrl(head: RequestHead): string {
    const raw = head.target;
    const memo = this.#urlMemo.get(raw);
    if (memo !== undefined) return memo;
    let url: URL;
    if (this.#upstream !== undefined) {
      if (head.targetForm === "absolute") {
        let u: URL;
        try {
          u = new URL(head.target);
        } catch {
          throw new HttpError(400, `Cannot proxy "${head.target}": invalid URI`);
        }
        url = new URL(u.pathname + u.search, this.#upstream);
      } else if (head.targetForm === "origin") {
        url = new URL(head.target, this.#upstream);
      } else {
        throw new HttpError(400, `Cannot proxy "${head.target}": not an origin-form target`);
      }
    } else {
      if (head.targetForm !== "absolute") {
        throw new HttpError(
          400,
          `Cannot proxy "${head.target}": a forward proxy needs an absolute URI (is the client configured for a proxy?)`,
        );
      }
      try {
        url = new URL(head.target);
      } catch {
        throw new HttpError(400, `Cannot proxy "${head.target}": invalid URI`);
      }
      if (url.protocol !== "http:") {
        throw new HttpError(
          400,
          `Cannot proxy "${head.target}": only http: URIs (use CONNECT for https)`,
        );
      }
    }
    url.hash = "";
    const href = url.href;
    if (this.#urlMemo.size > 10000) this.#urlMemo.clear();
    this.#urlMemo.set(raw, href);
    return href;
  }

  async #handle(
    conn: Deno.TcpConn,
    reader: BufferedReader,
    head: RequestHead,
    x: Exchange,
  ): Promise<boolean> {
    if (head.method === "CONNECT") return await this.#tunnel(conn, reader, head, x);
    const via = head.headers.get("via");
    if (via !== null && via.split(",").some((v) => v.trim() === this.#via)) {
      x.status = 508;
      x.code = "TCP_DENIED";
      x.bytes = await this.#sendError(conn, 508, "Forwarding loop detected.", "bypass", false);
      return false;
    }
    const url = this.#targetUrl(head);
    x.url = url;
    const isGet = head.method === "GET";
    if (!isGet && head.method !== "HEAD") {
      return await this.#forward(conn, reader, head, x, url, null);
    }
    if (head.body.type !== "none") {
      await discardBody(reader, head.body, { maxBytes: this.#maxBody });
    }
    const vary = this.store.varyOf(url);
    if (vary === undefined) return await this.#miss(conn, reader, head, x, url, "uri-miss");
    let key = url;
    if (vary !== "") {
      const vk = varyKey(vary, head.headers);
      if (vk === null) return await this.#miss(conn, reader, head, x, url, "vary-miss");
      key = `${url}\n${vk}`;
    }
    const entry = this.store.get(key);
    if (entry === undefined) {
      return await this.#miss(conn, reader, head, x, url, vary === "" ? "miss" : "vary-miss");
    }
    const memo = memoOf(entry, this.#via);
    const h = head.headers;
    const now = Date.now();
    // The lean path: a plain request for a fresh, unconditional entry in memory.
    if (
      memo.simple && entry.body !== null && this.#delay === 0 && head.keepAlive &&
      head.version === "HTTP/1.1" &&
      !h.has("cache-control") && !h.has("pragma") && !h.has("if-none-match") &&
      !h.has("if-modified-since")
    ) {
      const age = Math.floor(memo.initialAge + (now - entry.meta.responseTime) / 1000);
      if (age < memo.lifetime) {
        const bytes = isGet
          ? fullBytes(memo, entry, age, this.#name)
          : headBytes(memo, entry, age, this.#name);
        await writeAll(conn, bytes);
        x.code = "TCP_MEM_HIT";
        x.status = entry.meta.status;
        x.bytes = bytes.length;
        if (this.#log !== undefined) x.type = memo.fields.get("content-type");
        return true;
      }
    }
    const action = selectAction(h, {
      status: entry.meta.status,
      headers: memo.fields,
      requestTime: entry.meta.requestTime,
      responseTime: entry.meta.responseTime,
    }, { now });
    if (action.kind === "hit" || action.kind === "stale-hit") {
      if (action.kind === "stale-hit") this.#backgroundRevalidate(url, key, entry, head);
      x.code = entry.body !== null ? "TCP_MEM_HIT" : "TCP_HIT";
      if (action.kind === "stale-hit") x.code = "TCP_STALE_HIT";
      return await this.#serveStored(conn, head, x, entry, action.age, {
        hit: true,
        ttl: action.ttl,
        ...(action.kind === "stale-hit" ? { detail: "stale-while-revalidate" } : {}),
      });
    }
    if (parseCacheControl(h.get("cache-control")).has("only-if-cached")) {
      return await this.#onlyIfCached(conn, head, x);
    }
    return await this.#forward(conn, reader, head, x, url, { key, entry, reason: action.reason });
  }

  async #onlyIfCached(conn: Deno.Conn, head: RequestHead, x: Exchange): Promise<boolean> {
    // RFC 9111 §5.2.1.7: no stored response satisfies it → 504.
    x.status = 504;
    x.code = "TCP_MISS";
    x.bytes = await this.#sendError(
      conn,
      504,
      "The response is not cached (only-if-cached).",
      "miss",
      head.keepAlive,
      "only-if-cached",
    );
    return head.keepAlive;
  }

  #miss(
    conn: Deno.TcpConn,
    reader: BufferedReader,
    head: RequestHead,
    x: Exchange,
    url: string,
    why: "uri-miss" | "vary-miss" | "miss",
  ): Promise<boolean> {
    if (parseCacheControl(head.headers.get("cache-control")).has("only-if-cached")) {
      return this.#onlyIfCached(conn, head, x);
    }
    return this.#forward(conn, reader, head, x, url, null, why);
  }

  /** Serves a stored response (fully or as 304 to a conditional request). */
  async #serveStored(
    conn: Deno.Conn,
    head: RequestHead,
    x: Exchange,
    entry: Entry,
    age: number,
    status: CacheStatusParams,
  ): Promise<boolean> {
    const memo = memoOf(entry, this.#via);
    x.status = entry.meta.status;
    x.type = memo.fields.get("content-type");
    const extra = `Age: ${age}\r\nCache-Status: ${formatCacheStatus(this.#name, status)}\r\n${
      head.keepAlive
        ? (head.version === "HTTP/1.0" ? "Connection: keep-alive\r\n" : "")
        : "Connection: close\r\n"
    }`;
    if (this.#delay > 0) await sleep(this.#delay);
    if (isNotModified(head.headers, memo.fields)) {
      // Answer the client's own conditional from the cache (RFC 9110 §13.2.2).
      const fields = new FieldList();
      for (const [n, v] of memo.fields) {
        if (n === "content-length" || n === "content-type" || n === "content-encoding") continue;
        fields.append(n, v);
      }
      fields.append("Via", this.#via);
      const bytes = concat([
        encodeResponseHead({ status: 304, headers: fields }).subarray(0, -2),
        encoder.encode(extra + "\r\n"),
      ]);
      await writeAll(conn, bytes);
      x.status = 304;
      if (x.code === "TCP_MEM_HIT" || x.code === "TCP_HIT") x.code = "TCP_IMS_HIT";
      x.bytes = bytes.length;
      return head.keepAlive;
    }
    const headBytes = concat([memo.prefix, encoder.encode(extra + "\r\n")]);
    let body: Uint8Array | ReadableStream<Uint8Array> | undefined = entry.body ?? undefined;
    if (body === undefined && head.method === "GET") {
      body = await this.store.openBody(entry.meta.key);
      if (body === undefined) {
        // Discarded as corrupt: never served. Tell the client to retry.
        x.status = 503;
        x.bytes = await this.#sendError(
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
      await writeAll(conn, headBytes);
      x.bytes = headBytes.length;
      return head.keepAlive;
    }
    if (body instanceof Uint8Array) {
      const all = concat([headBytes, body]);
      await writeAll(conn, all);
      x.bytes = all.length;
      return head.keepAlive;
    }
    await writeAll(conn, headBytes);
    x.bytes = headBytes.length;
    for await (const chunk of body) {
      await writeAll(conn, chunk);
      x.bytes += chunk.length;
    }
    return head.keepAlive;
  }

  #backgroundRevalidate(url: string, key: string, entry: Entry, head: RequestHead): void {
    if (this.#revalidating.has(key)) return;
    this.#revalidating.add(key);
    const fields = head.headers.clone();
    const task = (async () => {
      try {
        const up = await this.#acquire(new URL(url));
        try {
          const out = forwardFields(fields, this.#via, new URL(url));
          out.delete("if-none-match");
          out.delete("if-modified-since");
          for (const [n, v] of validatorFields(memoOf(entry, this.#via).fields)) out.set(n, v);
          const requestTime = Date.now();
          await writeAll(
            up.conn,
            encodeRequestHead({ method: "GET", target: originForm(url), headers: out }),
          );
          const res = await this.#readFinal(up, "GET", null);
          const responseTime = Date.now();
          if (res.status === 304) {
            await this.#apply304(entry, res, requestTime, responseTime);
            this.#release(up, res.keepAlive);
          } else if (res.status === 200) {
            const x: Exchange = {
              start: requestTime,
              client: "-",
              method: "GET",
              url,
              code: "TCP_REFRESH_MODIFIED",
              status: 200,
              bytes: 0,
              hier: "HIER_DIRECT/-",
              type: null,
            };
            await this.#pipeResponse(
              null,
              up,
              res,
              { method: "GET", headers: fields },
              x,
              url,
              requestTime,
              responseTime,
              false,
              null,
            );
          } else {
            await discardBody(up.reader, res.body);
            this.#release(up, res.keepAlive);
          }
        } catch (err) {
          this.#destroy(up);
          throw err;
        }
      } catch {
        // A failed background refresh leaves the stale entry; the next request retries.
      } finally {
        this.#revalidating.delete(key);
      }
    })();
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
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
    return this.store.get(entry.meta.key) ?? { meta, body: entry.body, memo: undefined };
  }

  // ---- upstream pool ----

  /**
   * Takes an idle pooled connection, or opens one. `fresh` asks for a new
   * connection: a request whose body cannot be replayed must not risk a pooled
   * connection the origin may have closed meanwhile (as HAProxy's "safe" reuse).
   */
  async #acquire(url: URL, fresh = false): Promise<Upstream> {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || 80);
    const key = `${host}:${port}`;
    const idle = this.#idle.get(key);
    const pooled = fresh ? undefined : idle?.pop();
    if (pooled !== undefined) return pooled;
    while ((this.#active.get(key) ?? 0) >= this.#maxPerOrigin) {
      await new Promise<void>((resolve) => {
        let list = this.#waiters.get(key);
        if (list === undefined) this.#waiters.set(key, list = []);
        list.push(resolve);
      });
      const again = fresh ? undefined : this.#idle.get(key)?.pop();
      if (again !== undefined) return again;
    }
    this.#active.set(key, (this.#active.get(key) ?? 0) + 1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connecting = Deno.connect({ hostname: host, port });
    try {
      const conn = await Promise.race([
        connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new TimeoutError(`Cannot connect to ${key}: no answer in ${this.#timeout} ms`),
              ),
            this.#timeout,
          );
        }),
      ]);
      conn.setNoDelay(true);
      this.#conns.add(conn);
      return { conn, reader: new BufferedReader(conn), key, peer: conn.remoteAddr.hostname };
    } catch (err) {
      connecting.then((c) => c.close(), () => {});
      this.#done(key);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  #done(key: string): void {
    this.#active.set(key, (this.#active.get(key) ?? 1) - 1);
    this.#waiters.get(key)?.shift()?.();
  }

  #release(up: Upstream, reusable: boolean): void {
    if (!reusable || this.#closed) return this.#destroy(up);
    let list = this.#idle.get(up.key);
    if (list === undefined) this.#idle.set(up.key, list = []);
    if (list.length >= this.#poolSize || up.reader.buffered > 0) return this.#destroy(up);
    list.push(up);
    this.#waiters.get(up.key)?.shift()?.();
  }

  #destroy(up: Upstream): void {
    if (!this.#conns.has(up.conn)) return;
    this.#conns.delete(up.conn);
    try {
      up.conn.close();
    } catch {
      // Already closed.
    }
    const idle = this.#idle.get(up.key);
    const i = idle?.indexOf(up) ?? -1;
    if (i >= 0) idle!.splice(i, 1);
    this.#done(up.key);
  }

  /** Reads the final response head, relaying 1xx responses to the client. */
  async #readFinal(up: Upstream, method: string, client: Deno.Conn | null): Promise<ResponseHead> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TimeoutError(
            `Cannot read the response from ${up.key}: no answer in ${this.#timeout} ms`,
          ),
        );
      }, this.#timeout);
    });
    try {
      for (;;) {
        const res = await Promise.race([
          readResponseHead(up.reader, { requestMethod: method }),
          timeout,
        ]);
        if (res === null) {
          throw new Deno.errors.UnexpectedEof(
            `Cannot read the response from ${up.key}: connection closed`,
          );
        }
        if (res.status >= 200) return res;
        if (res.status === 101) throw new HttpError(502, "Cannot proxy a protocol upgrade");
        // Interim responses (100 Continue, 103 Early Hints) pass through (RFC 9110 §15.2).
        if (client !== null) {
          await writeAll(client, encodeResponseHead({ status: res.status, headers: res.headers }));
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Forwards a request upstream and relays the response, storing it when
   * allowed. `validate` holds the stored entry being revalidated, if any.
   */
  async #forward(
    conn: Deno.TcpConn,
    reader: BufferedReader,
    head: RequestHead,
    x: Exchange,
    url: string,
    validate: { key: string; entry: Entry; reason: "stale" | "request" } | null,
    why: "uri-miss" | "vary-miss" | "miss" = "miss",
  ): Promise<boolean> {
    const target = new URL(url);
    const isSafe = head.method === "GET" || head.method === "HEAD";
    if (head.body.type === "length" && head.body.length > this.#maxBody) {
      x.status = 413;
      x.bytes = await this.#sendError(
        conn,
        413,
        `The request body is larger than ${this.#maxBody} bytes.`,
        "bypass",
        false,
      );
      return false;
    }
    const fields = forwardFields(head.headers, this.#via, target);
    if (head.body.type === "chunked") fields.set("Transfer-Encoding", "chunked");
    else if (head.body.type === "length") fields.set("Content-Length", String(head.body.length));
    if (validate !== null) {
      // Revalidate our copy with our validators; the client's own conditional is
      // answered from the result (RFC 9111 §4.3.2).
      fields.delete("if-none-match");
      fields.delete("if-modified-since");
      for (const [n, v] of validatorFields(memoOf(validate.entry, this.#via).fields)) {
        fields.set(n, v);
      }
    }
    const reqHead = encodeRequestHead({
      method: head.method,
      target: target.pathname + target.search,
      headers: fields,
    });
    const hasBody = head.body.type !== "none" &&
      !(head.body.type === "length" && head.body.length === 0);
    const fwdReason: CacheStatusParams["fwd"] = validate !== null
      ? validate.reason
      : !isSafe
      ? "method"
      : why;
    let up: Upstream | undefined;
    let res: ResponseHead | undefined;
    let requestTime = 0;
    let bodyDone: Promise<void> = Promise.resolve();
    let bodyFailed: unknown = undefined;
    for (let attempt = 0; attempt < 2 && res === undefined; attempt++) {
      try {
        up = await this.#acquire(target, hasBody || !isSafe || attempt > 0);
      } catch (err) {
        return await this.#upstreamFailed(conn, head, x, validate, err, fwdReason);
      }
      x.hier = `HIER_DIRECT/${up.peer}`;
      requestTime = Date.now();
      try {
        await writeAll(up.conn, reqHead);
        if (hasBody) {
          const u = up;
          bodyDone = pumpBody(reader, head, u.conn, this.#maxBody).catch((err) => {
            bodyFailed = err;
            this.#destroy(u);
          });
        }
        res = await this.#readFinal(up, head.method, head.expectContinue ? conn : null);
      } catch (err) {
        this.#destroy(up);
        await bodyDone;
        if (bodyFailed instanceof HttpError) throw bodyFailed;
        // A pooled connection the origin closed while idle: retry once on a new
        // one, but only when no request body was consumed.
        const retry = attempt === 0 && !hasBody && !(err instanceof TimeoutError) &&
          !(err instanceof HttpError);
        if (!retry) return await this.#upstreamFailed(conn, head, x, validate, err, fwdReason);
      }
    }
    if (up === undefined || res === undefined) return false;
    const responseTime = Date.now();

    // Revalidation outcomes.
    if (validate !== null && res.status === 304) {
      await bodyDone;
      this.#release(up, res.keepAlive);
      const updated = await this.#apply304(validate.entry, res, requestTime, responseTime);
      x.code = "TCP_REFRESH_UNMODIFIED";
      const ttl =
        freshnessLifetime(updated.meta.status, memoOf(updated, this.#via).fields, { responseTime })
          .lifetime;
      const age = currentAge(memoOf(updated, this.#via).fields, {
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
      const memo = memoOf(validate.entry, this.#via);
      const age = currentAge(memo.fields, { ...validate.entry.meta, now: Date.now() });
      if (mayServeStaleOnError(head.headers, memo.fields, age - memo.lifetime)) {
        await discardBody(up.reader, res.body).catch(() => {});
        this.#release(up, res.keepAlive);
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

    const keep = await this.#pipeResponse(
      conn,
      up,
      res,
      head,
      x,
      url,
      requestTime,
      responseTime,
      head.keepAlive,
      fwdReason,
      bodyDone,
      () => bodyFailed,
    );

    // RFC 9111 §4.4: a successful unsafe request invalidates what it names.
    if (!isSafe) {
      for (
        const u of invalidatedUris(head.method, url, { status: res.status, headers: res.headers })
      ) {
        await this.store.deleteUrl(u);
      }
    }
    return keep;
  }

  async #upstreamFailed(
    conn: Deno.Conn,
    head: RequestHead,
    x: Exchange,
    validate: { key: string; entry: Entry; reason: "stale" | "request" } | null,
    err: unknown,
    fwd: NonNullable<CacheStatusParams["fwd"]>,
  ): Promise<boolean> {
    if (validate !== null) {
      const memo = memoOf(validate.entry, this.#via);
      const age = currentAge(memo.fields, { ...validate.entry.meta, now: Date.now() });
      if (mayServeStaleOnError(head.headers, memo.fields, age - memo.lifetime)) {
        x.code = "TCP_REFRESH_FAIL_OLD";
        return await this.#serveStored(conn, head, x, validate.entry, age, {
          fwd: validate.reason,
          ttl: memo.lifetime - age,
          detail: "stale-if-error",
        });
      }
    }
    const timeout = err instanceof TimeoutError;
    const status = timeout ? 504 : 502;
    const why = err instanceof Error ? err.message : String(err);
    x.status = status;
    x.code = "TCP_MISS";
    x.bytes = await this.#sendError(
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
    conn: Deno.Conn | null,
    up: Upstream,
    res: ResponseHead,
    req: { method: string; headers: FieldList; version?: string },
    x: Exchange,
    url: string,
    requestTime: number,
    responseTime: number,
    clientKeepAlive: boolean,
    fwd: CacheStatusParams["fwd"] | null,
    bodyDone: Promise<void> = Promise.resolve(),
    bodyFailed: () => unknown = () => undefined,
  ): Promise<boolean> {
    x.status = res.status;
    x.type = res.headers.get("content-type");
    const verdict = storability(req, res);
    const stored = stripHopByHop(res.headers);
    let writer = null;
    let key = url;
    if (verdict.storable) {
      const vary = res.headers.get("vary");
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
      writer = this.store.beginWrite({
        key,
        url,
        status: res.status,
        reason: res.reason,
        fields: storedFields,
        requestTime,
        responseTime,
        bodyLength: 0,
      });
    }
    const isHeadReq = req.method === "HEAD";
    const hasBody = res.body.type === "length" || res.body.type === "chunked" ||
      res.body.type === "close";
    let clientChunked = false;
    let pending: Uint8Array | null = null;
    let keep = clientKeepAlive && res.body.type !== "tunnel";
    if (conn !== null) {
      const out = stored.clone();
      out.append("Via", this.#via);
      const ttl = verdict.storable
        ? freshnessLifetime(res.status, res.headers, { responseTime }).lifetime -
          currentAge(res.headers, { requestTime, responseTime, now: responseTime })
        : undefined;
      const params: CacheStatusParams = { fwd: fwd ?? "miss", fwdStatus: res.status };
      if (verdict.storable) params.stored = true;
      if (ttl !== undefined) params.ttl = ttl;
      if (!verdict.storable && req.method === "GET") params.detail = verdict.reason;
      out.append("Cache-Status", formatCacheStatus(this.#name, params));
      if (res.body.type === "chunked" || res.body.type === "close") out.delete("content-length");
      if (res.body.type === "length") out.set("Content-Length", String(res.body.length));
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
      if (this.#delay > 0) await sleep(this.#delay);
      const h = encodeResponseHead({ status: res.status, reason: res.reason, headers: out });
      // The head goes out with the first piece of body: one write, not two, for
      // the common small response (this is most of the miss path's added latency).
      pending = h;
      x.bytes += h.length;
    }
    let complete = false;
    try {
      for await (const chunk of bodyReader(up.reader, res.body)) {
        if (conn !== null) {
          const data = clientChunked ? encodeChunk(chunk) : chunk;
          await writeAll(conn, pending === null ? data : concat([pending, data]));
          pending = null;
          x.bytes += chunk.length;
        }
        if (writer !== null && !(await writer.write(chunk))) writer = null;
      }
      if (pending !== null && conn !== null) {
        await writeAll(conn, clientChunked ? concat([pending, LAST_CHUNK]) : pending);
        if (clientChunked) x.bytes += LAST_CHUNK.length;
        clientChunked = false;
        pending = null;
      }
      complete = true;
    } finally {
      if (!complete) {
        // Truncated or reset upstream (or a client gone): never store, and make
        // the client see the failure by closing instead of ending the message.
        await writer?.abort();
        this.#destroy(up);
        x.code += "_ABORTED";
      }
    }
    if (clientChunked && conn !== null) {
      await writeAll(conn, LAST_CHUNK);
      x.bytes += LAST_CHUNK.length;
    }
    await bodyDone;
    if (bodyFailed() !== undefined) {
      await writer?.abort();
      return false;
    }
    if (writer !== null) {
      await writer.commit();
    }
    this.#release(up, res.keepAlive && res.body.type !== "close");
    return keep;
  }

  async #tunnel(
    conn: Deno.TcpConn,
    reader: BufferedReader,
    head: RequestHead,
    x: Exchange,
  ): Promise<boolean> {
    x.url = head.target;
    if (this.#upstream !== undefined) {
      x.status = 405;
      x.code = "TCP_DENIED";
      x.bytes = await this.#sendError(
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
      x.status = 403;
      x.code = "TCP_DENIED";
      x.bytes = await this.#sendError(
        conn,
        403,
        `CONNECT to port ${port} is not allowed.`,
        "method",
        false,
      );
      return false;
    }
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: host, port });
    } catch (err) {
      x.status = 502;
      x.bytes = await this.#sendError(
        conn,
        502,
        `Cannot connect to ${head.target}: ${(err as Error).message}`,
        "method",
        false,
      );
      return false;
    }
    this.#conns.add(upstream);
    x.code = "TCP_TUNNEL";
    x.status = 200;
    x.hier = `HIER_DIRECT/${upstream.remoteAddr.hostname}`;
    try {
      const ok = encodeResponseHead({
        status: 200,
        reason: "Connection established",
        headers: [["Via", this.#via]],
      });
      await writeAll(conn, ok);
      const early = reader.takeBuffered();
      if (early.length > 0) await writeAll(upstream, early);
      let up = 0;
      let down = 0;
      const toUp = (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            await writeAll(upstream, buf.subarray(0, n));
            up += n;
          }
          await upstream.closeWrite();
        } catch {
          // Either side gone: the other loop ends too when the sockets close.
        }
      })();
      const toDown = (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await upstream.read(buf);
            if (n === null) break;
            await writeAll(conn, buf.subarray(0, n));
            down += n;
          }
          await conn.closeWrite();
        } catch {
          // See above.
        }
      })();
      await Promise.all([toUp, toDown]);
      // Squid logs the bytes sent to the client; the upload size is not in its format.
      x.bytes = ok.length + down;
      void up;
    } finally {
      this.#conns.delete(upstream);
      try {
        upstream.close();
      } catch {
        // Already closed.
      }
    }
    return false;
  }
}

function originForm(url: string): string {
  const u = new URL(url);
  return u.pathname + u.search;
}

/** Removes hop-by-hop fields, including those the Connection field names (RFC 9110 §7.6.1). */
function stripHopByHop(headers: FieldList): FieldList {
  const listed = new Set<string>();
  for (const v of headers.getAll("connection")) {
    for (const t of v.split(",")) listed.add(t.trim().toLowerCase());
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
  // RFC 9112 §3.2.2: with an absolute-form target, Host is replaced by its authority.
  out.set("Host", target.host);
  out.append("Via", via);
  return out;
}

/** Streams the client's request body upstream, re-framing chunked bodies. */
async function pumpBody(
  reader: BufferedReader,
  head: RequestHead,
  up: Deno.Conn,
  maxBytes: number,
): Promise<void> {
  const chunked = head.body.type === "chunked";
  for await (const chunk of bodyReader(reader, head.body, { maxBytes })) {
    await writeAll(up, chunked ? encodeChunk(chunk) : chunk);
  }
  if (chunked) await writeAll(up, LAST_CHUNK);
}

function memoOf(entry: Entry, via: string): Memo {
  const m = entry.memo as Memo | undefined;
  if (m !== undefined) return m;
  const fields = new FieldList(entry.meta.fields);
  const { lifetime } = freshnessLifetime(entry.meta.status, fields, {
    responseTime: entry.meta.responseTime,
  });
  // currentAge at the moment of receipt is the corrected initial age (§4.2.3).
  const initialAge = currentAge(fields, { ...entry.meta, now: entry.meta.responseTime });
  const cc = parseCacheControl(fields.get("cache-control"));
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
    lifetime,
    initialAge,
    simple: !cc.has("no-cache"),
    prefix: prefix.subarray(0, prefix.length - 2),
    ageSecond: -1,
    ttl: 0,
    full: null,
    head: null,
  };
  entry.memo = memo;
  return memo;
}

function refreshMemo(memo: Memo, entry: Entry, age: number, name: string): void {
  if (memo.ageSecond === age && memo.full !== null) return;
  const tail = encoder.encode(
    `Age: ${age}\r\nCache-Status: ${
      formatCacheStatus(name, { hit: true, ttl: memo.lifetime - age })
    }\r\n\r\n`,
  );
  const body = entry.body ?? new Uint8Array(0);
  const full = new Uint8Array(memo.prefix.length + tail.length + body.length);
  full.set(memo.prefix, 0);
  full.set(tail, memo.prefix.length);
  full.set(body, memo.prefix.length + tail.length);
  memo.full = full;
  memo.head = full.subarray(0, memo.prefix.length + tail.length);
  memo.ageSecond = age;
}

function fullBytes(memo: Memo, entry: Entry, age: number, name: string): Uint8Array {
  refreshMemo(memo, entry, age, name);
  return memo.full!;
}

function headBytes(memo: Memo, entry: Entry, age: number, name: string): Uint8Array {
  refreshMemo(memo, entry, age, name);
  return memo.head!;
}
