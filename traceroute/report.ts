/**
 * mtr's report mode (`--report -c N`): the trace repeated N times with one
 * probe per hop, summarised per hop as `Loss%  Snt  Last  Avg  Best  Wrst
 * StDev` in mtr 0.95's layout (StDev is the sample standard deviation).
 *
 * @module
 */
import { ReverseCache } from "../lib/resolve.ts";
import { RttStats } from "../lib/stats.ts";
import { trace, type TraceOptions, type TraceTarget } from "./trace.ts";

/** Options of {@linkcode report}. */
export interface ReportOptions extends Omit<TraceOptions, "queries"> {
  /** How many times the path is probed (`-c`). @default {10} */
  cycles?: number;
  /**
   * Pause between cycles in milliseconds (`--interval`, in seconds on the
   * command line). Routers limit the ICMP errors they send per second
   * (Linux: `net.ipv4.icmp_msgs_per_sec`, 1000 with a burst of 50), so
   * cycles back to back would lose answers that the path did not lose.
   * @default {100}
   */
  intervalMs?: number;
}

/** One hop of a report. */
export interface ReportRow {
  /** The hop number. */
  ttl: number;
  /** The addresses that answered, in the order first seen. */
  hosts: string[];
  /** Their names, where known (same order; `undefined` without a name). */
  names: (string | undefined)[];
  /** Probes sent to this hop. */
  sent: number;
  /** Probes answered. */
  received: number;
  /** Lost probes in percent of those sent. */
  lossPercent: number;
  /** The last round trip in ms (`NaN` without answers). */
  last: number;
  /** Mean round trip in ms. */
  avg: number;
  /** Shortest round trip in ms. */
  best: number;
  /** Longest round trip in ms. */
  worst: number;
  /** Sample standard deviation in ms (0 below two answers, as mtr shows). */
  stdev: number;
  /** With `mtu`: the smallest probe size that reached this hop. */
  mtu?: number;
}

/** A finished report. */
export interface Report {
  /** The target. */
  target: TraceTarget;
  /** The number of cycles run. */
  cycles: number;
  /** When the report started. */
  start: Date;
  /** One row per hop, up to the destination. */
  rows: ReportRow[];
}

/**
 * Probes the path `cycles` times and summarises each hop, as `mtr -r`.
 *
 * @param host The host.
 * @param options Trace options and the number of cycles.
 * @returns The report.
 *
 * @example
 * ```ts
 * import { report } from "./report.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const r = await report("127.0.0.1", { cycles: 2, resolveNames: false });
 * assertEquals(r.rows.length, 1);
 * assertEquals(r.rows[0]!.sent, 2);
 * ```
 */
