/**
 * Byte-array helpers shared by the HTTP codec, the web server, its client and
 * the proxy.
 *
 * @module
 */

/**
 * Joins byte arrays into one new array.
 *
 * @param pieces The arrays, in order.
 * @returns A fresh array holding every piece's bytes.
 *
 * @example
 * ```ts
 * import { concat } from "./bytes.ts";
 * const all = concat([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.assert(all.join() === "1,2,3");
 * ```
 */
export function concat(pieces: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const p of pieces) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
