/**
 * The one timeout idiom of the project: a {@linkcode Deadline} is a point in
 * time that several phases of one operation share (connect, TLS, head, body),
 * so a slow phase eats into the next one's budget instead of each phase
 * getting a fresh timer. {@linkcode delay} is the matching sleep.
 *
 * @example Racing a slow promise against a deadline
 * ```ts
 * import { Deadline } from "./deadline.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * using deadline = new Deadline(10);
 * const never = new Promise<string>(() => {});
 * const err = await deadline.race(never, () => new Error("too slow")).catch((e) => e);
 * assertEquals(err.message, "too slow");
 * ```
 *
 * @module
 */

/**
 * A deadline shared by the phases of one operation. Listeners run once when
 * it passes; {@linkcode Deadline.race} makes a promise lose to it. An
 * infinite deadline never fires and costs no timer. Dispose it (or call
 * {@linkcode Deadline.clear}) when the operation ends, so its timer does not
 * keep the process alive.
 *
 * @example
 * ```ts
 * import { Deadline } from "./deadline.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * using deadline = new Deadline(Infinity);
 * assertEquals(await deadline.race(Promise.resolve(1), () => new Error("late")), 1);
 * assertEquals(deadline.expired, false);
 * ```
 */
export class Deadline implements Disposable {
  #expired = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #listeners = new Set<() => void>();
  readonly #at: number;

  /**
   * Starts the deadline.
   *
   * @param ms Milliseconds from now; `Infinity` never expires.
   */
  constructor(ms: number) {
    this.#at = Date.now() + ms;
    if (Number.isFinite(ms)) {
      this.#timer = setTimeout(() => this.#fire(), Math.max(0, ms));
    }
  }

  /** Whether the deadline has passed. */
  get expired(): boolean {
    return this.#expired;
  }

  /** Milliseconds left (0 once expired, `Infinity` for a deadline that never expires). */
  get remaining(): number {
    if (this.#expired) return 0;
    return Math.max(0, this.#at - Date.now());
  }

  #fire(): void {
    this.#expired = true;
    this.#timer = undefined;
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const fn of listeners) fn();
  }

  /**
   * Runs `fn` when the deadline passes (at once when it already has).
   *
   * @param fn The listener.
   * @returns A function that removes the listener.
   */
  on(fn: () => void): () => void {
    if (this.#expired) {
      fn();
      return () => {};
    }
    if (this.#timer === undefined) return () => {};
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /**
   * Races a promise against the deadline. When the deadline wins, the
   * promise is left running: close the resource it waits on (with
   * {@linkcode Deadline.on}) so it settles.
   *
   * @param promise The work.
   * @param error Builds the error the race rejects with when time runs out.
   * @returns The promise's value, when it settles first.
   */
  race<T>(promise: Promise<T>, error: () => Error): Promise<T> {
    if (this.#timer === undefined && !this.#expired) return promise;
    return new Promise<T>((resolve, reject) => {
      const off = this.on(() => reject(error()));
      promise.then(resolve, reject).finally(off);
    });
  }

  /** Stops the timer; listeners that have not run never will. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  /** Clears the deadline (for `using`). */
  [Symbol.dispose](): void {
    this.clear();
  }
}

/** Options of {@linkcode delay}. */
export interface DelayOptions {
  /**
   * Ends the wait early, rejecting with the signal's reason.
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Waits for a number of milliseconds.
 *
 * @param ms How long.
 * @param options A signal that cuts the wait short.
 * @returns Resolves after `ms`.
 *
 * @example
 * ```ts
 * import { delay } from "./deadline.ts";
 * import { assert } from "./testing/assert.ts";
 * const start = Date.now();
 * await delay(20);
 * assert(Date.now() - start >= 19);
 * ```
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}
