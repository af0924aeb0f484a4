/**
 * Worker side of the client's sender (see `_ticker.ts`): a thread that does
 * nothing but send at the scheduled times. It sleeps in
 * `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` (a blocking FFI call,
 * with a timer slack of 1 ns and a 100 µs time slice), reads the clock on
 * waking, writes that time into the datagram it prepared while waiting, and
 * calls `sendto()` at once; it then records the send's times in the shared
 * ring, where the main thread reads them.
 *
 * Why a thread of its own, sleeping this way: the main thread's event loop
 * (replies, events, timers, its garbage collections) never delays a send,
 * and the kernel's high-resolution timer ends the sleep, not a
 * `setTimeout()` (millisecond granularity, about 2 ms for a `setTimeout(0)`
 * here) nor `Atomics.wait` (a condition variable with the default 50 µs
 * slack). The short slice matters on a busy machine: a thread woken with
 * the default slice waits for the running one's slice to end (1.4 ms here),
 * one with a 100 µs slice preempts it (see `requestSlice()`).
 *
 * @module
 */
import { Socket } from "../lib/rawsock/socket.ts";
import { bindFastCalls } from "../lib/rawsock/ffi.ts";
import { realtimeInto } from "../lib/rawsock/clock.ts";
import { requestSlice } from "../lib/rawsock/sched.ts";
import { monotonicMs, setTimerSlack, sleepUntil } from "../lib/rawsock/timer.ts";
import { encodeStatsRequest } from "./protocol.ts";
import {
  COLLECTED,
  COUNT,
  DONE,
  encodeFor,
  GO,
  INTERVAL,
  RECORD,
  RING,
  type SenderSetup,
  type SendPlan,
  SENT,
  signFor,
  START,
  STOP,
} from "./_ticker.ts";

/**
 * Milliseconds of sends the main thread is told of at once: at `-i 1ms` a
 * wake-up of each thread per send would be two more threads to schedule per
 * millisecond, and the main thread also collects before it reads a reply.
 */
const TELL_GAP = 10;
/**
 * The longest wait made in `clock_nanosleep()`, in milliseconds; a longer
 * one first waits in `Atomics.wait`, which a stop interrupts (a thread
 * blocked in a C call cannot be stopped, so the main thread's `stop()`
 * would wait for it).
 */
const NANOSLEEP_MAX = 10;

// The worker global scope, typed by hand: the project type-checks with the
// window lib, and a `deno.worker` lib reference would clash with it.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<SenderSetup>) => void) | null;
  postMessage(message: number): void;
};

scope.onmessage = (event: MessageEvent<SenderSetup>) => {
  const setup = event.data;
  const flags = new Int32Array(setup.control);
  try {
    prepare();
    // Loaded and set up: the main thread may start the schedule, which
    // this thread waits for here rather than in its event loop, so that
    // the start wakes it at once.
    scope.postMessage(0);
    while (Atomics.load(flags, GO) === 0 && Atomics.load(flags, STOP) === 0) {
      Atomics.wait(flags, GO, 0);
    }
    if (Atomics.load(flags, STOP) === 0) send(setup, flags);
  } finally {
    Atomics.store(flags, DONE, 1);
    Atomics.notify(flags, DONE);
  }
  // The main thread ends this thread (worker.terminate()) once it has
  // collected the last send.
};

/**
 * This thread's scheduling, set before the start so that the start wakes
 * it at once too: a 100 µs slice, a timer slack of 1 ns (see the module's
 * comment), both per thread; a kernel without them sends as before.
 */
function prepare(): void {
  bindFastCalls({ sleep: true });
  try {
    requestSlice(100);
  } catch {
    // Refused: the default slice.
  }
  try {
    setTimerSlack(1);
  } catch {
    // Refused: the default slack.
  }
}

/**
 * Where the time field of a datagram encoded by `encodeFor()` starts (after
 * the second space: `Ping <seq> <time>`, `Heartbeat <seq> <time> …`), or -1
 * when it is not 10 digits, a dot and 6 digits, the width that
 * {@linkcode writeTime} writes.
 */
function timeField(data: Uint8Array): number {
  let spaces = 0, at = 0;
  while (at < data.length && spaces < 2) if (data[at++] === 0x20) spaces++;
  if (spaces < 2 || at + 17 > data.length || data[at + 10] !== 0x2e) return -1;
  const end = at + 17;
  if (end < data.length && data[end] !== 0x20) return -1;
  return at;
}

/**
 * Writes a CLOCK_REALTIME reading (whole seconds, nanoseconds) at `at` in
 * `data` as `encodePing()` formats a time (`toFixed(6)`: microseconds,
 * rounded), in place: 10 digits, a dot, 6 digits.
 */
function writeTime(data: Uint8Array, at: number, sec: number, nsec: number): void {
  let usec = Math.round(nsec / 1000);
  if (usec === 1_000_000) {
    usec = 0;
    sec++;
  }
  for (let i = 9; i >= 0; i--) {
    data[at + i] = 0x30 + (sec % 10);
    sec = Math.floor(sec / 10);
  }
  data[at + 10] = 0x2e;
  for (let i = 16; i >= 11; i--) {
    data[at + i] = 0x30 + (usec % 10);
    usec = Math.floor(usec / 10);
  }
}

/**
 * Sleeps until `dueMono` (CLOCK_MONOTONIC milliseconds), or until a stop is
 * asked; returns the clock on waking.
 */
