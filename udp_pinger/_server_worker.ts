/**
 * One receive loop of the UDP ping server (see `serve()` in `server.ts`),
 * on a worker thread of its own: it blocks in `ppoll()` on its socket (one
 * of the server's `SO_REUSEPORT` sockets, opened by the main thread), reads
 * each datagram with its kernel receive time, answers through its own
 * {@linkcode PingService}, and keeps its counters in shared memory.
 *
 * Blocking is what this thread is for: a datagram wakes it straight from
 * `ppoll()`, where a wait on the main thread's event loop would hop threads
 * (about 70 µs on loopback, DESIGN.md). It looks at the stop flag at least
 * every {@linkcode TICK_MS}, and sends its log lines to the main thread in
 * batches, a bounded number in flight ({@linkcode LogRelay}; a worker's
 * `postMessage` does not wait for its event loop).
 *
 * @module
 */
import { DatagramInfo, openSocket, Socket } from "../lib/rawsock/socket.ts";
import { bindFastCalls } from "../lib/rawsock/ffi.ts";
import type { SocketAddress } from "../lib/sockaddr.ts";
import { type Peer, PingService } from "./server.ts";
import { encodePing, encodeStatsRequest, signDatagram, writeStamp } from "./protocol.ts";
import { realtimeInto } from "../lib/rawsock/clock.ts";
import { requestSlice, setRealtime } from "../lib/rawsock/sched.ts";
import { COUNTERS, LogRelay, type WorkerMessage, type WorkerStart } from "./_server_thread.ts";

/** The longest the loop blocks before it looks at the stop flag, sweeps and sends delayed replies. */
const TICK_MS = 20;
/**
 * While datagrams keep coming (one within {@linkcode WARM_FOR_MS}), the loop
 * wakes this often even when none is queued: a thread that sleeps 10 ms
 * between pings wakes slowly and runs its code cold. Measured on loopback,
 * 5 alternating runs of 600 pings at 10 ms under `chrt -f 10`: RTT median
 * 154 µs and p99 334 µs with 20 ms waits, 111 µs and 273 µs with 1 ms ones,
 * for about 3% of a core more while a client pings (nothing when idle).
 */
const WARM_TICK_MS = 1;
/** How long after the last datagram the loop keeps {@linkcode WARM_TICK_MS}. */
const WARM_FOR_MS = 1000;
/**
 * This thread's time slice, in microseconds (the kernel's least; see
 * `requestSlice()`): when a datagram wakes it while other threads use both
 * cores, it runs at once rather than after one of their slices.
 */
const SLICE_US = 100;
/**
 * The real-time class's guard (see {@linkcode ReceiveLoop}): over each
 * window of {@linkcode RT_WINDOW_MS}, a loop busy for more than
 * {@linkcode RT_BUSY_MS} of it leaves the class, and one busy for less than
 * {@linkcode RT_QUIET_MS} in each of {@linkcode RT_QUIET_WINDOWS} windows in a
 * row returns to it. A client pinging every millisecond keeps a loop busy
 * about 3 ms in 100; a flood, all of it.
 */
const RT_WINDOW_MS = 100;
/** See {@linkcode RT_WINDOW_MS}: a fifth of a core. */
const RT_BUSY_MS = 20;
/** See {@linkcode RT_WINDOW_MS}. */
const RT_QUIET_MS = 10;
/** See {@linkcode RT_WINDOW_MS}: a second. */
const RT_QUIET_WINDOWS = 10;
/** How often idle sessions are swept, as the single-threaded server did. */
const SWEEP_MS = 100;
/**
 * Pings the loop answers on loopback before it serves (see {@linkcode prime}).
 * Measured on loopback at 10 ms intervals: cold, 70 µs passed from the
 * thread's wake-up to the reply's `sendto()`.
 */
const PRIME_PINGS = 3000;
/** Every this many priming pings, two new senders (new sessions). */
const PRIME_NEW_SENDER = 250;

interface Delayed {
  due: number;
  data: Uint8Array;
  to: SocketAddress;
  peer: Peer;
  held: boolean;
  txAt: number;
  sessionId: string | undefined;
}

