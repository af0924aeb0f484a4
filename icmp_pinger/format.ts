/**
 * The text iputils `ping` (version 20221126) prints, rebuilt from ping
 * events: the header, reply and error lines, `-O`'s "no answer yet", flood
 * mode's dots, the statistics block and the `SIGQUIT` status line.
 *
 * Every function here is pure: it takes numbers and strings and returns the
 * text; `main.ts` writes it. Round-trip times are integer microseconds, as
 * iputils keeps them, so the figures go through the same integer arithmetic
 * and print with the same digits.
 *
 * @example A reply line and the statistics of one ping
 * ```ts
 * import { formatReply, formatStatistics } from "./format.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(
 *   formatReply({ bytes: 64, from: "127.0.0.1", seq: 1, ttl: 64, rttUs: 42 }),
 *   "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.042 ms",
 * );
 * const stats = formatStatistics({
 *   host: "127.0.0.1", transmitted: 1, received: 1, duplicates: 0, corrupted: 0, errors: 0,
 *   timeMs: 0, rtt: { count: 1, sumUs: 42, sumSquaresUs: 1764, minUs: 42, maxUs: 42, ewma8: 336 },
 *   timing: true, pipe: 1, showIpg: false,
 * });
 * assert(stats.endsWith("rtt min/avg/max/mdev = 0.042/0.042/0.042/0.000 ms\n"));
 * ```
 *
 * @module
 */

/** The round-trip figures iputils accumulates, all in integer microseconds. */
export interface RttAccumulator {
  /** Replies counted in the figures (duplicates included, corrupted ones not). */
  count: number;
  /** Sum of the round trips. */
  sumUs: number;
  /** Sum of their squares. */
  sumSquaresUs: number;
  /** Smallest round trip (`Infinity` before the first). */
  minUs: number;
  /** Largest round trip (0 before the first). */
  maxUs: number;
  /** iputils' moving average, scaled by 8 (`rtt += t - rtt / 8`). */
  ewma8: number;
}

/**
 * Creates an empty {@linkcode RttAccumulator}.
 *
 * @returns The accumulator with no samples.
 *
 * @example
 * ```ts
 * import { addRtt, newRttAccumulator } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const acc = newRttAccumulator();
 * addRtt(acc, 100);
 * assertEquals(acc.count, 1);
 * assertEquals(acc.ewma8, 800);
 * ```
 */
export function newRttAccumulator(): RttAccumulator {
  return { count: 0, sumUs: 0, sumSquaresUs: 0, minUs: Infinity, maxUs: 0, ewma8: 0 };
}

/**
 * Adds one round trip the way iputils' `gather_statistics()` does, including
 * the scaled moving average (integer arithmetic, first sample seeds it).
 *
 * @param acc The accumulator to update.
 * @param rttUs The round trip in whole microseconds.
 *
 * @example
 * ```ts
 * import { addRtt, newRttAccumulator } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const acc = newRttAccumulator();
 * addRtt(acc, 10);
 * addRtt(acc, 20);
 * assertEquals(acc.ewma8, 80 + 20 - 10);
 * ```
 */
export function addRtt(acc: RttAccumulator, rttUs: number): void {
  acc.count++;
  acc.sumUs += rttUs;
  acc.sumSquaresUs += rttUs * rttUs;
  if (rttUs < acc.minUs) acc.minUs = rttUs;
  if (rttUs > acc.maxUs) acc.maxUs = rttUs;
  // Both computed on every call (cheap), so that the JIT has seen both
  // when a flood that primed it starts afresh with an empty accumulator.
  const seed = rttUs * 8;
  const moved = acc.ewma8 + rttUs - Math.trunc(acc.ewma8 / 8);
  acc.ewma8 = acc.ewma8 === 0 ? seed : moved;
}

/** The rtt figures iputils prints, in integer microseconds. */
export interface RttFigures {
  /** Smallest. */
  minUs: number;
  /** Mean, truncated. */
  avgUs: number;
  /** Largest. */
  maxUs: number;
  /** Population standard deviation, truncated (integer square root of the truncated variance). */
  mdevUs: number;
}

