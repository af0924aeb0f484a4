/**
 * Round-trip-time statistics shared by ping, traceroute/mtr-style output and
 * the UDP pinger: count, min/avg/max, iputils' `mdev`, median and
 * percentiles, mtr's sample standard deviation, RFC 3550 interarrival jitter
 * and RFC 3393 / RFC 5481 IPDV.
 *
 * The accumulator is unit-agnostic: the tools add milliseconds, and every
 * figure comes back in the unit that was added. It is pure logic: no clock,
 * no I/O.
 *
 * @example Summarising four round trips
 * ```ts
 * import { RttStats } from "./stats.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const stats = new RttStats();
 * const rtts: [seq: number, rtt: number][] = [[1, 10], [2, 12], [3, 11], [4, 15]];
 * for (const [seq, rtt] of rtts) stats.add(rtt, seq);
 * const s = stats.summary();
 * assertEquals(s.count, 4);
 * assertEquals(s.min, 10);
 * assertEquals(s.max, 15);
 * assertEquals(s.avg, 12);
 * assertEquals(s.median, 11.5);
 * ```
 *
 * @module
 */

/** IPDV (RFC 3393) figures over pairs of consecutive sequence numbers. */
export interface IpdvSummary {
  /** How many pairs (seq, seq + 1) had both round trips measured. */
  count: number;
  /** The most negative variation (the later packet was that much faster). */
  min: number;
  /** The most positive variation. */
  max: number;
  /** Mean of the signed variations; near zero on a stable path (RFC 5481 §4.1). */
  mean: number;
  /** Mean of the absolute variations: the usual single "jitter" figure for IPDV. */
  meanAbs: number;
}

/** A snapshot of an {@linkcode RttStats} accumulator. All times are in the unit added. */
export interface RttSummary {
  /** Number of samples. */
  count: number;
  /** Smallest sample, or `NaN` when there are none. */
  min: number;
  /** Arithmetic mean, or `NaN` when there are none. */
  avg: number;
  /** Median (linear interpolation between the two middle samples), or `NaN`. */
  median: number;
  /** Largest sample, or `NaN` when there are none. */
  max: number;
  /** iputils' `mdev`: population standard deviation, `sqrt(mean(x²) − mean(x)²)`. */
  mdev: number;
  /** Sample standard deviation (n − 1 denominator), as mtr's `StDev`; `NaN` below 2 samples. */
  stddev: number;
  /** RFC 3550 §6.4.1 smoothed jitter estimate, after the last sample (0 below 2 samples). */
  jitter: number;
  /** IPDV statistics (RFC 3393, RFC 5481 §4.1). */
  ipdv: IpdvSummary;
}

/**
 * Returns the `p`-th percentile of an ascending array, interpolating linearly
 * between closest ranks (the definition of NumPy's default and R's type 7),
 * so the 50th percentile of an even-length array is the mean of its two
 * middle values.
 *
 * @param sorted Samples in ascending order.
 * @param p The percentile, from 0 to 100.
 * @returns The percentile, or `NaN` for an empty array.
 * @throws {RangeError} If `p` is outside 0..100.
 *
 * @example
 * ```ts
 * import { percentile } from "./stats.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(percentile([1, 2, 3, 4], 50), 2.5);
 * assertEquals(percentile([1, 2, 3, 4], 100), 4);
 * ```
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) {
    throw new RangeError(`Cannot compute percentile ${p}: it must be between 0 and 100`);
  }
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

/**
 * Returns the median of samples in any order (the mean of the two middle
 * values for an even count).
 *
 * @param values The samples.
 * @returns The median, or `NaN` for no samples.
 *
 * @example
 * ```ts
 * import { median } from "./stats.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(median([3, 1, 2]), 2);
 * assertEquals(median([4, 1, 3, 2]), 2.5);
 * ```
 */
export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/**
 * Accumulates round-trip times and summarises them.
 *
 * Samples are kept (8 bytes each, plus the sequence number when given) so
 * that medians and percentiles are exact; a million samples is about 16 MB.
 *
 * Order matters for two figures, and both follow their RFCs:
 * - the RFC 3550 jitter is updated in the order samples are added, which
 *   should be arrival order ("the previous packet received", §6.4.1);
 * - IPDV pairs packets by sequence number, seq and seq + 1, whatever order
 *   they arrived in, and skips pairs with a loss (RFC 5481 §4.1's selection
 *   function).
 *
 * @example Jitter after a single step
 * ```ts
 * import { RttStats } from "./stats.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const stats = new RttStats();
 * stats.add(10);
 * stats.add(26);
 * assertEquals(stats.jitter, 1); // (|26 − 10| − 0) / 16
 * ```
 */