// The worker global scope, typed by hand (see _ticker_worker.ts).
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<WorkerStart>) => void) | null;
  postMessage(message: WorkerMessage): void;
};

scope.onmessage = (event: MessageEvent<WorkerStart>) => {
  const start = event.data;
  try {
    const counters = new Float64Array(
      start.counters,
      start.index * COUNTERS.length * 8,
      COUNTERS.length,
    );
    bindFastCalls({ poll: true });
    try {
      requestSlice(SLICE_US);
    } catch {
      // The default slice: slower wake-ups under load, nothing worse.
    }
    prime(start, counters);
    const relay = start.log
      ? new LogRelay(
        new Int32Array(start.logBacklog),
        start.index,
        (lines) => scope.postMessage({ type: "log", lines }),
      )
      : undefined;
    const loop = new ReceiveLoop(
      new Socket(start.fd, start.family, "udp"),
      new PingService({
        ...start.service,
        log: relay !== undefined ? (line) => relay.add(line) : () => {},
      }),
      {
        maxPending: start.maxPending,
        counters,
        hmac: start.service.hmac,
        realtime: start.realtime,
        ...(relay !== undefined ? { relay } : {}),
      },
    );
    scope.postMessage({ type: "ready" });
    const stop = new Int32Array(start.control);
    while (Atomics.load(stop, 0) === 0) loop.step(TICK_MS);
    // The open sessions' lines are the last: none is dropped.
    relay?.unbound();
    loop.finish();
    relay?.flush();
  } finally {
    scope.postMessage({ type: "stopped" });
  }
};

/**
 * Runs {@linkcode ReceiveLoop.step} on {@linkcode PRIME_PINGS} pings from a
 * socket pair on loopback, with a service and counters of its own, so that
 * V8 has optimized the loop (and its libc calls take their fast path) before
 * the first real ping: as ping's priming does (icmp_pinger/ping.ts). Where
 * there is no loopback of the server's family, it starts cold.
 */
function prime(start: WorkerStart, counters: Float64Array): void {
  const family = start.family;
  const local = { family, address: family === 4 ? "127.0.0.1" : "::1", port: 0 };
  const options = { kind: "udp", family, receiveTtl: false, receiveErrors: false } as const;
  using server = openSocket(options);
  try {
    server.bind(local);
  } catch {
    return;
  }
  const to = server.localAddress();
  // Unsigned, whatever the server's mode: the path to prime is the reply's.
  const { hmac: _, ...plain } = start.service;
  const loop = new ReceiveLoop(server, new PingService({ ...plain, seed: 1 }), {
    maxPending: start.maxPending,
    counters: new Float64Array(counters.length),
  });
  const sink = new Uint8Array(256);
  const info = new DatagramInfo();
  const senders: Socket[] = [];
  try {
    for (let i = 0; i < PRIME_PINGS; i++) {
      // A new sender now and then, and two in turn: V8 gives a function
      // type feedback only after its first few calls, so a path taken
      // only at the start (a new client, a new session's window) would be
      // missing from the optimized code, which the first real client would
      // then throw away.
      if (i % PRIME_NEW_SENDER < 2) {
        const sock = openSocket(options);
        senders.push(sock);
        sock.bind(local);
      }
      const sender = senders[senders.length - 1 - (i & 1)]!;
      // Pings as clients send them: rising sequence numbers, the time now
      // (not 0, which V8 would compile for as a small integer), plain and
      // stamped; and the stats request a client sends before its first
      // ping (and after its last), whose branch would otherwise be missing
      // from the optimized loop: the first ping after one took 0.7 ms.
      const ping = i % PRIME_NEW_SENDER === 1
        ? encodeStatsRequest(`p${i}`)
        : encodePing(i + 1, Date.now() / 1000, i & 2 ? { stamps: true } : { size: 64 });
      sender.send(ping, to);
      loop.step(0);
      while (sender.receiveInto(sink, info) >= 0);
    }
  } catch {
    // Out of descriptors or ports: what ran is primed.
  } finally {
    for (const sock of senders) sock.close();
  }
}

