/**
 * A precise periodic ticker for the client's send schedule: ticks at
 * `t0 + k·interval` exactly (no drift), woken by a worker thread that sleeps
 * with `Atomics.wait`, because Deno's `setTimeout` is only millisecond
 * grained (see `_ticker_worker.ts`).
 *
 * @module
 */

/** A running ticker; stop it to end the worker. */
export interface Ticker extends Disposable {
  /** Stops ticking and ends the worker thread. Safe to call twice. */
  stop(): void;
}

/** A loaded ticker worker, ready to start a schedule. */
export interface IdleTicker extends Disposable {
  /**
   * Starts the schedule: calls `onTick(k, scheduled)` for k = 1, 2, … at
   * `t0 + k·interval`, where `scheduled` is on the `performance.now()` clock.
   * Tick 0 (at `t0`) is the caller's. A late tick is delivered late, never
   * skipped: skipping would be self-inflicted loss.
   *
   * @param t0 The schedule's origin, on the `performance.now()` clock.
   * @param interval Milliseconds between ticks.
   * @param onTick Called once per tick.
   * @param options `lead`: deliver each tick this many milliseconds early, so
   *   that the caller can spin to the exact time on its own thread (default 0).
   * @returns The running ticker.
   */
  start(
    t0: number,
    interval: number,
    onTick: (k: number, scheduled: number) => void,
    options?: { lead?: number },
  ): Ticker;
  /** Ends the worker thread. Safe to call twice. */
  stop(): void;
}

/**
 * Loads the ticker's worker thread and resolves once it runs, so that
 * starting the schedule costs nothing on the main thread.
 *
 * @returns The idle ticker.
 */
export async function loadTicker(): Promise<IdleTicker> {
  const control = new SharedArrayBuffer(4);
  const flag = new Int32Array(control);
  const worker = new Worker(new URL("./_ticker_worker.ts", import.meta.url), { type: "module" });
  let stopped = false;
  let onTick: ((k: number, scheduled: number) => void) | undefined;
  let t0 = 0, interval = 0;
  const ready = Promise.withResolvers<void>();
  worker.onmessage = (event: MessageEvent<number>) => {
    if (event.data === 0) ready.resolve();
    else if (!stopped) onTick?.(event.data, t0 + event.data * interval);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    ready.reject(new Error(`Cannot start the send timer: ${event.message}`));
  };
  function stop(): void {
    if (stopped) return;
    stopped = true;
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    worker.terminate();
  }
  try {
    await ready.promise;
  } catch (err) {
    stop();
    throw err;
  }
  return {
    start(origin, every, callback, options = {}) {
      t0 = origin;
      interval = every;
      onTick = callback;
      const lead = options.lead ?? 0;
      worker.postMessage({ start: performance.timeOrigin + t0 - lead, interval, control });
      return { stop, [Symbol.dispose]: stop };
    },
    stop,
    [Symbol.dispose]: stop,
  };
}