export class RttStats {
  #samples: number[] = [];
  #sorted: number[] | undefined;
  #bySeq = new Map<number, number>();
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;
  // Welford's running mean and sum of squared deviations: numerically stable,
  // and M2 / n equals iputils' sum(x²)/n − mean² exactly in real arithmetic.
  #mean = 0;
  #m2 = 0;
  #jitter = 0;
  #last: number | undefined;

  /**
   * Adds one round-trip time.
   *
   * @param rtt The round-trip time (any unit; the tools use milliseconds).
   * @param seq The packet's sequence number, for IPDV; omit it to leave the
   *   sample out of IPDV. A repeated `seq` keeps its first round trip.
   * @throws {RangeError} If `rtt` is not a finite number.
   */
  add(rtt: number, seq?: number): void {
    if (!Number.isFinite(rtt)) {
      throw new RangeError(`Cannot add round-trip time ${rtt}: it is not a finite number`);
    }
    this.#samples.push(rtt);
    this.#sorted = undefined;
    this.#sum += rtt;
    if (rtt < this.#min) this.#min = rtt;
    if (rtt > this.#max) this.#max = rtt;
    const n = this.#samples.length;
    const delta = rtt - this.#mean;
    this.#mean += delta / n;
    this.#m2 += delta * (rtt - this.#mean);
    // RFC 3550 §6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, where D is
    // the change in transit time; for round trips D is the change in RTT.
    if (this.#last !== undefined) {
      this.#jitter += (Math.abs(rtt - this.#last) - this.#jitter) / 16;
    }
    this.#last = rtt;
    if (seq !== undefined && !this.#bySeq.has(seq)) this.#bySeq.set(seq, rtt);
  }

  /** The number of samples added. */
  get count(): number {
    return this.#samples.length;
  }

  /** The smallest sample, or `NaN` when empty. */
  get min(): number {
    return this.count === 0 ? NaN : this.#min;
  }

  /** The largest sample, or `NaN` when empty. */
  get max(): number {
    return this.count === 0 ? NaN : this.#max;
  }

  /** The arithmetic mean, or `NaN` when empty. */
  get avg(): number {
    return this.count === 0 ? NaN : this.#sum / this.count;
  }

  /**
   * iputils' `mdev`: the population standard deviation,
   * `sqrt(sum(x²)/n − (sum(x)/n)²)`; `NaN` when empty.
   */
  get mdev(): number {
    return this.count === 0 ? NaN : Math.sqrt(Math.max(0, this.#m2 / this.count));
  }

  /** The sample standard deviation (n − 1), as mtr's `StDev`; `NaN` below two samples. */
  get stddev(): number {
    return this.count < 2 ? NaN : Math.sqrt(Math.max(0, this.#m2 / (this.count - 1)));
  }

  /** The RFC 3550 §6.4.1 smoothed jitter after the last sample (0 below two samples). */
  get jitter(): number {
    return this.#jitter;
  }

  /** The median, or `NaN` when empty. */
  get median(): number {
    return this.percentile(50);
  }

  /**
   * Returns a percentile of the samples (see {@linkcode percentile} for the
   * interpolation).
   *
   * @param p The percentile, from 0 to 100.
   * @returns The percentile, or `NaN` when empty.
   */
  percentile(p: number): number {
    this.#sorted ??= this.#samples.toSorted((a, b) => a - b);
    return percentile(this.#sorted, p);
  }

  /**
   * Computes IPDV over every pair (seq, seq + 1) that both have a round trip:
   * `IPDV = RTT(seq + 1) − RTT(seq)` (RFC 3393 §2.4, with the round trip
   * standing in for the one-way delay, which cancels clock offset).
   *
   * @returns The IPDV statistics; all `NaN` but `count` when no pair exists.
   */
  ipdv(): IpdvSummary {
    let count = 0, sum = 0, sumAbs = 0, min = Infinity, max = -Infinity;
    for (const [seq, rtt] of this.#bySeq) {
      const next = this.#bySeq.get(seq + 1);
      if (next === undefined) continue;
      const v = next - rtt;
      count++;
      sum += v;
      sumAbs += Math.abs(v);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (count === 0) return { count, min: NaN, max: NaN, mean: NaN, meanAbs: NaN };
    return { count, min, max, mean: sum / count, meanAbs: sumAbs / count };
  }

  /**
   * Returns every figure at once.
   *
   * @returns A snapshot; later {@linkcode RttStats.add} calls do not change it.
   */
  summary(): RttSummary {
    return {
      count: this.count,
      min: this.min,
      avg: this.avg,
      median: this.median,
      max: this.max,
      mdev: this.mdev,
      stddev: this.stddev,
      jitter: this.jitter,
      ipdv: this.ipdv(),
    };
  }
}
