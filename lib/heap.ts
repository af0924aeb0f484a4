/**
 * A heap watch for long-running servers: a full collection once the
 * JavaScript heap has grown by a step, tighter than V8's own bound. V8 lets
 * the old generation grow by at least 8 MB past what survived the last full
 * collection (its minimum growing step, whatever `--heap-growing-percent`
 * says), and under load that growth is mostly garbage: the objects of
 * requests in flight at each scavenge, promoted when they outlive it, or a
 * cache's evicted entries. The watch needs V8's `gc()`, which `--expose-gc`
 * provides (`deno task webserver` and `deno task proxy` pass it); without it
 * the watch does nothing.
 *
 * @example Watching with the defaults, then stopping
 * ```ts
 * import { boundHeap } from "./heap.ts";
 * const stop = boundHeap();
 * stop();
 * ```
 *
 * @module
 */

/** V8's `gc()`, present when the process runs with `--expose-gc`. */
type ExposedGc = (options: { type: "major"; execution: "async" }) => Promise<void>;

/** How closely {@linkcode boundHeap} watches the heap. */
export interface HeapWatchOptions {
  /** Heap growth (bytes of `heapUsed`) after which the watch collects. Default 3 MiB. */
  step?: number;
  /** How often the watch looks at the heap (ms); a look costs about 9 µs. Default 50. */
  checkMs?: number;
  /**
   * The shortest time between two of its collections (ms). A collection is
   * atomic (10–17 ms with a 5 MB live heap), so where the heap grows faster
   * V8's own incremental collections cost less. Default 500.
   */
  minIntervalMs?: number;
  /**
   * A counter of the work that leaves garbage in the old generation (a
   * cache's writes, say): when given, the watch collects only if it moved
   * since the watch's last collection, so a load that allocates only
   * short-lived objects (served from a cache) never pays for a collection
   * of the watch's own.
   */
  activity?: () => number;
}

/**
 * Bounds this event loop's JavaScript heap: a full collection, in a task of
 * its own, whenever `heapUsed` has grown by `step` since the last one (V8's
 * own collections move the floor down). An idle process's watch does not
 * keep it alive.
 *
 * @param options The step and the timings.
 * @returns Stops the watch.
 *
 * @example Collecting after each 1 MiB of growth
 * ```ts
 * import { boundHeap } from "./heap.ts";
 * const stop = boundHeap({ step: 1 << 20, minIntervalMs: 100 });
 * stop();
 * ```
 */
export function boundHeap(options: HeapWatchOptions = {}): () => void {
  const gc = (globalThis as { gc?: ExposedGc }).gc;
  if (typeof gc !== "function") return () => {};
  const step = options.step ?? 3 * 1024 * 1024;
  const minInterval = options.minIntervalMs ?? 500;
  const activity = options.activity;
  let seen = activity?.();
  let floor = Deno.memoryUsage().heapUsed;
  let collecting = false;
  let last = -Infinity;
  const id = setInterval(async () => {
    if (collecting || performance.now() - last < minInterval) return;
    const used = Deno.memoryUsage().heapUsed;
    // V8 collected on its own meanwhile.
    if (used < floor) floor = used;
    if (used < floor + step || (activity !== undefined && activity() === seen)) return;
    collecting = true;
    seen = activity?.();
    try {
      // In a task of its own, with no JavaScript frame on the stack.
      await gc({ type: "major", execution: "async" });
    } finally {
      last = performance.now();
      floor = Deno.memoryUsage().heapUsed;
      collecting = false;
    }
  }, options.checkMs ?? 50);
  Deno.unrefTimer(id);
  return () => clearInterval(id);
}