function sleepTo(dueMono: number, flags: Int32Array): number {
  let now = monotonicMs();
  while (now < dueMono && Atomics.load(flags, STOP) === 0) {
    if (dueMono - now > NANOSLEEP_MAX) {
      Atomics.wait(flags, STOP, 0, dueMono - now - NANOSLEEP_MAX / 2);
    } else sleepUntil(dueMono);
    now = monotonicMs();
  }
  return now;
}

function send(setup: SenderSetup, flags: Int32Array): void {
  const { fd, family, target, plan, spin } = setup;
  const times = new Float64Array(setup.schedule);
  const interval = times[INTERVAL]!, count = times[COUNT]!;
  const records = new Float64Array(setup.ring);
  // The main thread owns the descriptor and closes it; this object only sends.
  const sock = new Socket(fd, family, "udp");
  const clock = new Uint8Array(16);
  const view = new DataView(clock.buffer);
  // Each thread has its own timeOrigin; both are on the same wall clock.
  // The schedule is on this thread's performance.now(), which the sleeps
  // convert to CLOCK_MONOTONIC, the same clock with another origin.
  const origin = times[START]! - performance.timeOrigin;
  const before = performance.now();
  const mono = monotonicMs();
  const toMono = mono - (before + performance.now()) / 2;
  // Sends the main thread has been told of. It is told on the wake-up
  // before a send (half the interval before it, at most 1 ms), not right
  // after a send: a main thread woken then would run (and, on 2 cores,
  // take the core) while the server answers, and the reply's round trip
  // would include its wait for a core. It is told of every send when the
  // interval is TELL_GAP or more, else of the sends of each TELL_GAP ms.
  let told = 0;
  const lead = Math.min(interval / 2, 1);
  const tellEvery = Math.max(1, Math.ceil(TELL_GAP / interval));
  if (!plan.heartbeat) {
    // Before the first ping, as irtt's handshake does: a stats request with
    // a nonce of its own, so that the send path has run once (its first
    // call builds what later calls reuse: 0.29 ms of the first ping's
    // upstream time on loopback) and the server has set up this client's
    // session and woken, by the time the first ping is timed. Its answer
    // (an empty session's counters, or the course's server's echo) carries
    // the other nonce, which the client ignores.
    try {
      sock.send(signFor(encodeStatsRequest(`w${plan.session}`), plan), target);
    } catch {
      // Lost: the first pings are timed as before.
    }
  }
  // Schedule slots skipped after stalls: send k goes in slot k + skipped.
  let skipped = 0;
  for (let k = 0; k < count; k++) {
    // Absolute schedule, t0 + slot·interval, so the send times never drift.
    const due = origin + (k + skipped) * interval;
    const dueMono = due + toMono;
    // First a wake-up `lead` before the send (when there is time), to
    // prepare the datagram and tell the main thread: not right after the
    // previous send, while the server answers it, which a thread busy here
    // then would delay (on 2 cores it may hold the core the reply needs).
    let now = monotonicMs();
    if (dueMono - now > lead) now = sleepTo(dueMono - lead, flags);
    // Prepared with the due time: on waking only the time is written over
    // it (and the datagram signed), so that nothing is allocated between
    // the wake-up and sendto().
    const data = encodeFor(k + 1, (performance.timeOrigin + due) / 1000, plan);
    const at = timeField(data);
    if (Atomics.load(flags, STOP) !== 0) return;
    if (k - told >= tellEvery && dueMono - now > 0) {
      scope.postMessage(k);
      told = k;
    } else if (k - told >= 2 * tellEvery) {
      // Behind schedule, never waiting: tell now and then all the same.
      scope.postMessage(k);
      told = k;
    }
    if (spin > 0) {
      now = sleepTo(dueMono - spin, flags);
      while (now < dueMono && Atomics.load(flags, STOP) === 0) now = monotonicMs();
    } else now = sleepTo(dueMono, flags);
    if (Atomics.load(flags, STOP) !== 0) return;
    // A main thread that stops collecting (stalled for RING sends) holds
    // the sender rather than lose records.
    while (k - Atomics.load(flags, COLLECTED) >= RING) {
      if (Atomics.load(flags, STOP) !== 0) return;
      Atomics.wait(flags, COLLECTED, Atomics.load(flags, COLLECTED), 10);
    }
    // The send time as ping takes it: the clock read, then at once
    // sendto(), with only the time written into the datagram (and its MAC)
    // in between. The record is published before the send, so that the
    // main thread knows of the ping by the time it can read the reply.
    realtimeInto(clock);
    now = monotonicMs();
    const sec = view.getUint32(0, true) + view.getInt32(4, true) * 2 ** 32;
    const nsec = view.getUint32(8, true);
    const out = at < 0
      ? encodeFor(k + 1, sec + nsec / 1e9, plan)
      : (writeTime(data, at, sec, nsec), sign(data, plan));
    const r = (k % RING) * RECORD;
    records[r] = now - toMono - origin;
    records[r + 1] = sec;
    records[r + 2] = nsec;
    records[r + 3] = out.length;
    records[r + 4] = due - origin;
    Atomics.store(flags, SENT, k + 1);
    try {
      sock.send(out, target);
    } catch {
      // A full send queue or a local error: the ping is lost, which UDP allows.
    }
    // After a stall, the slots that have passed are skipped rather than
    // filled with a burst of late sends: the next send goes in the first
    // slot still ahead, one interval or less from now (as irtt skips the
    // ticks it missed, but no sequence number is skipped).
    while (origin + (k + 1 + skipped) * interval + toMono <= now) skipped++;
  }
  scope.postMessage(count);
}

/** `data` signed again for the plan (its time changed), when the plan has a key. */
function sign(data: Uint8Array, plan: SendPlan): Uint8Array {
  return plan.key === undefined ? data : signFor(data, plan);
}
