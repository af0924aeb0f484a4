/**
 * The traceroute library: `trace(host, options)` probes the path to a host
 * as Butskoy traceroute 2.1 does (UDP, ICMP echo or TCP SYN probes, up to
 * `simultaneous` probes in flight, the `-w MAX,HERE,NEAR` waiting rule) and
 * yields each hop, with its probes, as soon as it and every earlier hop are
 * complete.
 *
 * @example Tracing the loopback address
 * ```ts
 * import { trace } from "./trace.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const t = trace("127.0.0.1", { resolveNames: false });
 * for await (const hop of t) console.log(hop.ttl, hop.probes.map((p) => p.address));
 * assert(t.summary().reached);
 * ```
 *
 * @module
 */
import { realtimeNs } from "../lib/rawsock/clock.ts";
import type { ReverseCache } from "../lib/resolve.ts";
import { type Family, ipFamily, splitZone } from "../lib/sockaddr.ts";
import type { Flow, MethodOptions, ProbeMethod, ProbeReply } from "./probe.ts";

export type { MethodOptions, ProbeMethod, ProbeReply } from "./probe.ts";

export type { Flow } from "./probe.ts";
export type { Family } from "../lib/sockaddr.ts";
export type { ReverseCache } from "../lib/resolve.ts";

/** A probe method. */
export type Method = "udp" | "icmp" | "tcp";

/** Butskoy's `-w MAX,HERE,NEAR`, in seconds and factors. */
export interface WaitTimes {
  /** The longest wait for any probe, in seconds. */
  max: number;
  /** Wait at most `here` × the round trip of an answered probe of the same hop (0: off). */
  here: number;
  /** Else at most `near` × the round trip of an answered probe of a later hop (0: off). */
  near: number;
}

/** Options of {@linkcode trace}. */
export interface TraceOptions {
  /** The probe method. @default {"udp"} */
  method?: Method;
  /** The IP version. @default {undefined (the resolver's first address)} */
  family?: Family;
  /** The largest TTL probed (`-m`). @default {30} */
  maxHops?: number;
  /** The first TTL probed (`-f`). @default {1} */
  firstHop?: number;
  /** Probes per hop (`-q`). @default {3} */
  queries?: number;
  /** Probes in flight at once (`-N`). @default {16} */
  simultaneous?: number;
  /** Waiting rule (`-w`). @default {{ max: 5, here: 3, near: 10 }} */
  wait?: Partial<WaitTimes>;
  /** Least time between two probes, in milliseconds (`-z`). @default {0} */
  sendWaitMs?: number;
  /** UDP: first destination port; ICMP: first sequence number; TCP: destination port (`-p`). @default {33434, 1 or 80} */
  port?: number;
  /** Source address (`-s`). @default {undefined (chosen by routing)} */
  source?: string;
  /** Source port (`--sport`, UDP and TCP); TCP probes then differ by sequence number only. @default {undefined (chosen by the system)} */
  sourcePort?: number;
  /** Interface to send through (`-i`). @default {undefined (chosen by routing)} */
  device?: string;
  /** Total probe size, IP header included. @default {60 for IPv4, 80 for IPv6} */
  packetLength?: number;
  /** Paris traceroute: the same flow identifier for every probe. @default {false} */
  paris?: boolean;
  /** Never fragment a probe (`-F`): DF set, local fragmentation refused. @default {false} */
  dontFragment?: boolean;
  /**
   * Discover the MTU along the path (`--mtu`, as Butskoy): implies
   * `dontFragment` and one probe in flight, starts from 65000-byte probes
   * unless `packetLength` is given, and shrinks them to each MTU reported;
   * the probe that met a new MTU is sent again and annotated `F=MTU`.
   * @default {false}
   */
  mtu?: boolean;
  /** Look up the names of hop addresses (`-n` turns this off). @default {true} */
  resolveNames?: boolean;
  /** The cache of reverse lookups, to share between traces. @default {a new ReverseCache} */
  names?: ReverseCache;
  /** Stops the trace. @default {undefined} */
  signal?: AbortSignal;
  /**
   * Opens the probe method instead of the built-in one for `method`: for
   * tests of the engine without sockets, or another protocol.
   * @default {undefined (the built-in UDP, ICMP or TCP method)}
   */
  openMethod?: (options: MethodOptions) => ProbeMethod | Promise<ProbeMethod>;
}

