/**
 * The client's sender: a worker thread that sends each ping itself at
 * `t0 + k·interval` exactly (no drift), sleeping in `clock_nanosleep()`
 * between sends (see `_ticker_worker.ts`). Sending on that thread keeps the
 * main thread's event loop (reading replies, printing events, timers, its
 * garbage collections) out of the send times: when the worker only woke the
 * main thread, which then sent, the send-time p99 at `-i 1ms` was about
 * twice irtt's (bench/udp.ts). The schedule starts through shared memory
 * (`Atomics.notify`, not a message, which waits for the worker's event
 * loop), and what the worker sent comes back the same way: each send's
 * times, read by {@linkcode Sender.collect}.
 *
 * @module
 */
import type { Family, SocketAddress } from "../lib/sockaddr.ts";
import { AUTH_BYTES, encodeHeartbeat, encodePing, signDatagram } from "./protocol.ts";

/** What the client sends: the same for every datagram of a run but the sequence number and time. */
export interface SendPlan {
  /** Heartbeats instead of pings. */
  heartbeat: boolean;
  /** Milliseconds between sends (a heartbeat carries it). */
  interval: number;
  /** Ping size (0: no padding). */
  size: number;
  /** Stamped pings (`--one-way`). */
  stamps: boolean;
  /** With `--hmac`: the key. */
  key: Uint8Array | undefined;
  /** The run's session id (nonce). */
  session: string;
}

/**
 * With a key, signs `data` for the plan's session, first appending room for
 * the tail to a datagram that has none (a heartbeat, a stats request has its
 * padding).
 *
 * @param data The datagram.
 * @param plan The run's plan.
 * @param room Whether `data` lacks room for the tail.
 * @returns The datagram to send.
 */
export function signFor(data: Uint8Array, plan: SendPlan, room = false): Uint8Array {
  if (plan.key === undefined) return data;
  let signed = data;
  if (room) {
    signed = new Uint8Array(data.length + AUTH_BYTES);
    signed.set(data);
  }
  signDatagram(signed, plan.key, plan.session);
  return signed;
}

/**
 * Datagram `seq` of the plan, sent at `epochSeconds`.
 *
 * @param seq The sequence number.
 * @param epochSeconds The wall-clock send time written into it.
 * @param plan The run's plan.
 * @returns The datagram, signed when the plan has a key.
 */
export function encodeFor(seq: number, epochSeconds: number, plan: SendPlan): Uint8Array {
  if (plan.heartbeat) return signFor(encodeHeartbeat(seq, epochSeconds, plan.interval), plan, true);
  return signFor(
    encodePing(seq, epochSeconds, {
      size: plan.size,
      stamps: plan.stamps,
      auth: plan.key !== undefined,
    }),
    plan,
  );
}

/** Doubles per send in the shared ring: send time (ms after the first's due time), CLOCK_REALTIME seconds and nanoseconds, bytes, due time (ms after the first's). */
export const RECORD = 5;
/** Sends the ring holds before the worker waits for the main thread to collect them. */
export const RING = 16384;
/** Int32 cells of the control array: stop asked, sends made, sends collected, worker done, schedule given. */
export const STOP = 0, SENT = 1, COLLECTED = 2, DONE = 3, GO = 4;
/** Float64 cells of the schedule array, written before `GO`: the first send's time (as `performance.timeOrigin + performance.now()`), the interval in ms, the count (`Infinity`: until stopped). */
export const START = 0, INTERVAL = 1, COUNT = 2;

/** What the main thread gives the worker when it loads it. */
export interface SenderSetup {
  /** The socket's descriptor (the main thread owns it). */
  fd: number;
  /** Its IP version. */
  family: Family;
  /** Where to send. */
  target: SocketAddress;
  /** What to send. */
  plan: SendPlan;
  /** Milliseconds of each wait that are spun rather than slept. */
  spin: number;
  /** Int32 [stop, sent, collected, done, go]. */
  control: SharedArrayBuffer;
  /** Float64 [start, interval, count], read once `go` is set. */
  schedule: SharedArrayBuffer;
  /** Float64 records, {@linkcode RECORD} per send, {@linkcode RING} of them. */
  ring: SharedArrayBuffer;
}

/** One send, as the worker made it. */
export interface SendRecord {
  /** The sequence number (1 for the first). */
  seq: number;
  /** When it was due, on this thread's `performance.now()` clock. */
  scheduled: number;
  /** When it went, on the same clock (read right before `sendto()`). */
  sentAt: number;
  /** CLOCK_REALTIME right before `sendto()`: whole seconds. */
  realtimeSec: number;
  /** Its nanoseconds. */
  realtimeNsec: number;
  /** The datagram's length. */
  bytes: number;
}

