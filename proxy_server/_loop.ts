/**
 * A hit loop of `--workers`: a Web Worker listening on the proxy's port
 * (`SO_REUSEPORT`) that answers plain requests for fresh objects from the
 * copies the main loop posts it, and has the main loop answer every other
 * request: over loopback, with a PROXY protocol line naming the client, so
 * that the main loop's access control, log and limits see the real client.
 * A keep-alive request without a body goes alone, over a connection kept
 * for the client's next such request, and the client's connection stays
 * here (its later hits are answered here); any other request, an answer
 * whose end only the main loop's connection can tell (chunked, delimited by
 * close), and a long run of requests none of which this loop could answer
 * hand the client's connection over to the main loop for good.
 *
 * A copy is served only while the main loop's version counter of its URI is
 * unchanged: the main loop bumps it before anything stored under the URI
 * changes (a new response, a 304's update, a purge, an invalidation), so a
 * worker never answers with what the main loop no longer would.
 *
 * @module
 */
import { concat, writeAll } from "../lib/bytes.ts";
import { readFixed } from "../lib/http/bodies.ts";
import { encodeRequestHead, encodeResponseHead } from "../lib/http/encoder.ts";
import { readResponseHead, type RequestHead, type ResponseHead } from "../lib/http/heads.ts";
import { BufferedReader } from "../lib/http/reader.ts";
import { ConnectionLimits } from "../lib/http/limits.ts";
import {
  type AccessLogEntry,
  HttpServer,
  type ServerConnection,
  type ServerDeadlines,
  type ServerOptions,
  splice,
} from "../lib/http/server.ts";
import * as hits from "./_hits.ts";
import type { Exchange, Ready } from "./_hits.ts";
import { type LoopCounts, Metrics } from "./_metrics.ts";

/** Slots of the version table the loops share (a power of two). */
export const VERSION_SLOTS = 1 << 16;

/**
 * The version slot of a URI: FNV-1a of its UTF-16 code units.
 *
 * @param url The absolute URI.
 * @returns A slot below {@linkcode VERSION_SLOTS}.
 *
 * @example
 * ```ts
 * import { slotOf, VERSION_SLOTS } from "./_loop.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(slotOf("http://a/"), slotOf("http://a/"));
 * assert(slotOf("http://a/") < VERSION_SLOTS);
 * ```
 */
export function slotOf(url: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < url.length; i++) {
    h ^= url.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & (VERSION_SLOTS - 1);
}

/** Everything a hit loop needs to start; plain data, so it can be posted. */
export interface LoopConfig {
  /** The loop's number (1 and up; the main loop is 0). */
  index: number;
  /** The address every loop listens on. */
  hostname: string;
  /** The port every loop listens on. */
  port: number;
  /** The main loop's relay listener on 127.0.0.1. */
  relayPort: number;
  /** Reverse mode's origin, or `null` in forward mode. */
  upstream: string | null;
  /** Client blocks besides loopback. */
  allow: string[];
  /** The proxy's name (`Cache-Status`, error pages). */
  name: string;
  /** This proxy's `Via` member. */
  via: string;
  /** Whether to answer hits at all (not with `--delay` or `--drop-rate`). */
  serveHits: boolean;
  /** Deadlines and caps of the server core. */
  core: ServerDeadlines & Pick<ServerOptions, "maxBodySize" | "ioUring">;
  /** The connection counters every loop shares. */
  counters: SharedArrayBuffer;
  /** The global connection cap. */
  maxConnections: number;
  /** The per-address cap, when set. */
  maxConnectionsPerIp?: number;
  /** The version table every loop shares ({@linkcode VERSION_SLOTS} words). */
  versions: SharedArrayBuffer;
  /** Bytes of copies this loop may hold. */
  budget: number;
  /** Whether to post access-log lines. */
  logging: boolean;
  /** Whether to keep request counters for `/metrics`. */
  metrics: boolean;
}

/** A fresh response the main loop posts to the hit loops. */
export interface CopyData {
  /** Its URI (stored without Vary). */
  url: string;
  /** {@linkcode slotOf} the URI. */
  slot: number;
  /** The slot's version when the copy was made. */
  version: number;
  /** The head up to `Age` ({@linkcode Ready.prefix}). */
  prefix: Uint8Array;
  /** The body. */
  body: Uint8Array;
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** Corrected initial age, seconds. */
  initialAge: number;
  /** When it was received (ms since the epoch). */
  responseTime: number;
  /** Its status, for the log. */
  status: number;
  /** Its media type, for the log. */
  type: string | null;
}