/** One probe's outcome. */
export interface Probe {
  /** The address that answered; absent for a probe without an answer (`*`). */
  address?: string;
  /** The name of that address, when names are looked up and it has one. */
  name?: string;
  /** The round-trip time in milliseconds; absent without an answer. */
  rttMs?: number;
  /** Butskoy's annotation (`!H`, `!X`, `!F-1500`, …); empty when there is none. */
  annotation: string;
  /** The answer ends the trace (destination reached or unreachable). */
  final: boolean;
}

/** One hop: a TTL and its probes, in sending order. */
export interface Hop {
  /** The TTL (hop number). */
  ttl: number;
  /** The probes of this hop. */
  probes: Probe[];
  /** With `mtu`: the probe size (IP header included) that reached this hop's answers. */
  mtu?: number;
}

/** What a trace goes to, known once the host is resolved. */
export interface TraceTarget {
  /** The host as given. */
  host: string;
  /** Its address. */
  address: string;
  /** The IP version. */
  family: Family;
  /** The probe method. */
  method: Method;
  /** The largest TTL. */
  maxHops: number;
  /** The probe size, IP header included, as Butskoy's header prints it. */
  packetLength: number;
}

/** The outcome of a finished trace. */
export interface TraceSummary {
  /** The destination answered. */
  reached: boolean;
  /** The number of hops yielded. */
  hops: number;
  /** The number of probes sent. */
  probesSent: number;
  /** The constant flow of a Paris trace. */
  flow?: Flow;
}

const DEFAULT_WAIT: WaitTimes = { max: 5, here: 3, near: 10 };
/** Butskoy adds a millisecond to a measured round trip before scaling it. */
const WAIT_PRECISION_NS = 1_000_000;
/** How long to keep polling without sleeping after a send or a reply. */
const SPIN_NS = 250_000n;

interface Slot {
  ttl: number;
  sentNs: bigint;
  done: boolean;
  reply?: ProbeReply;
  /** The probe's size when (last) sent. */
  size?: number;
  /** `F=MTU` when the probe met a new path MTU and was sent again. */
  note?: string;
}

/** Butskoy's `--mtu` starts from the largest probe it allows. */
const MTU_START = 65000;

/**
 * A running trace: an async iterable of hops, with the resolved target and,
 * at the end, a summary.
 */
export class Trace implements AsyncIterable<Hop>, AsyncDisposable {
  #host: string;
  #o: TraceOptions;
  #target: Promise<{ target: TraceTarget; method: ProbeMethod }> | undefined;
  #summary: TraceSummary = { reached: false, hops: 0, probesSent: 0 };
  #names: ReverseCache | undefined;

  /**
   * Prepares a trace; nothing is sent before {@linkcode Trace.target} or iteration.
   *
   * @param host The host name or address.
   * @param options The trace options.
   */
  constructor(host: string, options: TraceOptions = {}) {
    this.#host = host;
    this.#o = options;
    this.#names = options.names;
  }

