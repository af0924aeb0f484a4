/**
 * A seeded pseudo-random generator, so that a tool's random choices (dropped
 * pings, dropped requests, fuzzed inputs) repeat exactly for the same seed.
 *
 * @module
 */

/**
 * Creates a seeded pseudo-random generator of numbers in [0, 1): SplitMix32
 * spreads the seed, so nearby seeds (7, 8, 9) give unrelated sequences, then
 * Mulberry32 draws. Not for cryptography; for reproducible runs and tests.
 *
 * @param seed Any integer; only its low 32 bits count.
 * @returns A function giving the next number, in [0, 1).
 *
 * @example The same seed gives the same sequence
 * ```ts
 * import { createRandom } from "./random.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const a = createRandom(7), b = createRandom(7);
 * assertEquals(a(), b());
 * assertEquals(a(), b());
 * ```
 */
export function createRandom(seed: number): () => number {
  let z = (seed | 0) + 0x9e3779b9;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  let state = (z ^ (z >>> 16)) >>> 0;
  return function next(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
