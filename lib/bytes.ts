/**
 * Byte-array helpers shared by the HTTP codec, the web server, its client and
 * the proxy: joining arrays, and reads and writes that loop over partial ones.
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
 * import { assertEquals } from "./testing/assert.ts";
 * const all = concat([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * assertEquals(all, new Uint8Array([1, 2, 3]));
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
 * Reads until `buf` is full or the input ends, looping over partial reads
 * (`Deno.FsFile.read` and `Deno.Conn.read` may return less than asked).
 *
 * @param reader A `Deno.FsFile`, a `Deno.Conn` or anything with `read(p)`.
 * @param buf The buffer to fill.
 * @returns How many bytes were read: less than `buf.length` only at the end of the input.
 *
 * @example
 * ```ts
 * import { readFull } from "./bytes.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const input = [new Uint8Array([1, 2]), new Uint8Array([3])];
 * const reader = {
 *   read: (p: Uint8Array) => {
 *     const next = input.shift();
 *     if (next === undefined) return Promise.resolve(null);
 *     p.set(next);
 *     return Promise.resolve(next.length);
 *   },
 * };
 * const buf = new Uint8Array(4);
 * assertEquals(await readFull(reader, buf), 3);
 * assertEquals(buf, new Uint8Array([1, 2, 3, 0]));
 * ```
 */
export async function readFull(
  reader: { read(p: Uint8Array): Promise<number | null> },
  buf: Uint8Array,
): Promise<number> {
  let off = 0;
  while (off < buf.length) {
    const n = await reader.read(off === 0 ? buf : buf.subarray(off));
    if (n === null || n === 0) break;
    off += n;
  }
  return off;
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
 * import { assertEquals } from "./testing/assert.ts";
 * const seen: number[] = [];
 * await writeAll({ write: (p) => (seen.push(p.length), Promise.resolve(Math.min(2, p.length))) }, new Uint8Array(5));
 * assertEquals(seen, [5, 3, 1]);
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
