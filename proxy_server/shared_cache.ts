/**
 * The shared cache tier (L2) that several proxies use through Redis or Redis
 * Cluster: a miss in a node's own store (L1) looks here before the origin,
 * and every response a node stores is written here too.
 *
 * Layout: all the variants of one URI live in one Redis hash,
 * `nk:{<sha256(uri)>}`, so they share a hash slot and are written and purged
 * atomically, also on a cluster. Its field `v` holds the `Vary` value of the
 * latest response; each variant has its metadata (`m:<id>`, JSON with the
 * body's length and SHA-256), its chunk count (`n:<id>`) and its body in
 * chunks of at most 256 KiB (`c:<id>:<i>`). The hash expires when the
 * longest-lived variant's freshness plus stale window ends. A body read back
 * is checked against the length and digest in its metadata, and the metadata
 * against the key asked for: a truncated or foreign value is a miss.
 *
 * Misses for one key on several nodes are collapsed with a lease
 * (`SET NX PX`): its owner fetches from the origin, writes here, releases the
 * lease and publishes on `nk:fill`; the others wait for that message (or the
 * lease's expiry, when the owner died) and read from here. The owner renews
 * the lease while it streams, so a long fill is not fetched twice. Purges and
 * invalidations delete here and publish on `nk:inv`, so that every node drops
 * its own copy. A 304 that refreshes a node's copy refreshes the one here too.
 *
 * Redis being down or slow is never a client's failure: every operation has
 * a deadline (50 ms by default), and a failed one counts as a miss. A Redis
 * that stops answering (stopped, or a network that drops everything) is
 * treated as down after a run of missed deadlines, until a probe is answered.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { hash } from "node:crypto";
import { concat } from "../lib/bytes.ts";
import {
  currentAge,
  deltaSeconds,
  type FieldReader,
  freshnessLifetime,
  parseCacheControl,
  varyKey,
} from "./cache.ts";
import { type EntryMeta, type EntryWriter, surrogateKeys } from "./store.ts";
import { parseSharedCacheUrl, RedisLink, type Reply } from "./_redis.ts";

/** Options of {@linkcode SharedCache.connect}. */
export interface SharedCacheOptions {
  /**
   * Milliseconds each Redis operation may take before it counts as failed
   * (and the request goes on without the shared tier).
   * @default {50}
   */
  timeout?: number;
  /**
   * The largest body written to the shared tier; larger ones stay node-local.
   * @default {8388608}
   */
  maxObjectSize?: number;
  /**
   * The size of the chunks a body is stored in.
   * @default {262144}
   */
  chunkSize?: number;
  /**
   * Milliseconds the lease on a missing key lasts; its owner renews it every
   * third of that while it fetches, and a waiter takes over once it expires
   * (the owner died).
   * @default {5000}
   */
  leaseTime?: number;
  /**
   * The password when the URL has none (as `REDIS_PASSWORD`).
   * @default {undefined}
   */
  password?: string;
  /**
   * Receives a line at each change of the link's state (up, down).
   * @default {() => {}}
   */
  log?: (line: string) => void;
}

/** A response read back from the shared tier, checked. */
export interface SharedEntry {
  /** Its metadata, as the node-local store keeps it. */
  meta: EntryMeta;
  /** The whole body. */
  body: Uint8Array;
}

/** What another node asked every node to drop from its own store. */
export interface Invalidation {
  /** Absolute URIs (all their variants). */
  urls: string[];
  /** Surrogate keys. */
  tags: string[];
}

/** Counters of the shared tier, for `/metrics`. */
export interface SharedStats {
  /** Lookups answered from the shared tier. */
  hits: number;
  /** Lookups that found nothing usable (a corrupt value included). */
  misses: number;
  /** Values that failed their check (length, digest or key). */
  corrupt: number;
  /** Misses that waited on another node's lease. */
  leaseWaits: number;
  /** Redis operations that failed or passed their deadline. */
  errors: number;
}

/** The outcome of {@linkcode SharedCache.claim}. */
export interface Claim {
  /** The response, when the shared tier has it (maybe after waiting on another node). */
  entry?: SharedEntry;
  /** Held when this node must fetch: release it once the response is stored. */
  lease?: { release(): Promise<void> };
}

