/**
 * ICMP echo ("ping") as a library: {@linkcode ping} resolves a host, opens an
 * ICMP socket and returns a {@linkcode PingSession}, an async iterable of
 * events (replies, ICMP errors, requests left unanswered) that ends with a
 * {@linkcode PingSummary}.
 *
 * It behaves as iputils `ping` 20221126 does:
 * - it opens an ICMP datagram socket ("ping socket", no privilege needed
 *   where `net.ipv4.ping_group_range` allows), else a raw ICMP socket with an
 *   ICMP filter, where only replies with our identifier count;
 * - each request carries its send time (CLOCK_REALTIME, 16 bytes where
 *   iputils puts a `struct timeval`), and the receive time is the kernel's
 *   (`SO_TIMESTAMPNS`), so a busy event loop never inflates a round trip;
 * - requests go out at t0 + k·interval, without drift; while a reply is due
 *   the loop stays on the synchronous receive path instead of waiting on a
 *   worker thread, which costs tens of microseconds per wake-up;
 * - ICMP errors are read from the socket's error queue, as iputils does for
 *   both kinds of socket;
 * - counts, duplicates, the "pipe" and the exit conditions follow iputils'
 *   `main_loop()`, `gather_statistics()` and `__schedule_exit()`.
 *
 * @example Three pings to the loopback address
 * ```ts ignore
 * import { ping } from "./ping.ts";
 * await using session = await ping("127.0.0.1", { count: 3, intervalMs: 200 });
 * for await (const event of session) {
 *   if (event.type === "reply") console.log(event.seq, event.rttUs);
 * }
 * const summary = await session.summary;
 * console.log(`${summary.received}/${summary.transmitted}`);
 * ```
 *
 * @module
 */
import { buildEcho, parseIcmp, verifyChecksum } from "../lib/icmp.ts";
import { realtimeNs, timespecUs } from "../lib/rawsock/clock.ts";
import {
  bindFastCalls,
  ECHO_TIME_BYTES as TIME_BYTES,
  EchoBurst,
  type EchoBurstHandler,
  echoIdFilter,
} from "../lib/rawsock/echo.ts";
import { noRoomToSend, SocketError, strerror } from "../lib/rawsock/errno.ts";
import { DatagramInfo, type ErrorReport, openSocket, type Socket } from "../lib/rawsock/socket.ts";
import { ipFamily, type SocketAddress, splitZone } from "../lib/sockaddr.ts";
import {
  addRtt,
  describeError,
  newRttAccumulator,
  type RttAccumulator,
  rttFigures,
} from "./format.ts";

/** Options of {@linkcode ping}. */
export interface PingOptions {
  /** Stop after this many requests (`-c`); with `deadlineMs`, after this many replies. @default {Infinity} */
  count?: number;
  /** Milliseconds between requests (`-i`). @default {1000, or 0 in flood mode} */
  intervalMs?: number;
  /** Milliseconds to wait for a reply after the last request when none has come at all (`-W`). @default {10000} */
  timeoutMs?: number;
  /** Stop after this many milliseconds whatever happens (`-w`). @default {undefined (no deadline)} */
  deadlineMs?: number;
  /** Data bytes per request (`-s`); 16 or more carry the send time. @default {56} */
  size?: number;
  /** TTL / hop limit of requests (`-t`). @default {undefined (the system's)} */
  ttl?: number;
  /** Flood mode (`-f`): send as soon as the reply arrives, or every 10 ms. @default {false} */
  flood?: boolean;
  /** Bytes repeated through the data (`-p`), at most 16. @default {undefined (0, 1, 2 … as iputils)} */
  pattern?: Uint8Array;
  /** Source address or interface name (`-I`). @default {undefined} */
  interface?: string;
  /** IP version (`-4`, `-6`). @default {undefined (the first address the system gives)} */
  family?: 4 | 6;
  /** Which socket: `"auto"` tries a datagram socket, then a raw one. @default {"auto"} */
  socket?: "auto" | "datagram" | "raw";
  /** Stops the session (like SIGINT): the summary still comes. @default {undefined} */
  signal?: AbortSignal;
  /** Emit a `sent` event for each request (flood mode's dots need them). @default {true} */
  reportSends?: boolean;
  /**
   * Emit a `reply` event for each distinct reply that verifies. A caller
   * that only wants the summary (`-q`) turns it off, and a flood then spends
   * nothing per reply on events. Duplicates and corrupted replies are still
   * reported. @default {true}
   */
  reportReplies?: boolean;
  /**
   * Stay on the synchronous receive path while a reply is due (up to 1 ms
   * after a request, or until the next one in flood mode). Turn it off when
   * several sessions share the event loop. @default {true}
   */
  spin?: boolean;
  /**
   * Called once, when the session starts if it sends more than one request,
   * else right before it first lets the event loop run (to wait for the
   * reply). Signal listeners only run in such a turn, so a caller installs
   * them here: a single request answered at once (`-c 1` on loopback) then
   * never pays their start-up cost. @default {undefined}
   */
  onFirstYield?: () => void;
}

/** A request went out. */
export interface SentEvent {
  /** Discriminant. */
  type: "sent";
  /** The host as given. */
  host: string;
  /** The sequence number. */
  seq: number;
  /** When, in milliseconds since the epoch. */
  timestamp: number;
}

/** An echo reply arrived. */
export interface ReplyEvent {
  /** Discriminant. */
  type: "reply";
  /** The host as given. */
  host: string;
  /** The sequence number. */
  seq: number;
  /** ICMP bytes received (8-byte header included). */
  bytes: number;
  /** The address it came from. */
  from: string;
  /** Its TTL or hop limit, when known. */
  ttl?: number;
  /** Round trip in whole microseconds, when the request carried its send time. */
  rttUs?: number;
  /** A copy of a reply already counted. */
  duplicate: boolean;
  /** The ICMP checksum did not verify (raw IPv4 sockets only; the kernel checks the others). */
  badChecksum: boolean;
  /** Shorter than the request. */
  truncated: boolean;
  /** Kernel receive time, in milliseconds since the epoch. */
  timestamp: number;
}