/**
 * One socket's receive loop, a step at a time.
 *
 * With a real-time priority, the loop's thread is in `SCHED_FIFO` while it
 * is lightly loaded: a datagram then wakes it ahead of every normal thread.
 * On a busy machine a normal thread that sleeps most of the time waits for
 * its session's (autogroup's) share of a core, which is small since the
 * group is mostly asleep: on loopback at 10 ms intervals with other work
 * keeping the load average at 3 to 8, replies waited 0.5 to 75 ms in the
 * server now and then (p99 of the server's time 0.7 ms), and 0.1 ms in
 * `SCHED_FIFO`. A loop busy for more than a fifth of a core (a flood, a
 * benchmark) goes back to the normal class at once, so that it never holds
 * a core from the rest of the machine, and returns after a quiet second.
 */
class ReceiveLoop {
  #sock: Socket;
  #service: PingService;
  #maxPending: number;
  #counters: Float64Array;
  #buf = new Uint8Array(65536);
  // The datagram's view of #buf, kept while the length stays the same (a
  // client sends one size), so that reading a datagram allocates nothing.
  #view = this.#buf.subarray(0, 0);
  #info = new DatagramInfo();
  // Delayed replies, in due order (inserted by binary search).
  #delayed: Delayed[] = [];
  #handleOptions = { inPlace: true, wallClock: 0, rxSeconds: -1, rxNanoseconds: 0 };
  #clock = new Uint8Array(16);
  #clockView = new DataView(this.#clock.buffer);
  #lastSender: SocketAddress | undefined;
  #peer: Peer = { hostname: "", port: 0 };
  #lastSweep = performance.now();
  #lastDatagram = -Infinity;
  #hmac: Uint8Array | undefined;
  #relay: LogRelay | undefined;
  // The real-time guard: the priority asked for (0: never), whether the
  // thread is in the class now, and this window's busy time.
  #realtime: number;
  #inRealtime = false;
  #windowStart = performance.now();
  #busy = 0;
  #quietWindows = 0;

