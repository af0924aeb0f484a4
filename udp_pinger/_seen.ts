/**
 * Sliding windows of sequence numbers (RFC 4303 §3.4.3's anti-replay
 * window), for the server's duplicate detection per client and its replay
 * detection per signed session. The replay windows live in a
 * `SharedArrayBuffer`, so that every receive loop of a `--threads N` server
 * sees every session: `SO_REUSEPORT` spreads datagrams by source address, so
 * a copy sent from another address can reach a loop that never saw the
 * original.
 *
 * @module
 */

/** Sequence numbers a window remembers below its highest. */
export const WINDOW = 1024;
const WORDS = WINDOW / 32;
/** Sessions per bucket of the replay table: a new one evicts the bucket's least recently seen. */
const WAYS = 8;
// Per slot: Float64 highest and last use; Int32 used flag, id (two halves) and the bits.
const SLOT_F64 = 2;
const SLOT_I32 = 3 + WORDS;
const BUCKET_BYTES = 4 + WAYS * (SLOT_F64 * 8 + SLOT_I32 * 4);

/** `count` windows in flat typed arrays, each its highest number and a bit per number below it. */
export class SeenWindows {
  #highest: Float64Array;
  #bits: Int32Array;

  /**
   * Creates the windows, all empty.
   *
   * @param count How many.
   * @param memory Where they live: `highest` gets `count` doubles and `bits`
   *   `count · 32` words; by default, arrays of their own.
   */
  constructor(count: number, memory?: { highest: Float64Array; bits: Int32Array }) {
    this.#highest = memory?.highest ?? new Float64Array(count).fill(-1);
    this.#bits = memory?.bits ?? new Int32Array(count * WORDS);
  }

  /**
   * Empties window `i` (its bits are cleared by the next {@linkcode mark}).
   *
   * @param i The window.
   */
  reset(i: number): void {
    this.#highest[i] = -1;
  }

  /**
   * Marks `seq` seen in window `i`.
   *
   * @param i The window.
   * @param seq The sequence number (a non-negative integer).
   * @param tooOld What to answer for a number older than the window, which cannot be told.
   * @returns `false` when `seq` was seen already.
   */
  mark(i: number, seq: number, tooOld: boolean): boolean {
    const bits = this.#bits, base = i * WORDS;
    const highest = this.#highest[i]!;
    if (seq > highest) {
      if (highest < 0 || seq - highest >= WINDOW) bits.fill(0, base, base + WORDS);
      else for (let q = highest + 1; q < seq; q++) clear(bits, base, q);
      this.#highest[i] = seq;
      bits[base + ((seq % WINDOW) >>> 5)]! |= 1 << (seq & 31);
      return true;
    }
    if (highest - seq >= WINDOW) return tooOld;
    const word = base + ((seq % WINDOW) >>> 5), bit = 1 << (seq & 31);
    if ((bits[word]! & bit) !== 0) return false;
    bits[word]! |= bit;
    return true;
  }
}

function clear(bits: Int32Array, base: number, seq: number): void {
  bits[base + ((seq % WINDOW) >>> 5)]! &= ~(1 << (seq & 31));
}

/**
 * The shared memory of a replay table with room for at least `sessions`
 * signed sessions (in buckets of 8, a power of two of them).
 *
 * @param sessions The sessions it should hold.
 * @returns The zeroed buffer, to give every {@linkcode ReplayTable} that shares it.
 */
export function replayMemory(sessions: number): SharedArrayBuffer {
  let buckets = 1;
  while (buckets * WAYS < sessions) buckets *= 2;
  return new SharedArrayBuffer(buckets * BUCKET_BYTES);
}

/**
 * Signed sessions by id, each with its window of sequence numbers seen, in
 * shared memory: any thread's copy of a (session, sequence number) is a
 * replay on every other. A bucket is locked while it is read and updated,
 * so two copies that arrive on two threads at once count once.
 */
export class ReplayTable {
  #mask: number;
  #times: Float64Array;
  #locks: Int32Array;
  #slots: Int32Array;
  #windows: SeenWindows;

  /**
   * Opens the table in `memory`, as made by {@linkcode replayMemory}.
   *
   * @param memory The shared buffer.
   */
  constructor(memory: SharedArrayBuffer) {
    const buckets = memory.byteLength / BUCKET_BYTES;
    if (!Number.isInteger(buckets) || buckets < 1 || (buckets & (buckets - 1)) !== 0) {
      throw new RangeError(
        `Cannot use a ${memory.byteLength}-byte replay table: not one made by replayMemory()`,
      );
    }
    const slots = buckets * WAYS;
    this.#mask = buckets - 1;
    const highest = new Float64Array(memory, 0, slots);
    this.#times = new Float64Array(memory, slots * 8, slots);
    this.#locks = new Int32Array(memory, slots * 16, buckets);
    const ints = slots * 16 + buckets * 4;
    this.#slots = new Int32Array(memory, ints, slots * 3);
    this.#windows = new SeenWindows(slots, {
      highest,
      bits: new Int32Array(memory, ints + slots * 12, slots * WORDS),
    });
  }

  /**
   * Marks sequence number `seq` of session `id` seen, from whichever thread.
   *
   * @param id The session id: 12 hex digits.
   * @param seq The sequence number.
   * @param now The time, for choosing which session a full bucket forgets.
   * @returns `false` for a replay: seen already, or older than the window.
   */
  fresh(id: string, seq: number, now: number): boolean {
    const hi = parseInt(id.slice(0, 6), 16), lo = parseInt(id.slice(6), 16);
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    const bucket = h & this.#mask;
    const locks = this.#locks, slots = this.#slots, times = this.#times;
    // The critical section is a few hundred nanoseconds; a thread that finds
    // it taken sleeps briefly rather than spin against a preempted holder.
    while (Atomics.compareExchange(locks, bucket, 0, 1) !== 0) Atomics.wait(locks, bucket, 1, 0.05);
    try {
      let slot = -1, oldest = -1;
      for (let i = bucket * WAYS; i < (bucket + 1) * WAYS; i++) {
        if (slots[i * 3] === 1 && slots[i * 3 + 1] === hi && slots[i * 3 + 2] === lo) {
          slot = i;
          break;
        }
        if (oldest < 0 || times[i]! < times[oldest]!) oldest = i;
      }
      if (slot < 0) {
        // A new session takes an empty slot (last use 0) or the least recently seen one.
        slot = oldest;
        slots[slot * 3] = 1;
        slots[slot * 3 + 1] = hi;
        slots[slot * 3 + 2] = lo;
        this.#windows.reset(slot);
      }
      times[slot] = now;
      return this.#windows.mark(slot, seq, false);
    } finally {
      Atomics.store(locks, bucket, 0);
      Atomics.notify(locks, bucket, 1);
    }
  }
}