/** An ICMP error about one of our requests arrived. */
export interface IcmpErrorEvent {
  /** Discriminant. */
  type: "error";
  /** The host as given. */
  host: string;
  /** The sequence number of the request it quotes. */
  seq: number;
  /** The router or host that sent it. */
  from: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** ICMP type. */
  icmpType: number;
  /** ICMP code. */
  icmpCode: number;
  /** The MTU (fragmentation needed, packet too big) or pointer; 0 otherwise. */
  info: number;
  /** iputils' words for it, e.g. `Time to live exceeded`. */
  message: string;
  /** When, in milliseconds since the epoch. */
  timestamp: number;
}

/** A local error: the kernel refused or reported a request (e.g. too big for the MTU). */
export interface LocalErrorEvent {
  /** Discriminant. */
  type: "local-error";
  /** The host as given. */
  host: string;
  /** iputils' text, e.g. `local error: message too long, mtu=65535` or `sendmsg: Network is unreachable`. */
  message: string;
  /** The errno name. */
  code: string;
  /** Whether it counts in the `+N errors` figure. */
  counted: boolean;
  /** When, in milliseconds since the epoch. */
  timestamp: number;
}

/** A request still unanswered when the next one went out (`-O`'s "no answer yet"). */
export interface TimeoutEvent {
  /** Discriminant. */
  type: "timeout";
  /** The host as given. */
  host: string;
  /** The sequence number, as iputils prints it (the count of requests modulo 65536). */
  seq: number;
  /** When, in milliseconds since the epoch. */
  timestamp: number;
}

/** Anything a {@linkcode PingSession} reports. */
export type PingEvent = SentEvent | ReplyEvent | IcmpErrorEvent | LocalErrorEvent | TimeoutEvent;

/** Round-trip figures in milliseconds, with iputils' truncation (microsecond resolution). */
export interface PingRtt {
  /** Smallest. */
  min: number;
  /** Mean. */
  avg: number;
  /** Largest. */
  max: number;
  /** iputils' mdev (population standard deviation). */
  mdev: number;
  /** iputils' moving average. */
  ewma: number;
}

/** The outcome of a session. */
export interface PingSummary {
  /** The host as given. */
  host: string;
  /** The address pinged. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** Requests sent. */
  transmitted: number;
  /** Distinct replies. */
  received: number;
  /** Extra copies of replies. */
  duplicates: number;
  /** Replies with a bad checksum. */
  corrupted: number;
  /** ICMP errors and counted local errors. */
  errors: number;
  /** `(transmitted − received) / transmitted × 100`, 0 when nothing was sent. */
  lossPercent: number;
  /** From the start to the last request, in milliseconds (rounded). */
  timeMs: number;
  /** The same span in whole microseconds. */
  elapsedUs: number;
  /** Round-trip figures, when a timed reply arrived. */
  rtt?: PingRtt;
  /** The raw microsecond accumulator behind `rtt` (for iputils' exact text). */
  rttAccumulator: RttAccumulator;
  /** Whether requests carried their send time. */
  timing: boolean;
  /** The most requests outstanding at once, as iputils' "pipe". */
  pipe: number;
  /** Whether iputils would print `ipg/ewma` (interval 0 or flood). */
  showIpg: boolean;
  /** The kind of socket used. */
  socket: "datagram" | "raw";
}

/** A snapshot for the `SIGQUIT` status line. */
export interface PingStatus {
  /** Requests sent so far. */
  transmitted: number;
  /** Distinct replies so far. */
  received: number;
  /** The round trips so far. */
  rtt: RttAccumulator;
  /** Whether requests carry their send time. */
  timing: boolean;
}

// iputils' ICMP_FILTER: replies and the errors that can concern a request.
const FILTER_V4 = [0, 3, 4, 5, 11, 12];
const FILTER_V6 = [129, 1, 2, 3, 4];
/** iputils' MININTERVAL: with nothing coming back, flood mode sends every 10 ms. */
const FLOOD_IDLE_MS = 10;
/** A busy loop lets the event loop run (signals, timers) at least this often. */
const YIELD_EVERY_MS = 20;
/** … and waits for real (so that signals come in) at least this often. */
const PARK_EVERY_MS = 250;

// ---------------------------------------------------------------------------
// V8 measures: all that this tool does for the JIT rather than for ping is
// here (each measured in the lab, bench/ping.ts), one line of why each:
// - the `ping` task's `--invocation-count-for-turbofan=300`: a long flood's
//   burst loop (lib/rawsock/echo.ts) gets optimized within its priming;
// - its `--no-lazy`: V8 compiles every function with its module, so Deno's
//   code cache holds them all and a run compiles nothing on first call
//   (5.5 ms less start-up for `-c 1 127.0.0.1`, paired runs);
// - its `--no-sparkplug`: V8's baseline tier cost start-up time (0.7 ms
//   here, 3.4 ms for traceroute 127.0.0.1), and a flood reaches TurboFan
//   as fast without it (the same rate against iputils in the lab);
// - PingSession.#prime(): short intervals and long floods first run their
//   own code to the loopback address, so what the target sees is optimized
//   code (measured at -i 0.002: 6 µs average round trips, 8 µs cold);
// - one stamp in the constructor: the first timed request does not pay for
//   the first run of the code between the clock read and sendto();
// - shape guards (PingSession.#parkedAt starts as a double; #prime() writes
//   back only fields that changed and drains with tryReceive()): V8 would
//   otherwise drop code already optimized on a changed assumption.

/** Sessions with an interval below this (ms, not 0) and … */
const PRIME_BELOW_MS = 10;
/** … at least this many requests prime first. */
const PRIME_MIN_COUNT = 100;
/** Floods with at least this many requests to send (or no count) prime too. */
const PRIME_FLOOD_MIN_COUNT = 10_000;
/** Requests of the priming flood to the loopback address. */
const PRIME_PACKETS = 2000;
/**
 * Requests of the priming flood before a flood: with the burst's
 * bookkeeping in callbacks, 1,000 left the first part of a 20,000-request
 * flood unoptimized (same run in the lab: 0.97 of iputils' rate, 1.01 with
 * 3,000, which take about 20 ms to the loopback address).
 */
const PRIME_FLOOD_PACKETS = 3000;
/** The priming flood stops after this many milliseconds whatever happens. */
const PRIME_LIMIT_MS = 100;

// (End of the V8 measures, but for #prime() below.)
// ---------------------------------------------------------------------------

