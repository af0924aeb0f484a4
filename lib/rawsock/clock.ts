/**
 * CLOCK_REALTIME, the clock of the kernel's receive timestamps, read through
 * `clock_gettime()`.
 *
 * @module
 */
import { CLOCK_REALTIME } from "./constants.ts";
import { check } from "./errno.ts";
import { errnoCell, lib } from "./ffi.ts";

/**
 * The current CLOCK_REALTIME in nanoseconds: the clock of kernel receive
 * timestamps, so differences between the two are round-trip times.
 *
 * @returns Nanoseconds since the epoch.
 *
 * @example
 * ```ts
 * import { realtimeNs } from "./mod.ts";
 * import { assert } from "../testing/assert.ts";
 * const ms = Number(realtimeNs() / 1_000_000n);
 * assert(Math.abs(ms - Date.now()) < 1000);
 * ```
 */
export function realtimeNs(): bigint {
  realtimeInto(timespecBuf);
  return timespecView.getBigInt64(0, true) * 1_000_000_000n + timespecView.getBigInt64(8, true);
}
const timespecBuf = new Uint8Array(16);
const timespecView = new DataView(timespecBuf.buffer);

/**
 * Writes the time of `CLOCK_REALTIME` (the clock of the kernel's receive
 * timestamps) as a `struct timespec` (64-bit seconds, then nanoseconds,
 * little-endian) into the first 16 bytes of `target`, straight from
 * `clock_gettime()`: no arithmetic and no allocation between reading the
 * clock and the caller's next step, which is what a send time stamped into
 * a packet needs.
 *
 * @param target At least 16 bytes, e.g. a `subarray()` of the packet.
 * @throws {RangeError} When `target` is shorter than 16 bytes.
 *
 * @example
 * ```ts
 * import { realtimeInto } from "./mod.ts";
 * import { assert } from "../testing/assert.ts";
 * const packet = new Uint8Array(64);
 * realtimeInto(packet.subarray(8, 24));
 * const seconds = new DataView(packet.buffer).getUint32(8, true);
 * assert(Math.abs(seconds - Date.now() / 1000) < 5);
 * ```
 */
export function realtimeInto(target: Uint8Array): void {
  if (target.length < 16) {
    throw new RangeError(`A struct timespec needs 16 bytes, not ${target.length}`);
  }
  check(lib().clock_gettime(CLOCK_REALTIME, target), errnoCell[0]!, "clock_gettime");
}

/**
 * A `struct timespec` as {@linkcode realtimeInto} writes it (64-bit seconds,
 * then nanoseconds, little-endian) at `at` in `bytes`, in whole microseconds
 * since the epoch, read byte by byte (no DataView, no allocation).
 *
 * @param bytes The bytes, e.g. an echo reply carrying its request's send time.
 * @param at Where the 16-byte timespec starts.
 * @returns Microseconds since the epoch, truncated as iputils truncates a timeval.
 *
 * @example
 * ```ts
 * import { realtimeInto, timespecUs } from "./mod.ts";
 * import { assert } from "../testing/assert.ts";
 * const packet = new Uint8Array(24);
 * realtimeInto(packet.subarray(8));
 * assert(Math.abs(timespecUs(packet, 8) / 1000 - Date.now()) < 1000);
 * ```
 */
export function timespecUs(bytes: Uint8Array, at: number): number {
  return (uint32(bytes, at) + uint32(bytes, at + 4) * 2 ** 32) * 1e6 +
    Math.floor(uint32(bytes, at + 8) / 1000);
}

/** The little-endian 32-bit word at `at`. */
function uint32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16)) + bytes[at + 3]! * 0x1000000;
}
