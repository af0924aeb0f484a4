/**
 * Multi-flow discovery (`--flows N`), after Paris and Dublin traceroute: N
 * Paris traces run side by side, each with its own flow identifier (the
 * source port for UDP and TCP; the echo identifier, and so the checksum,
 * for ICMP) kept constant for all of its probes. A per-flow load balancer
 * sends each flow one way, so together they show the branches of the path
 * and where they join, as a graph of (hop, address) nodes and edges labelled
 * with the flows that took them.
 *
 * @module
 */
import type { Flow } from "./probe.ts";
import { trace, type TraceOptions, type TraceTarget } from "./trace.ts";

/** Options of {@linkcode discoverFlows}. */
export interface FlowsOptions extends Omit<TraceOptions, "paris" | "openMethod"> {
  /**
   * The number of flows (1 to 64); they share `simultaneous` (at least one
   * probe in flight each). With `sourcePort`, flow `i` (from 0) uses
   * `sourcePort + i`; otherwise each flow's socket gets its own identifier.
   * @default {8}
   */
  flows?: number;
}

/** One address seen at a hop, and the flows (numbered from 1) that reached it. */
export interface FlowNode {
  /** `"TTL:ADDRESS"`, or `"TTL:*"` for flows that got no answer at the hop. */
  id: string;
  /** The hop number. */
  ttl: number;
  /** The address; `null` for no answer. */
  address: string | null;
  /** Its reverse name, when names are looked up and it has one. */
  name: string | null;
  /** The flows that reached it. */
  flows: number[];
}

/** Flows that went from one node to the next hop's. */
export interface FlowEdge {
  /** The node at hop `ttl`. */
  from: string;
  /** The node at hop `ttl + 1`. */
  to: string;
  /** The flows that took this edge. */
  flows: number[];
}

/** What {@linkcode discoverFlows} found. */
export interface FlowGraph {
  /** The target. */
  target: TraceTarget;
  /** Each flow's constant header fields, flow `i + 1` at index `i`. */
  flows: (Flow | null)[];
  /** The nodes, by hop then first seen. */
  nodes: FlowNode[];
  /** The edges, by hop then first seen. */
  edges: FlowEdge[];
  /** Whether every flow reached the destination. */
  reached: boolean;
}

/**
 * Traces a host with several Paris flows at once and merges their paths
 * into a graph.
 *
 * @param host A host name or an IPv4/IPv6 address.
 * @param options The trace options and the number of flows.
 * @returns The graph.
 * @throws {RangeError} For a number of flows outside 1 to 64.
 *
 * @example
 * ```ts
 * import { discoverFlows } from "./flows.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const g = await discoverFlows("127.0.0.1", { flows: 2, queries: 1, resolveNames: false });
 * assertEquals(g.nodes.map((n) => [n.id, n.flows]), [["1:127.0.0.1", [1, 2]]]);
 * ```
 */
export async function discoverFlows(host: string, options: FlowsOptions = {}): Promise<FlowGraph> {
  const count = options.flows ?? 8;
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new RangeError(`Invalid number of flows ${count}: must be an integer from 1 to 64`);
  }
  const { flows: _, sourcePort, simultaneous, ...rest } = options;
  if (sourcePort !== undefined && sourcePort + count - 1 > 65535) {
    throw new RangeError(
      `Invalid source port ${sourcePort}: ${count} flows need ports up to 65535`,
    );
  }
  // The flows share the in-flight budget (-N) of one trace: N flows each
  // with 16 probes in flight would draw more ICMP errors at once than hosts
  // send (Linux: net.ipv4.icmp_msgs_per_sec, a burst of 50).
  const share = Math.max(1, Math.floor((simultaneous ?? 16) / count));
  const traces = Array.from({ length: count }, (_, i) =>
    trace(host, {
      ...rest,
      simultaneous: share,
      paris: true,
      ...(sourcePort === undefined ? {} : { sourcePort: sourcePort + i }),
    }));
  try {
    const runs = await Promise.all(traces.map(async (t) => {
      const target = await t.target();
      const path: { ttl: number; address: string | null; name: string | null }[] = [];
      for await (const hop of t) {
        // Every probe of a flow takes the same branch: the first answer names the hop.
        const p = hop.probes.find((p) => p.address !== undefined);
        path.push({ ttl: hop.ttl, address: p?.address ?? null, name: p?.name ?? null });
      }
      return { target, path, summary: t.summary() };
    }));
    return merge(runs);
  } finally {
    await Promise.all(traces.map((t) => t.close()));
  }
}

function merge(
  runs: {
    target: TraceTarget;
    path: { ttl: number; address: string | null; name: string | null }[];
    summary: { reached: boolean; flow?: Flow };
  }[],
): FlowGraph {
  const nodes = new Map<string, FlowNode>();
  const edges = new Map<string, FlowEdge>();
  runs.forEach((run, i) => {
    const flow = i + 1;
    let previous: string | undefined;
    for (const step of run.path) {
      const id = `${step.ttl}:${step.address ?? "*"}`;
      let node = nodes.get(id);
      if (!node) {
        nodes.set(
          id,
          node = { id, ttl: step.ttl, address: step.address, name: step.name, flows: [] },
        );
      }
      node.flows.push(flow);
      if (previous !== undefined) {
        const key = `${previous}>${id}`;
        let edge = edges.get(key);
        if (!edge) edges.set(key, edge = { from: previous, to: id, flows: [] });
        edge.flows.push(flow);
      }
      previous = id;
    }
  });
  const byTtl = <T extends { ttl?: number; from?: string }>(list: T[], ttl: (x: T) => number) =>
    list.map((x, k) => ({ x, k })).sort((a, b) => ttl(a.x) - ttl(b.x) || a.k - b.k).map((e) => e.x);
  return {
    target: runs[0]!.target,
    flows: runs.map((r) => r.summary.flow ?? null),
    nodes: byTtl([...nodes.values()], (n) => n.ttl),
    edges: byTtl([...edges.values()], (e) => nodes.get(e.from)!.ttl),
    reached: runs.every((r) => r.summary.reached),
  };
}

