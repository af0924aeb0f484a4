/**
 * Helpers shared by the codec's test files: readers over canned wire bytes
 * and a rejection assertion that checks the error with a predicate.
 *
 * @module
 */

import { BufferedReader } from "./reader.ts";

/**
 * Asserts that `fn` rejects with an error that `check` accepts. Unlike
 * `assertRejects` in `lib/testing/assert.ts`, which matches a class, this
 * also looks at fields such as `HttpError`'s `status`.
 *
 * @param fn The async function expected to reject.
 * @param check Returns true for the expected error.
 * @param message Names the case in the failure message.
 * @returns Nothing; throws when `fn` resolves or rejects with another error.
 */
export async function assertRejects(
  fn: () => Promise<unknown>,
  check: (err: unknown) => boolean,
  message: string,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!check(err)) throw new Error(`${message}: wrong error ${err}`, { cause: err });
    return;
  }
  throw new Error(`${message}: did not throw`);
}

/**
 * Latin-1 bytes of a string (the corpus holds bytes as \u00XX escapes).
 *
 * @param text One character per byte, each below U+0100.
 * @returns The bytes.
 */
export function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/**
 * A reader over `data`, delivered in pieces of `pieceSize` bytes, so heads
 * and chunks straddle reads.
 *
 * @param data The wire bytes, or a string taken as Latin-1.
 * @param pieceSize The size of each piece the source yields.
 * @returns A reader over a stream of those pieces.
 */
export function readerOf(data: Uint8Array | string, pieceSize = Infinity): BufferedReader {
  const all = typeof data === "string" ? bytes(data) : data;
  const pieces: Uint8Array[] = [];
  const step = Math.min(pieceSize, Math.max(all.length, 1));
  for (let i = 0; i < all.length; i += step) pieces.push(all.slice(i, i + step));
  return new BufferedReader(ReadableStream.from(pieces).getReader());
}
