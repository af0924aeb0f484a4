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
  DEFAULT_PORT,
  encodeHeartbeat,
  encodePing,
  encodeStatsRequest,
  MAX_PAYLOAD,
  parseMessage,
  type ServerCounters,
} from "./protocol.ts";
import { type IdleTicker, loadTicker } from "./_ticker.ts";

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
   * Milliseconds before each send that the timer thread wakes this one, which
   * then busy-waits to the exact time (capped at a quarter of the interval):
   * the main thread's own wake-up is what is late. 0 sends on the timer's wake-up.
   * On loopback at `-i 1ms` it took the median send-time error from about
   * 55 µs to 0 (bench/udp.ts).
   * @default {0.3}
   */
  spin?: number;
  /**
   * Ask the server for its counters at the end, for upstream/downstream loss.
   * @default {true}
   */
  serverStats?: boolean;
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
    /** A second reply for this sequence number. */
    duplicate: boolean;
    /** Came after its timeout had been reported. */
    late: boolean;
    /** Came after a reply with a higher sequence number. */
    reordered: boolean;
  }
  | { type: "timeout"; seq: number }
  | { type: "heartbeat"; seq: number; bytes: number };

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
     * went out: the catch-up after a stall. irtt skips such ticks (its
     * "timer misses"); this client sends them late instead.
     */
    catchUp: number;
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
 * Sends go out on a drift-free schedule (`t0 + k·interval`) driven by a
 * worker thread; a late tick sends late rather than skipping. Receive times
 * are taken when the event loop sees the datagram.
 *
 * @param host A name or an address.
 * @param options Count, interval, timeout, size, family, mode and callbacks.
 * @returns The summary.
 * @throws {ResolveError} If the host cannot be resolved (from `lib/resolve.ts`).
 * @throws {RangeError} If an option is out of range.
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
  const spin = Math.min(Math.max(0, options.spin ?? 0.3), interval / 4);
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
  const v6 = family === 6;
  const conn = Deno.listenDatagram({ transport: "udp", hostname: v6 ? "::" : "0.0.0.0", port: 0 });
  const target: Deno.NetAddr = { transport: "udp", hostname: address, port };

  const stats = new RttStats();
  const sendErrors: number[] = [];
  const onTimeErrors: number[] = [];
  let catchUp = 0, lastSend = -Infinity;
  // Pings awaiting a reply, seq → send time, in send order: with one timeout
  // for all, the first entry always expires first, so a single timer armed
  // for it replaces a timer per ping (two fewer async ops per ping).
  const outstanding = new Map<number, { sentAt: number }>();
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;
  const received = new Set<number>();
  // Send times stay known after a timeout, for a late reply's RTT, and are
  // forgotten (with the seq's other state) after 4 timeouts, so memory stays
  // bounded on endless runs.
  const sentTimes = new Map<number, number>();
  const timedOut = new Set<number>();
  let sent = 0, inTime = 0, duplicates = 0, late = 0, reordered = 0, highest = 0;
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

  function onDatagram(data: Uint8Array, from: Deno.NetAddr, now: number): void {
    if (from.port !== port) return;
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
    const pending = outstanding.get(seq);
    lastEvent = now;
    if (pending) {
      outstanding.delete(seq);
      received.add(seq);
      inTime++;
      const rtt = now - pending.sentAt;
      const isReordered = seq < highest;
      if (isReordered) reordered++;
      else highest = seq;
      stats.add(rtt, seq);
      emit({
        type: "reply",
        seq,
        bytes: data.length,
        from: from.hostname,
        rttMs: rtt,
        duplicate: false,
        late: false,
        reordered: isReordered,
      });
      settle();
    } else if (received.has(seq) || timedOut.has(seq)) {
      const isLate = timedOut.delete(seq);
      if (isLate) {
        late++;
        received.add(seq);
      } else duplicates++;
      emit({
        type: "reply",
        seq,
        bytes: data.length,
        from: from.hostname,
        rttMs: now - (sentTimes.get(seq) ?? now),
        duplicate: !isLate,
        late: isLate,
        reordered: false,
      });
    }
  }

  async function receiveLoop(): Promise<void> {
    const buf = new Uint8Array(65536);
    for (;;) {
      let data: Uint8Array, addr: Deno.Addr;
      try {
        [data, addr] = await conn.receive(buf);
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) return;
        if (err instanceof Deno.errors.Interrupted) return;
        // An ICMP error for an earlier send may surface as a receive error
        // (ECONNREFUSED); the socket is still good.
        continue;
      }
      onDatagram(data, addr as Deno.NetAddr, performance.now());
    }
  }

  function sendOne(seq: number, scheduled: number): void {
    let now = performance.now();
    // The ticker wakes us up `spin` ms early; the rest is spun here, on the
    // thread that sends, whose own wake-up from the timer is the late part.
    while (now < scheduled) now = performance.now();
    const data = heartbeat
      ? encodeHeartbeat(seq, (performance.timeOrigin + now) / 1000, interval)
      : encodePing(seq, (performance.timeOrigin + now) / 1000, { size });
    sendErrors.push(now - scheduled);
    if (scheduled < lastSend) catchUp++;
    else onTimeErrors.push(now - scheduled);
    lastSend = now;
    sent++;
    for (const [old, at] of sentTimes) {
      if (now - at < 4 * timeout) break;
      sentTimes.delete(old);
      timedOut.delete(old);
      received.delete(old);
    }
    if (heartbeat) {
      emit({ type: "heartbeat", seq, bytes: data.length });
    } else {
      sentTimes.set(seq, now);
      outstanding.set(seq, { sentAt: now });
      armExpiry();
    }
    conn.send(data, target).catch(() => {});
  }

  function armExpiry(): void {
    if (expiryTimer !== undefined || closing) return;
    const head = outstanding.values().next();
    if (head.done) return;
    const wait = Math.max(0, head.value.sentAt + timeout - performance.now());
    expiryTimer = setTimeout(() => {
      expiryTimer = undefined;
      const now = performance.now();
      for (const [seq, { sentAt }] of outstanding) {
        if (sentAt + timeout > now) break;
        outstanding.delete(seq);
        timedOut.add(seq);
        lastEvent = now;
        emit({ type: "timeout", seq });
      }
      settle();
      armExpiry();
    }, wait);
  }

  let ticker: IdleTicker | undefined;
  try {
    if (count > 1) ticker = await loadTicker();
  } catch (err) {
    conn.close();
    throw err;
  }
  emit({ type: "start", host, address, port });
  const receiving = receiveLoop();
  const t0 = performance.now();
  const onAbort = () => sendingDone();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (!options.signal?.aborted) {
      sendOne(1, t0);
      if (count > 1) {
        ticker!.start(t0, interval, (k, scheduled) => {
          sendOne(k + 1, scheduled);
          if (k + 1 >= count) sendingDone();
        }, { lead: spin });
      } else sendingDone();
      await sendingFinished;
    }
    ticker?.stop();
    if (!options.signal?.aborted) {
      // Wait until every ping is answered or timed out.
      if (outstanding.size > 0) {
        await new Promise<void>((resolve) => {
          drained = resolve;
          options.signal?.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      if (!heartbeat && (options.serverStats ?? true)) {
        const request = encodeStatsRequest(nonce);
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
            conn.send(request, target).catch(() => {});
          });
        }
      }
    }
  } finally {
    ticker?.stop();
    options.signal?.removeEventListener("abort", onAbort);
    closing = true;
    clearTimeout(expiryTimer);
    conn.close();
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
    server,
    upstreamLoss: server ? sent - server.rx : undefined,
    downstreamLoss: server ? server.tx - (inTime + late) : undefined,
    sendError: {
      mean: sortedErrors.reduce((a, b) => a + b, 0) / sortedErrors.length,
      median: percentile(sortedErrors, 50),
      p99: percentile(sortedErrors, 99),
      max: sortedErrors.at(-1) ?? NaN,
      catchUp,
      p99OnTime: percentile(onTimeErrors.sort((a, b) => a - b), 99),
    },
    elapsedMs: Math.max(lastEvent, performance.now()) - t0,
  };
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
      return `${event.bytes} bytes from ${event.from}: seq=${event.seq} time=${
        formatMs(event.rttMs)
      } ms${mark}`;
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
