/**
 * Connection caps for a server: a global limit and a per-client-address
 * limit, counted in shared memory so that every event loop of a server
 * (the web server runs one per core, in workers) enforces the same totals,
 * as nginx's `limit_conn` does across its workers.
 *
 * The per-address counts live in a count-min sketch: each address adds to two
 * slots chosen by two hashes, and its count is the smaller of the two. A
 * count is never under the truth, so the cap always holds; two addresses
 * sharing both slots (rare with 2 × 65,536 slots) can only make the cap
 * stricter for them.
 *
 * @module
 */

const SLOTS = 1 << 16;
const TOTAL = 2 * SLOTS;
// After the slots: the open-connection count, then the second of the last warning.
const WORDS = TOTAL + 2;

/** Options of {@linkcode ConnectionLimits}. */
export interface ConnectionLimitsOptions {
  /**
   * Connections open at once, over all addresses; 0 means no limit.
   * @default {defaultMaxConnections()}
   */
  maxConnections?: number;
  /**
   * Connections open at once from one client address; 0 means no limit.
   * @default {an eighth of maxConnections, between 16 and 1024}
   */
  maxConnectionsPerIp?: number;
  /**
   * Counters shared with other event loops ({@linkcode ConnectionLimits.buffer}
   * of the first one); a new buffer when absent.
   * @default {undefined}
   */
  buffer?: SharedArrayBuffer;
}

/** Why a connection was refused, or `"ok"` when it was admitted. */
export type Admission = "ok" | "global" | "per-ip";

/**
 * Reads the process's soft limit on open files (`RLIMIT_NOFILE`) from
 * `/proc/self/limits`.
 *
 * @returns The limit, or `undefined` where it cannot be read.
 *
 * @example
 * ```ts
 * import { openFileLimit } from "./limits.ts";
 * import { assert } from "../testing/assert.ts";
 * const limit = openFileLimit();
 * assert(limit === undefined || limit > 0);
 * ```
 */
export function openFileLimit(): number | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    if (m === null) return undefined;
    return m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * The default global cap: what the open-file limit leaves after a reserve
 * (96 descriptors, or a sixteenth of the limit when that is more) for the
 * runtime, files, logs and refused connections, divided by the descriptors
 * each client connection needs (2 for a proxy: the client's and the upstream's).
 *
 * @param perConnection Descriptors each client connection may hold.
 * @returns The cap (at least 16).
 *
 * @example
 * ```ts
 * import { defaultMaxConnections } from "./limits.ts";
 * import { assert } from "../testing/assert.ts";
 * assert(defaultMaxConnections(2) <= defaultMaxConnections(1));
 * ```
 */
export function defaultMaxConnections(perConnection = 1): number {
  const limit = Math.min(openFileLimit() ?? 1024, 1 << 20);
  // The reserve covers the runtime's own descriptors (worker threads, watchers,
  // listeners), files being served, and refused connections on their way out.
  const usable = limit - Math.max(96, Math.floor(limit / 16));
  return Math.max(16, Math.floor(usable / perConnection));
}

/** FNV-1a over the address text, with a seed: two seeds give two independent slots. */
function slot(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 15;
  return (h >>> 0) & (SLOTS - 1);
}

/**
 * The address a client is counted under: IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
 * counts as the IPv4 address it maps.
 */
