/**
 * The UDP ping client: the course's UDPPingerClient (send `Ping <seq> <time>`,
 * wait 1 s, print the RTT or `Request timed out`), made into a measurement
 * tool: a drift-free send schedule, duplicates, late and reordered replies,
 * RTT statistics with jitter and IPDV, and upstream/downstream loss from the
 * server's counters. The command line (`deno task udp-ping`) is
 * `main.ts client`.
 *
 * @example Ten pings to a local server
 * ```ts
 * import { serve } from "./server.ts";
 * import { udpPing } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
 * await server.ready;
 * const summary = await udpPing("127.0.0.1", { port: server.addr.port, count: 3, interval: 10 });
 * assertEquals(summary.received, 3);
 * assertEquals(summary.server?.rx, 3);
 * ```
 *
 * @module
 */
import { resolveHost } from "../lib/resolve.ts";
import { percentile, RttStats, type RttSummary } from "../lib/stats.ts";
import {
  AUTH_BYTES,
  DEFAULT_PORT,
  encodeStatsRequest,
  MAX_PAYLOAD,
  parseMessage,
  parseStamps,
  type ServerCounters,
  verifyDatagram,
} from "./protocol.ts";
import {
  encodeFor,
  type IdleSender,
  loadSender,
  type Sender,
  type SendPlan,
  signFor,
} from "./_ticker.ts";
import { DatagramInfo, openSocket } from "../lib/rawsock/socket.ts";
import { bindFastCalls } from "../lib/rawsock/ffi.ts";
import { realtimeInto } from "../lib/rawsock/clock.ts";

/** How far ahead of the call the send schedule starts: the sender thread's start message takes well under this. */
const START_LEAD_MS = 2;

// Re-exported: the summary's RTT statistics are part of this module's API.
export type { IpdvSummary, RttSummary } from "../lib/stats.ts";

/** Options of {@linkcode udpPing}. */
export interface UdpPingOptions {
  /**
   * Server UDP port.
   * @default {12000}
   */
  port?: number;
  /**
   * Pings (or heartbeats) to send; `Infinity` runs until `signal` aborts.
   * @default {10}
   */
  count?: number;
  /**
   * Milliseconds between sends; ping k goes at `t0 + k·interval`.
   * @default {1000}
   */
  interval?: number;
  /**
   * Milliseconds to wait for each reply before it counts as lost.
   * @default {1000}
   */
  timeout?: number;
  /**
   * Datagram size in bytes (padding after the text; 0: no padding).
   * @default {0}
   */
  size?: number;
  /** Address family of the name lookup: 4 or 6; by default, the system's first answer. */
  family?: 4 | 6;
  /**
   * Send heartbeats (`Heartbeat <seq> <time> <interval>`) instead of pings; nothing is answered.
   * @default {false}
   */
  heartbeat?: boolean;
  /**
   * Milliseconds before each send that the sending thread stops sleeping
   * and busy-waits to the exact time (capped at a quarter of the interval).
   * 0 sends on the wake-up from `clock_nanosleep()`, which is within tens
   * of microseconds on an idle core; a spin only helps there, and on a
   * busy machine makes the tail worse (a spinning thread waits for its turn
   * like any other, where one woken from sleep preempts).
   * @default {0}
   */
  spin?: number;
  /**
   * Ask the server for its counters at the end, for upstream/downstream loss.
   * @default {true}
   */
  serverStats?: boolean;
  /**
   * Ask the kernel for receive times (`SO_TIMESTAMPNS`); off, every reply is
   * timed when this process reads it (the fallback where the kernel gives none).
   * @default {true}
   */
  kernelStamps?: boolean;
  /**
   * Send stamped pings (at least 96 bytes), so that a netkit server writes
   * its receive and send times into each echo, and split each round trip
   * into upstream, server and downstream delay (see {@linkcode OneWaySummary}).
   * @default {false}
   */
  oneWay?: boolean;
  /**
   * A shared key: sign every datagram (HMAC-SHA256, see `signDatagram()` in
   * protocol.ts, at the cost of 83 bytes per ping) and count only replies
   * signed with it; a netkit server started with the same key answers.
   */
  hmac?: Uint8Array;
  /** Stops sending; the summary comes at once, outstanding pings count as lost. */
  signal?: AbortSignal;
  /** Called for each event, as it happens. */
  onEvent?: (event: UdpPingEvent) => void;
}