const FILL = "nk:fill";
const INVALIDATE = "nk:inv";
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
/** Metadata texts kept parsed, and URIs kept with their key. */
const META_CACHE = 4096;
/** The largest body, and the most bytes in all, of the values kept to compare hits with. */
const SEEN_BODY = 16 << 10;
const SEEN_BYTES = 4 << 20;
const keys = new Map<string, string>();
const leases = new Map<string, string>();

const READ = `local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {} end
if v ~= ARGV[2] then return {v} end
local n = tonumber(redis.call('HGET', KEYS[1], 'n:' .. ARGV[1]) or '-1')
local out = {v, redis.call('HGET', KEYS[1], 'm:' .. ARGV[1]) or ''}
for i = 0, n - 1 do out[#out + 1] = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1] .. ':' .. i) or '' end
return out`;

// A response with another Vary (or none) replaces every variant (RFC 9111 §4.1).
const WRITE = `local k, vid = KEYS[1], ARGV[3]
if redis.call('HGET', k, 'v') ~= ARGV[2] then redis.call('DEL', k) end
local old = tonumber(redis.call('HGET', k, 'n:' .. vid) or '0')
local n = #ARGV - 4
for i = n, old - 1 do redis.call('HDEL', k, 'c:' .. vid .. ':' .. i) end
redis.call('HSET', k, 'v', ARGV[2], 'n:' .. vid, n, 'm:' .. vid, ARGV[4])
for i = 0, n - 1 do redis.call('HSET', k, 'c:' .. vid .. ':' .. i, ARGV[5 + i]) end
if redis.call('PTTL', k) < tonumber(ARGV[1]) then redis.call('PEXPIRE', k, ARGV[1]) end
return n`;

const TAG = `redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

const TAKE_TAG = `local m = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return m`;

const DEL = `return redis.call('DEL', KEYS[1])`;

const ACQUIRE = `return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const RENEW =
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const META = `return redis.call('HGET', KEYS[1], 'm:' .. ARGV[1])`;

// Only if the metadata is still what the caller read: another node may have stored a newer response.
const REFRESH = `local f = 'm:' .. ARGV[1]
if redis.call('HGET', KEYS[1], f) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], f, ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1`;

function sha256(data: string | Uint8Array): string {
  return hash("sha256", data, "hex");
}

/**
 * The Redis key of a URI's hash; its `{…}` hash tag keeps the URI's
 * variants, lease and chunks on one cluster slot.
 *
 * @param url The absolute URI.
 * @returns The key.
 *
 * @example
 * ```ts
 * import { sharedKey } from "./shared_cache.ts";
 * import { assertMatch } from "../lib/testing/assert.ts";
 * assertMatch(sharedKey("http://a.test/"), /^nk:\{[0-9a-f]{32}\}$/);
 * ```
 */
export function sharedKey(url: string): string {
  let key = keys.get(url);
  if (key === undefined) {
    key = `nk:{${sha256(url).slice(0, 32)}}`;
    if (keys.size >= META_CACHE) keys.clear();
    keys.set(url, key);
  }
  return key;
}

/** The key of the lease on a miss of `key` (the URI, or the full key with the Vary part). */
function leaseKey(url: string, key: string): string {
  let lk = leases.get(key);
  if (lk === undefined) {
    lk = `${sharedKey(url)}:l:${sha256(key).slice(0, 16)}`;
    if (leases.size >= META_CACHE) leases.clear();
    leases.set(key, lk);
  }
  return lk;
}

function variantId(vk: string): string {
  return vk === "" ? "" : sha256(vk).slice(0, 16);
}

/**
 * Seconds a stored response stays useful to other nodes: its remaining
 * freshness plus the longest stale window that may serve it
 * (`stale-while-revalidate`, `stale-if-error`, or the operator's default).
 *
 * @param status The response status.
 * @param policy The response fields as the caching policy reads them.
 * @param options When it was requested and received, and the operator's stale-if-error window.
 * @returns The seconds (0 or less: not worth sharing).
 *
 * @example
 * ```ts
 * import { sharedTtl } from "./shared_cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const now = Date.now();
 * const h = new Headers({ "cache-control": "max-age=60, stale-while-revalidate=30" });
 * assertEquals(sharedTtl(200, h, { requestTime: now, responseTime: now }), 90);
 * ```
 */