export async function report(host: string, options: ReportOptions = {}): Promise<Report> {
  const cycles = options.cycles ?? 10;
  if (!Number.isInteger(cycles) || cycles < 1) {
    throw new RangeError(`Invalid report cycles ${cycles}: must be a positive integer`);
  }
  const names = options.names ?? new ReverseCache();
  const start = new Date();
  const path = new PathStats(host, { ...options, names });
  const intervalMs = options.intervalMs ?? 100;
  for (let c = 0; c < cycles; c++) {
    if (c > 0 && intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
    await path.cycle();
  }
  const resolve = options.resolveNames ?? true;
  return { target: path.target!, cycles, start, rows: await path.reportRows(resolve) };
}

/** One hop's counters in {@linkcode PathStats}. */
export interface HopStats {
  /** The addresses that answered, in the order first seen. */
  hosts: string[];
  /** Probes sent. */
  sent: number;
  /** The round trips. */
  stats: RttStats;
  /** The last round trip in ms (`NaN` before the first answer). */
  last: number;
  /** Per probe, newest last: `.` answered, `?` lost (the last 60). */
  history: string;
  /** The difference between the last two round trips in ms. */
  jitterLast: number;
  /** The largest such difference in ms. */
  jitterMax: number;
  /** With `mtu`: the smallest probe size that reached the hop. */
  mtu?: number;
}

const HISTORY = 60;

/**
 * Per-hop counters over cycles of one probe per hop: what the report and
 * the live view keep.
 *
 * @example
 * ```ts
 * import { PathStats } from "./report.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const path = new PathStats("127.0.0.1", { resolveNames: false });
 * await path.cycle();
 * assertEquals(path.rows.get(1)?.sent, 1);
 * ```
 */
export class PathStats {
  /** The counters by hop number. */
  readonly rows: Map<number, HopStats> = new Map();
  /** The destination's hop, once it answered (`Infinity` before). */
  lastTtl: number = Infinity;
  /** The target, known after the first cycle started. */
  target: TraceTarget | undefined;
  #host: string;
  #o: Omit<TraceOptions, "queries">;
  #names: ReverseCache;

  /**
   * Prepares the counters; nothing is sent before {@linkcode PathStats.cycle}.
   *
   * @param host The host.
   * @param options The trace options (one probe per hop is implied).
   */
  constructor(host: string, options: Omit<TraceOptions, "queries"> = {}) {
    this.#host = host;
    this.#o = options;
    this.#names = options.names ?? new ReverseCache();
  }

  /**
   * Probes the path once, one probe per hop, counting each hop as it completes.
   *
   * @param onHop Called after each hop is counted; returning `true` stops the cycle.
   * @returns Once the cycle ended.
   */
  async cycle(onHop?: (ttl: number) => boolean | void): Promise<void> {
    // Once the destination's hop is known, probe one hop beyond it only:
    // that probe answers fast when the destination's own probe is lost, so
    // the NEAR rule ends the wait for it early.
    const maxHops = Math.min(this.#o.maxHops ?? 30, this.lastTtl + 1);
    const t = trace(this.#host, {
      ...this.#o,
      maxHops,
      queries: 1,
      names: this.#names,
      resolveNames: false,
    });
    this.target ??= await t.target();
    let finalTtl: number | undefined;
    for await (const hop of t) {
      let row = this.rows.get(hop.ttl);
      if (!row) {
        this.rows.set(
          hop.ttl,
          row = {
            hosts: [],
            sent: 0,
            stats: new RttStats(),
            last: NaN,
            history: "",
            jitterLast: 0,
            jitterMax: 0,
          },
        );
      }
      if (hop.mtu !== undefined) row.mtu = Math.min(row.mtu ?? Infinity, hop.mtu);
      for (const p of hop.probes) {
        row.sent++;
        if (p.address === undefined || p.rttMs === undefined) {
          row.history = (row.history + "?").slice(-HISTORY);
          continue;
        }
        if (!row.hosts.includes(p.address)) row.hosts.push(p.address);
        row.stats.add(p.rttMs);
        if (Number.isFinite(row.last)) {
          row.jitterLast = Math.abs(p.rttMs - row.last);
          row.jitterMax = Math.max(row.jitterMax, row.jitterLast);
        }
        row.last = p.rttMs;
        row.history = (row.history + ".").slice(-HISTORY);
        if (p.final) finalTtl = hop.ttl;
      }
      if (onHop?.(hop.ttl) === true) break;
    }
    if (finalTtl !== undefined) this.lastTtl = Math.min(this.lastTtl, finalTtl);
  }

  /**
   * The report's rows: the hops up to the destination's.
   *
   * @param resolveNames Look up the hosts' names. @default {false}
   * @returns The rows.
   */
  async reportRows(resolveNames = false): Promise<ReportRow[]> {
    const rows: ReportRow[] = [];
    for (const [ttl, row] of [...this.rows].sort((a, b) => a[0] - b[0])) {
      if (ttl > this.lastTtl) break;
      const received = row.stats.count;
      const hostNames = resolveNames
        ? await Promise.all(row.hosts.map((h) => this.#names.get(h)))
        : row.hosts.map(() => undefined);
      rows.push({
        ttl,
        hosts: row.hosts,
        names: hostNames,
        sent: row.sent,
        received,
        lossPercent: row.sent === 0 ? 0 : (row.sent - received) * 100 / row.sent,
        last: row.last,
        avg: row.stats.avg,
        best: row.stats.min,
        worst: row.stats.max,
        stdev: received < 2 ? 0 : row.stats.stddev,
        ...(row.mtu === undefined ? {} : { mtu: row.mtu }),
      });
    }
    return rows;
  }
}

function isoLocal(d: Date): string {
  const off = -d.getTimezoneOffset();
  const local = new Date(d.getTime() + off * 60_000).toISOString().slice(0, 19);
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}${
    String(abs % 60).padStart(2, "0")
  }`;
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(1) : "0.0";
}

/**
 * Formats a report in mtr 0.95's `--report` layout; a hop where several
 * addresses answered lists the others on lines of their own, as mtr does.
 *
 * @param r The report.
 * @param localHost The name of this host for the `HOST:` column. @default {Deno.hostname()}
 * @returns The lines, without newlines.
 *
 * @example
 * ```ts
 * import { formatReport } from "./report.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const lines = formatReport({
 *   target: { host: "t", address: "10.0.0.2", family: 4, method: "udp", maxHops: 30, packetLength: 60 },
 *   cycles: 1, start: new Date(0),
 *   rows: [{ ttl: 1, hosts: ["10.0.0.2"], names: [undefined], sent: 1, received: 1, lossPercent: 0,
 *     last: 0.1, avg: 0.1, best: 0.1, worst: 0.1, stdev: 0 }],
 * }, "vm");
 * assertEquals(lines[2], "  1.|-- 10.0.0.2                   0.0%     1    0.1   0.1   0.1   0.1   0.0");
 * ```
 */
export function formatReport(r: Report, localHost: string = Deno.hostname()): string[] {
  // An MTU column (after mtr's) only when the report measured it (--mtu).
  const withMtu = r.rows.some((row) => row.mtu !== undefined);
  const lines = [
    `Start: ${isoLocal(r.start)}`,
    `HOST: ${localHost}`.padEnd(33) + " Loss%   Snt   Last   Avg  Best  Wrst StDev" +
    (withMtu ? "   MTU" : ""),
  ];
  for (const row of r.rows) {
    const host = row.hosts.length === 0 ? "???" : row.names[0] ?? row.hosts[0]!;
    lines.push(
      `${String(row.ttl).padStart(3)}.|-- ${host}`.padEnd(33) +
        // mtr fits "%4.1f%%" into five columns, so 100% shows as "100.0".
        ` ${`${row.lossPercent.toFixed(1)}%`.padStart(5).slice(0, 5)}` +
        String(row.sent).padStart(6) +
        ms(row.last).padStart(7) +
        ms(row.avg).padStart(6) +
        ms(row.best).padStart(6) +
        ms(row.worst).padStart(6) +
        ms(row.stdev).padStart(6) +
        (withMtu ? String(row.mtu ?? "?").padStart(6) : ""),
    );
    // mtr lists the other addresses that answered at the hop below it.
    row.hosts.slice(1).forEach((h, i) => lines.push(`    |  \`|-- ${row.names[i + 1] ?? h}`));
  }
  return lines;
}