/** Something that happened during a run, in order. */
export type UdpPingEvent =
  | { type: "start"; host: string; address: string; port: number }
  | {
    type: "reply";
    seq: number;
    bytes: number;
    from: string;
    rttMs: number;
    /** Where the receive time came from: the kernel (`SO_TIMESTAMPNS`), or user space when the kernel gave none. */
    stamp: StampSource;
    /**
     * With `oneWay` and a server that stamps: the server's receive time
     * minus our send time (includes the clock offset, as irtt's send delay).
     */
    upMs?: number;
    /** With `oneWay`: our receive time minus the server's send time (includes minus the clock offset). */
    downMs?: number;
    /** With `oneWay`: the server's send time minus its receive time. */
    serverMs?: number;
    /** A second reply for this sequence number. */
    duplicate: boolean;
    /** Came after its timeout had been reported. */
    late: boolean;
    /** Came after a reply with a higher sequence number. */
    reordered: boolean;
  }
  | { type: "timeout"; seq: number }
  | { type: "heartbeat"; seq: number; bytes: number };

/** Where a time was taken: by the kernel, or by this process (user space). */
export type StampSource = "kernel" | "user space";

/** Where the client's timestamps came from, as irtt reports its timestamp source. */
export interface TimestampSources {
  /** The send time: read from CLOCK_REALTIME right before `sendto()`, always in user space. */
  send: "user space";
  /** The receive time: "kernel" (`SO_TIMESTAMPNS`) for every reply, "user space" for none, else "mixed". */
  receive: StampSource | "mixed";
  /** Replies timed by the kernel. */
  kernel: number;
  /** Replies the kernel gave no time for, timed when this process read them. */
  userSpace: number;
}

/** Median, minimum and maximum of a delay, in milliseconds. */
export interface DelayStats {
  /** The smallest. */
  min: number;
  /** The median. */
  median: number;
  /** The largest. */
  max: number;
}

/**
 * One-way delays from the server's stamps (`oneWay`), as irtt splits a
 * round trip: T1 our send, T2 the server's receive, T3 its send, T4 our
 * receive. Upstream is T2 − T1 and downstream T4 − T3, read on two clocks,
 * so each includes the clock offset between them (± it); they are exact
 * when both ends share a clock.
 *
 * The offset is estimated as NTP does (RFC 5905 §8), from the round trip
 * with the least network time δ = (T4 − T1) − (T3 − T2):
 * θ = ((T2 − T1) + (T3 − T4)) / 2, which is exact when that trip's two
 * directions took equally long, and off by at most δ / 2 otherwise.
 */
export interface OneWaySummary {
  /** Round trips with the server's stamps. */
  count: number;
  /** T2 − T1. */
  up: DelayStats;
  /** T4 − T3. */
  down: DelayStats;
  /** T3 − T2: the server's own time. */
  server: DelayStats;
  /** The estimated offset of the server's clock from ours, θ. */
  offsetMs: number;
  /** Its error bound, δ / 2 of the round trip it came from. */
  offsetErrorMs: number;
}