export function sharedTtl(
  status: number,
  policy: FieldReader,
  options: {
    /** When the request was sent (ms). */
    requestTime: number;
    /** When the response arrived (ms). */
    responseTime: number;
    /**
     * The operator's stale-if-error window in seconds.
     * @default {0}
     */
    staleIfError?: number;
  },
): number {
  const { lifetime } = freshnessLifetime(status, policy, { responseTime: options.responseTime });
  const age = currentAge(policy, { ...options, now: Date.now() });
  const cc = parseCacheControl(policy.get("cache-control"));
  const window = Math.max(
    deltaSeconds(cc.get("stale-while-revalidate")) ?? 0,
    deltaSeconds(cc.get("stale-if-error")) ?? 0,
    options.staleIfError ?? 0,
  );
  return lifetime - age + window;
}

/**
 * The shared tier of several proxies, on Redis or Redis Cluster.
 *
 * @example Connecting (the link comes up in the background; until then every lookup misses)
 * ```ts
 * import { SharedCache } from "./shared_cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const shared = SharedCache.connect("redis://127.0.0.1:1", { log() {} });
 * assertEquals(await shared.lookup("http://a.test/", new Headers()), undefined);
 * await shared.close();
 * ```
 */
export class SharedCache {
  #link: RedisLink;
  #maxObjectSize: number;
  #chunkSize: number;
  #leaseTime: number;
  #timeout: number;
  #node = crypto.randomUUID();
  #waiters = new Map<string, Set<(why: "fill" | "down") => void>>();
  /** Fills heard and times Redis went down, counted (see {@linkcode claim}). */
  #wakes = 0;
  #onInvalidate: ((inv: Invalidation) => void | Promise<void>) | undefined;
  #stats = { hits: 0, misses: 0, corrupt: 0, leaseWaits: 0 };
  /** Writes in flight, by URI: a lease on the URI is released once they end. */
  #writing = new Map<string, Promise<unknown>>();
  /** The timers renewing the leases this node holds. */
  #renewing = new Set<ReturnType<typeof setInterval>>();
  /** Metadata read back, parsed, by its text (most hits read the same few again). */
  #metas = new Map<string, { meta: EntryMeta; digest: string }>();
  /**
   * The last value of one chunk that passed its check, by key, with its
   * entry: a value read back byte for byte the same is that entry again,
   * compared rather than hashed (a hit's largest cost after the round trip).
   */
  #seen = new Map<string, { raw: Uint8Array; entry: SharedEntry }>();
  #seenBytes = 0;

