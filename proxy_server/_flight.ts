/**
 * Collapsed forwarding: one upstream request in flight per cache key, whose
 * response head and body the concurrent misses for that key share as it
 * streams (Squid's `collapsed_forwarding`, nginx's `proxy_cache_lock`,
 * Varnish's waiting list).
 *
 * @module
 */
import type { ResponseHead } from "../lib/http/heads.ts";

/** What the waiters of a flight learn once the origin's head has come. */
export interface FlightHead {
  /** The origin's response head. */
  head: ResponseHead;
  /** The secondary key (from `Vary`) the response was stored under; "" without `Vary`. */
  varyKey: string;
  /** When the request was sent (ms since the epoch). */
  requestTime: number;
  /** When the response head arrived (ms since the epoch). */
  responseTime: number;
}

/**
 * One upstream request shared by concurrent misses. The leader publishes the
 * head (or `null` when the answer is not storable, which releases the
 * waiters to fetch on their own) and then each body piece; waiters replay
 * the pieces from the first one, so a waiter that joins late misses nothing.
 */
export class Flight {
  /** How many requests wait on this flight. */
  waiters = 0;
  // Most misses have no waiter: the promise, the cursor set and the wake list
  // are made only once one joins, so a lone miss leaves little garbage behind.
  #head: Promise<FlightHead | null> | undefined;
  #resolveHead: ((head: FlightHead | null) => void) | undefined;
  /** The published head; `undefined` until then. */
  #published: FlightHead | null | undefined;
  #pieces: Uint8Array[] = [];
  /** The index (from the first piece) of `#pieces[0]`. */
  #base = 0;
  /** The next index of each reader, once pieces are dropped behind them. */
  #cursors: Set<{ next: number }> | undefined;
  #keepAll = true;
  #state: "open" | "done" | "failed" = "open";
  #wake: Array<() => void> | undefined;

  /** Resolves with the shared head, or `null` when the waiters must fetch on their own. */
  get head(): Promise<FlightHead | null> {
    this.#head ??= this.#published !== undefined
      ? Promise.resolve(this.#published)
      : new Promise((resolve) => this.#resolveHead = resolve);
    return this.#head;
  }

  /**
   * Publishes the head (or releases the waiters with `null`); only the first call counts.
   *
   * @param head The shared head, or `null`.
   */
  publish(head: FlightHead | null): void {
    if (this.#published !== undefined) return;
    this.#published = head;
    this.#resolveHead?.(head);
  }

  /**
   * Appends one body piece for the waiters.
   *
   * @param piece The bytes (not copied; the caller must not reuse them).
   */
  push(piece: Uint8Array): void {
    this.#pieces.push(piece);
    if (!this.#keepAll) this.#trim();
    this.#notify();
  }

  /**
   * Stops keeping the body from its start (a body too large to store): no
   * reader may join any more, and pieces every reader has passed are dropped,
   * so memory stays bounded by the slowest reader's lag.
   */
  unshare(): void {
    this.#keepAll = false;
    this.#trim();
  }

  /** Whether a new reader may still join and read the body from its start. */
  get shared(): boolean {
    return this.#keepAll;
  }

  #trim(): void {
    let low = this.#base + this.#pieces.length;
    for (const c of this.#cursors ?? []) low = Math.min(low, c.next);
    if (low > this.#base) {
      this.#pieces.splice(0, low - this.#base);
      this.#base = low;
    }
  }

  /**
   * Ends the body: complete, or broken off (the waiters then fail too).
   *
   * @param complete Whether the whole body arrived.
   */
  end(complete: boolean): void {
    if (this.#state !== "open") return;
    this.#state = complete ? "done" : "failed";
    // A leader that ends before publishing (an exception) still releases its waiters.
    this.publish(null);
    this.#notify();
  }

  /**
   * Yields every body piece, from the first, as the leader receives them.
   *
   * @returns The pieces; throws when the upstream body broke off.
   */
  async *body(): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#base > 0) throw new Error("The shared upstream response is no longer kept whole");
    const cursor = { next: 0 };
    (this.#cursors ??= new Set()).add(cursor);
    try {
      for (;;) {
        while (cursor.next < this.#base + this.#pieces.length) {
          yield this.#pieces[cursor.next++ - this.#base]!;
        }
        if (this.#state === "done") return;
        if (this.#state === "failed") throw new Error("The shared upstream response broke off");
        await new Promise<void>((resolve) => (this.#wake ??= []).push(resolve));
      }
    } finally {
      this.#cursors?.delete(cursor);
    }
  }

  #notify(): void {
    const wake = this.#wake;
    if (wake === undefined) return;
    this.#wake = undefined;
    for (const w of wake) w();
  }
}
