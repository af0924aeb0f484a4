/**
 * Worker side of the client's sender (see `_ticker.ts`): it sleeps with
 * `Atomics.wait`, spins the last stretch, and sends each datagram itself,
 * then records its times in the shared ring and wakes the main thread.
 * Sleeping here instead of in `setTimeout` matters: Deno's timers have a
 * millisecond granularity and a `setTimeout(0)` took about 2 ms on the
 * development machine, while this wakes within tens of microseconds.
 *
 * @module
 */
import { Socket } from "../lib/rawsock/socket.ts";
import { bindFastCalls } from "../lib/rawsock/ffi.ts";
import { realtimeInto } from "../lib/rawsock/clock.ts";
import { encodeStatsRequest } from "./protocol.ts";
import {
  COLLECTED,
  DONE,
  encodeFor,
  RECORD,
  RING,
  type SenderStart,
  SENT,
  signFor,
  STOP,
} from "./_ticker.ts";

/** Sends after which the main thread is told even when this thread never gets ahead of schedule. */
const TELL_EVERY = 16;

// The worker global scope, typed by hand: the project type-checks with the
// window lib, and a `deno.worker` lib reference would clash with it.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<SenderStart>) => void) | null;
  postMessage(message: number): void;
};

scope.onmessage = (event: MessageEvent<SenderStart>) => {
  const flags = new Int32Array(event.data.control);
  try {
    send(event.data, flags);
  } finally {
    Atomics.store(flags, DONE, 1);
    Atomics.notify(flags, DONE);
  }
  // The main thread ends this thread (worker.terminate()) once it has
  // collected the last send.
};

function send(start: SenderStart, flags: Int32Array): void {
  const { fd, family, target, plan, interval, count, spin } = start;
  const records = new Float64Array(start.ring);
  bindFastCalls();
  // The main thread owns the descriptor and closes it; this object only sends.
  const sock = new Socket(fd, family, "udp");
  const clock = new Uint8Array(16);
  const view = new DataView(clock.buffer);
  // Each thread has its own timeOrigin; both are on the same wall clock.
  const origin = start.start - performance.timeOrigin;
  // Sends the main thread has been told of. It is told when this thread
  // wakes for the next send, not right after a send: a main thread woken
  // then would run (and, on 2 cores, take the core) while the server
  // answers, and the reply's round trip would include its wait for a core.
  // The main thread also collects whenever it reads a reply.
  let told = 0;
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
  for (let k = 0; k < count; k++) {
    // Absolute schedule, t0 + k·interval, so the send times never drift.
    const due = origin + k * interval;
    let now = performance.now();
    for (;;) {
      if (Atomics.load(flags, STOP) !== 0) return;
      if (now >= due) break;
      if (due - now > spin) Atomics.wait(flags, STOP, 0, due - now - spin);
      if (told < k) {
        scope.postMessage(k);
        told = k;
      }
      now = performance.now();
    }
    if (k - told >= TELL_EVERY) {
      // Behind schedule, never spinning: tell now and then all the same.
      scope.postMessage(k);
      told = k;
    }
    // A main thread that stops collecting (stalled for RING sends) holds
    // the sender rather than lose records.
    while (k - Atomics.load(flags, COLLECTED) >= RING) {
      if (Atomics.load(flags, STOP) !== 0) return;
      Atomics.wait(flags, COLLECTED, Atomics.load(flags, COLLECTED), 10);
    }
    const data = encodeFor(k + 1, (performance.timeOrigin + now) / 1000, plan);
    // The send time as ping takes it: the clock read, then at once sendto().
    // The record is published before the send, so that the main thread
    // knows of the ping by the time it can read the reply.
    realtimeInto(clock);
    const at = (k % RING) * RECORD;
    records[at] = now - origin;
    records[at + 1] = view.getUint32(0, true) + view.getInt32(4, true) * 2 ** 32;
    records[at + 2] = view.getUint32(8, true);
    records[at + 3] = data.length;
    Atomics.store(flags, SENT, k + 1);
    try {
      sock.send(data, target);
    } catch {
      // A full send queue or a local error: the ping is lost, which UDP allows.
    }
  }
  scope.postMessage(count);
}

// Tell the main thread that the worker is loaded, so that the schedule starts
// only once sends can be made (loading takes tens of milliseconds).
scope.postMessage(0);