  private constructor(url: string, options: SharedCacheOptions) {
    const parsed = parseSharedCacheUrl(url, options.password);
    this.#timeout = options.timeout ?? 50;
    this.#maxObjectSize = options.maxObjectSize ?? 8 << 20;
    this.#chunkSize = options.chunkSize ?? 256 << 10;
    this.#leaseTime = options.leaseTime ?? 5000;
    this.#link = new RedisLink(parsed, {
      timeout: this.#timeout,
      log: options.log ?? (() => {}),
      channels: [FILL, INVALIDATE],
      onState: (up) => {
        if (!up) this.#wakeAll();
      },
      onMessage: (channel, message) => this.#message(channel, message),
    });
  }

  /** Nobody will publish while Redis is down or silent: releases every waiter at once. */
  #wakeAll(): void {
    this.#wakes++;
    for (const set of this.#waiters.values()) for (const w of set) w("down");
  }

  /** Runs a script under the deadline: its reply, or `undefined` when it failed. */
  #eval(
    script: string,
    keys: string[],
    args: Array<string | Uint8Array>,
    timeout = this.#timeout,
  ): Promise<Reply | undefined> {
    return this.#link.eval(script, keys, args, timeout);
  }

  /**
   * Connects to a Redis (`redis://[user:pass@]host:port[/db]`, `rediss://`
   * for TLS) or a Redis Cluster (`redis-cluster://host:port,host:port,…`).
   * It returns at once; the link comes up in the background and reconnects
   * with back-off whenever it is lost.
   *
   * @param url The `--shared-cache` URL.
   * @param options Deadlines, sizes and the log.
   * @returns The shared tier.
   * @throws {TypeError} When the URL is not one of those forms.
   */
  static connect(url: string, options: SharedCacheOptions = {}): SharedCache {
    return new SharedCache(url, options);
  }

  /** Whether the link to Redis is up (connected, and answering). */
  get up(): boolean {
    return this.#link.up;
  }

  /** The largest body written to the shared tier, in bytes (`--shared-max-object-size`). */
  get maxObjectSize(): number {
    return this.#maxObjectSize;
  }

  /** Whether this node receives fill and invalidation messages. */
  get subscribed(): boolean {
    return this.#link.subscribed;
  }

  /** The counters, for `/metrics`. */
  get stats(): SharedStats {
    return { ...this.#stats, errors: this.#link.errors };
  }

  /**
   * Sets what to do when another node invalidates: drop those objects from
   * this node's own store.
   *
   * @param fn The handler.
   */
  onInvalidate(fn: (inv: Invalidation) => void | Promise<void>): void {
    this.#onInvalidate = fn;
  }

  #message(channel: string, message: string): void {
    if (channel === FILL) {
      this.#wakes++;
      for (const w of this.#waiters.get(message) ?? []) w("fill");
      return;
    }
    let inv: Invalidation & { from?: string };
    try {
      inv = JSON.parse(message);
    } catch {
      return;
    }
    if (inv.from === this.#node || this.#onInvalidate === undefined) return;
    Promise.resolve(this.#onInvalidate({ urls: inv.urls ?? [], tags: inv.tags ?? [] }))
      .catch(() => {});
  }

  /**
   * Reads the variant of a URI that a request selects, checked.
   *
   * @param url The absolute URI.
   * @param request The request fields (for `Vary`).
   * @returns The entry; `null` when there is none (or it failed its check);
   *   `undefined` when Redis is down, failed or was too slow.
   */
  async lookup(url: string, request: FieldReader): Promise<SharedEntry | null | undefined> {
    const found = await this.#read(url, request);
    if (found) this.#stats.hits++;
    else this.#stats.misses++;
    return found;
  }

  #read(
    url: string,
    request: FieldReader,
    recheck = false,
  ): Promise<SharedEntry | null | undefined> {
    const key = sharedKey(url);
    // Most URIs have no Vary: guess the variant without one, so that a hit
    // of one chunk costs one HMGET (no script) and one round trip, and no
    // async frame of its own.
    return this.#fields(key, "").then((reply) =>
      this.#readFields(url, key, request, reply, recheck)
    );
  }

  /** The rest of {@linkcode #read}, once the fields of the variant without `Vary` came back. */
  #readFields(
    url: string,
    key: string,
    request: FieldReader,
    reply: Reply | undefined,
    recheck: boolean,
  ): SharedEntry | null | undefined | Promise<SharedEntry | null | undefined> {
    if (!Array.isArray(reply)) return reply === undefined ? undefined : null;
    if (reply[0] === null) return null;
    const vary = text(reply[0]);
    const vk = varyKey(vary === "" ? null : vary, request);
    if (vk === null) return null;
    if (vary !== "" || pieceCount(reply[2]) > 1) {
      return this.#readVariant(url, key, vary, vk, vary === "" ? reply : undefined, recheck);
    }
    const pieces = pieceCount(reply[2]);
    if (pieces < 0) return null;
    return this.#checked(
      [reply[0]!, reply[1]!, pieces === 1 ? reply[3]! : EMPTY],
      url,
      vk,
      recheck,
    );
  }

  /** Reads a variant under `Vary`, or a body of several chunks. */
  async #readVariant(
    url: string,
    key: string,
    vary: string,
    vk: string,
    fields: Reply[] | undefined,
    recheck: boolean,
  ): Promise<SharedEntry | null | undefined> {
    const vid = variantId(vk);
    let reply: Reply | undefined = fields;
    if (reply === undefined) {
      reply = await this.#fields(key, vid);
      if (!Array.isArray(reply)) return reply === undefined ? undefined : null;
      // Replaced by a response with another Vary meanwhile: not this variant.
      if (text(reply[0]) !== vary) return null;
    }
    const pieces = pieceCount(reply[2]);
    if (pieces > 1) {
      // Several chunks: read them all in one script, so that they belong together.
      const all = await this.#eval(READ, [key], [vid, vary]);
      if (!Array.isArray(all)) return all === undefined ? undefined : null;
      reply = all;
    } else if (pieces === 1) {
      reply = [reply[0]!, reply[1]!, reply[3]!];
    } else if (pieces === 0) {
      reply = [reply[0]!, reply[1]!, EMPTY];
    } else {
      return null;
    }
    return this.#checked(reply, url, vk, recheck);
  }

  /** Checks a value read (`[v, meta, ...chunks]`) against the key it was read for. */
  #checked(reply: Reply[], url: string, vk: string, recheck: boolean): SharedEntry | null {
    if (reply.length < 2) return null;
    const entry = this.#verify(reply, vk === "" ? url : `${url}\n${vk}`);
    if (entry === null && !recheck) this.#stats.corrupt++;
    return entry;
  }

  /** A variant's `v`, `m:`, `n:` and first chunk, in one HMGET. */
  #fields(key: string, vid: string): Promise<Reply | undefined> {
    const args = vid === ""
      ? ["HMGET", key, "v", "m:", "n:", "c::0"]
      : ["HMGET", key, "v", `m:${vid}`, `n:${vid}`, `c:${vid}:0`];
    return this.#link.command(key, args, this.#timeout);
  }

  /**
   * Checks a value read back (`[v, meta, ...chunks]`): its metadata names
   * `key`, and the body has its length and digest. The metadata parsed is
   * kept by its text, so that a hit parses it once.
   */
  #verify(reply: Reply[], key: string): SharedEntry | null {
    const raw = reply[1];
    if (!(raw instanceof Uint8Array)) return null;
    const seen = this.#seen.get(key);
    if (
      seen !== undefined && reply.length === 3 && sameBytes(raw, seen.raw) &&
      reply[2] instanceof Uint8Array && sameBytes(reply[2], seen.entry.body)
    ) {
      // The very bytes checked last time: the same entry, and no digest to compute.
      return seen.entry;
    }
    const json = decoder.decode(raw);
    let known = this.#metas.get(json);
    if (known === undefined) {
      let meta: EntryMeta & { sha256?: string };
      try {
        meta = JSON.parse(json);
      } catch {
        return null;
      }
      if (typeof meta !== "object" || meta === null || typeof meta.sha256 !== "string") return null;
      const { sha256: digest, ...plain } = meta;
      known = { meta: plain, digest };
      if (this.#metas.size >= META_CACHE) this.#metas.clear();
      this.#metas.set(json, known);
    }
    const { meta, digest } = known;
    if (meta.key !== key) return null;
    const pieces = reply.slice(2).filter((r): r is Uint8Array => r instanceof Uint8Array);
    if (pieces.length !== reply.length - 2) return null;
    const body = pieces.length === 1 ? pieces[0]! : concat(pieces);
    if (body.length !== meta.bodyLength || sha256(body) !== digest) return null;
    if (body.length > SEEN_BODY) {
      // A view into a block of the bytes read, which it would keep alive: its own copy instead.
      return { meta, body: body.buffer.byteLength > 2 * body.length ? body.slice() : body };
    }
    // Copies, so that the memo holds no view into the link's read buffers.
    const entry = { meta, body: body.slice() };
    const size = raw.length + body.length;
    if (this.#seenBytes + size > SEEN_BYTES || this.#seen.size >= META_CACHE) {
      this.#seen.clear();
      this.#seenBytes = 0;
    }
    const old = this.#seen.get(key);
    if (old !== undefined) this.#seenBytes -= old.raw.length + old.entry.body.length;
    this.#seen.set(key, { raw: raw.slice(), entry });
    this.#seenBytes += size;
    return entry;
  }

  /**
   * Looks a miss up in the shared tier and, when it is not there, takes the
   * lease on it or waits for the node that holds the lease to store it.
   *
   * @param url The absolute URI.
   * @param key The key misses are collapsed on (the URI, or the full key with the Vary part).
   * @param request The request fields (for `Vary`).
   * @returns The entry, or the lease to fetch under, or neither (fetch without a lease).
   */
  claim(url: string, key: string, request: FieldReader): Promise<Claim> {
    // Most claims find the entry: no async frame of their own, and no
    // listener for fills (see #contend).
    const wakes = this.#wakes;
    return this.#read(url, request).then((found) => {
      if (found) return this.#hit(found);
      if (found === undefined) return this.#miss({});
      return this.#contend(url, key, request, wakes);
    });
  }

  /**
   * The rest of {@linkcode claim} after a look that found nothing: takes the
   * lease, or waits for its owner's fill. One that waits looks again instead
   * when a fill (or Redis going down) was heard since it looked (`wakes`
   * changed), which may have been this key's.
   */
  async #contend(url: string, key: string, request: FieldReader, wakes: number): Promise<Claim> {
    const lk = leaseKey(url, key);
    let waited = false;
    for (;;) {
      const token = `${this.#node}:${crypto.randomUUID()}`;
      const got = await this.#eval(ACQUIRE, [lk], [token, String(this.#leaseTime)]);
      if (got === undefined) return this.#miss({});
      if (got === 1) {
        const lease = this.#lease(url, lk, token);
        // The previous owner may have stored it between the read and the lease.
        const again = await this.#read(url, request, true);
        if (!again) return this.#miss({ lease });
        await lease.release();
        return this.#hit(again);
      }
      if (!waited) this.#stats.leaseWaits++;
      waited = true;
      const woken = this.#listen(lk);
      try {
        if (this.#wakes === wakes) {
          // No bound on the whole wait: a live owner renews its lease until its
          // fill ends, however long; a dead one's expires within a lease time.
          // It is waited on a second at most at a time, then looked at again:
          // a Redis that stopped answering meanwhile is noticed by that look
          // (within a deadline) even when this node sends nothing else.
          const why = await woken.wait(Math.min(this.#leaseTime, 1000));
          if (why === "down") return this.#miss({});
          if (why === "fill") {
            // Not there after the owner's fill: it was not storable; fetch without a lease.
            const filled = await this.#read(url, request);
            return filled ? this.#hit(filled) : this.#miss({});
          }
        }
      } finally {
        woken.cancel();
      }
      // The lease may have expired (its owner died), or a fill was heard: look again.
      wakes = this.#wakes;
      const found = await this.#read(url, request);
      if (found) return this.#hit(found);
      if (found === undefined) return this.#miss({});
    }
  }

  /** A lease this node holds: renewed every third of its time until released (at most once). */
  #lease(url: string, lk: string, token: string): { release(): Promise<void> } {
    const ms = String(this.#leaseTime);
    const timer = setInterval(async () => {
      // 0: no longer ours (it expired while Redis was unreachable, and another node took it).
      if (await this.#eval(RENEW, [lk], [token, ms]) === 0) stop();
    }, this.#leaseTime / 3);
    this.#renewing.add(timer);
    const stop = () => {
      clearInterval(timer);
      this.#renewing.delete(timer);
    };
    let released: Promise<void> | undefined;
    return {
      release: () => {
        stop();
        return released ??= this.#release(url, lk, token);
      },
    };
  }

  #hit(entry: SharedEntry): Claim {
    this.#stats.hits++;
    return { entry };
  }

  #miss(claim: Claim): Claim {
    this.#stats.misses++;
    return claim;
  }

  #listen(lk: string): {
    wait(ms: number): Promise<"fill" | "down" | "timeout">;
    cancel(): void;
  } {
    // A claim may listen and then find it need not wait: the promise is made only for a wait.
    let why: "fill" | "down" | "timeout" | undefined;
    let resolve: ((why: "fill" | "down" | "timeout") => void) | undefined;
    const wake = (w: "fill" | "down" | "timeout") => {
      if (resolve !== undefined) resolve(w);
      else why ??= w;
    };
    let set = this.#waiters.get(lk);
    if (set === undefined) this.#waiters.set(lk, set = new Set());
    set.add(wake);
    let timer: ReturnType<typeof setTimeout> | undefined;
    return {
      wait: (ms) => {
        if (why !== undefined) return Promise.resolve(why);
        return new Promise((r) => {
          resolve = r;
          timer = setTimeout(() => r("timeout"), ms);
        });
      },
      cancel: () => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0 && this.#waiters.get(lk) === set) this.#waiters.delete(lk);
      },
    };
  }

  async #release(url: string, lk: string, token: string): Promise<void> {
    // Waiters read the shared tier when woken: the write must be done first.
    await this.#writing.get(url);
    await this.#eval(RELEASE, [lk], [token]);
    await this.#link.publish(FILL, lk);
  }

  /**
   * Wraps a node-local store writer so that the response also goes to the
   * shared tier when it is committed (unless its body is over the shared
   * object size, or it is not worth sharing).
   *
   * @param writer The node-local writer.
   * @param meta The entry's metadata (its `bodyLength` is filled in on commit).
   * @param policy The response fields as the caching policy reads them, and the
   *   operator's stale-if-error window (`fallback`, seconds).
   * @returns The writer to use instead.
   */
  tee(
    writer: EntryWriter,
    meta: EntryMeta,
    policy: { fields: FieldReader; fallback?: number },
  ): EntryWriter {
    const ttl = ttlOf(meta, policy);
    if (ttl <= 0 || !this.up) return writer;
    let chunks: Uint8Array[] | null = [];
    let size = 0;
    return {
      write: async (chunk) => {
        size += chunk.length;
        if (size > this.#maxObjectSize) chunks = null;
        else chunks?.push(chunk.slice());
        return await writer.write(chunk);
      },
      commit: async () => {
        await writer.commit();
        if (chunks === null) return;
        // In the background: the client need not wait for Redis.
        const done = this.put(
          { ...meta, bodyLength: size },
          chunks.length === 1 ? chunks[0]! : concat(chunks),
          ttl,
        )
          .catch(() => false);
        this.#writing.set(meta.url, done);
        done.finally(() => {
          if (this.#writing.get(meta.url) === done) this.#writing.delete(meta.url);
        });
      },
      abort: () => writer.abort(),
    };
  }

  /**
   * Writes one response to the shared tier.
   *
   * @param meta Its metadata.
   * @param body Its whole body.
   * @param ttl Seconds it stays there.
   * @returns Whether it was written.
   */
  async put(meta: EntryMeta, body: Uint8Array, ttl: number): Promise<boolean> {
    if (body.length > this.#maxObjectSize || ttl <= 0) return false;
    const vary = meta.fields.find(([n]) => n === "vary")?.[1] ?? "";
    const stored = { ...meta, bodyLength: body.length, sha256: sha256(body) };
    const args: Array<string | Uint8Array> = [
      String(Math.ceil(ttl * 1000)),
      vary,
      variantId(secondaryKey(meta)),
      JSON.stringify(stored),
    ];
    for (let off = 0; off < body.length; off += this.#chunkSize) {
      args.push(body.subarray(off, off + this.#chunkSize));
    }
    const pieces = args.length - 4;
    const key = sharedKey(meta.url);
    // A write runs in the background, so its deadline is per chunk and at least a second.
    const deadline = Math.max(this.#timeout * (1 + pieces), 1000);
    const ok = await this.#eval(WRITE, [key], args, deadline);
    if (ok === undefined) return false;
    const ms = String(Math.ceil(ttl * 1000));
    for (const tag of surrogateKeys(meta.fields)) {
      await this.#eval(TAG, [`nk:t:${tag}`], [meta.url, ms]);
    }
    return true;
  }

  /**
   * Refreshes the shared copy of a response that a 304 revalidated (RFC 9111
   * §4.3.4): its metadata and TTL, so that other nodes find it fresh too. It
   * is left alone when it is no longer the copy that was revalidated (another
   * node stored a newer response, or it expired).
   *
   * @param previous The metadata of the revalidated copy, before the 304.
   * @param updated Its metadata with the 304's fields and times.
   * @param policy The updated fields as the caching policy reads them, and
   *   the operator's stale-if-error window (`fallback`, seconds).
   * @returns Whether the shared copy was refreshed.
   */
  async refresh(
    previous: EntryMeta,
    updated: EntryMeta,
    policy: { fields: FieldReader; fallback?: number },
  ): Promise<boolean> {
    const ttl = ttlOf(updated, policy);
    if (ttl <= 0 || !this.up) return false;
    const key = sharedKey(updated.url);
    const vid = variantId(secondaryKey(updated));
    const old = await this.#eval(META, [key], [vid]);
    if (!(old instanceof Uint8Array)) return false;
    let stored: EntryMeta & { sha256?: string };
    try {
      stored = JSON.parse(decoder.decode(old));
    } catch {
      return false;
    }
    if (
      stored?.key !== previous.key || stored.responseTime !== previous.responseTime ||
      stored.requestTime !== previous.requestTime
    ) return false;
    const meta = { ...updated, bodyLength: stored.bodyLength, sha256: stored.sha256 };
    const ms = String(Math.ceil(ttl * 1000));
    return await this.#eval(REFRESH, [key], [vid, old, JSON.stringify(meta), ms]) === 1;
  }

  /**
   * Deletes every variant of these URIs from the shared tier and tells every
   * node to drop them from its own store (a PURGE, or RFC 9111 §4.4).
   *
   * @param urls The absolute URIs.
   * @returns How many URIs had something stored.
   */
  async purgeUrls(urls: readonly string[]): Promise<number> {
    if (urls.length === 0 || !this.up) return 0;
    const n = await this.#deleteAll(urls);
    await this.#announce({ urls: [...urls], tags: [] });
    return n;
  }

  /**
   * Deletes every object whose response carried one of these surrogate keys
   * from the shared tier and tells every node to drop them too.
   *
   * @param tags The surrogate keys.
   * @returns How many URIs were deleted.
   */
  async purgeTags(tags: readonly string[]): Promise<number> {
    if (tags.length === 0 || !this.up) return 0;
    const urls = new Set<string>();
    for (const tag of tags) {
      const r = await this.#eval(TAKE_TAG, [`nk:t:${tag}`], []);
      if (Array.isArray(r)) { for (const u of r) urls.add(text(u)); }
    }
    const n = await this.#deleteAll(urls);
    await this.#announce({ urls: [], tags: [...tags] });
    return n;
  }

  /** Deletes these URIs' objects (every variant); returns how many existed. */
  async #deleteAll(urls: Iterable<string>): Promise<number> {
    let n = 0;
    for (const url of urls) {
      const r = await this.#eval(DEL, [sharedKey(url)], []);
      if (typeof r === "number") n += r;
    }
    return n;
  }

  async #announce(inv: Invalidation): Promise<void> {
    await this.#link.publish(INVALIDATE, JSON.stringify({ ...inv, from: this.#node }));
  }

  /** Closes the link; the leases this node holds are no longer renewed. */
  async close(): Promise<void> {
    for (const timer of this.#renewing) clearInterval(timer);
    this.#renewing.clear();
    this.#wakeAll();
    await this.#link.close();
  }
}

/** The seconds a response stays in the shared tier (see {@linkcode sharedTtl}). */
function ttlOf(meta: EntryMeta, policy: { fields: FieldReader; fallback?: number }): number {
  return sharedTtl(meta.status, policy.fields, {
    requestTime: meta.requestTime,
    responseTime: meta.responseTime,
    ...(policy.fallback !== undefined ? { staleIfError: policy.fallback } : {}),
  });
}

/** The secondary (Vary) part of an entry's key; "" without Vary. */
function secondaryKey(meta: EntryMeta): string {
  return meta.key.startsWith(`${meta.url}\n`) ? meta.key.slice(meta.url.length + 1) : "";
}

function text(r: Reply | undefined): string {
  return r instanceof Uint8Array && r.length > 0 ? decoder.decode(r) : "";
}

/** Whether two byte strings are equal (natively: ten times a loop's speed on 1 KiB). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The chunk count stored in `n:` (-1 when missing or malformed). */
function pieceCount(r: Reply | undefined): number {
  if (!(r instanceof Uint8Array) || r.length === 0 || r.length > 9) return -1;
  let n = 0;
  for (const b of r) {
    if (b < 48 || b > 57) return -1;
    n = n * 10 + b - 48;
  }
  return n;
}
