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
/**
 * Writes all of `data`, looping over partial writes (`Deno.Conn.write` may
 * write less than asked).
 *
 * @param writer A `Deno.Conn` or anything with `write(p)`.
 * @param data The bytes.
 * @returns Resolves when everything was written.
 *
 * @example
 * ```ts
 * import { writeAll } from "./bytes.ts";
 * const seen: number[] = [];
 * await writeAll({ write: (p) => (seen.push(p.length), Promise.resolve(Math.min(2, p.length))) }, new Uint8Array(5));
 * console.assert(seen.join() === "5,3,1");
 * ```
 */
export async function writeAll(
  writer: { write(p: Uint8Array): Promise<number> },
  data: Uint8Array,
): Promise<void> {
  let off = 0;
  while (off < data.length) {
    off += await writer.write(off === 0 ? data : data.subarray(off));
  }
}