/**
 * Computes min/avg/max/mdev exactly as iputils' `finish()`: the mean and the
 * variance are truncated integer divisions and mdev is iputils' integer
 * square root of the variance.
 *
 * @param acc The accumulated round trips.
 * @returns The figures, or `undefined` when there are no samples.
 *
 * @example
 * ```ts
 * import { addRtt, newRttAccumulator, rttFigures } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const acc = newRttAccumulator();
 * for (const t of [36, 89, 36]) addRtt(acc, t);
 * const f = rttFigures(acc)!;
 * assertEquals(f.avgUs, 53);
 * assertEquals(f.mdevUs, 25); // as iputils prints for these times
 * ```
 */
export function rttFigures(acc: RttAccumulator): RttFigures | undefined {
  if (acc.count === 0) return undefined;
  const n = BigInt(acc.count);
  const sum = BigInt(acc.sumUs);
  const sum2 = BigInt(acc.sumSquaresUs);
  const avg = sum / n;
  // iputils orders the arithmetic this way to avoid rounding small times
  // away; above INT_MAX it switches to the other form to avoid overflow.
  const variance = acc.sumUs < 2147483647 ? (sum2 - (sum * sum) / n) / n : sum2 / n - avg * avg;
  return {
    minUs: acc.minUs,
    avgUs: Number(avg),
    maxUs: acc.maxUs,
    mdevUs: Number(integerSqrt(variance)),
  };
}

function integerSqrt(a: bigint): bigint {
  // iputils' llsqrt(): Newton's iteration from above, returning the last
  // iterate, which can be one more than the floor (llsqrt(624) is 25).
  let prev: bigint | undefined;
  let x = a;
  if (x > 0n) {
    while (prev === undefined || x < prev) {
      prev = x;
      x = (x + a / x) / 2n;
    }
  }
  return x;
}

/**
 * Formats microseconds as `ms.uuu` (`%ld.%03ld`), as the statistics lines do.
 *
 * @param us Whole microseconds.
 * @returns The text, e.g. `"1.005"`.
 *
 * @example
 * ```ts
 * import { usToMs } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(usToMs(1005), "1.005");
 * ```
 */
export function usToMs(us: number): string {
  return `${Math.trunc(us / 1000)}.${String(us % 1000).padStart(3, "0")}`;
}

/**
 * Formats a reply's round trip with iputils' precision rules: three decimals
 * below 1 ms, two below 10 ms, one below 100 ms and none above, rounding
 * half up at each boundary.
 *
 * @param us The round trip in whole microseconds.
 * @returns The number without the unit, e.g. `"12.3"`.
 *
 * @example
 * ```ts
 * import { formatRttValue } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatRttValue(42), "0.042");
 * assertEquals(formatRttValue(1234), "1.23");
 * assertEquals(formatRttValue(12345), "12.3");
 * assertEquals(formatRttValue(123456), "123");
 * ```
 */
export function formatRttValue(us: number): string {
  if (us >= 100000 - 50) return `${Math.trunc((us + 500) / 1000)}`;
  if (us >= 10000 - 5) {
    const v = us + 50;
    return `${Math.trunc(v / 1000)}.${Math.trunc((v % 1000) / 100)}`;
  }
  if (us >= 1000) {
    const v = us + 5;
    return `${Math.trunc(v / 1000)}.${String(Math.trunc((v % 1000) / 10)).padStart(2, "0")}`;
  }
  return usToMs(us);
}

/**
 * Formats a number as C's `printf("%g")` does (six significant digits,
 * trailing zeros dropped).
 *
 * @param value The number.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { formatG } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatG(100), "100");
 * assertEquals(formatG(100 / 3), "33.3333");
 * assertEquals(formatG(0.00001), "1e-05");
 * ```
 */
