/**
 * Worker side of the precise ticker (see `_ticker.ts`): it sleeps with
 * `Atomics.wait` and spins the last stretch, then posts the tick number.
 * Sleeping here instead of in `setTimeout` matters: Deno's timers have a
 * millisecond granularity and a `setTimeout(0)` took about 2 ms on the
 * development machine, while this wakes within tens of microseconds.
 *
 * @module
 */

/** The last stretch before a tick is spun, not slept: futex wake-ups are late by about this much. */
const SPIN_MS = 0.1;

interface Start {
  /** First tick's time, as `performance.timeOrigin + performance.now()` of the main thread. */
  start: number;
  /** Milliseconds between ticks. */
  interval: number;
  /** Int32 flag: non-zero means stop. */
  control: SharedArrayBuffer;
}

// The worker global scope, typed by hand: the project type-checks with the
// window lib, and a `deno.worker` lib reference would clash with it.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Start>) => void) | null;
  postMessage(message: number): void;
  close(): void;
};

scope.onmessage = (event: MessageEvent<Start>) => {
  const { start, interval, control } = event.data;
  const flag = new Int32Array(control);
  // Each thread has its own timeOrigin; both are on the same wall clock.
  const origin = start - performance.timeOrigin;
  for (let k = 1;; k++) {
    // Absolute schedule, t0 + k·interval, so the send times never drift.
    const due = origin + k * interval;
    for (;;) {
      if (Atomics.load(flag, 0) !== 0) {
        scope.close();
        return;
      }
      const remaining = due - performance.now();
      if (remaining <= 0) break;
      if (remaining > SPIN_MS) Atomics.wait(flag, 0, 0, remaining - SPIN_MS);
    }
    scope.postMessage(k);
  }
};

// Tell the main thread that the worker is loaded, so that the schedule starts
// only once ticks can be delivered (loading takes tens of milliseconds).
scope.postMessage(0);
