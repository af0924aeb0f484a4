/**
 * The proxy's counters, rendered in the Prometheus text exposition format
 * (version 0.0.4) for `/metrics` on the admin port.
 *
 * @module
 */

import type { SharedStats } from "./shared_cache.ts";

/** Upper bounds (seconds) of the request latency histogram's buckets. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The store's sizes, read when the metrics are rendered. */
export interface TierSizes {
  memoryObjects: number;
  memoryBytes: number;
  diskObjects: number;
  diskBytes: number;
}

/** The request counters of one event loop, as plain data (posted between loops). */
export interface LoopCounts {
  /** Requests by result. */
  requests: Array<[string, number]>;
  /** Bytes written to clients. */
  sentBytes: number;
  /** Latency histogram counts, one per bucket. */
  buckets: number[];
  /** Sum of latencies, seconds. */
  latencySum: number;
  /** Requests timed. */
  latencyCount: number;
}

/** Counters of one proxy; the proxy updates them, `/metrics` renders them. */
export class Metrics {
  /** Requests by result (the access log's Squid code, e.g. `TCP_MEM_HIT`). */
  #requests = new Map<string, number>();
  /** Bytes written to clients, heads included. */
  sentBytes = 0;
  /** Body bytes received from upstream. */
  upstreamBytes = 0;
  /** Upstream failures without a response, by kind (`timeout`, `error`). */
  #upstreamErrors = new Map<string, number>([["timeout", 0], ["error", 0]]);
  /** Requests that waited on another request's upstream fetch. */
  collapsedWaiters = 0;
  /** The shared tier's counters, when there is one. */
  shared: (() => SharedStats) | undefined;
  #buckets = new Array<number>(BUCKETS.length).fill(0);
  #latencySum = 0;
  #latencyCount = 0;

  /**
   * Counts one finished request.
   *
   * @param result The Squid result code.
   * @param options The bytes sent and the duration in milliseconds.
   */
  request(result: string, options: { sent: number; ms: number }): void {
    this.#requests.set(result, (this.#requests.get(result) ?? 0) + 1);
    this.sentBytes += options.sent;
    const s = options.ms / 1000;
    this.#latencySum += s;
    this.#latencyCount++;
    for (let i = 0; i < BUCKETS.length; i++) if (s <= BUCKETS[i]!) this.#buckets[i]!++;
  }