export function formatG(value: number): string {
  if (value === 0) return "0";
  if (!Number.isFinite(value)) return String(value);
  const [mantissa = "", e = "0"] = value.toExponential(5).split("e");
  const exponent = Number(e);
  if (exponent < -4 || exponent >= 6) {
    const m = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const sign = exponent < 0 ? "-" : "+";
    return `${m}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const fixed = value.toFixed(5 - exponent);
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

/**
 * The loss percentage as iputils prints it: computed in double, stored in a
 * C `float`, printed with `%g`.
 *
 * @param transmitted Packets sent.
 * @param received Replies received (duplicates excluded).
 * @returns The text without the `%`, e.g. `"83.3333"`.
 *
 * @example
 * ```ts
 * import { formatLoss } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatLoss(6, 1), "83.3333");
 * ```
 */
export function formatLoss(transmitted: number, received: number): string {
  if (transmitted === 0) return "0";
  return formatG(Math.fround(((transmitted - received) * 100.0) / transmitted));
}

/** What {@linkcode formatHeader} needs. */
export interface HeaderInfo {
  /** The host as given on the command line. */
  host: string;
  /** The resolved address. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** Data bytes per request (`-s`). */
  dataBytes: number;
  /** The source address, printed when `-I` was given. */
  source?: string;
  /** The interface given with `-I`, if it was a name. */
  device?: string;
}

/**
 * Formats the first line, `PING host (addr) 56(84) bytes of data.` for IPv4
 * and `PING host(addr) 56 data bytes` for IPv6 (iputils leaves out the space
 * there), with `from SRC DEV: ` when `-I` was given.
 *
 * @param info The target and sizes.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatHeader } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(
 *   formatHeader({ host: "::1", address: "::1", family: 6, dataBytes: 56 }),
 *   "PING ::1(::1) 56 data bytes",
 * );
 * ```
 */
export function formatHeader(info: HeaderInfo): string {
  const from = info.source !== undefined ? `from ${info.source} ${info.device ?? ""}: ` : "";
  if (info.family === 6) {
    return `PING ${info.host}(${info.address}) ${from}${info.dataBytes} data bytes`;
  }
  return `PING ${info.host} (${info.address}) ${from}${info.dataBytes}(${
    info.dataBytes + 28
  }) bytes of data.`;
}

/**
 * Formats `-p`'s `PATTERN: 0x…` line, showing the bytes actually used
 * (at most 16).
 *
 * @param pattern The pattern bytes.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatPattern } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatPattern(new Uint8Array([0xab, 0x01])), "PATTERN: 0xab01");
 * ```
 */
export function formatPattern(pattern: Uint8Array): string {
  return `PATTERN: 0x${[...pattern].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Names a peer as iputils' `pr_addr()`: `name (address)` when a reverse
 * lookup found a name, otherwise the address alone.
 *
 * @param address The address.
 * @param name Its name, if known.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { formatPeer } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatPeer("127.0.0.1", "localhost"), "localhost (127.0.0.1)");
 * assertEquals(formatPeer("10.0.0.1"), "10.0.0.1");
 * ```
 */
export function formatPeer(address: string, name?: string): string {
  return name !== undefined && name !== address ? `${name} (${address})` : address;
}

/**
 * Formats `-D`'s `[seconds.micros] ` prefix.
 *
 * @param epochNs The time in nanoseconds since the epoch.
 * @returns The prefix, with its trailing space.
 *
 * @example
 * ```ts
 * import { formatTimestamp } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatTimestamp(1_700_000_000_123_456_789n), "[1700000000.123456] ");
 * ```
 */
export function formatTimestamp(epochNs: bigint): string {
  const us = epochNs / 1000n;
  return `[${us / 1_000_000n}.${String(us % 1_000_000n).padStart(6, "0")}] `;
}

/** What {@linkcode formatReply} needs. */
export interface ReplyLine {
  /** ICMP bytes received (header included). */
  bytes: number;
  /** The peer as {@linkcode formatPeer} names it. */
  from: string;
  /** The sequence number. */
  seq: number;
  /** TTL or hop limit, when known. */
  ttl?: number;
  /** Round trip in microseconds; absent when the payload is too short to carry a time. */
  rttUs?: number;
  /** A second reply to the same request. */
  duplicate?: boolean;
  /** The checksum did not verify. */
  badChecksum?: boolean;
  /** Fewer bytes came back than were sent. */
  truncated?: boolean;
}

/**
 * Formats a reply line, e.g. `64 bytes from 10.0.3.2: icmp_seq=1 ttl=61 time=0.085 ms`,
 * with iputils' ` (DUP!)`, ` (BAD CHECKSUM!)` and ` (truncated)` marks.
 *
 * @param r The reply.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatReply } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(
 *   formatReply({ bytes: 64, from: "::1", seq: 2, ttl: 64, rttUs: 36, duplicate: true }),
 *   "64 bytes from ::1: icmp_seq=2 ttl=64 time=0.036 ms (DUP!)",
 * );
 * ```
 */
export function formatReply(r: ReplyLine): string {
  let line = `${r.bytes} bytes from ${r.from}: icmp_seq=${r.seq}`;
  if (r.ttl !== undefined && r.ttl >= 0) line += ` ttl=${r.ttl}`;
  if (r.truncated) return `${line} (truncated)`;
  if (r.rttUs !== undefined) line += ` time=${formatRttValue(r.rttUs)} ms`;
  if (r.duplicate) line += " (DUP!)";
  if (r.badChecksum) line += " (BAD CHECKSUM!)";
  return line;
}

const V4_UNREACHABLE: Record<number, string> = {
  0: "Destination Net Unreachable",
  1: "Destination Host Unreachable",
  2: "Destination Protocol Unreachable",
  3: "Destination Port Unreachable",
  5: "Source Route Failed",
  6: "Destination Net Unknown",
  7: "Destination Host Unknown",
  8: "Source Host Isolated",
  9: "Destination Net Prohibited",
  10: "Destination Host Prohibited",
  11: "Destination Net Unreachable for Type of Service",
  12: "Destination Host Unreachable for Type of Service",
  13: "Packet filtered",
  14: "Precedence Violation",
  15: "Precedence Cutoff",
};

const V4_REDIRECT: Record<number, string> = {
  0: "Redirect Network",
  1: "Redirect Host",
  2: "Redirect Type of Service and Network",
  3: "Redirect Type of Service and Host",
};

const V4_OTHER: Record<number, string> = {
  0: "Echo Reply",
  4: "Source Quench",
  8: "Echo Request",
  13: "Timestamp",
  14: "Timestamp Reply",
  15: "Information Request",
  16: "Information Reply",
  17: "Address Mask Request",
  18: "Address Mask Reply",
};

const V6_UNREACHABLE: Record<number, string> = {
  0: "No route",
  1: "Administratively prohibited",
  2: "Beyond scope of source address",
  3: "Address unreachable",
  4: "Port unreachable",
};

const V6_PARAMETER: Record<number, string> = {
  0: "Wrong header field ",
  1: "Unknown header ",
  2: "Unknown option ",
};

/** An ICMP error as {@linkcode describeError} takes it. */
export interface IcmpErrorInfo {
  /** 4 or 6. */
  family: 4 | 6;
  /** The ICMP type. */
  type: number;
  /** The ICMP code. */
  code: number;
  /** `ee_info` / the rest of the header: the MTU, or a parameter problem's pointer. */
  info?: number;
}

/**
 * Describes an ICMP error with iputils' words (its `pr_icmph()` for IPv4 and
 * `print_icmp()` for IPv6), e.g. `Time to live exceeded` or
 * `Destination unreachable: Address unreachable`.
 *
 * @param e The family, type, code and info.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { describeError } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(describeError({ family: 4, type: 11, code: 0 }), "Time to live exceeded");
 * assertEquals(describeError({ family: 6, type: 2, code: 0, info: 1280 }), "Packet too big: mtu=1280");
 * ```
 */
export function describeError(e: IcmpErrorInfo): string {
  const info = e.info ?? 0;
  if (e.family === 4) {
    switch (e.type) {
      case 3:
        if (e.code === 4) return `Frag needed and DF set (mtu = ${info})`;
        return V4_UNREACHABLE[e.code] ?? `Dest Unreachable, Bad Code: ${e.code}`;
      case 5:
        return V4_REDIRECT[e.code] ?? `Redirect, Bad Code: ${e.code}`;
      case 11:
        if (e.code === 0) return "Time to live exceeded";
        if (e.code === 1) return "Frag reassembly time exceeded";
        return `Time exceeded, Bad Code: ${e.code}`;
      case 12:
        return `Parameter problem: pointer = ${info}`;
      default:
        return V4_OTHER[e.type] ?? `Bad ICMP type: ${e.type}`;
    }
  }
  switch (e.type) {
    case 1:
      return `Destination unreachable: ${V6_UNREACHABLE[e.code] ?? `Unknown code ${e.code}`}`;
    case 2:
      return `Packet too big: mtu=${info}${e.code ? `, code=${e.code}` : ""}`;
    case 3:
      if (e.code === 0) return "Time exceeded: Hop limit";
      if (e.code === 1) return "Time exceeded: Defragmentation failure";
      return `Time exceeded: code ${e.code}`;
    case 4:
      return `Parameter problem: ${V6_PARAMETER[e.code] ?? `code ${e.code} `}at ${info}`;
    case 128:
      return "Echo request";
    case 129:
      return "Echo reply";
    case 130:
      return "MLD Query";
    case 131:
      return "MLD Report";
    case 132:
      return "MLD Reduction";
    default:
      return `unknown icmp type: ${e.type}`;
  }
}

/**
 * Formats an ICMP error line, e.g. `From 10.0.1.2 icmp_seq=1 Time to live exceeded`.
 *
 * @param from The peer as {@linkcode formatPeer} names it.
 * @param seq The sequence number of the request the error quotes.
 * @param e The error.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatError } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(
 *   formatError("fd00:0:1::2", 1, { family: 6, type: 3, code: 0 }),
 *   "From fd00:0:1::2 icmp_seq=1 Time exceeded: Hop limit",
 * );
 * ```
 */
export function formatError(from: string, seq: number, e: IcmpErrorInfo): string {
  return `From ${from} icmp_seq=${seq} ${describeError(e)}`;
}

/**
 * Formats `-O`'s line for a request still unanswered when the next is sent.
 *
 * @param seq The sequence number.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatNoAnswer } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatNoAnswer(3), "no answer yet for icmp_seq=3");
 * ```
 */
export function formatNoAnswer(seq: number): string {
  return `no answer yet for icmp_seq=${seq}`;
}

/** The counts and figures of {@linkcode formatStatistics}. */
export interface StatisticsInfo {
  /** The host as given. */
  host: string;
  /** Requests sent. */
  transmitted: number;
  /** Distinct replies received. */
  received: number;
  /** Extra copies of replies. */
  duplicates: number;
  /** Replies with a bad checksum. */
  corrupted: number;
  /** ICMP errors and local errors. */
  errors: number;
  /** From the start to the last request sent, in milliseconds. */
  timeMs: number;
  /** The same span in microseconds, for `ipg` (iputils divides the unrounded time). @default {timeMs × 1000} */
  elapsedUs?: number;
  /** The round trips. */
  rtt: RttAccumulator;
  /** Whether requests carried a send time (data of 16 bytes or more). */
  timing: boolean;
  /** The most requests ever outstanding; printed as `pipe N` when above 1. */
  pipe: number;
  /** Print `ipg/ewma` (flood mode or interval 0, more than one request). */
  showIpg: boolean;
}

/**
 * Formats the statistics block iputils prints at the end: the blank line,
 * `--- host ping statistics ---`, the counts line, and the rtt line (which is
 * empty when there is nothing to say).
 *
 * @param s The counts and figures.
 * @returns The block, ending with a newline.
 *
 * @example
 * ```ts
 * import { formatStatistics, newRttAccumulator } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const text = formatStatistics({
 *   host: "10.0.3.2", transmitted: 2, received: 0, duplicates: 0, corrupted: 0, errors: 2,
 *   timeMs: 203, rtt: newRttAccumulator(), timing: true, pipe: 1, showIpg: false,
 * });
 * assertEquals(
 *   text,
 *   "\n--- 10.0.3.2 ping statistics ---\n" +
 *     "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 203ms\n\n",
 * );
 * ```
 */
export function formatStatistics(s: StatisticsInfo): string {
  let counts = `${s.transmitted} packets transmitted, ${s.received} received`;
  if (s.duplicates) counts += `, +${s.duplicates} duplicates`;
  if (s.corrupted) counts += `, +${s.corrupted} corrupted`;
  if (s.errors) counts += `, +${s.errors} errors`;
  if (s.transmitted) {
    counts += `, ${formatLoss(s.transmitted, s.received)}% packet loss, time ${s.timeMs}ms`;
  }
  const parts: string[] = [];
  const figures = s.received && s.timing ? rttFigures(s.rtt) : undefined;
  if (figures) {
    parts.push(
      `rtt min/avg/max/mdev = ${usToMs(figures.minUs)}/${usToMs(figures.avgUs)}/${
        usToMs(figures.maxUs)
      }/${usToMs(figures.mdevUs)} ms`,
    );
  }
  if (s.pipe > 1) parts.push(`pipe ${s.pipe}`);
  if (s.received && s.showIpg && s.transmitted > 1) {
    const ipg = Math.trunc((s.elapsedUs ?? s.timeMs * 1000) / (s.transmitted - 1));
    parts.push(`ipg/ewma ${usToMs(ipg)}/${usToMs(Math.trunc(s.rtt.ewma8 / 8))} ms`);
  }
  return `\n--- ${s.host} ping statistics ---\n${counts}\n${parts.join(", ")}\n`;
}

/** The counts of {@linkcode formatStatus}. */
export interface StatusInfo {
  /** Requests sent so far. */
  transmitted: number;
  /** Distinct replies so far. */
  received: number;
  /** The round trips so far. */
  rtt: RttAccumulator;
  /** Whether requests carry a send time. */
  timing: boolean;
}

/**
 * Formats the interim line iputils writes to stderr on `SIGQUIT`, e.g.
 * `\r3/3 packets, 0% loss, min/avg/ewma/max = 0.063/0.070/0.068/0.081 ms`.
 *
 * @param s The counts so far.
 * @returns The text, starting with a carriage return and ending with a newline.
 *
 * @example
 * ```ts
 * import { formatStatus, newRttAccumulator } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(
 *   formatStatus({ transmitted: 4, received: 3, rtt: newRttAccumulator(), timing: false }),
 *   "\r3/4 packets, 25% loss\n",
 * );
 * ```
 */
export function formatStatus(s: StatusInfo): string {
  const loss = s.transmitted ? Math.trunc(((s.transmitted - s.received) * 100) / s.transmitted) : 0;
  let line = `\r${s.received}/${s.transmitted} packets, ${loss}% loss`;
  if (s.received && s.timing && s.rtt.count) {
    const avg = Math.trunc(s.rtt.sumUs / s.rtt.count);
    line += `, min/avg/ewma/max = ${usToMs(s.rtt.minUs)}/${usToMs(avg)}/${
      usToMs(Math.trunc(s.rtt.ewma8 / 8))
    }/${usToMs(s.rtt.maxUs)} ms`;
  }
  return `${line}\n`;
}

/**
 * The exit code iputils ends with: 0 when a reply arrived, 1 when none did
 * or, with a deadline (`-w`) and a count (`-c`), when fewer than the count did.
 *
 * @param received Distinct replies.
 * @param count The `-c` count, if any.
 * @param deadline Whether `-w` was given.
 * @returns 0 or 1.
 *
 * @example
 * ```ts
 * import { exitCode } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(exitCode(3, 5, true), 1);
 * assertEquals(exitCode(3, 5, false), 0);
 * ```
 */
export function exitCode(received: number, count: number | undefined, deadline: boolean): number {
  return !received || (deadline && count !== undefined && received < count) ? 1 : 0;
}