/** Messages from the main loop to a hit loop. */
export type ToLoop =
  | { id: number; type: "start"; config: LoopConfig }
  | { id: number; type: "stop" }
  | { id: number; type: "counts" }
  | { type: "copy"; copy: CopyData };

/** Messages from a hit loop to the main loop. */
export type FromLoop =
  | { id: number; ok: true; counts?: LoopCounts }
  | { id: number; ok: false; error: string }
  | { type: "log"; lines: string[] };

interface Copy extends Ready {
  body: Uint8Array;
  slot: number;
  version: number;
  status: number;
  type: string | null;
}

/** The `logExtra` of a relayed connection: the main loop logs its requests. */
const RELAYED: Exchange = { code: "RELAYED", hier: "", type: null, url: "" };

const encoder = new TextEncoder();

/**
 * Whether a request the loop cannot answer may go to the main loop on its
 * own, the connection staying here: a keep-alive HTTP/1.1 request without a
 * body that asks for no tunnel or switch of protocols.
 */
function alone(head: RequestHead, conn: ServerConnection): boolean {
  return head.body.type === "none" && head.method !== "CONNECT" && head.keepAlive &&
    head.version === "HTTP/1.1" && !conn.closing && !head.headers.has("upgrade");
}

/** Methods a request of which may be sent again (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** A connection to the main loop kept for one client connection's requests. */
interface MainLink {
  main: Deno.TcpConn;
  reader: BufferedReader;
  /** Nothing was sent on it yet: the PROXY line goes first. */
  fresh: boolean;
  /** Requests it carried since this loop last answered a hit on the client's connection. */
  streak: number;
}

/**
 * Requests in a row a client's connection may send to the main loop one at a
 * time; the next hands the connection over for good. Each costs the hit loop
 * a parse of the answer's head, where a spliced connection only copies
 * bytes: a connection of misses alone cost about a sixth more CPU per
 * request passed one at a time.
 */
const MAX_STREAK = 32;

/** A request head on the wire, as the main loop's relay listener reads it. */
function requestBytes(head: RequestHead): Uint8Array {
  return encodeRequestHead({
    method: head.method,
    target: head.target,
    headers: head.headers,
    version: head.version,
  });
}

/** One hit loop; see the module documentation. */
export class HitLoop {
  readonly #config: LoopConfig;
  readonly #server: HttpServer;
  readonly #versions: Int32Array;
  readonly #allow;
  readonly #upstream: URL | undefined;
  readonly #copies = new Map<string, Copy>();
  readonly #urls = new Map<string, string>();
  readonly #allowed = new WeakMap<ServerConnection, boolean>();
  readonly #metrics: Metrics | undefined;
  readonly #post: (message: FromLoop) => void;
  /** Kept connections to the main loop, by client connection. */
  readonly #links = new Map<ServerConnection, MainLink>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #bytes = 0;
  #lines: string[] = [];
  #flush: ReturnType<typeof setTimeout> | undefined;