function clientKey(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * Global and per-address connection counters, in a `SharedArrayBuffer` that
 * workers can share.
 *
 * @example
 * ```ts
 * import { ConnectionLimits } from "./limits.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const limits = new ConnectionLimits({ maxConnections: 10, maxConnectionsPerIp: 2 });
 * assertEquals(limits.admit("10.0.0.1"), "ok");
 * assertEquals(limits.admit("10.0.0.1"), "ok");
 * assertEquals(limits.admit("10.0.0.1"), "per-ip");
 * assertEquals(limits.admit("10.0.0.2"), "ok");
 * limits.release("10.0.0.1");
 * assertEquals(limits.open, 2);
 * ```
 */
export class ConnectionLimits {
  /** The global cap (0: none). */
  readonly maxConnections: number;
  /** The per-address cap (0: none). */
  readonly maxConnectionsPerIp: number;
  readonly #buffer: SharedArrayBuffer;
  readonly #slots: Int32Array;
  readonly #total: Int32Array;
  readonly #warned: Int32Array;

  /**
   * Creates the counters, or attaches to shared ones.
   *
   * @param options The caps and the shared buffer.
   */
  constructor(options: ConnectionLimitsOptions = {}) {
    const max = options.maxConnections ?? defaultMaxConnections();
    if (!Number.isInteger(max) || max < 0) {
      throw new RangeError(`Cannot limit connections to ${max}: not a whole number ≥ 0`);
    }
    // No one address may take more than an eighth of the capacity, so it takes
    // eight to exhaust it; yet enough for a NAT with dozens of browsers behind it.
    const perIp = options.maxConnectionsPerIp ??
      (max === 0 ? 1024 : Math.min(1024, Math.max(16, Math.floor(max / 8))));
    if (!Number.isInteger(perIp) || perIp < 0) {
      throw new RangeError(
        `Cannot limit connections per address to ${perIp}: not a whole number ≥ 0`,
      );
    }
    this.maxConnections = max;
    this.maxConnectionsPerIp = perIp;
    this.#buffer = options.buffer ?? new SharedArrayBuffer(WORDS * 4);
    if (this.#buffer.byteLength !== WORDS * 4) {
      throw new RangeError("Cannot share connection limits: the buffer has the wrong size");
    }
    this.#slots = new Int32Array(this.#buffer, 0, TOTAL);
    this.#total = new Int32Array(this.#buffer, TOTAL * 4, 1);
    this.#warned = new Int32Array(this.#buffer, (TOTAL + 1) * 4, 1);
  }

  /** The shared counters, to pass to another event loop's limits. */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /** Connections open now, over every loop sharing the counters. */
  get open(): number {
    return Atomics.load(this.#total, 0);
  }

  /**
   * Counts a new connection from `address` when both caps allow it.
   *
   * @param address The client's IP address.
   * @returns `"ok"` when admitted (call {@linkcode release} when it closes), else which cap refused.
   */
  admit(address: string): Admission {
    const total = Atomics.add(this.#total, 0, 1) + 1;
    if (this.maxConnections > 0 && total > this.maxConnections) {
      Atomics.sub(this.#total, 0, 1);
      return "global";
    }
    if (this.maxConnectionsPerIp > 0) {
      const key = clientKey(address);
      const a = slot(key, 0x811c9dc5);
      const b = SLOTS + slot(key, 0x9e3779b9);
      const ca = Atomics.add(this.#slots, a, 1) + 1;
      const cb = Atomics.add(this.#slots, b, 1) + 1;
      if (Math.min(ca, cb) > this.maxConnectionsPerIp) {
        Atomics.sub(this.#slots, a, 1);
        Atomics.sub(this.#slots, b, 1);
        Atomics.sub(this.#total, 0, 1);
        return "per-ip";
      }
    }
    return "ok";
  }

  /**
   * Decides, for every loop sharing the counters, whether a recurring
   * trouble (accept() failing with EMFILE) is worth a log line: yes when
   * none was logged within `quietSeconds`, so a burst is logged once.
   *
   * @param quietSeconds How long a burst's silence lasts.
   * @returns Whether the caller should log.
   */
  claimWarning(quietSeconds = 10): boolean {
    const now = Math.floor(Date.now() / 1000);
    const last = Atomics.load(this.#warned, 0);
    if (last !== 0 && now - last < quietSeconds) {
      // Still the same burst: push its end further.
      Atomics.compareExchange(this.#warned, 0, last, now);
      return false;
    }
    return Atomics.compareExchange(this.#warned, 0, last, now) === last;
  }

  /**
   * Uncounts a connection admitted by {@linkcode admit}.
   *
   * @param address The same address.
   */
  release(address: string): void {
    Atomics.sub(this.#total, 0, 1);
    if (this.maxConnectionsPerIp > 0) {
      const key = clientKey(address);
      Atomics.sub(this.#slots, slot(key, 0x811c9dc5), 1);
      Atomics.sub(this.#slots, SLOTS + slot(key, 0x9e3779b9), 1);
    }
  }
}