/** The end-of-run figures of {@linkcode udpPing}. Times are in milliseconds. */
export interface UdpPingSummary {
  /** The host as given. */
  host: string;
  /** The address pinged. */
  address: string;
  /** The server port. */
  port: number;
  /** Pings (or heartbeats) sent. */
  sent: number;
  /** Distinct pings answered within the timeout. */
  received: number;
  /** `100 · (sent − received) / sent`. */
  lossPercent: number;
  /** Extra replies for a sequence number already answered. */
  duplicates: number;
  /** Replies that came after their timeout (not in `received`). */
  late: number;
  /** Replies that came after one with a higher sequence number (in `received`). */
  reordered: number;
  /** RTT statistics of the received replies. */
  rtt: RttSummary & { p99: number };
  /** Where the send and receive times came from. */
  timestamps: TimestampSources;
  /** With `hmac`: datagrams from the server's port ignored for a missing or wrong MAC. */
  unauthenticated: number;
  /** With `oneWay`: the delays each way; `undefined` when no reply carried the server's stamps. */
  oneWay?: OneWaySummary | undefined;
  /** The server's counters for this client, if it is a netkit server. */
  server: ServerCounters | undefined;
  /** Pings that never reached the server: `sent − server.rx`. */
  upstreamLoss: number | undefined;
  /** Replies the server sent that never arrived: `server.tx − (received + late)`. */
  downstreamLoss: number | undefined;
  /** Send-time error (actual minus scheduled send time), for the schedule's precision. */
  sendError: {
    mean: number;
    median: number;
    p99: number;
    max: number;
    /**
     * Sends whose scheduled time had already passed when the previous send
     * went out: a burst catching up after a stall. The sender skips the
     * slots instead (see `skipped`), so this stays 0; kept for readers of
     * the JSON.
     */
    catchUp: number;
    /**
     * Schedule slots left empty after stalls: a send more than an interval
     * late moves the rest of the schedule on by whole intervals, as irtt
     * skips the ticks it missed ("timer misses"), but without skipping a
     * sequence number, so that a stall never turns into a burst of late
     * sends. Each send's error is against its own slot.
     */
    skipped: number;
    /** 99th percentile over the other sends: the figure comparable to irtt's timer error. */
    p99OnTime: number;
  };
  /** Milliseconds from the first send to the last event. */
  elapsedMs: number;
}

/**
 * Splits `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address.
 *
 * @param target The command-line target.
 * @param defaultPort The port when none is given.
 * @returns The host and port.
 * @throws {RangeError} If the port is not 1..65535.
 *
 * @example
 * ```ts
 * import { splitHostPort } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(splitHostPort("[::1]:9", 12000).port, 9);
 * assertEquals(splitHostPort("::1", 12000).host, "::1");
 * ```
 */
export function splitHostPort(target: string, defaultPort: number): { host: string; port: number } {
  let host = target, portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(target);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if (target.split(":").length === 2) {
    [host, portText] = target.split(":") as [string, string];
  }
  if (portText === undefined) return { host, port: defaultPort };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new RangeError(`Cannot use port "${portText}" in "${target}": it must be 1 to 65535`);
  }
  return { host, port };
}