/** The largest `-s` for each family: 65535 minus the IP and ICMP headers. */
export const MAX_SIZE: Readonly<Record<4 | 6, number>> = { 4: 65507, 6: 65527 };

/**
 * Resolves `host`, opens the socket and returns a session; iterate it to
 * send the requests and read the events, then read its `summary`.
 *
 * @param host A name or an IPv4/IPv6 address.
 * @param options Count, interval, size and the other `ping` options.
 * @returns The session, not started until iterated.
 * @throws {ResolveError} When the host does not resolve (from `lib/resolve.ts`).
 * @throws {SocketError} When no ICMP socket can be opened (EPERM/EACCES), the interface does not exist, or the source address is not ours.
 * @throws {RangeError} On an option out of range.
 *
 * @example Pinging the loopback address once
 * ```ts ignore
 * import { ping } from "./ping.ts";
 * await using session = await ping("127.0.0.1", { count: 1 });
 * for await (const e of session) if (e.type === "reply") console.log(`${e.rttUs} µs`);
 * ```
 */
export async function ping(host: string, options: PingOptions = {}): Promise<PingSession> {
  const size = options.size ?? 56;
  const resolved = await resolve(host, options.family);
  const family = resolved.family;
  if (!Number.isInteger(size) || size < 0 || size > MAX_SIZE[family]) {
    throw new RangeError(
      `Invalid packet size ${size}: expected 0 to ${MAX_SIZE[family]} data bytes`,
    );
  }
  if (
    options.ttl !== undefined &&
    (!Number.isInteger(options.ttl) || options.ttl < 1 || options.ttl > 255)
  ) {
    throw new RangeError(`Invalid TTL ${options.ttl}: expected 1 to 255`);
  }
  const target: SocketAddress = { family, address: resolved.address, port: 0 };
  const iface = options.interface;
  const sourceIsAddress = iface !== undefined && ipLike(iface);
  // Like iputils, find the source address for `-I` with a connected UDP
  // socket first (without -I, the ICMP socket's connect() below fails as
  // fast on an unreachable network, and start-up is shorter).
  const source = iface !== undefined ? probeSource(target, iface, sourceIsAddress) : undefined;
  const { sock, kind, id } = openIcmpSocket(family, options.socket ?? "auto");
  try {
    if (iface !== undefined) {
      if (sourceIsAddress) sock.bind({ family, address: iface, port: 0 });
      else sock.bindToDevice(iface);
    }
    if (options.ttl !== undefined) sock.setTtl(options.ttl);
    // The first request is timed: its sendto() must already be looked up.
    sock.prepareSend();
    // Connected, the socket sends without encoding an address each time.
    sock.connect(target);
  } catch (err) {
    sock.close();
    throw err;
  }
  return new PingSession(sock, kind, {
    host,
    id,
    target,
    family,
    numeric: resolved.numeric,
    size,
    options,
    ...(iface !== undefined ? { source, device: sourceIsAddress ? "" : iface } : {}),
  });
}

/**
 * Resolves like `lib/resolve.ts`, which is only loaded for names (and named
 * by URL: Deno reads every module that a literal import() names before a
 * program starts), as a numeric target does not need it.
 */
async function resolve(
  host: string,
  family: 4 | 6 | undefined,
): Promise<{ address: string; family: 4 | 6; numeric: boolean }> {
  const numeric = ipFamily(host);
  if (numeric === undefined || (family !== undefined && family !== numeric)) {
    const { resolveHost, ResolveError } =
      await (import(new URL("../lib/resolve.ts", import.meta.url).href) as Promise<
        typeof import("../lib/resolve.ts")
      >);
    try {
      return await resolveHost(host, family ? { family } : {});
    } catch (err) {
      // A name with addresses of the other family only: say so, as
      // getaddrinfo's EAI_ADDRFAMILY does for iputils.
      if (family === undefined || !(err instanceof ResolveError) || err.code === "EAI_ADDRFAMILY") {
        throw err;
      }
      const other = await resolveHost(host).catch(() => undefined);
      throw other ? new ResolveError(host, "EAI_ADDRFAMILY") : err;
    }
  }
  return { address: splitZone(host).address, family: numeric, numeric: true };
}

function ipLike(text: string): boolean {
  return /^[\d.]+$/.test(text) || text.includes(":");
}

function probeSource(
  target: SocketAddress,
  iface: string | undefined,
  sourceIsAddress: boolean,
): string {
  using probe = openSocket({
    kind: "udp",
    family: target.family,
    timestamps: false,
    receiveTtl: false,
    receiveErrors: false,
  });
  if (iface !== undefined) {
    if (sourceIsAddress) {
      probe.bind({ family: target.family, address: iface, port: 0 });
    } else {
      try {
        probe.bindToDevice(iface);
      } catch (err) {
        if (err instanceof SocketError) {
          throw new SocketError(err.errno, `SO_BINDTODEVICE ${iface}`);
        }
        throw err;
      }
    }
  }
  probe.connect({ ...target, port: 1025 });
  return probe.localAddress().address;
}

function openIcmpSocket(
  family: 4 | 6,
  which: "auto" | "datagram" | "raw",
): { sock: Socket; kind: "datagram" | "raw"; id: number } {
  // An empty net.ipv4.ping_group_range (the kernel's default, "1 0") admits
  // no group, so the datagram socket would fail with EACCES: skip straight to
  // the raw one, as that failure (and its error) costs start-up time.
  if (which === "raw" || (which === "auto" && pingGroupsEmpty())) {
    return openRaw(family);
  }
  {
    try {
      const sock = openSocket({ kind: "icmp", family, receiveErrors: true });
      return { sock, kind: "datagram", id: 0 };
    } catch (err) {
      // No ping socket for this group (EACCES), or none in this kernel:
      // fall back to a raw socket, as iputils does.
      if (which === "datagram" || !(err instanceof SocketError)) throw err;
    }
  }
  return openRaw(family);
}

