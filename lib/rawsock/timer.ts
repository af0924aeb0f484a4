/**
 * Sleeping the calling thread until a time on CLOCK_MONOTONIC, for a worker
 * thread that must act at exact times (a sender of timed packets): one
 * blocking `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` per wait, which
 * the kernel ends on its high-resolution timer, with the thread's timer
 * slack set to what the caller asks.
 *
 * Only for a thread that does nothing else meanwhile: the call blocks the
 * thread, its event loop included.
 *
 * @module
 */
import {
  CLOCK_MONOTONIC,
  PR_GET_TIMERSLACK,
  PR_SET_TIMERSLACK,
  TIMER_ABSTIME,
} from "./constants.ts";
import { check, EINTR, SocketError } from "./errno.ts";
import { errnoCell, lib } from "./ffi.ts";

const monoBuf = new Uint8Array(16);
const monoView = new DataView(monoBuf.buffer);
const untilBuf = new Uint8Array(16);
const untilView = new DataView(untilBuf.buffer);

/**
 * CLOCK_MONOTONIC now, in milliseconds (fractional, nanosecond resolution):
 * the clock {@linkcode sleepUntil} sleeps on. No allocation.
 *
 * @returns Milliseconds since the clock's origin (boot).
 *
 * @example
 * ```ts
 * import { monotonicMs } from "./timer.ts";
 * import { assert } from "../testing/assert.ts";
 * const a = monotonicMs();
 * assert(monotonicMs() >= a);
 * ```
 */
export function monotonicMs(): number {
  check(lib().clock_gettime(CLOCK_MONOTONIC, monoBuf), errnoCell[0]!, "clock_gettime");
  // Seconds fit in 32 bits for 136 years of uptime.
  return monoView.getUint32(0, true) * 1e3 + monoView.getUint32(8, true) / 1e6;
}

/**
 * Blocks the calling thread until CLOCK_MONOTONIC reaches `ms` (as
 * {@linkcode monotonicMs} reads it), in one `clock_nanosleep()` with
 * `TIMER_ABSTIME`: an absolute wake-up time, so that a wait cut short by a
 * signal resumes towards the same time and a schedule of such times never
 * drifts. Returns at once when `ms` has passed. The wake-up comes up to the
 * thread's timer slack late (50 µs by default; see
 * {@linkcode setTimerSlack}), and later when the cores are busy.
 *
 * @param ms The time to wake at, in CLOCK_MONOTONIC milliseconds.
 * @throws {SocketError} When the kernel refuses the call (a bad time).
 *
 * @example A millisecond's sleep
 * ```ts
 * import { monotonicMs, sleepUntil } from "./timer.ts";
 * import { assert } from "../testing/assert.ts";
 * const due = monotonicMs() + 1;
 * sleepUntil(due);
 * assert(monotonicMs() >= due);
 * ```
 */
export function sleepUntil(ms: number): void {
  if (!(ms >= 0)) throw new RangeError(`Cannot sleep until ${ms} ms: it must be >= 0`);
  const sec = Math.floor(ms / 1e3);
  untilView.setUint32(0, sec, true);
  untilView.setUint32(4, 0, true);
  untilView.setUint32(8, Math.min(999_999_999, Math.round((ms - sec * 1e3) * 1e6)), true);
  untilView.setUint32(12, 0, true);
  const c = lib();
  for (;;) {
    // clock_nanosleep() returns the error number rather than setting errno.
    const e = c.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, untilBuf, null);
    if (e === 0) return;
    if (e !== EINTR) throw new SocketError(e, "clock_nanosleep");
  }
}

/**
 * Sets the calling thread's timer slack: how much later than asked the
 * kernel may end its sleeps, to batch wake-ups (50 µs by default for a
 * normal thread). A thread that sends at exact times sets it to 1 ns.
 *
 * @param ns The slack in nanoseconds, at least 1 (0 would restore the
 *   process's default).
 * @throws {RangeError} When `ns` is not a positive integer.
 * @throws {SocketError} When the kernel refuses it.
 *
 * @example
 * ```ts
 * import { setTimerSlack, timerSlack } from "./timer.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const before = timerSlack();
 * setTimerSlack(1000);
 * assertEquals(timerSlack(), 1000);
 * setTimerSlack(before);
 * ```
 */
export function setTimerSlack(ns: number): void {
  if (!(Number.isInteger(ns) && ns >= 1)) {
    throw new RangeError(`Cannot use a timer slack of ${ns} ns: it must be an integer >= 1`);
  }
  check(lib().prctl(PR_SET_TIMERSLACK, BigInt(ns), 0n, 0n, 0n), errnoCell[0]!, "prctl");
}

/**
 * The calling thread's timer slack in nanoseconds (see
 * {@linkcode setTimerSlack}).
 *
 * @returns The slack.
 * @throws {SocketError} When the kernel refuses the call.
 *
 * @example
 * ```ts
 * import { timerSlack } from "./timer.ts";
 * import { assert } from "../testing/assert.ts";
 * assert(timerSlack() >= 1);
 * ```
 */
export function timerSlack(): number {
  return check(lib().prctl(PR_GET_TIMERSLACK, 0n, 0n, 0n, 0n), errnoCell[0]!, "prctl");
}