function randomNonce(): string {
  return [...crypto.getRandomValues(new Uint8Array(6))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Pings a UDP ping server and returns the summary; events (replies,
 * timeouts) are reported through `onEvent` as they happen.
 *
 * Datagrams go through the project's socket layer (`lib/rawsock`), as
 * ping's do:
 * - the send time is read from CLOCK_REALTIME right before `sendto()`;
 * - the receive time is the kernel's (`SO_TIMESTAMPNS`, the same clock), so
 *   the RTT does not include the time this process takes to see a reply;
 *   where the kernel gives none, the time the reply is read (noted in the
 *   event and the summary);
 * - waiting for replies is `poll()` on a worker thread, never blocking the
 *   event loop.
 *
 * Sends go out on a drift-free schedule (`t0 + k·interval`) driven by a
 * worker thread; a late tick sends late rather than skipping.
 *
 * @param host A name or an address.
 * @param options Count, interval, timeout, size, family, mode and callbacks.
 * @returns The summary.
 * @throws {ResolveError} If the host cannot be resolved (from `lib/resolve.ts`).
 * @throws {RangeError} If an option is out of range.
 * @throws {SocketError} If the socket cannot be opened (from `lib/rawsock`).
 */
export async function udpPing(host: string, options: UdpPingOptions = {}): Promise<UdpPingSummary> {
  const port = options.port ?? DEFAULT_PORT;
  const count = options.count ?? 10;
  const interval = options.interval ?? 1000;
  const timeout = options.timeout ?? 1000;
  const size = options.size ?? 0;
  const heartbeat = options.heartbeat ?? false;
  // At most a quarter of the interval is spun, so replies are still read
  // between sends.
  const spin = Math.min(Math.max(0, options.spin ?? 0), interval / 4);
  const emit = options.onEvent ?? (() => {});
  if (!(count >= 1)) throw new RangeError(`Cannot send ${count} pings: the count must be >= 1`);
  if (!(interval > 0)) throw new RangeError(`Cannot use interval ${interval} ms: it must be > 0`);
  if (!(timeout > 0)) throw new RangeError(`Cannot use timeout ${timeout} ms: it must be > 0`);
  if (!(size >= 0 && size <= MAX_PAYLOAD)) {
    throw new RangeError(`Cannot send ${size}-byte pings: the size must be 0 to ${MAX_PAYLOAD}`);
  }
  const { address, family } = await resolveHost(
    host,
    options.family === undefined ? {} : { family: options.family },
  );
  // Not connected: a server bound to a wildcard address may answer from
  // another of its addresses, and the course's client accepts that too.
  // ICMP errors are not asked for: a lost ping is a timeout, as there.
  const sock = openSocket({
    kind: "udp",
    family,
    receiveTtl: false,
    receiveErrors: false,
    timestamps: options.kernelStamps ?? true,
    // Replies queue here while this process is stalled: as the server's
    // loops, room for about 10,000 (the kernel caps it at rmem_max).
    receiveBufferSize: 4 * 1024 * 1024,
  });
  const target = { family, address, port };
  const clock = new RealtimeClock();
  try {
    sock.bind({ family, address: family === 6 ? "::" : "0.0.0.0", port: 0 });
  } catch (err) {
    sock.close();
    throw err;
  }

  const stats = new RttStats();
  const sendErrors: number[] = [];
  const onTimeErrors: number[] = [];
  let catchUp = 0, lastSend = -Infinity, skipped = 0;
  // Pings awaiting a reply, seq → send time (performance.now() for the
  // timeout, CLOCK_REALTIME for the RTT), in send order: with one timeout
  // for all, the first entry always expires first, so a single timer armed
  // for it replaces a timer per ping.
  const outstanding = new Map<number, { sentAt: number; sentNs: number }>();
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;
  const received = new Set<number>();
  // Send times stay known after a timeout, for a late reply's RTT, and are
  // forgotten (with the seq's other state) after 4 timeouts, so memory stays
  // bounded on endless runs.
  const sentTimes = new Map<number, { sentAt: number; sentNs: number }>();
  const timedOut = new Set<number>();
  let sent = 0, inTime = 0, duplicates = 0, late = 0, reordered = 0, highest = 0;
  let kernelStamps = 0, userStamps = 0, unauthenticated = 0;
  const key = options.hmac;
  const oneWay = options.oneWay ?? false;
  const ups: number[] = [], downs: number[] = [], serverTimes: number[] = [];
  let bestDelta = Infinity, bestOffset = NaN;
  let lastEvent = 0;
  let closing = false;
  let server: ServerCounters | undefined;
  const nonce = randomNonce();
  let statsWaiter: (() => void) | undefined;
  let statsEchoed = false;
  let sendingDone!: () => void;
  const sendingFinished = new Promise<void>((r) => sendingDone = r);
  let drained: (() => void) | undefined;

  function settle(): void {
    if (drained && outstanding.size === 0) drained();
  }

  function onDatagram(
    data: Uint8Array,
    bytes: number,
    from: string,
    receivedNs: number,
    stamp: StampSource,
  ) {
    const now = performance.now();
    const m = parseMessage(data);
    if (m?.kind === "stats-reply" && m.nonce.toLowerCase() === nonce) {
      server = m.counters;
      statsWaiter?.();
      return;
    }
    if (m?.kind === "stats" && m.nonce.toLowerCase() === nonce) {
      // The course's original server echoed the request: it has no counters.
      statsEchoed = true;
      statsWaiter?.();
      return;
    }
    if (m?.kind !== "ping") return;
    const seq = m.seq;
    let pending = outstanding.get(seq);
    if (pending !== undefined && receivedNs - pending.sentNs > timeout * 1e6) {
      // It came after its timeout, before the timer ran (the sender thread
      // tells of a ping only at its next wake-up): late, as the timer would
      // have made it.
      expire();
      if (outstanding.has(seq)) timeOut(seq, now);
      pending = undefined;
    }
    lastEvent = now;
    if (stamp === "kernel") kernelStamps++;
    else userStamps++;
    if (pending) {
      outstanding.delete(seq);
      received.add(seq);
      inTime++;
      const rtt = (receivedNs - pending.sentNs) / 1e6;
      const isReordered = seq < highest;
      if (isReordered) reordered++;
      else highest = seq;
      stats.add(rtt, seq);
      const event: UdpPingEvent = {
        type: "reply",
        seq,
        bytes,
        from,
        rttMs: rtt,
        stamp,
        duplicate: false,
        late: false,
        reordered: isReordered,
      };
      const stamps = oneWay ? parseStamps(data) : undefined;
      if (stamps !== undefined) {
        const t2 = clock.toNs(stamps.rxSeconds, stamps.rxNanoseconds);
        const t3 = clock.toNs(stamps.txSeconds, stamps.txNanoseconds);
        const up = (t2 - pending.sentNs) / 1e6, down = (receivedNs - t3) / 1e6;
        const serverMs = (t3 - t2) / 1e6;
        ups.push(up);
        downs.push(down);
        serverTimes.push(serverMs);
        // RFC 5905 §8: the offset from the trip with the least network time.
        const delta = up + down;
        if (delta < bestDelta) {
          bestDelta = delta;
          bestOffset = (up - down) / 2;
        }
        Object.assign(event, { upMs: up, downMs: down, serverMs });
      }
      emit(event);
      settle();
    } else if (received.has(seq) || timedOut.has(seq)) {
      const isLate = timedOut.delete(seq);
      if (isLate) {
        late++;
        received.add(seq);
      } else duplicates++;
      const sentNs = sentTimes.get(seq)?.sentNs;
      emit({
        type: "reply",
        seq,
        bytes,
        from,
        rttMs: sentNs === undefined ? 0 : (receivedNs - sentNs) / 1e6,
        stamp,
        duplicate: !isLate,
        late: isLate,
        reordered: false,
      });
    }
  }

  const rx = new Uint8Array(65536);
  const info = new DatagramInfo();
  sock.useReceiveBuffer(rx);

  /** Reads every queued datagram, without waiting. */
  function drain(): void {
    for (;;) {
      if (closing) return;
      const n = sock.receiveInto(rx, info);
      if (n < 0) return;
      // Book what the sender thread has sent (an atomic read when nothing
      // is new): a reply can be read before the sender tells of its ping.
      sender?.collect();
      const from = sock.lastSender();
      if (from === undefined || from.port !== port) continue;
      let data = rx.subarray(0, n);
      if (key !== undefined) {
        // Only what the server signed for this run counts.
        if (verifyDatagram(data, key) !== nonce) {
          unauthenticated++;
          continue;
        }
        data = data.subarray(0, n - AUTH_BYTES);
      }
      let receivedNs: number, stamp: StampSource;
      if (info.timestampSec >= 0) {
        receivedNs = clock.toNs(info.timestampSec, info.timestampNsec);
        stamp = "kernel";
      } else {
        receivedNs = clock.nowNs();
        stamp = "user space";
      }
      onDatagram(data, n, from.address, receivedNs, stamp);
    }
  }

  async function receiveLoop(): Promise<void> {
    while (!closing) {
      drain();
      if (closing) return;
      // poll() on a worker thread; close() wakes it.
      await sock.wait();
    }
  }

  function transmit(data: Uint8Array): void {
    try {
      sock.send(data, target);
    } catch {
      // A full send queue or a local error: the ping is lost, which UDP allows.
    }
  }

  /** Books a send (made by the sender thread, or here for a single ping). */
  function recordSend(
    send: { seq: number; scheduled: number; sentAt: number; sentNs: number; bytes: number },
  ): void {
    const { seq, scheduled, sentAt: now } = send;
    sendErrors.push(now - scheduled);
    if (scheduled < lastSend) catchUp++;
    else onTimeErrors.push(now - scheduled);
    skipped = Math.round((scheduled - t0) / interval) - (seq - 1);
    lastSend = now;
    sent++;
    for (const [old, at] of sentTimes) {
      if (now - at.sentAt < 4 * timeout) break;
      sentTimes.delete(old);
      timedOut.delete(old);
      received.delete(old);
    }
    if (heartbeat) emit({ type: "heartbeat", seq, bytes: send.bytes });
    else {
      const entry = { sentAt: now, sentNs: send.sentNs };
      sentTimes.set(seq, entry);
      outstanding.set(seq, entry);
      armExpiry();
    }
    if (seq >= count) sendingDone();
  }

  /** A single ping: sent from this thread, without starting the sender's. */
  function sendOne(t0: number): void {
    const now = performance.now();
    const data = encodeFor(1, (performance.timeOrigin + now) / 1000, plan);
    // The send time as ping takes it: the clock read, then at once sendto().
    clock.stamp();
    transmit(data);
    recordSend({ seq: 1, scheduled: t0, sentAt: now, sentNs: clock.stampNs(), bytes: data.length });
  }

  function armExpiry(): void {
    if (expiryTimer !== undefined || closing) return;
    const head = outstanding.values().next();
    if (head.done) return;
    const wait = Math.max(0, head.value.sentAt + timeout - performance.now());
    expiryTimer = setTimeout(() => {
      expiryTimer = undefined;
      // A reply may be queued and not yet read: read it before judging.
      drain();
      expire();
      settle();
      armExpiry();
    }, wait);
  }

  /** Reports the pings whose timeout has passed. */
  function expire(): void {
    const now = performance.now();
    for (const [seq, { sentAt }] of outstanding) {
      if (sentAt + timeout > now) break;
      timeOut(seq, now);
    }
  }

  function timeOut(seq: number, now: number): void {
    outstanding.delete(seq);
    timedOut.add(seq);
    lastEvent = now;
    emit({ type: "timeout", seq });
  }

  const plan: SendPlan = { heartbeat, interval, size, stamps: oneWay, key, session: nonce };
  let idle: IdleSender | undefined, sender: Sender | undefined;
  try {
    if (count > 1) {
      idle = await loadSender({ fd: sock.fd, family, target }, { plan, spin });
      bindFastCalls();
    }
  } catch (err) {
    sock.close();
    throw err;
  }
  emit({ type: "start", host, address, port });
  const receiving = receiveLoop();
  // The sender thread needs the start message first: the schedule begins
  // a little ahead, so that the first ping is on time too.
  const t0 = performance.now() + (idle ? START_LEAD_MS : 0);
  const onAbort = () => sendingDone();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!options.signal?.aborted) {
      if (idle) {
        sender = idle.start(t0, {
          interval,
          count,
          onSent: (r) => recordSend({ ...r, sentNs: clock.toNs(r.realtimeSec, r.realtimeNsec) }),
        });
      } else sendOne(t0);
      await sendingFinished;
    }
    idle?.stop();
    if (!options.signal?.aborted) {
      // Wait until every ping is answered or timed out.
      if (outstanding.size > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve;
          options.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      if (!heartbeat && (options.serverStats ?? true)) {
        const request = signFor(encodeStatsRequest(nonce), plan);
        // Three tries, as the request or its reply may be lost; one when
        // nothing ever answered, so an absent server does not hold us long.
        const tries = inTime + late > 0 ? 3 : 1;
        for (
          let attempt = 0;
          attempt < tries && !server && !statsEchoed && !options.signal?.aborted;
          attempt++
        ) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timeout);
            statsWaiter = () => {
              clearTimeout(timer);
              resolve();
            };
            transmit(request);
          });
        }
      }
    }
  } finally {
    idle?.stop();
    options.signal?.removeEventListener("abort", onAbort);
    closing = true;
    clearTimeout(expiryTimer);
    sock.close();
    await receiving;
  }
  const sortedErrors = sendErrors.toSorted((a, b) => a - b);
  const summaryRtt = { ...stats.summary(), p99: stats.percentile(99) };
  return {
    host,
    address,
    port,
    sent,
    received: inTime,
    lossPercent: sent === 0 ? 0 : (100 * (sent - inTime)) / sent,
    duplicates,
    late,
    reordered,
    rtt: summaryRtt,
    unauthenticated,
    timestamps: {
      send: "user space",
      receive: userStamps === 0 ? "kernel" : kernelStamps === 0 ? "user space" : "mixed",
      kernel: kernelStamps,
      userSpace: userStamps,
    },
    oneWay: ups.length === 0 ? undefined : {
      count: ups.length,
      up: delayStats(ups),
      down: delayStats(downs),
      server: delayStats(serverTimes),
      offsetMs: bestOffset,
      offsetErrorMs: bestDelta / 2,
    },
    server,
    upstreamLoss: server ? sent - server.rx : undefined,
    downstreamLoss: server ? server.tx - (inTime + late) : undefined,
    sendError: {
      mean: sortedErrors.reduce((a, b) => a + b, 0) / sortedErrors.length,
      median: percentile(sortedErrors, 50),
      p99: percentile(sortedErrors, 99),
      max: sortedErrors.at(-1) ?? NaN,
      catchUp,
      skipped,
      p99OnTime: percentile(onTimeErrors.sort((a, b) => a - b), 99),
    },
    elapsedMs: Math.max(lastEvent, performance.now()) - t0,
  };
}