function openRaw(family: 4 | 6): { sock: Socket; kind: "raw"; id: number } {
  // A raw IPv4 socket gets the TTL from the IP header, so the kernel need
  // not add it as a control message to every reply.
  const sock = openSocket({
    kind: "icmp-raw",
    family,
    receiveErrors: true,
    receiveTtl: family === 6,
  });
  // A raw socket's identifier is ours to choose (iputils picks at random;
  // Math.random, not crypto: the identifier only tells our replies apart,
  // and the crypto module's first use costs start-up time).
  const id = Math.floor(Math.random() * 0x10000);
  try {
    // iputils' ICMP_FILTER: only replies and errors reach the socket.
    sock.setIcmpFilter(family === 4 ? FILTER_V4 : FILTER_V6);
    // As iputils: in the kernel, drop echo replies with another identifier
    // (another ping's) before they take room in our queue; during a flood,
    // a few ms off the CPU would otherwise fill it with theirs and lose ours.
    sock.attachFilter(echoIdFilter(family, id));
    // What another ping's flood queued before the filter was on could fill
    // the queue and crowd our first reply out (seen in parallel tests).
    while (sock.tryReceive() !== null);
  } catch (err) {
    sock.close();
    throw err;
  }
  return { sock, kind: "raw", id };
}

/** Whether this network namespace's `ping_group_range` admits no group at all. */
function pingGroupsEmpty(): boolean {
  try {
    // The kernel writes "low<TAB>high" (no regular expression: its first
    // use costs start-up time).
    const [low, high] = Deno.readTextFileSync("/proc/sys/net/ipv4/ping_group_range")
      .trim().split("\t").map(Number);
    return low !== undefined && high !== undefined && low > high;
  } catch {
    // Unreadable (no --allow-read, no /proc): just try the socket.
    return false;
  }
}

interface SessionInit {
  host: string;
  /** The address the socket is connected to (the address pinged). */
  target: SocketAddress;
  family: 4 | 6;
  numeric: boolean;
  size: number;
  options: PingOptions;
  /** The echo identifier (a raw socket's; 0 on a datagram socket). */
  id: number;
  source?: string | undefined;
  device?: string;
}

/**
 * A running or finished ping: iterate it for events; `summary` resolves when
 * it ends. Created by {@linkcode ping}.
 */
export class PingSession implements AsyncIterable<PingEvent>, AsyncDisposable {
  /** The host as given. */
  readonly host: string;
  /** The address pinged. */
  readonly address: string;
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Whether the host was given as an address. */
  readonly numeric: boolean;
  /** Data bytes per request. */
  readonly dataBytes: number;
  /** The source address, when an interface or source was given. */
  readonly source: string | undefined;
  /** The interface name given, or `""` when a source address was given. */
  readonly device: string | undefined;
  /** The kind of socket in use. */
  readonly socketKind: "datagram" | "raw";
  /** Resolves with the summary once the session ends. */
  readonly summary: Promise<PingSummary>;

  #sock: Socket;
  #target: SocketAddress;
  #opts: PingOptions;
  #count: number;
  #intervalMs: number;
  #timing: boolean;
  #packet: Uint8Array;
  /** Stamps requests, and runs flood bursts through the socket layer. */
  #echo: EchoBurst;
  #burstHandler: EchoBurstHandler;
  #burstSendLimit = 0;
  #sink = 0;
  #spinChunk = 1000;
  #reportSends: boolean;
  #reportReplies: boolean;
  #id: number;
  #received = new Uint8Array(65536);
  // The receive buffer and its details, reused for every reply.
  #rx = new Uint8Array(65536 + 60);
  #rxInfo = new DatagramInfo();
  #transmitted = 0;
  #nreceived = 0;
  #duplicates = 0;
  #corrupted = 0;
  #errors = 0;
  #acked = 0;
  #pipe = 1;
  #rtt = newRttAccumulator();
  #startMs = 0;
  #lastSendMs = 0;
  #queue: PingEvent[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #ended = false;
  #failure: unknown;
  #started = false;
  // Created on the first wait: an AbortController's first use costs about
  // 0.45 ms of start-up (measured), which a `-c 1` that never waits skips.
  #stop: AbortController | undefined;
  #stopped = false;
  #priming = false;
  // A shape guard (see "V8 measures"): a double from the start.
  #parkedAt = -Infinity;
  /** The count of the loop running (the priming one's, then the session's). */
  #loopCount = 0;
  #resolveSummary!: (s: PingSummary) => void;
  #rejectSummary!: (e: unknown) => void;
  #running: Promise<void> | undefined;
  #channel: MessageChannel | undefined;
  #turnDone: (() => void) | undefined;
  #yielded = false;