  #start(): Promise<{ target: TraceTarget; method: ProbeMethod }> {
    this.#target ??= this.#open();
    return this.#target;
  }

  async #open(): Promise<{ target: TraceTarget; method: ProbeMethod }> {
    const o = this.#o;
    const methodName = o.method ?? "udp";
    const maxHops = o.maxHops ?? 30;
    const firstHop = o.firstHop ?? 1;
    const queries = o.queries ?? 3;
    if (!Number.isInteger(maxHops) || maxHops < 1 || maxHops > 255) {
      throw new RangeError(`Invalid max hops ${maxHops}: must be an integer from 1 to 255`);
    }
    if (!Number.isInteger(firstHop) || firstHop < 1 || firstHop > maxHops) {
      throw new RangeError(`Invalid first hop ${firstHop}: must be from 1 to max hops ${maxHops}`);
    }
    if (!Number.isInteger(queries) || queries < 1 || queries > 10) {
      throw new RangeError(`Invalid probes per hop ${queries}: must be from 1 to 10`);
    }
    if ((o.mtu || o.dontFragment) && methodName === "tcp" && !o.openMethod) {
      throw new RangeError(
        "Cannot use --mtu or -F with TCP probes: only UDP and ICMP support them",
      );
    }
    // Only the chosen method's module is loaded, and it and the resolver
    // (for names) load while the host resolves, not one after another:
    // start-up time counts. The methods off traceroute's start path are
    // named by URL: Deno reads every module that a literal import() names
    // (and its imports) before a program starts.
    const opener = o.openMethod
      ? Promise.resolve(o.openMethod)
      : methodName === "udp"
      ? import("./udp.ts").then((m) => m.openUdpMethod)
      : methodName === "icmp"
      ? (import(new URL("./icmp_probe.ts", import.meta.url).href) as Promise<
        typeof import("./icmp_probe.ts")
      >).then((m) => m.openIcmpMethod)
      : (import(new URL("./tcp.ts", import.meta.url).href) as Promise<typeof import("./tcp.ts")>)
        .then((m) => m.openTcpMethod);
    const resolver = (o.resolveNames ?? true) && this.#names === undefined
      ? import("../lib/resolve.ts")
      : undefined;
    const [resolved, open, names] = await Promise.all([
      resolve(this.#host, o.family),
      opener,
      resolver,
    ]);
    if (names) this.#names = new names.ReverseCache();
    const family = resolved.family;
    const mo: MethodOptions = {
      family,
      destination: resolved.address,
      port: o.port ?? (methodName === "udp" ? 33434 : methodName === "icmp" ? 1 : 80),
      packetLength: o.packetLength ?? (o.mtu ? MTU_START : family === 4 ? 60 : 80),
      paris: o.paris ?? false,
      queries,
    };
    if (o.dontFragment || o.mtu) mo.dontFragment = true;
    if (o.source !== undefined) mo.source = o.source;
    if (o.device !== undefined) mo.device = o.device;
    if (o.sourcePort !== undefined) mo.sourcePort = o.sourcePort;
    const method = await open(mo);
    return {
      target: {
        host: this.#host,
        address: resolved.address,
        family,
        method: methodName,
        maxHops,
        packetLength: method.packetLength,
      },
      method,
    };
  }

  /**
   * Resolves the host and opens the probe sockets.
   *
   * @returns The target, for a header line.
   * @throws {ResolveError} When the host cannot be resolved.
   * @throws {Deno.errors.PermissionDenied} When the method needs privileges the process lacks.
   */
  async target(): Promise<TraceTarget> {
    return (await this.#start()).target;
  }

  /**
   * Closes the probe sockets of a trace that was started (by
   * {@linkcode Trace.target}) but will not be iterated to its end. Iteration
   * closes them itself; closing twice is harmless.
   *
   * @returns Once closed.
   */
  async close(): Promise<void> {
    if (this.#target === undefined) return;
    try {
      (await this.#target).method[Symbol.dispose]();
    } catch {
      // Opening failed: nothing to close.
    }
  }

  /**
   * Closes the trace (for `await using`).
   *
   * @returns Once closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * The outcome so far; complete once iteration has ended.
   *
   * @returns The summary.
   */
  summary(): TraceSummary {
    return { ...this.#summary };
  }

  /**
   * Probes and yields hops in order, each as soon as it and every earlier
   * hop are complete (names looked up, unless `resolveNames` is off).
   *
   * @returns The hops.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Hop> {
    const { target, method } = await this.#start();
    const queue: Hop[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const stop = { requested: false };
    const engine = this.#engine(target, method, stop, (hop) => {
      queue.push(hop);
      wake?.();
    }).then(
      () => {
        finished = true;
        wake?.();
      },
      (err) => {
        failure = err;
        finished = true;
        wake?.();
      },
    );
    const resolveNames = this.#o.resolveNames ?? true;
    try {
      for (;;) {
        const hop = queue.shift();
        if (hop === undefined) {
          if (finished) break;
          await new Promise<void>((r) => wake = r);
          wake = undefined;
          continue;
        }
        if (resolveNames) {
          await Promise.all(hop.probes.map(async (p) => {
            if (p.address === undefined) return;
            const name = await this.#names?.get(p.address);
            if (name !== undefined) p.name = name;
          }));
        }
        this.#summary.hops++;
        yield hop;
      }
      if (failure !== undefined) throw failure;
    } finally {
      stop.requested = true;
      await engine;
      method[Symbol.dispose]();
    }
  }

  async #engine(
    target: TraceTarget,
    method: ProbeMethod,
    stop: { requested: boolean },
    emit: (hop: Hop) => void,
  ): Promise<void> {
    const o = this.#o;
    const q = o.queries ?? 3;
    const first = o.firstHop ?? 1;
    const mtu = o.mtu ?? false;
    // Butskoy: --mtu implies -N 1, so a reported MTU answers the one probe in flight.
    const sim = mtu ? 1 : Math.max(1, o.simultaneous ?? 16);
    const w: WaitTimes = { ...DEFAULT_WAIT, ...o.wait };
    const maxNs = BigInt(Math.round(w.max * 1e9));
    const gapNs = BigInt(Math.round((o.sendWaitMs ?? 0) * 1e6));
    const resolveNames = o.resolveNames ?? true;
    const base = (first - 1) * q;
    const slots: Slot[] = [];
    for (let ttl = first; ttl <= target.maxHops; ttl++) {
      for (let k = 0; k < q; k++) slots.push({ ttl, sentNs: 0n, done: false });
    }
    let start = 0;
    let end = slots.length;
    let lastSendNs = 0n;
    let lastActivityNs = 0n;

    // Butskoy's -w rule: a probe waits HERE × the round trip of an answered
    // probe of its own hop, else NEAR × that of an answered later probe (up
    // to the first unsent one), else MAX; never more than MAX.
    const timeoutNs = (n: number): bigint => {
      if (w.here > 0) {
        const h0 = n - (n % q);
        for (let i = h0; i < h0 + q; i++) {
          const s = slots[i]!;
          if (s.done && s.reply) return scaled(s, w.here);
        }
      }
      if (w.near > 0) {
        for (let i = n + 1; i < end && slots[i]!.sentNs !== 0n; i++) {
          const s = slots[i]!;
          if (s.done && s.reply) return scaled(s, w.near);
        }
      }
      return maxNs;
    };
    const scaled = (s: Slot, factor: number): bigint => {
      const rtt = s.reply!.receivedNs - s.sentNs + BigInt(WAIT_PRECISION_NS);
      const v = BigInt(Math.round(Number(rtt) * factor));
      return v < maxNs ? v : maxNs;
    };

    const handle = (r: ProbeReply): void => {
      const n = r.index - base;
      const s = slots[n];
      // Stray, duplicate and late replies (for a probe already timed out) are ignored.
      if (s === undefined || n < start || n >= end || s.sentNs === 0n || s.done) return;
      if (mtu && r.mtu !== undefined && r.mtu < method.packetLength && method.resize) {
        // Butskoy: the probe is sent again at the new size, and the MTU is
        // noted on it (the node that reported it is the previous hop).
        method.resize(r.mtu);
        s.sentNs = 0n;
        s.note = `F=${r.mtu}`;
        return;
      }
      // A local error names no responder: it only serves --mtu.
      if (r.local) return;
      s.done = true;
      s.reply = r;
      if (resolveNames) this.#names?.peek(r.from);
      // Butskoy stops at the hop of a final reply: later hops are neither
      // sent nor printed.
      if (r.final) end = Math.min(end, (Math.floor(n / q) + 1) * q);
    };

    while (start < end && !stop.requested && !o.signal?.aborted) {
      const replies = method.drain();
      const got = replies.length;
      for (const r of replies) handle(r);
      const now = realtimeNs();
      let next = -1n;
      let inflight = 0;
      for (let n = start; n < end; n++) {
        const s = slots[n]!;
        if (s.sentNs === 0n || s.done) continue;
        const deadline = s.sentNs + timeoutNs(n);
        if (now >= deadline) s.done = true;
        else {
          inflight++;
          if (next < 0n || deadline < next) next = deadline;
        }
      }
      while (start < end) {
        let complete = true;
        for (let i = start; i < start + q; i++) if (!slots[i]!.done) complete = false;
        if (!complete) break;
        emit(this.#hop(slots.slice(start, start + q), target.address));
        start += q;
      }
      if (start >= end) break;
      let sent = false;
      for (let n = start; n < end && inflight < sim; n++) {
        const s = slots[n]!;
        if (s.sentNs !== 0n) continue;
        if (gapNs > 0n && lastSendNs !== 0n && realtimeNs() - lastSendNs < gapNs) {
          const due = lastSendNs + gapNs;
          if (next < 0n || due < next) next = due;
          break;
        }
        s.size = method.packetLength;
        s.sentNs = method.send(base + n, s.ttl);
        lastSendNs = s.sentNs;
        this.#summary.probesSent++;
        inflight++;
        sent = true;
      }
      if (sent || got > 0) {
        lastActivityNs = realtimeNs();
        continue;
      }
      const t = realtimeNs();
      const waitMs = next < 0n ? 0 : Number(next - t) / 1e6;
      if (waitMs <= 0) continue;
      // Replies are usually due soon after a send or another reply: poll
      // synchronously for a moment (a wait on the worker thread costs a
      // thread hop), then sleep in poll() off the event loop.
      if (t - lastActivityNs < SPIN_NS) continue;
      await method.wait(waitMs);
    }
    const flow = method.flow();
    if (flow) this.#summary.flow = flow;
  }

  #hop(slots: Slot[], destination: string): Hop {
    const probes: Probe[] = slots.map((s) => {
      // Butskoy: an annotation of the answer replaces the `F=MTU` note.
      if (!s.reply) return { annotation: s.note ?? "", final: false };
      const r = s.reply;
      if (r.final && r.from === destination && r.annotation === "") this.#summary.reached = true;
      return {
        address: r.from,
        rttMs: Number(r.receivedNs - s.sentNs) / 1e6,
        annotation: r.annotation || (s.note ?? ""),
        final: r.final,
      };
    });
    const hop: Hop = { ttl: slots[0]!.ttl, probes };
    if (this.#o.mtu) {
      const size = slots.findLast((s) => s.reply !== undefined)?.size ?? slots.at(-1)?.size;
      if (size !== undefined) hop.mtu = size;
    }
    return hop;
  }
}

/**
 * Resolves a host; the resolver (and Node's DNS module under it) is loaded
 * only for a name, which keeps start-up short for an address.
 */
async function resolve(
  host: string,
  family: Family | undefined,
): Promise<{ address: string; family: Family }> {
  const numeric = ipFamily(host);
  if (numeric !== undefined && (family === undefined || family === numeric)) {
    return { address: splitZone(host).address, family: numeric };
  }
  const { resolveHost } = await import("../lib/resolve.ts");
  if (family !== undefined) return await resolveHost(host, { family });
  // Butskoy: "If resolving a host name returns both IPv4 and IPv6
  // addresses, traceroute will use IPv4."
  try {
    return await resolveHost(host, { family: 4 });
  } catch (err) {
    try {
      return await resolveHost(host, { family: 6 });
    } catch {
      throw err;
    }
  }
}

/**
 * Starts a traceroute to a host. Nothing is sent until the returned trace's
 * {@linkcode Trace.target} is awaited or it is iterated.
 *
 * @param host A host name or an IPv4/IPv6 address.
 * @param options Method, limits, waiting rule, Paris mode, names.
 * @returns The trace: iterate it for hops.
 *
 * @example
 * ```ts
 * import { trace } from "./trace.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * for await (const hop of trace("::1", { method: "udp", resolveNames: false, queries: 1 })) {
 *   assertEquals(hop.probes[0]?.address, "::1");
 * }
 * ```
 */
export function trace(host: string, options: TraceOptions = {}): Trace {
  return new Trace(host, options);
}