function delayStats(values: number[]): DelayStats {
  const sorted = values.toSorted((a, b) => a - b);
  return { min: sorted[0]!, median: percentile(sorted, 50), max: sorted.at(-1)! };
}

/**
 * CLOCK_REALTIME readings as nanoseconds since the second the run started:
 * exact in a double for 104 days, where nanoseconds since 1970 are not.
 */
class RealtimeClock {
  #buf = new Uint8Array(16);
  #view = new DataView(this.#buf.buffer);
  #base: number;

  constructor() {
    realtimeInto(this.#buf);
    this.#base = this.#seconds();
  }

  #seconds(): number {
    return this.#view.getUint32(0, true) + this.#view.getInt32(4, true) * 2 ** 32;
  }

  /** Reads the clock into the stamp buffer: nothing else between it and the caller's send. */
  stamp(): void {
    realtimeInto(this.#buf);
  }

  /** The reading last taken by {@linkcode stamp}, in nanoseconds since the base. */
  stampNs(): number {
    return (this.#seconds() - this.#base) * 1e9 + this.#view.getUint32(8, true);
  }

  /** Now, in nanoseconds since the base. */
  nowNs(): number {
    this.stamp();
    return this.stampNs();
  }

  /** A kernel timestamp in nanoseconds since the base. */
  toNs(seconds: number, nanoseconds: number): number {
    return (seconds - this.#base) * 1e9 + nanoseconds;
  }
}

/**
 * Formats a time in milliseconds as iputils' ping does: three significant
 * decimals below 1 ms, two below 10, one below 100, none above.
 *
 * @param ms The time in milliseconds.
 * @returns The text, without the unit.
 *
 * @example
 * ```ts
 * import { formatMs } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatMs(0.0456), "0.046");
 * assertEquals(formatMs(12.34), "12.3");
 * ```
 */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "nan";
  if (ms >= 99.95) return ms.toFixed(0);
  if (ms >= 9.995) return ms.toFixed(1);
  if (ms >= 0.9995) return ms.toFixed(2);
  return ms.toFixed(3);
}

/**
 * Formats one event as the text CLI prints it (ping-like lines), or
 * `undefined` for an event that prints nothing.
 *
 * @param event The event.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatEvent({ type: "timeout", seq: 4 }), "Request timed out (seq=4)");
 * ```
 */
export function formatEvent(event: UdpPingEvent): string | undefined {
  switch (event.type) {
    case "start":
      return `UDP PING ${event.host} (${event.address}) port ${event.port}`;
    case "reply": {
      const mark = event.duplicate ? " (DUP!)" : event.late ? " (late)" : "";
      const split = event.upMs === undefined
        ? ""
        : ` up=${formatMs(event.upMs)} down=${formatMs(event.downMs!)} server=${
          formatMs(event.serverMs!)
        } ms`;
      return `${event.bytes} bytes from ${event.from}: seq=${event.seq} time=${
        formatMs(event.rttMs)
      } ms${split}${mark}`;
    }
    case "timeout":
      return `Request timed out (seq=${event.seq})`;
    case "heartbeat":
      return undefined;
  }
}

function fmt3(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(3) : "nan";
}

/**
 * Formats the summary as the text CLI prints it after a blank line.
 *
 * @param s The summary.
 * @param options The mode the run was in.
 * @returns The lines, without newlines.
 *
 * @example
 * ```ts ignore
 * import { formatSummary, udpPing } from "./client.ts";
 * console.log(formatSummary(await udpPing("127.0.0.1")).join("\n"));
 * ```
 */
export function formatSummary(
  s: UdpPingSummary,
  options: {
    /**
     * Heartbeat mode: only what was sent.
     * @default {false}
     */
    heartbeat?: boolean;
  } = {},
): string[] {
  if (options.heartbeat) {
    return [
      `--- ${s.host} udp heartbeat ---`,
      `${s.sent} heartbeats sent, time ${s.elapsedMs.toFixed(0)}ms`,
    ];
  }
  const loss = Number(s.lossPercent.toPrecision(6));
  const lines = [
    `--- ${s.host} udp ping statistics ---`,
    `${s.sent} packets transmitted, ${s.received} received, ${loss}% packet loss, ` +
    `${s.duplicates} duplicates, ${s.late} late, ${s.reordered} reordered, ` +
    `time ${s.elapsedMs.toFixed(0)}ms`,
  ];
  const r = s.rtt;
  if (r.count > 0) {
    lines.push(
      `rtt min/avg/median/max/mdev = ${fmt3(r.min)}/${fmt3(r.avg)}/${fmt3(r.median)}/` +
        `${fmt3(r.max)}/${fmt3(r.mdev)} ms`,
      `jitter ${fmt3(r.jitter)} ms (RFC 3550), ipdv mean|abs|/min/max = ` +
        `${fmt3(r.ipdv.meanAbs)}/${fmt3(r.ipdv.min)}/${
          fmt3(r.ipdv.max)
        } ms (${r.ipdv.count} pairs)`,
    );
  }
  const w = s.oneWay;
  if (w) {
    const d = (x: DelayStats) => `${fmt3(x.min)}/${fmt3(x.median)}/${fmt3(x.max)}`;
    lines.push(
      `one-way min/median/max: up ${d(w.up)}, down ${d(w.down)}, server ${d(w.server)} ms ` +
        `(${w.count} stamped replies)`,
      `clock offset ${fmt3(w.offsetMs)} ± ${fmt3(w.offsetErrorMs)} ms (server minus client, ` +
        `min-RTT NTP estimate): up and down each include it`,
    );
  }
  if (s.unauthenticated > 0) {
    lines.push(`${s.unauthenticated} datagrams failed authentication (--hmac) and were ignored`);
  }
  const t = s.timestamps;
  if (t.kernel + t.userSpace > 0) {
    lines.push(`timestamps: send ${t.send}, receive ${t.receive}`);
    if (t.userSpace > 0) {
      lines.push(
        `note: ${t.userSpace} of ${t.kernel + t.userSpace} replies had no kernel receive time; ` +
          "their RTTs include this process's delay in reading them",
      );
    }
  }
  if (s.server) {
    const c = s.server;
    lines.push(
      `server: ${c.rx} received, ${c.drop} dropped by server, ${c.tx} replied, ` +
        `${c.held ? `${c.held} still delayed, ` : ""}${c.dup} duplicate requests; ` +
        `loss upstream ${s.upstreamLoss}, downstream ${s.downstreamLoss}`,
    );
  } else {
    lines.push("server: no counters (not a netkit udp-server, or the stats request was lost)");
  }
  return lines;
}
