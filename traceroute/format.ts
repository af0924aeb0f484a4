/**
 * Butskoy traceroute 2.1's text output, and the `--json` lines.
 *
 * @module
 */
import type { Hop, TraceSummary, TraceTarget } from "./trace.ts";

/**
 * The header line, as Butskoy prints it (to stdout, before the first hop).
 *
 * @param target The resolved target.
 * @returns `traceroute to NAME (IP), 30 hops max, 60 byte packets`.
 *
 * @example
 * ```ts
 * import { formatHeader } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const line = formatHeader({ host: "h", address: "10.0.0.1", family: 4, method: "udp", maxHops: 30, packetLength: 60 });
 * assertEquals(line, "traceroute to h (10.0.0.1), 30 hops max, 60 byte packets");
 * ```
 */
export function formatHeader(target: TraceTarget): string {
  return `traceroute to ${target.host} (${target.address}), ${target.maxHops} hops max, ${target.packetLength} byte packets`;
}

/** Options of {@linkcode formatHop}. */
export interface FormatOptions {
  /** Print addresses only (`-n`). @default {false} */
  numeric?: boolean;
}

/**
 * One hop line, as Butskoy prints it: `%2d ` then, per probe, ` *` or the
 * responder (only when it differs from the previous probe's) and
 * `  X.XXX ms` with any annotation.
 *
 * @param hop The hop.
 * @param options `numeric` for `-n`.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatHop } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const line = formatHop({ ttl: 3, probes: [
 *   { address: "10.0.1.2", rttMs: 0.011, annotation: "!X", final: true },
 *   { annotation: "", final: false },
 * ] }, { numeric: true });
 * assertEquals(line, " 3  10.0.1.2  0.011 ms !X *");
 * ```
 */
export function formatHop(hop: Hop, options: FormatOptions = {}): string {
  let line = `${String(hop.ttl).padStart(2)} `;
  let previous: string | undefined;
  for (const p of hop.probes) {
    if (p.address === undefined) {
      line += " *";
      // Butskoy prints an unanswered probe's `F=MTU` note too.
      if (p.annotation !== "") line += ` ${p.annotation}`;
    } else {
      // As Butskoy: the address is printed when it differs from the last
      // one printed in this hop (a `*` between two answers does not count).
      if (previous !== p.address) {
        line += options.numeric ? ` ${p.address}` : ` ${p.name ?? p.address} (${p.address})`;
      }
      line += `  ${(p.rttMs ?? 0).toFixed(3)} ms`;
      if (p.annotation !== "") line += ` ${p.annotation}`;
      previous = p.address;
    }
  }
  return line;
}

/**
 * The `--json` object of one hop.
 *
 * @param hop The hop.
 * @returns `{"type":"hop","ttl":…,"probes":[{"address","name","rtt","annotation"}]}`.
 *
 * @example
 * ```ts
 * import { hopJson } from "./format.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const j = hopJson({ ttl: 1, probes: [{ annotation: "", final: false }] });
 * assertEquals(JSON.stringify(j.probes[0]), '{"address":null,"name":null,"rtt":null,"annotation":null}');
 * ```
 */
export function hopJson(hop: Hop): {
  type: "hop";
  ttl: number;
  mtu?: number;
  probes: {
    address: string | null;
    name: string | null;
    rtt: number | null;
    annotation: string | null;
  }[];
} {
  return {
    type: "hop",
    ttl: hop.ttl,
    ...(hop.mtu === undefined ? {} : { mtu: hop.mtu }),
    probes: hop.probes.map((p) => ({
      address: p.address ?? null,
      name: p.name ?? null,
      rtt: p.rttMs === undefined ? null : Math.round(p.rttMs * 1000) / 1000,
      annotation: p.annotation === "" ? null : p.annotation,
    })),
  };
}

/**
 * The `--json` summary object, printed after the hops.
 *
 * @param target The target.
 * @param summary The trace's summary.
 * @returns The object.
 *
 * @example
 * ```ts
 * import { summaryJson } from "./format.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const j = summaryJson(
 *   { host: "h", address: "::1", family: 6, method: "icmp", maxHops: 30, packetLength: 80 },
 *   { reached: true, hops: 1, probesSent: 3 },
 * );
 * assert(j.type === "summary");
 * assertEquals(j.flow, null);
 * ```
 */
export function summaryJson(target: TraceTarget, summary: TraceSummary): {
  type: "summary";
  host: string;
  address: string;
  family: number;
  method: string;
  maxHops: number;
  packetLength: number;
  reached: boolean;
  hops: number;
  probesSent: number;
  flow: TraceSummary["flow"] | null;
} {
  return {
    type: "summary",
    host: target.host,
    address: target.address,
    family: target.family,
    method: target.method,
    maxHops: target.maxHops,
    packetLength: target.packetLength,
    reached: summary.reached,
    hops: summary.hops,
    probesSent: summary.probesSent,
    flow: summary.flow ?? null,
  };
}