  /**
   * Starts listening.
   *
   * @param config The loop's settings.
   * @param post Sends a message to the main loop.
   */
  constructor(config: LoopConfig, post: (message: FromLoop) => void) {
    this.#config = config;
    this.#post = post;
    this.#versions = new Int32Array(config.versions);
    this.#allow = hits.withLoopback(config.allow);
    this.#upstream = config.upstream === null ? undefined : new URL(config.upstream);
    this.#metrics = config.metrics ? new Metrics() : undefined;
    const limits = new ConnectionLimits({
      buffer: config.counters,
      maxConnections: config.maxConnections,
      ...(config.maxConnectionsPerIp !== undefined
        ? { maxConnectionsPerIp: config.maxConnectionsPerIp }
        : {}),
    });
    const onLog = (entry: AccessLogEntry) => this.#log(entry);
    this.#server = new HttpServer((head, conn) => this.#handle(head, conn), {
      ...config.core,
      hostname: config.hostname,
      port: config.port,
      reusePort: true,
      limits,
      errorResponse: (status, message) =>
        hits.errorPage(config.name, config.via, status, message, "bypass", false),
      ...(config.logging || config.metrics ? { onLog } : {}),
    });
  }

  /** This loop's request counters. */
  counts(): LoopCounts | undefined {
    return this.#metrics?.counts();
  }

  /**
   * Keeps a copy, dropping the oldest ones past the budget.
   *
   * @param data The copy the main loop posted.
   */
  put(data: CopyData): void {
    const size = data.prefix.length + data.body.length;
    if (size > this.#config.budget) return;
    this.#drop(data.url);
    this.#copies.set(data.url, { ...data, ageSecond: -1, full: null, head: null });
    this.#bytes += size;
    for (const [url] of this.#copies) {
      if (this.#bytes <= this.#config.budget) break;
      this.#drop(url);
    }
  }

  /** Stops accepting, lets connections finish, and flushes the log. */
  async stop(): Promise<void> {
    await this.#server.shutdown();
    for (const conn of [...this.#links.keys()]) this.#unlink(conn);
    this.#sweepLinks();
    this.#flushLines();
  }

  #drop(url: string): void {
    const c = this.#copies.get(url);
    if (c === undefined) return;
    this.#copies.delete(url);
    this.#bytes -= c.prefix.length + c.body.length;
  }

  #handle(head: RequestHead, conn: ServerConnection): boolean | Promise<boolean> {
    const x: Exchange = { code: "TCP_MEM_HIT", hier: "HIER_NONE/-", type: null, url: head.target };
    conn.logExtra = x;
    if (this.#config.serveHits && hits.plainRequest(head, conn) && !head.headers.has("via")) {
      let allowed = this.#allowed.get(conn);
      if (allowed === undefined) {
        allowed = hits.listed(conn.remoteAddr.hostname, this.#allow);
        this.#allowed.set(conn, allowed);
      }
      const url = allowed ? this.#urlOf(head) : undefined;
      const copy = url === undefined ? undefined : this.#copies.get(url);
      if (copy !== undefined) {
        const age = hits.ageOf(copy, Date.now());
        if (Atomics.load(this.#versions, copy.slot) === copy.version && age < copy.lifetime) {
          conn.end(hits.readyBytes(copy, copy.body, age, this.#config.name, head.method !== "GET"));
          if (this.#links.size !== 0) {
            const link = this.#links.get(conn);
            if (link !== undefined) link.streak = 0;
          }
          conn.status = copy.status;
          x.url = url!;
          x.type = copy.type;
          return true;
        }
        this.#drop(url!);
      }
    }
    // With --delay or --drop-rate (no hits here), the main loop sees whole connections:
    // its simulated loss is drawn once per connection.
    // A connection whose requests keep going to the main loop goes over for good:
    // a spliced connection costs its hops less than one answer at a time.
    return this.#config.serveHits && alone(head, conn) &&
        (this.#links.get(conn)?.streak ?? 0) < MAX_STREAK
      ? this.#forward(head, conn)
      : this.#relay(head, conn);
  }

  /** The cache key of a request target, remembered; `undefined` when it cannot be proxied. */
  #urlOf(head: RequestHead): string | undefined {
    const raw = head.target;
    let url = this.#urls.get(raw);
    if (url !== undefined) return url;
    try {
      url = hits.resolveTarget(head, this.#upstream);
    } catch {
      return undefined;
    }
    if (this.#urls.size > 10000) this.#urls.clear();
    this.#urls.set(raw, url);
    return url;
  }

  /** A connection to the main loop's relay listener, or `undefined` when it is gone. */
  async #connectMain(): Promise<Deno.TcpConn | undefined> {
    try {
      const main = await Deno.connect({ hostname: "127.0.0.1", port: this.#config.relayPort });
      main.setNoDelay(true);
      return main;
    } catch {
      // The main loop is gone (shutting down).
      return undefined;
    }
  }

  /** The PROXY protocol line that names the client to the main loop. */
  #proxyLine(conn: ServerConnection): Uint8Array {
    const r = conn.remoteAddr;
    const v6 = r.hostname.includes(":");
    return encoder.encode(
      `PROXY ${v6 ? "TCP6" : "TCP4"} ${r.hostname} ${
        v6 ? "::1" : "127.0.0.1"
      } ${r.port} ${this.#config.port}\r\n`,
    );
  }

  /**
   * Has the main loop answer this one request and passes the answer on; the
   * client's connection stays with this loop, so its later hits are answered
   * here. The connection to the main loop is kept for the client's next such
   * request (closed with the client's, by {@linkcode #sweepLinks}). An answer
   * whose end only that connection can tell (chunked, delimited by close, a
   * switch of protocols) hands the client's connection over for good, as
   * {@linkcode #relay} does.
   */
  async #forward(head: RequestHead, conn: ServerConnection): Promise<boolean> {
    conn.logExtra = RELAYED;
    const request = requestBytes(head);
    // A kept connection the main loop closed meanwhile (its keep-alive timeout)
    // answers nothing: an idempotent request is sent again on a new one
    // (RFC 9112 §9.3.1); any other always goes on a new one.
    let link = this.#links.get(conn);
    if (link !== undefined && !IDEMPOTENT.has(head.method)) {
      this.#unlink(conn);
      link = undefined;
    }
    for (let attempt = 0;; attempt++) {
      const reused = link !== undefined;
      if (link === undefined) {
        const main = await this.#connectMain();
        // The main loop is gone (shutting down): close, as it would.
        if (main === undefined) return false;
        link = { main, reader: new BufferedReader(main), fresh: true, streak: 0 };
        this.#links.set(conn, link);
        if (this.#sweep === undefined) {
          this.#sweep = setInterval(() => this.#sweepLinks(), 1000);
          Deno.unrefTimer(this.#sweep);
        }
      }
      let answered = false;
      try {
        const bytes = link.fresh ? concat([this.#proxyLine(conn), request]) : request;
        link.fresh = false;
        await writeAll(link.main, bytes);
        const res = await readResponseHead(link.reader, { requestMethod: head.method });
        if (res === null) throw new Deno.errors.UnexpectedEof("no answer");
        answered = true;
        link.streak++;
        return await this.#answerWith(conn, head, link, res);
      } catch {
        this.#unlink(conn);
        if (!answered && reused && attempt === 0) {
          link = undefined;
          continue;
        }
        return false;
      }
    }
  }

  /** Passes the main loop's answer to the client; whether the connection is kept. */
  async #answerWith(
    conn: ServerConnection,
    head: RequestHead,
    link: MainLink,
    first: ResponseHead,
  ): Promise<boolean> {
    let res = first;
    for (;;) {
      const bytes = encodeResponseHead({
        status: res.status,
        reason: res.reason,
        headers: res.headers,
      });
      if (res.status < 200 && res.status !== 101) {
        // Interim (1xx): passed on, the final answer follows.
        await conn.write(bytes);
        const next = await readResponseHead(link.reader, { requestMethod: head.method });
        if (next === null) throw new Error("the main loop closed after an interim answer");
        res = next;
        continue;
      }
      const body = res.body;
      if (body.type === "none" || body.type === "length") {
        const length = body.type === "length" ? body.length : 0;
        const reader = link.reader;
        if (reader.buffered >= length) {
          // The whole answer is here (the usual case for a small one): one write.
          await conn.write(concat([bytes, reader.peek().subarray(0, length)]));
          reader.consume(length);
        } else {
          await conn.write(bytes);
          for await (const piece of readFixed(reader, length)) await conn.write(piece);
        }
        if (!res.keepAlive) this.#unlink(conn);
        return res.keepAlive;
      }
      // Its end is the main loop's to tell: the connection goes over for good.
      this.#links.delete(conn);
      const client = conn.tunnel();
      const reader = link.reader;
      await client.write(concat([bytes, reader.peek()]));
      reader.consume(reader.buffered);
      if (client.buffered.length > 0) await writeAll(link.main, client.buffered);
      await splice(client, link.main);
      return false;
    }
  }

  /** Closes the kept connection to the main loop of a client's connection. */
  #unlink(conn: ServerConnection): void {
    const link = this.#links.get(conn);
    if (link === undefined) return;
    this.#links.delete(conn);
    try {
      link.main.close();
    } catch {
      // Closed already.
    }
  }

  /** Closes the kept connections to the main loop whose clients have gone. */
  #sweepLinks(): void {
    for (const conn of this.#links.keys()) if (conn.closed) this.#unlink(conn);
    if (this.#links.size === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  /** Hands the connection to the main loop, this request first, for the rest of its life. */
  async #relay(head: RequestHead, conn: ServerConnection): Promise<boolean> {
    conn.logExtra = RELAYED;
    this.#unlink(conn);
    const client = conn.tunnel();
    const main = await this.#connectMain();
    // The main loop is gone (shutting down): close, as it would.
    if (main === undefined) return false;
    try {
      await writeAll(
        main,
        concat([this.#proxyLine(conn), requestBytes(head), client.buffered]),
      );
    } catch {
      main.close();
      return false;
    }
    await splice(client, main);
    return false;
  }

  #log(entry: AccessLogEntry): void {
    if (entry.extra === RELAYED) return;
    const x = entry.extra as Exchange | undefined;
    this.#metrics?.request(x?.code ?? "NONE_NONE", { sent: entry.sent, ms: entry.duration });
    if (!this.#config.logging) return;
    this.#lines.push(hits.squidLine(entry));
    if (this.#lines.length >= 256) this.#flushLines();
    else this.#flush ??= setTimeout(() => this.#flushLines(), 50);
  }

  #flushLines(): void {
    if (this.#flush !== undefined) clearTimeout(this.#flush);
    this.#flush = undefined;
    if (this.#lines.length === 0) return;
    this.#post({ type: "log", lines: this.#lines });
    this.#lines = [];
  }
}