/**
 * The `--report --json` object.
 *
 * @param r The report.
 * @returns `{"type":"report", host, address, cycles, hops: [...]}`.
 *
 * @example
 * ```ts
 * import { reportJson } from "./report.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const j = reportJson({
 *   target: { host: "t", address: "::1", family: 6, method: "icmp", maxHops: 30, packetLength: 80 },
 *   cycles: 1, start: new Date(0), rows: [],
 * });
 * assert(j.type === "report");
 * assertEquals(j.hops.length, 0);
 * ```
 */
export function reportJson(r: Report): {
  type: "report";
  host: string;
  address: string;
  method: string;
  cycles: number;
  start: string;
  hops: {
    ttl: number;
    host: string | null;
    name: string | null;
    hosts: string[];
    loss: number;
    sent: number;
    received: number;
    last: number | null;
    avg: number | null;
    best: number | null;
    worst: number | null;
    stdev: number | null;
    mtu?: number;
  }[];
} {
  const num = (v: number) => Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null;
  return {
    type: "report",
    host: r.target.host,
    address: r.target.address,
    method: r.target.method,
    cycles: r.cycles,
    start: r.start.toISOString(),
    hops: r.rows.map((row) => ({
      ttl: row.ttl,
      host: row.hosts[0] ?? null,
      name: row.names[0] ?? null,
      hosts: row.hosts,
      loss: Math.round(row.lossPercent * 10) / 10,
      sent: row.sent,
      received: row.received,
      last: num(row.last),
      avg: num(row.avg),
      best: num(row.best),
      worst: num(row.worst),
      stdev: row.received === 0 ? null : num(row.stdev),
      ...(row.mtu === undefined ? {} : { mtu: row.mtu }),
    })),
  };
}