  /**
   * Wraps an open, connected socket; use {@linkcode ping} instead.
   *
   * @param sock The socket.
   * @param kind Its kind.
   * @param init The target and options.
   */
  constructor(sock: Socket, kind: "datagram" | "raw", init: SessionInit) {
    this.#sock = sock;
    this.#target = init.target;
    this.socketKind = kind;
    this.host = init.host;
    this.address = init.target.address;
    this.family = init.family;
    this.numeric = init.numeric;
    this.dataBytes = init.size;
    this.source = init.source;
    this.device = init.device;
    this.#opts = init.options;
    this.#reportSends = init.options.reportSends ?? true;
    this.#reportReplies = init.options.reportReplies ?? true;
    this.#count = init.options.count ?? Infinity;
    this.#intervalMs = init.options.intervalMs ?? (init.options.flood ? 0 : 1000);
    this.#timing = init.size >= TIME_BYTES;
    // A datagram socket's identifier is the local port, which the kernel fills in.
    this.#id = init.id;
    this.#packet = buildEcho({
      family: init.family,
      id: this.#id,
      seq: 0,
      payload: requestData(init.size, init.options.pattern),
    });
    this.#echo = new EchoBurst(sock, {
      request: this.#packet,
      buffer: this.#rx,
      info: this.#rxInfo,
      timed: this.#timing,
      matchReplies: !this.#reportReplies,
    });
    this.#burstHandler = this.#newBurstHandler();
    // V8 measure (see above): compiles what runs between the clock read and sendto().
    this.#echo.stamp(0);
    this.summary = new Promise((resolve, reject) => {
      this.#resolveSummary = resolve;
      this.#rejectSummary = reject;
    });
    // A caller that never reads the summary must not see an unhandled rejection.
    this.summary.catch(() => {});
    init.options.signal?.addEventListener("abort", () => this.stop(), { once: true });
  }

  /** Stops the session as SIGINT stops iputils: no more requests, then the summary. */
  stop(): void {
    this.#stopped = true;
    this.#stop?.abort();
  }

  /**
   * The counts so far, for the `SIGQUIT` status line.
   *
   * @returns A snapshot.
   */
  status(): PingStatus {
    return {
      transmitted: this.#transmitted,
      received: this.#nreceived,
      rtt: { ...this.#rtt },
      timing: this.#timing,
    };
  }

  /**
   * Starts the session (if not yet) and yields its events in order.
   *
   * @returns The events.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<PingEvent> {
    this.#start();
    try {
      for (;;) {
        while (this.#head < this.#queue.length) {
          const event = this.#queue[this.#head++]!;
          if (this.#head > 4096) {
            this.#queue = this.#queue.slice(this.#head);
            this.#head = 0;
          }
          yield event;
        }
        if (this.#ended) break;
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
      if (this.#failure !== undefined) throw this.#failure;
    } finally {
      if (!this.#ended) this.stop();
      await this.#running;
    }
  }

  /** Stops the session, waits for it to end and closes the socket. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    if (this.#running) await this.#running;
    this.#sock.close();
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#running = this.#run().then(
      () => this.#resolveSummary(this.#summary()),
      (err) => {
        this.#failure = err;
        this.#rejectSummary(err);
      },
    ).finally(() => {
      this.#ended = true;
      this.#sock.close();
      // An open port would keep the process (and a test) waiting.
      this.#channel?.port1.close();
      this.#channel?.port2.close();
      this.#channel = undefined;
      this.#notify();
    });
  }

  #emit(event: PingEvent): void {
    if (this.#priming) return;
    this.#queue.push(event);
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      wake();
    }
  }

  #inFlight(): number {
    const d = (this.#transmitted - this.#acked) & 0xffff;
    return d <= 0x7fff ? d : 0;
  }

  // iputils' acknowledge(): tracks the newest answered request and the pipe.
  #acknowledge(seq: number): void {
    const diff = (this.#transmitted - seq) & 0xffff;
    if (diff <= 0x7fff) {
      if (diff + 1 > this.#pipe) this.#pipe = diff + 1;
      if (
        (((seq - this.#acked) << 16) >> 16) > 0 ||
        ((this.#transmitted - this.#acked) & 0xffff) > 0x7fff
      ) {
        this.#acked = seq;
      }
    }
  }

  async #run(): Promise<void> {
    const o = this.#opts;
    const spin = o.spin ?? true;
    this.#sock.useReceiveBuffer(this.#rx);
    if (this.#count > 1) {
      // A single request is done before any of its code is optimized: it
      // skips binding the per-datagram libc calls, and the signal listeners.
      bindFastCalls();
      this.#beforeYield();
    }
    const interval = this.#intervalMs;
    if (
      spin && !this.#stopped &&
      (interval > 0
        ? interval < PRIME_BELOW_MS && this.#count >= PRIME_MIN_COUNT
        : this.#count >= PRIME_FLOOD_MIN_COUNT) &&
      // Bound to an interface or a source address, the socket may have no
      // way to the loopback address: start cold.
      this.device === undefined
    ) await this.#prime();
    await this.#loop(this.#count, this.#intervalMs, o.deadlineMs ?? 0, spin);
  }

  /**
   * A V8 measure (see "V8 measures" at the top): until V8 has optimized the
   * hot code, each request spends a few microseconds more between being
   * stamped and leaving (FFI calls take their fast path only from optimized
   * code). So a short-interval session first runs this very loop as a
   * 2,000-request flood to the loopback address (10–15 ms), a long flood
   * its burst for 3,000 requests; then the socket is connected back to the
   * target and everything starts afresh with the first real request.
   */
  async #prime(): Promise<void> {
    // The session's own socket, pointed at the loopback address for the
    // while: another socket object would give the JIT a second shape to
    // handle, and the code optimized for the first would be thrown away.
    const sock = this.#sock;
    try {
      sock.connect({
        family: this.family,
        address: this.family === 4 ? "127.0.0.1" : "::1",
        port: 0,
      });
    } catch {
      // No loopback (or bound to a device without it): start cold.
      return;
    }
    this.#priming = true;
    try {
      // A first real wait binds the libc symbols it needs now: binding them
      // later changes the library object under code already optimized.
      await sock.wait({ timeoutMs: 0 });
      // A flood primes the code a flood runs, #floodBurst(), which runs
      // without a deadline; a short interval the code it runs, #send() and
      // #drain(), which a flood with a deadline runs.
      if (this.#intervalMs === 0) await this.#loop(PRIME_FLOOD_PACKETS, 0, 0, true, PRIME_LIMIT_MS);
      else await this.#loop(PRIME_PACKETS, 0, PRIME_LIMIT_MS, true);
    } finally {
      this.#priming = false;
      sock.connect(this.#target);
      // Whatever the loopback left queued is not ours to count (read
      // with tryReceive(): receiveInto()'s optimized code has never seen an
      // empty queue, and would be dropped).
      while (sock.tryReceive() !== null);
      // Only what changed is written back: V8 treats a field never written
      // since construction as a constant, and a write would drop the code
      // that relied on it.
      if (this.#transmitted !== 0) this.#transmitted = 0;
      if (this.#nreceived !== 0) this.#nreceived = 0;
      if (this.#duplicates !== 0) this.#duplicates = 0;
      if (this.#corrupted !== 0) this.#corrupted = 0;
      if (this.#errors !== 0) this.#errors = 0;
      if (this.#acked !== 0) this.#acked = 0;
      if (this.#pipe !== 1) this.#pipe = 1;
      const acc = this.#rtt;
      acc.count =
        acc.sumUs =
        acc.sumSquaresUs =
        acc.maxUs =
        acc.ewma8 =
          0;
      acc.minUs = Infinity;
      this.#received.fill(0);
      if (this.#queue.length !== 0) this.#queue.length = 0;
      if (this.#head !== 0) this.#head = 0;
    }
  }

  async #loop(
    count: number,
    interval: number,
    deadlineMs: number,
    spinAllowed: boolean,
    limitMs = 0,
  ): Promise<void> {
    const o = this.#opts;
    this.#loopCount = count;
    const hasDeadline = deadlineMs > 0;
    const start = performance.now();
    this.#startMs = start;
    this.#lastSendMs = start;
    // A limit, unlike a deadline (-w), changes nothing else.
    const deadlineAt = hasDeadline ? start + deadlineMs : limitMs > 0 ? start + limitMs : Infinity;
    let nextSendAt = start;
    let lastSendAt = -Infinity;
    let exitAt = Infinity;
    let lastYield = start;
    let reuseNow = false;
    for (;;) {
      // In a flood, the clock reading taken when the last request went
      // out, a few microseconds ago, serves again.
      let now = reuseNow ? this.#lastSendMs : performance.now();
      reuseNow = false;
      if (this.#stopped || now >= deadlineAt || now >= exitAt) break;
      if (this.#nreceived + this.#errors >= count) break;
      if (hasDeadline && this.#errors > 0) break;
      const canSend = hasDeadline || this.#transmitted < count;
      // With interval 0 (flood), iputils keeps one request in flight and
      // sends the next when its reply is in, or after 10 ms.
      const dueAt = !canSend
        ? Infinity
        : interval === 0
        ? (this.#inFlight() === 0 ? now : lastSendAt + FLOOD_IDLE_MS)
        : nextSendAt;
      if (
        now >= dueAt && interval === 0 && !hasDeadline && this.#transmitted < count - 1 &&
        now - lastYield < PARK_EVERY_MS
      ) {
        // A flood with nothing in flight: straight into a burst, which
        // leaves the last request (after which the exit is scheduled), any
        // reply still due and everything unusual to the rest of this loop.
        const before = this.#transmitted;
        this.#floodBurst(count - 1);
        if (this.#transmitted !== before) {
          lastSendAt = this.#lastSendMs;
          reuseNow = true;
          continue;
        }
      }
      if (now >= dueAt) {
        if (!this.#send()) {
          // EAGAIN/ENOBUFS: the queue is full; iputils retries 10 ms later.
          nextSendAt = now + FLOOD_IDLE_MS;
        } else {
          lastSendAt = now;
          nextSendAt = start + this.#transmitted * interval;
          // Never catch up with a burst after a stall: iputils' token bucket
          // holds one request.
          if (nextSendAt < now - interval) nextSendAt = now;
          if (!hasDeadline && this.#transmitted >= count) {
            // iputils' __schedule_exit(): wait twice the longest round trip
            // (at least one interval), or -W when nothing came back at all.
            const wait = this.#nreceived
              ? Math.max((2 * this.#rtt.maxUs) / 1000, interval)
              : (o.timeoutMs ?? 10000);
            exitAt = now + wait;
          }
        }
      }
      this.#drain();
      // Flood mode with the reply in: straight back to sending, a burst at
      // a time (see #floodBurst), the last request through this loop, which
      // schedules the exit after it.
      if (
        interval === 0 && canSend && this.#inFlight() === 0 &&
        this.#lastSendMs - lastYield < PARK_EVERY_MS
      ) {
        if (!hasDeadline) {
          this.#floodBurst(count - 1);
          lastSendAt = this.#lastSendMs;
        }
        reuseNow = true;
        continue;
      }
      now = performance.now();
      // However busy (replies that always come back at once never make a
      // flood wait), let signals and timers in every 250 ms.
      if (now - lastYield > PARK_EVERY_MS) {
        lastYield = now;
        await this.#yield(now);
        continue;
      }
      const nextDue = !canSend || (!hasDeadline && this.#transmitted >= count)
        ? Infinity
        : interval === 0
        ? (this.#inFlight() === 0 ? now : lastSendAt + FLOOD_IDLE_MS)
        : nextSendAt;
      const wakeAt = Math.min(nextDue, exitAt, deadlineAt);
      if (this.#nreceived + this.#errors >= count) continue;
      const remaining = wakeAt - now;
      if (remaining <= 0) continue;
      // iputils' main_loop(): when the next request is due within 10 ms
      // (1000/HZ), it spins instead of sleeping, and so do we: a process
      // woken from poll() pays tens of microseconds inside its next
      // sendto(), which is when the round trip through the routers happens.
      // While a reply is due we also stay synchronous: it is usually queued
      // by the time sendto() returns.
      const replyDue = this.#inFlight() > 0 && (interval === 0 || now - lastSendAt < 1);
      if ((spinAllowed && (replyDue || remaining <= FLOOD_IDLE_MS)) || remaining < 1) {
        // Let timers, signals and the consumer run now and then, preferably
        // not right before a request is due.
        if (now - lastYield > YIELD_EVERY_MS && (remaining > 0.25 || now - lastYield > 100)) {
          lastYield = now;
          await this.#yield(now);
        } else if (!replyDue) {
          // Nothing expected: spin without system calls or allocations
          // (a garbage collection between stamping a request and sending it
          // would count in its round trip); look at the socket again within
          // a millisecond.
          this.#spinUntil(Math.min(wakeAt, now + 1));
        }
        continue;
      }
      lastYield = now;
      this.#beforeYield();
      await this.#sock.wait({
        timeoutMs: Math.floor(remaining - (spinAllowed ? FLOOD_IDLE_MS : 0)),
        signal: (this.#stop ??= new AbortController()).signal,
      });
    }
  }

  /**
   * Flood mode's inner loop: send, read the reply, send again, while each
   * reply is in by the time `sendto()` returns, for at most 64 requests, and
   * not past `sendLimit` requests or the loop's count of replies; anything
   * else (no reply yet, an error, a reply that needs an event or is not a
   * plain answer to the request just sent) is left to {@linkcode #loop} and
   * {@linkcode #drain}. The loop itself is the socket layer's
   * ({@linkcode EchoBurst.run}, which says why it holds the libc calls);
   * this session's bookkeeping runs in {@linkcode #newBurstHandler}'s
   * callbacks.
   */
  #floodBurst(sendLimit: number): void {
    this.#burstSendLimit = sendLimit;
    const before = this.#transmitted;
    this.#echo.run(this.#burstHandler);
    if (this.#transmitted !== before) this.#lastSendMs = performance.now();
  }

  /** The callbacks of {@linkcode #floodBurst}: what {@linkcode #send} and {@linkcode #drain} do. */
  #newBurstHandler(): EchoBurstHandler {
    return {
      next: () => {
        const transmitted = this.#transmitted;
        if (
          transmitted >= this.#burstSendLimit ||
          this.#nreceived + this.#errors >= this.#loopCount || this.#stopped
        ) return -1;
        // As #send(): iputils' -O check, with the previous request answered
        // by an error rather than a reply.
        const received = this.#received;
        if (transmitted > 0 && received[transmitted & 0xffff] === 0) this.#reportUnanswered();
        const seq = (transmitted + 1) & 0xffff;
        received[seq] = 0;
        return seq;
      },
      sent: (seq) => {
        this.#transmitted++;
        if (this.#reportSends) {
          this.#emit({ type: "sent", host: this.host, seq, timestamp: this.#echo.sentAtMs() });
        }
      },
      sendFailed: (errno) => {
        this.#lastSendMs = performance.now();
        this.#sendFailed(errno);
      },
      replied: (seq, rttUs) => {
        // As #handleData() for a plain answer, which leaves nothing in flight.
        this.#nreceived++;
        this.#acknowledge(seq);
        this.#received[seq] = 1;
        if (rttUs >= 0) addRtt(this.#rtt, rttUs);
      },
      other: (n) => {
        this.#handleData(n);
        return this.#inFlight() === 0;
      },
    };
  }

  /**
   * Lets the event loop run from a busy loop: usually one quick turn
   * ({@linkcode #turn}), but every 250 ms a real wait (of 0 ms, on a worker
   * thread), because only when the runtime has nothing ready does it look
   * at signals: with turns alone, a flood on loopback took 1.6 s to see a
   * SIGINT (measured). Not more often: the request after such a wait goes
   * out through colder caches, and at every 100 ms the average round trip
   * at `-i 0.002` grew by about 1 µs (measured).
   */
  async #yield(now: number): Promise<void> {
    this.#beforeYield();
    if (now - this.#parkedAt < PARK_EVERY_MS) return await this.#turn();
    this.#parkedAt = now;
    await this.#sock.wait({ timeoutMs: 0 });
  }

  /** Calls the `onFirstYield` option the first time the session yields. */
  #beforeYield(): void {
    if (this.#yielded) return;
    this.#yielded = true;
    this.#opts.onFirstYield?.();
  }

  /**
   * One turn of the event loop, so signals, timers and I/O callbacks run.
   * Not `setTimeout(0)`: that sleeps a millisecond or two here (measured),
   * and the request sent after such a sleep took 90 µs through the routers
   * instead of 20 (cold caches); nor a zero wait on the socket, which hops
   * to a worker thread. A message to ourselves is queued at once, so the
   * turn does not sleep (about 16 µs).
   */
  #turn(): Promise<void> {
    let channel = this.#channel;
    if (channel === undefined) {
      channel = this.#channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const done = this.#turnDone;
        this.#turnDone = undefined;
        done?.();
      };
    }
    const port = channel.port2;
    return new Promise((resolve) => {
      this.#turnDone = resolve;
      port.postMessage(null);
    });
  }

  /**
   * Busy-waits until `until` (a `performance.now()` time) on arithmetic,
   * reading the clock only every ~10 µs: measured in the lab, spinning on
   * `performance.now()` itself left the next round trip about 20 µs longer
   * (as a C loop that sweeps memory does: it evicts the kernel's cache
   * lines), while a loop on registers matched iputils.
   */
  #spinUntil(until: number): void {
    let sink = this.#sink;
    let chunk = this.#spinChunk;
    let last = performance.now();
    while (last < until) {
      for (let i = 0; i < chunk; i++) sink = (sink + i) | 0;
      const t = performance.now();
      // Keep each chunk near 10 µs as the JIT speeds the loop up.
      if (t - last < 0.005) chunk *= 2;
      else if (t - last > 0.02 && chunk > 1000) chunk >>= 1;
      last = t;
    }
    this.#sink = sink;
    this.#spinChunk = chunk;
  }

  /** Sends the next request; `false` when the kernel had no room (EAGAIN, ENOBUFS). */
  #send(): boolean {
    const seq = (this.#transmitted + 1) & 0xffff;
    // The "timeout" event is iputils' -O check: is the previous request answered?
    if (this.#transmitted > 0 && !this.#received[this.#transmitted & 0xffff]) {
      this.#reportUnanswered();
    }
    this.#received[seq] = 0;
    this.#echo.stamp(seq);
    try {
      this.#sock.send(this.#packet);
    } catch (err) {
      if (!(err instanceof SocketError)) throw err;
      return this.#sendFailed(err.errno);
    }
    this.#advance(this.#echo.sentAtMs());
    return true;
  }

  /** The "timeout" event for the request last sent, which no reply answered. */
  #reportUnanswered(): void {
    this.#emit({
      type: "timeout",
      host: this.host,
      seq: this.#transmitted % 65536,
      timestamp: Date.now(),
    });
  }

  /**
   * After `sendto()` failed with `errno`: `false` when the kernel had no
   * room (EAGAIN, ENOBUFS), to try again later; otherwise the request counts
   * as sent, as in iputils, and the error is reported.
   */
  #sendFailed(errno: number): boolean {
    if (noRoomToSend(errno)) return false;
    const sentAt = this.#echo.sentAtMs();
    // iputils: a hard local error counts as sent; the details are in the
    // error queue when the kernel queued them (with IP_RECVERR).
    this.#advance(sentAt);
    const report = this.#sock.receiveError();
    if (report) this.#handleError(report);
    else {
      this.#emit({
        type: "local-error",
        host: this.host,
        message: `sendmsg: ${strerror(errno)}`,
        code: new SocketError(errno, "sendto").code,
        counted: false,
        timestamp: sentAt,
      });
    }
    return true;
  }

  #advance(timestamp: number): void {
    this.#transmitted++;
    this.#lastSendMs = performance.now();
    if (this.#reportSends) {
      this.#emit({ type: "sent", host: this.host, seq: this.#transmitted & 0xffff, timestamp });
    }
  }

  #drain(): void {
    // Right after a request the reply is usually queued already (on veth
    // and loopback the whole round trip runs inside sendto()), so read at
    // once; otherwise a poll() tells cheaply whether anything is queued (an
    // empty receive costs two recvmsg() calls).
    let expected = this.#inFlight() > 0;
    for (;;) {
      // iputils stops reading as soon as the count is reached, so a copy
      // still queued behind the last reply is neither read nor counted.
      if (this.#nreceived + this.#errors >= this.#loopCount) return;
      if (!expected && !this.#sock.ready()) return;
      // The lean receive: straight into a reused buffer, details into a
      // reused object, so a flood allocates next to nothing per reply.
      const n = this.#sock.receiveInto(this.#rx, this.#rxInfo);
      if (n >= 0) this.#handleData(n);
      else {
        const report = this.#sock.receiveError();
        if (report === null) return;
        this.#handleError(report);
      }
      // As iputils' main_loop(): with nothing in flight, back to sending;
      // anything else queued is read on the next round.
      if (this.#inFlight() === 0) return;
      expected = false;
    }
  }

  /** Handles the `n` bytes just received into `#rx` (details in `#rxInfo`). */
  #handleData(n: number): void {
    const rx = this.#rx;
    const info = this.#rxInfo;
    let start = 0;
    let ttl: number | undefined = info.ttl >= 0 ? info.ttl : undefined;
    if (this.family === 4 && this.socketKind === "raw") {
      // A raw IPv4 socket delivers the IP header (RFC 791 §3.1).
      if (n < 20) return;
      start = (rx[0]! & 0x0f) * 4;
      ttl = rx[8];
    }
    const length = n - start;
    if (length < 8) return;
    const bytes = rx.subarray(start, n);
    const reply = parseIcmp(bytes, this.family);
    // ICMP errors come from the error queue, as in iputils; their copies on
    // a raw socket are ignored here.
    if (reply.kind !== "echo" || reply.request) return;
    if (this.socketKind === "raw" && reply.id !== this.#id) return;
    const seq = reply.seq;
    const badChecksum = this.family === 4 && this.socketKind === "raw" && !verifyChecksum(bytes);
    this.#nreceived++;
    if (!badChecksum) this.#acknowledge(seq);
    let rttUs: number | undefined;
    let receivedUs: number;
    if (info.timestampSec >= 0) {
      receivedUs = info.timestampSec * 1e6 + Math.floor(info.timestampNsec / 1000);
    } else {
      receivedUs = Number(realtimeNs() / 1000n);
    }
    if (this.#timing && length >= 8 + TIME_BYTES) {
      // Whole microseconds on both sides, as iputils subtracts two timevals.
      rttUs = receivedUs - timespecUs(rx, start + 8);
      if (rttUs < 0) rttUs = 0;
      if (!badChecksum) addRtt(this.#rtt, rttUs);
    }
    let duplicate = false;
    if (badChecksum) {
      this.#corrupted++;
      this.#nreceived--;
    } else if (this.#received[seq]) {
      this.#duplicates++;
      this.#nreceived--;
      duplicate = true;
    } else {
      this.#received[seq] = 1;
      if (!this.#reportReplies) return;
    }
    const event: ReplyEvent = {
      type: "reply",
      host: this.host,
      seq,
      bytes: length,
      from: this.#sock.lastSender()?.address ?? "",
      duplicate,
      badChecksum,
      truncated: length < this.dataBytes + 8,
      timestamp: receivedUs / 1000,
    };
    if (ttl !== undefined) event.ttl = ttl;
    if (rttUs !== undefined) event.rttUs = rttUs;
    this.#emit(event);
  }

  #handleError(r: ErrorReport): void {
    const timestamp = r.timestampNs !== undefined ? Number(r.timestampNs) / 1e6 : Date.now();
    if (r.origin === "local") {
      this.#errors++;
      this.#emit({
        type: "local-error",
        host: this.host,
        message: r.code === "EMSGSIZE"
          ? `local error: message too long, mtu=${r.info}`
          : `local error: ${strerror(r.errno)}`,
        code: r.code,
        counted: true,
        timestamp,
      });
      return;
    }
    if (r.origin !== "icmp" && r.origin !== "icmp6") return;
    const q = r.original;
    if (q.length < 8) return;
    const request = parseIcmp(q, this.family);
    if (request.kind !== "echo" || !request.request) return;
    if (this.socketKind === "raw" && request.id !== this.#id) return;
    const seq = request.seq;
    this.#acknowledge(seq);
    this.#errors++;
    const info = { family: this.family, type: r.icmpType, code: r.icmpCode, info: r.info };
    this.#emit({
      type: "error",
      host: this.host,
      seq,
      from: r.offender?.address ?? "",
      family: this.family,
      icmpType: r.icmpType,
      icmpCode: r.icmpCode,
      info: r.info,
      message: describeError(info),
      timestamp,
    });
  }

  #summary(): PingSummary {
    const figures = this.#timing ? rttFigures(this.#rtt) : undefined;
    const s: PingSummary = {
      host: this.host,
      address: this.address,
      family: this.family,
      transmitted: this.#transmitted,
      received: this.#nreceived,
      duplicates: this.#duplicates,
      corrupted: this.#corrupted,
      errors: this.#errors,
      lossPercent: this.#transmitted
        ? ((this.#transmitted - this.#nreceived) * 100) / this.#transmitted
        : 0,
      timeMs: Math.round(this.#lastSendMs - this.#startMs),
      elapsedUs: Math.trunc((this.#lastSendMs - this.#startMs) * 1000),
      rttAccumulator: { ...this.#rtt },
      timing: this.#timing,
      pipe: this.#pipe,
      showIpg: this.#intervalMs === 0 || (this.#opts.flood ?? false),
      socket: this.socketKind,
    };
    if (figures && this.#nreceived) {
      s.rtt = {
        min: figures.minUs / 1000,
        avg: figures.avgUs / 1000,
        max: figures.maxUs / 1000,
        mdev: figures.mdevUs / 1000,
        ewma: Math.trunc(this.#rtt.ewma8 / 8) / 1000,
      };
    }
    return s;
  }
}

/**
 * The data of a request: iputils fills it with 0, 1, 2 … (or the `-p`
 * pattern); the first 16 bytes are overwritten by the send time on each
 * request.
 */
function requestData(size: number, pattern?: Uint8Array): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    data[i] = pattern && pattern.length > 0 ? pattern[i % pattern.length]! : i & 0xff;
  }
  return data;
}
