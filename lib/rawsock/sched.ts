/**
 * The calling thread's scheduling: a shorter time slice for a thread that
 * sleeps until a datagram comes and must answer it at once.
 *
 * @module
 */
import { errnoCell, lib } from "./ffi.ts";
import { check } from "./errno.ts";

/** `sched_setattr` and `sched_getattr`'s numbers, by architecture (glibc 2.36 has no wrappers). */
const SYSCALLS: Partial<Record<typeof Deno.build.arch, { set: bigint; get: bigint }>> = {
  x86_64: { set: 314n, get: 315n },
  aarch64: { set: 274n, get: 275n },
};
/** ENOSYS: a kernel without the call. */
const ENOSYS = 38;

/**
 * Asks the kernel to give the calling thread (not the process) time slices
 * of `microseconds`, with its policy (SCHED_OTHER) and weight unchanged:
 * `sched_setattr()` with `sched_runtime` set, which Linux 6.12 and later
 * (EEVDF's custom slices) read as the slice. A thread with a short slice
 * gets an early virtual deadline, so when it wakes it runs before threads
 * with the default slice (about 3 ms) that are using the core, instead of
 * waiting for one of them to finish its slice; its share of the CPU stays
 * what it was. Needs no privilege. Older kernels accept and ignore it.
 *
 * @param microseconds The slice, from 100 to 100,000 (the kernel's bounds).
 * @returns `true` when the kernel took it, `false` where the call does not
 * exist (another architecture, or a kernel before 3.14).
 * @throws {RangeError} When `microseconds` is outside 100 to 100,000.
 * @throws {SocketError} When the kernel refuses it otherwise.
 *
 * @example In a thread that answers datagrams
 * ```ts
 * import { requestSlice } from "./sched.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(typeof requestSlice(100), "boolean");
 * ```
 */
export function requestSlice(microseconds: number): boolean {
  if (!(microseconds >= 100 && microseconds <= 100_000)) {
    throw new RangeError(`Cannot use a slice of ${microseconds} µs: it must be 100 to 100000`);
  }
  const calls = SYSCALLS[Deno.build.arch];
  if (calls === undefined) return false;
  const c = lib();
  // struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes): u32 size, u32
  // sched_policy, u64 sched_flags, s32 sched_nice, u32 sched_priority, u64
  // sched_runtime, u64 sched_deadline, u64 sched_period, u32 util_min, u32
  // util_max. Read first (thread 0: the caller), so that the policy, nice
  // value and priority stay as they are: under SCHED_FIFO the kernel
  // ignores the slice.
  const attr = new Uint8Array(56);
  if (c.syscall(calls.get, 0n, attr, BigInt(attr.length), 0n) < 0n) {
    const e = errnoCell[0]!;
    if (e === ENOSYS) return false;
    check(-1, e, "sched_getattr");
  }
  const view = new DataView(attr.buffer);
  view.setUint32(0, attr.length, true);
  view.setBigUint64(24, BigInt(Math.round(microseconds * 1000)), true);
  if (c.syscall(calls.set, 0n, attr, 0n, 0n) < 0n) {
    const e = errnoCell[0]!;
    if (e === ENOSYS) return false;
    check(-1, e, "sched_setattr");
  }
  return true;
}

/** SCHED_OTHER and SCHED_FIFO, the policies {@linkcode setRealtime} moves between. */
const SCHED_OTHER = 0, SCHED_FIFO = 1;

/**
 * Moves the calling thread (not the process) into the real-time class,
 * `SCHED_FIFO` at `priority`, or back to `SCHED_OTHER` with `priority` 0
 * and the default time slice (call {@linkcode requestSlice} again for a
 * shorter one): `sched_setattr()`. A real-time thread that wakes
 * runs at once, ahead of every normal thread and of the CPU share the
 * scheduler gives its group (a session's autogroup or a cgroup), where a
 * normal thread that sleeps most of the time has a small share and may
 * wait tens of milliseconds on a busy machine. It needs `CAP_SYS_NICE`
 * (root) or an `RLIMIT_RTPRIO` of at least `priority`.
 *
 * @param priority 1 to 99 for `SCHED_FIFO`; 0 for `SCHED_OTHER`.
 * @returns `true` when the kernel took it; `false` when it refused
 * (no privilege) or has no such call.
 * @throws {RangeError} When `priority` is outside 0 to 99.
 *
 * @example Back to the normal class, which needs no privilege
 * ```ts
 * import { setRealtime } from "./sched.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(setRealtime(0), true);
 * ```
 */
export function setRealtime(priority: number): boolean {
  if (!(Number.isInteger(priority) && priority >= 0 && priority <= 99)) {
    throw new RangeError(`Cannot use real-time priority ${priority}: it must be 0 to 99`);
  }
  const calls = SYSCALLS[Deno.build.arch];
  if (calls === undefined) return false;
  const c = lib();
  const attr = new Uint8Array(56);
  if (c.syscall(calls.get, 0n, attr, BigInt(attr.length), 0n) < 0n) return false;
  const view = new DataView(attr.buffer);
  view.setUint32(0, attr.length, true);
  view.setUint32(4, priority === 0 ? SCHED_OTHER : SCHED_FIFO, true);
  view.setBigUint64(8, 0n, true);
  view.setUint32(20, priority, true);
  return c.syscall(calls.set, 0n, attr, 0n, 0n) >= 0n;
}