/**
 * Writes flow numbers compactly, runs as ranges: `[1,2,3,5]` → `"1-3,5"`.
 *
 * @param flows Flow numbers, ascending.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { flowList } from "./flows.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(flowList([1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
 * ```
 */
export function flowList(flows: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < flows.length;) {
    let j = i;
    while (j + 1 < flows.length && flows[j + 1] === flows[j]! + 1) j++;
    parts.push(i === j ? `${flows[i]}` : `${flows[i]}-${flows[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/**
 * The text of a flow graph: a header, then one line per hop with each
 * address and the flows that reached it in brackets.
 *
 * @param g The graph.
 * @param options `numeric` prints addresses without names.
 * @returns The lines, without newlines.
 *
 * @example
 * ```ts
 * import { formatFlows } from "./flows.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const lines = formatFlows({
 *   target: { host: "t", address: "10.0.3.2", family: 4, method: "udp", maxHops: 30, packetLength: 60 },
 *   flows: [null, null], reached: true, edges: [],
 *   nodes: [
 *     { id: "1:10.0.1.2", ttl: 1, address: "10.0.1.2", name: null, flows: [1] },
 *     { id: "1:*", ttl: 1, address: null, name: null, flows: [2] },
 *   ],
 * }, { numeric: true });
 * assertEquals(lines[1], " 1  10.0.1.2 [1]  * [2]");
 * ```
 */
export function formatFlows(g: FlowGraph, options: { numeric?: boolean } = {}): string[] {
  const t = g.target;
  const lines = [
    `traceroute to ${t.host} (${t.address}), ${t.maxHops} hops max, ${t.packetLength} byte packets, ${g.flows.length} flows`,
  ];
  let line = "";
  let ttl = 0;
  for (const n of g.nodes) {
    if (n.ttl !== ttl) {
      if (line !== "") lines.push(line);
      ttl = n.ttl;
      line = `${String(ttl).padStart(2)}  `;
    }
    const who = n.address === null
      ? "*"
      : options.numeric || n.name === null
      ? n.address
      : `${n.name} (${n.address})`;
    // Two spaces between the addresses of a hop, as between Butskoy's probes.
    line += `${line.endsWith(" ") ? "" : "  "}${who} [${flowList(n.flows)}]`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * The `--flows --json` object: the target, each flow's header fields, and
 * the graph.
 *
 * @param g The graph.
 * @returns The object.
 *
 * @example
 * ```ts
 * import { flowsJson } from "./flows.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const j = flowsJson({
 *   target: { host: "t", address: "::1", family: 6, method: "icmp", maxHops: 30, packetLength: 80 },
 *   flows: [null], nodes: [], edges: [], reached: false,
 * });
 * assertEquals(j.flows, [{ id: 1, flow: null }]);
 * ```
 */
export function flowsJson(g: FlowGraph): {
  type: "flows";
  host: string;
  address: string;
  family: number;
  method: string;
  reached: boolean;
  flows: { id: number; flow: Flow | null }[];
  nodes: FlowNode[];
  edges: FlowEdge[];
} {
  return {
    type: "flows",
    host: g.target.host,
    address: g.target.address,
    family: g.target.family,
    method: g.target.method,
    reached: g.reached,
    flows: g.flows.map((flow, i) => ({ id: i + 1, flow })),
    nodes: g.nodes,
    edges: g.edges,
  };
}

/**
 * The graph in Graphviz's DOT language (`--dot`): one box per node, labelled
 * with the hop and address, and edges labelled with their flows.
 *
 * @param g The graph.
 * @returns The DOT text, ending with a newline.
 *
 * @example
 * ```ts
 * import { formatDot } from "./flows.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const dot = formatDot({
 *   target: { host: "t", address: "::1", family: 6, method: "icmp", maxHops: 30, packetLength: 80 },
 *   flows: [null], reached: true,
 *   nodes: [{ id: "1:::1", ttl: 1, address: "::1", name: null, flows: [1] }], edges: [],
 * });
 * assert(dot.startsWith("digraph traceroute {"));
 * ```
 */
export function formatDot(g: FlowGraph): string {
  const q = (s: string) => `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  const lines = [
    "digraph traceroute {",
    `  label=${
      q(`traceroute to ${g.target.host} (${g.target.address}), ${g.flows.length} flows`)
    };`,
    "  node [shape=box];",
  ];
  for (const n of g.nodes) {
    const who = n.address === null ? "*" : n.name === null ? n.address : `${n.name}\n${n.address}`;
    lines.push(`  ${q(n.id)} [label=${q(`${n.ttl}: ${who}`)}];`);
  }
  for (const e of g.edges) {
    lines.push(`  ${q(e.from)} -> ${q(e.to)} [label=${q(flowList(e.flows))}];`);
  }
  lines.push("}");
  return lines.join("\n") + "\n";
}
