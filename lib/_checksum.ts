/**
 * The Internet checksum (RFC 1071), apart from the rest of `icmp.ts` so that
 * a hot loop (ping's flood, in `rawsock/echo.ts`) loads only this. The
 * public names are exported from `icmp.ts`.
 *
 * @module
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// Below this length a typed-array view costs more to create than it saves
// (lib/icmp_bench.ts: the view costs about 100 ns, the byte loop 0.5 ns a byte).
const WORD_PATH_MIN = 512;
// Words summed between folds: 32767 halves of < 2^16 stay below 2^31.
const CHUNK_WORDS = 32767;

/** Folds the carries of a one's complement sum back into 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** Sums bytes[start..end) as big-endian 16-bit words (bytes[start] the high half of the first), unfolded. */
export function sumBytes(bytes: Uint8Array, start: number, end: number): number {
  // Even bytes are the high halves of the words, odd bytes the low halves:
  // two plain byte sums, combined once (RFC 1071 §2(A), deferred carries).
  let high = 0;
  let low = 0;
  let i = start;
  for (const end8 = start + ((end - start) & ~7); i < end8; i += 8) {
    high += bytes[i]! + bytes[i + 2]! + bytes[i + 4]! + bytes[i + 6]!;
    low += bytes[i + 1]! + bytes[i + 3]! + bytes[i + 5]! + bytes[i + 7]!;
  }
  for (; i < end; i++) {
    if (((i - start) & 1) === 0) high += bytes[i]!;
    else low += bytes[i]!;
  }
  return high * 256 + low;
}

/** Sums a 4-byte-aligned input through a Uint32Array in machine byte order. */
function sumWords(bytes: Uint8Array): number {
  // RFC 1071 §2(B): the sum is byte-order independent, so add words in the
  // machine's order and swap the folded result once. Each 32-bit word is
  // split into its 16-bit halves so that the accumulators stay small
  // integers (V8 keeps them in registers, about 25% faster than doubles).
  const words = bytes.length >>> 2;
  const view = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
  let sum = 0;
  for (let start = 0; start < words; start += CHUNK_WORDS) {
    const end = Math.min(words, start + CHUNK_WORDS);
    let low = 0;
    let high = 0;
    for (let k = start; k < end; k++) {
      const w = view[k]!;
      low = (low + (w & 0xffff)) | 0;
      high = (high + (w >>> 16)) | 0;
    }
    sum = fold(sum + low + high);
  }
  if (LITTLE_ENDIAN) sum = ((sum & 0xff) << 8) | (sum >>> 8);
  return sum + sumBytes(bytes, words << 2, bytes.length);
}

/**
 * Computes the 16-bit one's complement sum of the bytes taken as big-endian
 * 16-bit words (an odd last byte is padded with zero), plus `initial`. This
 * is the sum before the final complement: chain it, or pass it as `initial`.
 *
 * @param bytes The data.
 * @param initial A sum to add, e.g. {@linkcode pseudoHeaderSum}.
 * @returns The folded sum, 0 to 0xffff.
 *
 * @example The example of RFC 1071 §3
 * ```ts
 * import { onesComplementSum } from "./icmp.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const sum = onesComplementSum(new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]));
 * assertEquals(sum, 0xddf2);
 * ```
 */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  const sum = bytes.length >= WORD_PATH_MIN && (bytes.byteOffset & 3) === 0
    ? sumWords(bytes)
    : sumBytes(bytes, 0, bytes.length);
  return fold(sum + initial);
}

/**
 * Computes the Internet checksum (RFC 1071): the one's complement of the
 * one's complement sum. Write it into a message whose checksum field is zero.
 *
 * @param bytes The data, checksum field zeroed.
 * @param initial A sum to include first, e.g. {@linkcode pseudoHeaderSum} for ICMPv6, UDP, TCP.
 * @returns The checksum, 0 to 0xffff.
 *
 * @example The example of RFC 1071 §3
 * ```ts
 * import { checksum } from "./icmp.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const bytes = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
 * assertEquals(checksum(bytes), 0x220d);
 * ```
 */
export function checksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/**
 * Tells whether a message with its checksum in place sums to all ones, i.e.
 * its checksum is right.
 *
 * @param bytes The whole message, checksum field included.
 * @param initial The pseudo-header sum where the protocol has one (ICMPv6, UDP, TCP).
 * @returns `true` when the checksum is right.
 *
 * @example
 * ```ts
 * import { buildEcho, verifyChecksum } from "./icmp.ts";
 * import { assert } from "./testing/assert.ts";
 * const packet = buildEcho({ type: "request", id: 1, seq: 1 });
 * assert(verifyChecksum(packet));
 * packet[5]! ^= 1; // flip a bit of the identifier
 * assert(!verifyChecksum(packet));
 * ```
 */
export function verifyChecksum(bytes: Uint8Array, initial = 0): boolean {
  return onesComplementSum(bytes, initial) === 0xffff;
}

/**
 * Tells whether bytes[start..end) with its checksum in place sums to all
 * ones: {@linkcode verifyChecksum} over a range, without the `subarray` a
 * hot loop would allocate per packet.
 *
 * @param bytes The buffer.
 * @param start Where the message starts.
 * @param end Where it ends.
 * @returns `true` when the checksum is right.
 *
 * @example
 * ```ts
 * import { verifyRange } from "./_checksum.ts";
 * import { buildEcho } from "./icmp.ts";
 * import { assert } from "./testing/assert.ts";
 * const buffer = new Uint8Array(28);
 * buffer.set(buildEcho({ type: "reply", id: 1, seq: 1 }), 20);
 * assert(verifyRange(buffer, 20, 28));
 * ```
 */
export function verifyRange(bytes: Uint8Array, start: number, end: number): boolean {
  return fold(sumBytes(bytes, start, end)) === 0xffff;
}

/**
 * The Internet checksum of bytes[start..end) (checksum field zeroed):
 * {@linkcode checksum} over a range, allocating nothing.
 *
 * @param bytes The buffer.
 * @param start Where the message starts.
 * @param end Where it ends.
 * @returns The checksum, 0 to 0xffff.
 *
 * @example
 * ```ts
 * import { checksum, checksumRange } from "./_checksum.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const bytes = new Uint8Array([9, 9, 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
 * assertEquals(checksumRange(bytes, 2, 10), checksum(bytes.subarray(2)));
 * ```
 */
export function checksumRange(bytes: Uint8Array, start: number, end: number): number {
  return ~fold(sumBytes(bytes, start, end)) & 0xffff;
}
