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
 * Body bytes a flight keeps in memory, by default: for requests that may
 * still join (past it, no more may: a later miss makes its own request),
 * and behind its slowest reader (one that falls further behind is cut off,
 * and its client's answer breaks off).
 */
export const FLIGHT_KEEP = 8 << 20;

/** A request that joined a flight: its place in the body. */
interface Cursor {
  /** The index (from the first piece) of the next piece it reads. */
  next: number;
  /** Cut off: it fell more than the flight keeps behind. */
  dropped: boolean;
}

/** A request's share of a flight, from {@linkcode Flight.join}. */
export interface FlightReader {
  /** Yields every body piece, from the first, as the leader receives them. */
  body(): AsyncGenerator<Uint8Array, void, undefined>;
  /** Leaves without reading (or stops reading): its pieces need not be kept. */
  leave(): void;
}

/**
 * One upstream request shared by concurrent misses. The leader publishes the
 * head (or `null` when the answer is not storable, which releases the
 * waiters to fetch on their own) and then each body piece; waiters replay
 * the pieces from the first one, so a waiter that joins late misses nothing.
 *
 * Memory is bounded ({@linkcode FLIGHT_KEEP}): a flight whose body outgrows
 * it takes no new waiters, keeps only what its slowest reader has not read,
 * and cuts off a reader that falls further behind. The leader reads the
 * origin at its own client's pace and never waits for a waiter: a waiter
 * reading 1 KiB every few seconds of a large body otherwise held every byte
 * the leader had read since.
 *
 * @example A reader that falls behind is cut off; the others read on
 * ```ts
 * import { Flight } from "./_flight.ts";
 * import { assertEquals, assertMatch, assertRejects } from "../lib/testing/assert.ts";
 * const flight = new Flight(8);
 * const slow = flight.join();
 * const fast = flight.join();
 * const reading = (async () => {
 *   let n = 0;
 *   for await (const piece of fast.body()) n += piece.length;
 *   return n;
 * })();
 * for (let i = 0; i < 4; i++) {
 *   flight.push(new Uint8Array(4));
 *   await new Promise((r) => setTimeout(r, 0));
 * }
 * flight.end(true);
 * assertEquals(await reading, 16);
 * assertEquals(flight.shared, false); // 16 bytes outgrew the 8 kept: no one may join now.
 * const cut = await assertRejects(async () => {
 *   for await (const _ of slow.body()) {
 *     // It read nothing in time.
 *   }
 * });
 * assertMatch(cut.message, /fell more than 8 bytes behind/);
 * ```
 */
export class Flight {
  readonly #keep: number;
  /** Bytes in `#pieces`. */
  #kept = 0;
  // Most misses have no waiter: the promise, the cursor set and the wake list
  // are made only once one joins, so a lone miss leaves little garbage behind.
  #head: Promise<FlightHead | null> | undefined;
  #resolveHead: ((head: FlightHead | null) => void) | undefined;
  /** The published head; `undefined` until then. */
  #published: FlightHead | null | undefined;
  #pieces: Uint8Array[] = [];
  /** The index (from the first piece) of `#pieces[0]`. */
  #base = 0;
  /** The readers that joined. */
  #cursors: Set<Cursor> | undefined;
  #keepAll = true;
  #state: "open" | "done" | "failed" = "open";
  #wake: Array<() => void> | undefined;

  /** @param keep Body bytes kept at most ({@linkcode FLIGHT_KEEP}). */
  constructor(keep: number = FLIGHT_KEEP) {
    this.#keep = keep;
  }

  /**
   * Joins the flight, while it is {@linkcode shared}: the body's pieces are
   * kept for the new reader from the first one.
   *
   * @returns The reader.
   * @throws {Error} When the flight no longer keeps its body whole.
   */
  join(): FlightReader {
    if (!this.#keepAll) throw new Error("The shared upstream response is no longer kept whole");
    const cursor: Cursor = { next: 0, dropped: false };
    (this.#cursors ??= new Set()).add(cursor);
    return {
      body: () => this.#read(cursor),
      leave: () => this.#leave(cursor),
    };
  }

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
    this.#kept += piece.length;
    if (this.#kept > this.#keep) {
      this.#keepAll = false;
      this.#trim();
      // Still too much: cut off the readers furthest behind.
      while (this.#kept > this.#keep && this.#cursors !== undefined && this.#cursors.size > 0) {
        let low = Infinity;
        for (const c of this.#cursors) low = Math.min(low, c.next);
        for (const c of this.#cursors) {
          if (c.next !== low) continue;
          c.dropped = true;
          this.#cursors.delete(c);
        }
        this.#trim();
      }
    } else if (!this.#keepAll) this.#trim();
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

  /**
   * Whether pushed pieces are kept: for readers that joined or may still
   * join. When not, the leader may push the buffer it reuses.
   */
  get keeping(): boolean {
    return this.#keepAll || (this.#cursors?.size ?? 0) > 0;
  }

  /** Whether a new reader may still join and read the body from its start. */
  get shared(): boolean {
    return this.#keepAll;
  }

  #trim(): void {
    let low = this.#base + this.#pieces.length;
    for (const c of this.#cursors ?? []) low = Math.min(low, c.next);
    if (low > this.#base) {
      for (const piece of this.#pieces.splice(0, low - this.#base)) this.#kept -= piece.length;
      this.#base = low;
    }
  }

  #leave(cursor: Cursor): void {
    if (this.#cursors?.delete(cursor) && !this.#keepAll) this.#trim();
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

  /** A joined reader's pieces; throws when the upstream body broke off or the reader fell behind. */
  async *#read(cursor: Cursor): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for (;;) {
        while (cursor.next < this.#base + this.#pieces.length) {
          if (cursor.dropped) break;
          yield this.#pieces[cursor.next++ - this.#base]!;
        }
        if (cursor.dropped) {
          throw new Error(
            `This request fell more than ${this.#keep} bytes behind the shared upstream response`,
          );
        }
        if (this.#state === "done") return;
        if (this.#state === "failed") throw new Error("The shared upstream response broke off");
        await new Promise<void>((resolve) => (this.#wake ??= []).push(resolve));
      }
    } finally {
      this.#leave(cursor);
    }
  }

  #notify(): void {
    const wake = this.#wake;
    if (wake === undefined) return;
    this.#wake = undefined;
    for (const w of wake) w();
  }
}