/** A running sender; stop it to end the worker. */
export interface Sender extends Disposable {
  /** Hands each send not yet collected to the `onSent` given to `start()`, in order. */
  collect(): void;
  /** Stops sending and ends the worker thread. Safe to call twice. */
  stop(): void;
}

/** A loaded sender worker, ready to start a schedule. */
export interface IdleSender extends Disposable {
  /**
   * Starts the schedule: datagram k + 1 of `plan` at `t0 + k·interval` for
   * k = 0 … count − 1, on the worker thread. A late send goes late, never
   * skipped: skipping would be self-inflicted loss. `onSent` is called from
   * {@linkcode Sender.collect}, which runs after each send (woken by a
   * message) and whenever the caller calls it (before reading replies, so
   * that a reply never comes before its send is known).
   *
   * @param t0 The first send's time, on the `performance.now()` clock.
   * @param options The schedule and what to do with each send.
   * @returns The running sender.
   */
  start(
    t0: number,
    options: {
      interval: number;
      count: number;
      onSent: (send: SendRecord) => void;
    },
  ): Sender;
  /** Ends the worker thread. Safe to call twice. */
  stop(): void;
}

/**
 * Loads the sender's worker thread and resolves once it runs, so that
 * starting the schedule costs nothing on the main thread.
 *
 * @param socket The socket's descriptor and family, and the target.
 * @param options What to send, and how long before each send to spin.
 * @returns The idle sender.
 */
export async function loadSender(
  socket: { fd: number; family: Family; target: SocketAddress },
  options: { plan: SendPlan; spin: number },
): Promise<IdleSender> {
  const control = new SharedArrayBuffer(20);
  const flags = new Int32Array(control);
  const schedule = new SharedArrayBuffer(24);
  const times = new Float64Array(schedule);
  const ring = new SharedArrayBuffer(RING * RECORD * 8);
  const records = new Float64Array(ring);
  const worker = new Worker(new URL("./_ticker_worker.ts", import.meta.url), { type: "module" });
  let stopped = false;
  let collect = () => {};
  const ready = Promise.withResolvers<void>();
  worker.onmessage = (event: MessageEvent<number>) => {
    if (event.data === 0) ready.resolve();
    else if (!stopped) collect();
  };
  worker.onerror = (event) => {
    event.preventDefault();
    ready.reject(new Error(`Cannot start the sender: ${event.message}`));
  };
  let running = false;
  function stop(): void {
    if (stopped) return;
    collect();
    stopped = true;
    Atomics.store(flags, STOP, 1);
    Atomics.notify(flags, STOP);
    Atomics.notify(flags, GO);
    // Wait until the worker is out of its loop (microseconds, or the rest
    // of a sleep of at most 10 ms), so that it never sends on the
    // descriptor after the caller closes it (and perhaps reuses the number).
    for (let i = 0; running && i < 100 && Atomics.load(flags, DONE) === 0; i++) {
      Atomics.wait(flags, DONE, 0, 1);
    }
    worker.terminate();
  }
  const setup: SenderSetup = {
    ...socket,
    plan: options.plan,
    spin: options.spin,
    control,
    schedule,
    ring,
  };
  worker.postMessage(setup);
  try {
    await ready.promise;
  } catch (err) {
    stop();
    throw err;
  }
  return {
    start(t0, { interval, count, onSent }) {
      let collected = 0;
      collect = () => {
        const sent = Atomics.load(flags, SENT);
        if (sent === collected) return;
        for (; collected < sent; collected++) {
          const at = (collected % RING) * RECORD;
          onSent({
            seq: collected + 1,
            scheduled: t0 + records[at + 4]!,
            sentAt: t0 + records[at]!,
            realtimeSec: records[at + 1]!,
            realtimeNsec: records[at + 2]!,
            bytes: records[at + 3]!,
          });
        }
        Atomics.store(flags, COLLECTED, collected);
        Atomics.notify(flags, COLLECTED);
      };
      times[START] = performance.timeOrigin + t0;
      times[INTERVAL] = interval;
      times[COUNT] = count;
      running = true;
      Atomics.store(flags, GO, 1);
      Atomics.notify(flags, GO);
      return { collect: () => collect(), stop, [Symbol.dispose]: stop };
    },
    stop,
    [Symbol.dispose]: stop,
  };
}