  constructor(
    sock: Socket,
    service: PingService,
    options: {
      maxPending: number;
      counters: Float64Array;
      hmac?: Uint8Array | undefined;
      realtime?: number;
      relay?: LogRelay;
    },
  ) {
    this.#hmac = options.hmac;
    this.#relay = options.relay;
    this.#realtime = options.realtime ?? 0;
    this.#sock = sock;
    this.#service = service;
    this.#maxPending = options.maxPending;
    this.#counters = options.counters;
    sock.useReceiveBuffer(this.#buf);
    if (this.#realtime > 0) this.#enterRealtime();
  }

  /** Waits up to `tickMs` for datagrams, answers every one queued, then sends what is due and sweeps. */
  step(tickMs: number): void {
    const sock = this.#sock;
    const service = this.#service;
    const buf = this.#buf;
    const info = this.#info;
    const counters = this.#counters;
    const delayed = this.#delayed;
    let now = performance.now();
    const next = Math.min(this.#lastSweep + SWEEP_MS, delayed[0]?.due ?? Infinity);
    const tick = now - this.#lastDatagram < WARM_FOR_MS ? Math.min(tickMs, WARM_TICK_MS) : tickMs;
    sock.waitSync(Math.min(tick, Math.max(0, next - now)));
    const woke = performance.now();
    let handled = 0;
    for (;;) {
      const n = sock.receiveInto(buf, info);
      if (n < 0) break;
      counters[0]!++;
      now = performance.now();
      // A flood keeps this loop from waiting: leave the real-time class
      // within the step, not at its end.
      if (this.#inRealtime && (++handled & 63) === 0 && this.#busy + now - woke > RT_BUSY_MS) {
        this.#leaveRealtime();
      }
      this.#lastDatagram = now;
      const from = sock.lastSender();
      if (from === undefined) continue;
      // lastSender() returns the same object while the sender stays the same.
      if (from !== this.#lastSender) {
        this.#lastSender = from;
        this.#peer = { hostname: from.address, port: from.port };
      }
      const peer = this.#peer;
      // The kernel's receive time, for heartbeats' one-way delays and
      // stamped pings.
      const options = this.#handleOptions;
      options.wallClock = info.timestampSec >= 0
        ? info.timestampSec * 1000 + info.timestampNsec / 1e6
        : performance.timeOrigin + now;
      options.rxSeconds = info.timestampSec;
      options.rxNanoseconds = info.timestampNsec;
      const malformed = service.malformed;
      if (this.#view.length !== n) this.#view = buf.subarray(0, n);
      const outs = service.handle(this.#view, peer, now, options);
      for (let i = 0; i < outs.length; i++) {
        const out = outs[i]!;
        if (out.delay <= 0) this.#send(out.data, from, out.txAt ?? -1, out.sessionId);
        else if (delayed.length < this.#maxPending) {
          this.#hold({
            due: now + out.delay,
            data: out.data.slice(),
            to: from,
            peer,
            held: out.held ?? false,
            txAt: out.txAt ?? -1,
            sessionId: out.sessionId,
          });
        } else if (out.held) service.release(peer, false);
      }
      if (service.malformed !== malformed) counters[2] = service.malformed;
      counters[4] = service.rejected;
      counters[5] = service.replayed;
    }
    now = performance.now();
    while (delayed.length > 0 && delayed[0]!.due <= now) {
      const item = delayed.shift()!;
      this.#send(item.data, item.to, item.txAt, item.sessionId);
      if (item.held) service.release(item.peer, true);
    }
    if (now - this.#lastSweep >= SWEEP_MS) {
      this.#lastSweep = now;
      service.sweep(now);
    }
    counters[3] = service.clients;
    this.#relay?.flush();
    if (this.#realtime > 0) this.#guard(woke, performance.now());
  }

  /** Books the step's busy time (`woke` to `now`) and moves the thread between the classes. */
  #guard(woke: number, now: number): void {
    this.#busy += now - woke;
    if (this.#inRealtime && this.#busy > RT_BUSY_MS) this.#leaveRealtime();
    if (now - this.#windowStart < RT_WINDOW_MS) return;
    if (this.#inRealtime || this.#busy >= RT_QUIET_MS) this.#quietWindows = 0;
    else if (++this.#quietWindows >= RT_QUIET_WINDOWS) this.#enterRealtime();
    this.#windowStart = now;
    this.#busy = 0;
  }

  #enterRealtime(): void {
    // Refused (no privilege): the normal class, where the guard keeps
    // asking once a quiet second.
    this.#inRealtime = setRealtime(this.#realtime);
    this.#quietWindows = 0;
    this.#counters[6] = this.#inRealtime ? 1 : 0;
  }

  #leaveRealtime(): void {
    setRealtime(0);
    try {
      requestSlice(SLICE_US);
    } catch {
      // The default slice.
    }
    this.#inRealtime = false;
    this.#quietWindows = 0;
    this.#counters[6] = 0;
    this.#counters[7]!++;
  }

  /** Logs the open sessions, as at shutdown. */
  finish(): void {
    this.#service.finish(performance.now());
  }

  /**
   * Sends a reply; `txAt` ≥ 0: with the send time read right before
   * `sendto()` written there; with a session id: signed after that.
   */
  #send(data: Uint8Array, to: SocketAddress, txAt: number, sessionId?: string): void {
    if (txAt >= 0) {
      const v = this.#clockView;
      realtimeInto(this.#clock);
      const seconds = v.getUint32(0, true) + v.getInt32(4, true) * 2 ** 32;
      writeStamp(data, txAt, seconds, v.getUint32(8, true));
    }
    if (sessionId !== undefined && this.#hmac !== undefined) {
      signDatagram(data, this.#hmac, sessionId);
    }
    try {
      this.#sock.send(data, to);
      this.#counters[1]!++;
    } catch {
      // A full send queue or an unreachable client: a lost reply, which UDP allows.
    }
  }

  #hold(item: Delayed): void {
    const delayed = this.#delayed;
    let lo = 0, hi = delayed.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (delayed[mid]!.due <= item.due) lo = mid + 1;
      else hi = mid;
    }
    delayed.splice(lo, 0, item);
  }
}