  /**
   * The request counters, to post to the loop that renders them.
   *
   * @returns A copy.
   */
  counts(): LoopCounts {
    return {
      requests: [...this.#requests],
      sentBytes: this.sentBytes,
      buckets: [...this.#buckets],
      latencySum: this.#latencySum,
      latencyCount: this.#latencyCount,
    };
  }

  /**
   * Counts one upstream failure.
   *
   * @param kind `timeout` or `error`.
   */
  upstreamError(kind: "timeout" | "error"): void {
    this.#upstreamErrors.set(kind, (this.#upstreamErrors.get(kind) ?? 0) + 1);
  }

  /**
   * Renders every metric.
   *
   * @param tiers The store's current sizes.
   * @param loops The request counters of the other event loops (`--workers`),
   *   added to this one's; each loop's total is shown too.
   * @returns The Prometheus text.
   */
  render(tiers: TierSizes, loops: readonly LoopCounts[] = []): string {
    const all = [this.counts(), ...loops];
    const requests = new Map<string, number>();
    const buckets = new Array<number>(BUCKETS.length).fill(0);
    let sentBytes = 0;
    let latencySum = 0;
    let latencyCount = 0;
    for (const c of all) {
      for (const [k, n] of c.requests) requests.set(k, (requests.get(k) ?? 0) + n);
      for (let i = 0; i < BUCKETS.length; i++) buckets[i]! += c.buckets[i] ?? 0;
      sentBytes += c.sentBytes;
      latencySum += c.latencySum;
      latencyCount += c.latencyCount;
    }
    const out: string[] = [];
    const family = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family("netkit_proxy_requests_total", "counter", "Requests by cache result (Squid code).");
    for (const [result, n] of [...requests].sort()) {
      out.push(`netkit_proxy_requests_total{result="${result}"} ${n}`);
    }
    if (loops.length > 0) {
      family(
        "netkit_proxy_loop_requests_total",
        "counter",
        "Requests answered by each event loop (0: the main loop; others: --workers).",
      );
      all.forEach((c, i) => {
        const n = c.requests.reduce((sum, [, k]) => sum + k, 0);
        out.push(`netkit_proxy_loop_requests_total{loop="${i}"} ${n}`);
      });
    }
    family("netkit_proxy_sent_bytes_total", "counter", "Bytes sent to clients, heads included.");
    out.push(`netkit_proxy_sent_bytes_total ${sentBytes}`);
    family(
      "netkit_proxy_upstream_received_bytes_total",
      "counter",
      "Body bytes received from upstream.",
    );
    out.push(`netkit_proxy_upstream_received_bytes_total ${this.upstreamBytes}`);
    family(
      "netkit_proxy_upstream_errors_total",
      "counter",
      "Upstream requests that got no response, by kind.",
    );
    for (const [kind, n] of this.#upstreamErrors) {
      out.push(`netkit_proxy_upstream_errors_total{kind="${kind}"} ${n}`);
    }
    family(
      "netkit_proxy_collapsed_waiters_total",
      "counter",
      "Requests that waited on another request's upstream fetch (collapsed forwarding).",
    );
    out.push(`netkit_proxy_collapsed_waiters_total ${this.collapsedWaiters}`);
    if (this.shared !== undefined) {
      const s = this.shared();
      family(
        "netkit_proxy_shared_lookups_total",
        "counter",
        "Lookups in the shared tier (Redis) after a local miss, by result.",
      );
      out.push(`netkit_proxy_shared_lookups_total{result="hit"} ${s.hits}`);
      out.push(`netkit_proxy_shared_lookups_total{result="miss"} ${s.misses}`);
      out.push(`netkit_proxy_shared_lookups_total{result="corrupt"} ${s.corrupt}`);
      family(
        "netkit_proxy_shared_errors_total",
        "counter",
        "Shared-tier operations that failed or passed their deadline.",
      );
      out.push(`netkit_proxy_shared_errors_total ${s.errors}`);
      family(
        "netkit_proxy_shared_lease_waits_total",
        "counter",
        "Misses that waited on another node's lease (collapsed across nodes).",
      );
      out.push(`netkit_proxy_shared_lease_waits_total ${s.leaseWaits}`);
    }
    family("netkit_proxy_cache_objects", "gauge", "Stored objects per tier.");
    out.push(`netkit_proxy_cache_objects{tier="memory"} ${tiers.memoryObjects}`);
    out.push(`netkit_proxy_cache_objects{tier="disk"} ${tiers.diskObjects}`);
    family("netkit_proxy_cache_bytes", "gauge", "Bytes stored per tier.");
    out.push(`netkit_proxy_cache_bytes{tier="memory"} ${tiers.memoryBytes}`);
    out.push(`netkit_proxy_cache_bytes{tier="disk"} ${tiers.diskBytes}`);
    family(
      "netkit_proxy_request_duration_seconds",
      "histogram",
      "Time from the request head to the end of the response.",
    );
    for (let i = 0; i < BUCKETS.length; i++) {
      out.push(
        `netkit_proxy_request_duration_seconds_bucket{le="${BUCKETS[i]}"} ${buckets[i]}`,
      );
    }
    out.push(`netkit_proxy_request_duration_seconds_bucket{le="+Inf"} ${latencyCount}`);
    out.push(`netkit_proxy_request_duration_seconds_sum ${latencySum}`);
    out.push(`netkit_proxy_request_duration_seconds_count ${latencyCount}`);
    return out.join("\n") + "\n";
  }
}
