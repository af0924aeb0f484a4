/**
 * The UDP ping server: the course's UDPPingerServer (echo `Ping <seq> <time>`
 * upper-cased on port 12000, dropping some at random), made safe and
 * measurable: seeded loss, delay and duplication, per-client counters with a
 * stats request, heartbeat monitoring, bounded memory and no amplification.
 *
 * The serving logic is {@linkcode PingService}, a function from a datagram to
 * the replies, tested without a socket; {@linkcode serve} runs it in
 * receive loops on worker threads, each on a `SO_REUSEPORT` socket of
 * `lib/rawsock` that it waits on in `ppoll()` (`_server_worker.ts`). The
 * command line (`deno task udp-server`) is `main.ts server`.
 *
 * @example Serving on an ephemeral loopback port
 * ```ts
 * import { serve } from "./server.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
 * assert(server.addr.port > 0);
 * ```
 *
 * @module
 */
import { createRandom } from "../lib/random.ts";
import {
  AUTH_BYTES,
  DEFAULT_PORT,
  encodeStatsReply,
  type Message,
  parseMessage,
  type PingFields,
  readPing,
  type ServerCounters,
  stampOffset,
  toUpperAscii,
  verifyDatagram,
  writeStamps,
} from "./protocol.ts";
import { nonNegative, positive, probability } from "../lib/validate.ts";
import { openSocket, type Socket } from "../lib/rawsock/socket.ts";
import { sharePort } from "../lib/rawsock/share.ts";
import { COUNTERS, type WorkerMessage, type WorkerStart } from "./_server_thread.ts";
import { replayMemory, ReplayTable, SeenWindows } from "./_seen.ts";

/** Behaviour of a {@linkcode PingService}. */
export interface PingServiceOptions {
  /**
   * Probability (0 to 1) of dropping a ping on purpose, as the course's
   * server does with `randint(0, 10) < 4`.
   * @default {0}
   */
  loss?: number;
  /**
   * Delay before each reply, in milliseconds.
   * @default {0}
   */
  delay?: number;
  /**
   * Uniform random variation of the delay, ± this many milliseconds (never below 0).
   * @default {0}
   */
  jitter?: number;
  /**
   * Probability (0 to 1) of sending a reply twice.
   * @default {0}
   */
  duplicate?: number;
  /**
   * PRNG seed: with the same seed, the same pings (by order of arrival) are
   * dropped, delayed and duplicated. Without one, a random seed.
   */
  seed?: number;
  /**
   * Most clients tracked at once; beyond it the least recently seen is
   * forgotten (and logged), so memory stays bounded.
   * @default {10000}
   */
  maxClients?: number;
  /**
   * A client silent for this many milliseconds has its session logged and forgotten.
   * @default {30000}
   */
  sessionTimeout?: number;
  /**
   * A heartbeat client is logged as gone after this many missed beats.
   * @default {3}
   */
  deadAfter?: number;
  /**
   * Most pings per second answered per client (a token bucket that lets
   * {@linkcode RATE_BURST} through at once, as irtt's server allows a burst
   * of 5 before enforcing its minimum interval); the rest are dropped and
   * counted in `drop`. `Infinity`: no cap.
   * @default {Infinity}
   */
  maxRate?: number;
  /**
   * Milliseconds a client's session is answered for, from its first
   * datagram; later pings are dropped and counted in `drop`. `Infinity`: no cap.
   * @default {Infinity}
   */
  maxDuration?: number;
  /**
   * A shared key: answer only datagrams signed with it (HMAC-SHA256, see
   * `signDatagram()` in protocol.ts), refuse replays, and sign every reply.
   * Without it, the course's plain protocol, unauthenticated.
   */
  hmac?: Uint8Array;
  /**
   * With `hmac`: the shared memory of the replay table, so that services on
   * several threads refuse one another's replays ({@linkcode serve} makes
   * one for its receive loops); by default the service has its own, sized
   * for `maxClients` sessions.
   */
  replayMemory?: SharedArrayBuffer;
  /**
   * Where session log lines go.
   * @default {() => {}}
   */
  log?: (line: string) => void;
}

/** A reply the service wants sent. */
export interface Outgoing {
  /** The datagram. */
  data: Uint8Array;
  /** How long to wait before sending it, in milliseconds (0: now). */
  delay: number;
  /**
   * A delayed first reply, counted as `held` until the caller reports it
   * sent (or given up) with {@linkcode PingService.release}.
   */
  held?: boolean;
  /**
   * The echo of a stamped ping: where its send time goes. Write it with
   * `writeStamp()` (protocol.ts) right before sending; until then it reads
   * zero.
   */
  txAt?: number | undefined;
  /**
   * With `hmac`: the client's session id, to sign the reply with
   * (`signDatagram()`, protocol.ts) after the send time is written, right
   * before sending.
   */
  sessionId?: string | undefined;
}

/** No replies, returned by {@linkcode PingService.handle} in place. */
const NONE: Outgoing[] = [];

/** Where a datagram came from: a client's address and port. */
export interface Peer {
  /** The address, as text. */
  hostname: string;
  /** The UDP port. */
  port: number;
}

interface Heartbeat {
  interval: number;
  beats: number;
  lost: number;
  lastSeq: number;
  lastAt: number;
  oneWayMin: number;
  oneWayMax: number;
  oneWaySum: number;
}

interface Session {
  key: string;
  hostname: string;
  port: number;
  firstSeen: number;
  lastSeen: number;
  counters: ServerCounters;
  malformed: number;
  // Duplicate detection over a sliding window of sequence numbers, as the
  // RFC 4303 §3.4.3 anti-replay window: memory per client is fixed.
  seen: SeenWindows;
  heartbeat: Heartbeat | undefined;
  // --max-rate's token bucket: tokens left, as of tokensAt.
  tokens: number;
  tokensAt: number;
}

/** Pings a client may send at once under `maxRate` (irtt's server allows a burst of 5). */
export const RATE_BURST = 5;

function peerKey(peer: Peer): string {
  return peer.hostname.includes(":")
    ? `[${peer.hostname}]:${peer.port}`
    : `${peer.hostname}:${peer.port}`;
}

function fmtMs(ms: number): string {
  return ms.toFixed(3);
}

/**
 * The server's logic, without a socket: give it each datagram with its
 * sender and the time, and it returns the replies to send. Time is passed in
 * (milliseconds on a monotonic clock) so tests drive it directly.
 *
 * @example Echoing a ping, ignoring junk
 * ```ts
 * import { PingService } from "./server.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const service = new PingService();
 * const peer = { hostname: "127.0.0.1", port: 5000 };
 * const out = service.handle(new TextEncoder().encode("Ping 1 2.5"), peer, 0);
 * assertEquals(new TextDecoder().decode(out[0]!.data), "PING 1 2.5");
 * assertEquals(service.handle(new Uint8Array([1, 2]), peer, 1).length, 0);
 * ```
 */
export class PingService {
  #loss: number;
  #delay: number;
  #jitter: number;
  #duplicate: number;
  #maxClients: number;
  #sessionTimeout: number;
  #deadAfter: number;
  #log: (line: string) => void;
  // Separate streams, so that changing --delay or --duplicate does not move
  // which pings --loss drops for a given seed.
  #lossRandom: () => number;
  #delayRandom: () => number;
  #dupRandom: () => number;
  #sessions = new Map<string, Session>();
  // The most recently seen session, i.e. the Map's last entry. A busy client
  // sends runs of pings, and matching it by address skips building the key
  // and re-inserting into the Map: together most of the per-ping cost under
  // load (bench/udp.ts).
  #newest: Session | undefined;
  #malformed = 0;
  #hmac: Uint8Array | undefined;
  #maxRate: number;
  #maxDuration: number;
  #rejected = 0;
  #replayed = 0;
  // Signed sessions by id, with the replay window of each (as the
  // per-address one), bounded as the sessions are.
  #replays: ReplayTable | undefined;
  // What handle() fills and returns in place (see its inPlace option), so
  // that a ping's way from the socket to its echo allocates nothing: a
  // scavenge every few thousand datagrams stalls a reply for 0.1 to 0.7 ms.
  #fields: PingFields = { seq: 0, time: NaN };
  #first: Outgoing = { data: new Uint8Array(0), delay: 0, held: false };
  #second: Outgoing = { data: new Uint8Array(0), delay: 0, held: false };
  #one: Outgoing[] = [this.#first];
  #two: Outgoing[] = [this.#first, this.#second];

  /**
   * Creates the service.
   *
   * @param options Loss, delay, duplication, limits and the log sink.
   * @throws {RangeError} If a probability is outside 0..1 or a limit is not positive.
   */
  constructor(options: PingServiceOptions = {}) {
    this.#loss = probability("loss", options.loss ?? 0);
    this.#duplicate = probability("duplicate", options.duplicate ?? 0);
    this.#delay = nonNegative("delay", options.delay ?? 0);
    this.#jitter = nonNegative("jitter", options.jitter ?? 0);
    this.#maxClients = positive("maxClients", options.maxClients ?? 10000);
    this.#sessionTimeout = positive("sessionTimeout", options.sessionTimeout ?? 30000);
    this.#deadAfter = positive("deadAfter", options.deadAfter ?? 3);
    this.#log = options.log ?? (() => {});
    this.#hmac = options.hmac;
    if (options.hmac !== undefined) {
      this.#replays = new ReplayTable(options.replayMemory ?? replayMemory(this.#maxClients));
    }
    this.#maxRate = options.maxRate === undefined || options.maxRate === Infinity
      ? Infinity
      : positive("maxRate", options.maxRate);
    this.#maxDuration = options.maxDuration === undefined || options.maxDuration === Infinity
      ? Infinity
      : positive("maxDuration", options.maxDuration);
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
    this.#lossRandom = createRandom(seed);
    this.#delayRandom = createRandom(seed + 1);
    this.#dupRandom = createRandom(seed + 2);
  }

  /** With `hmac`: datagrams refused for a missing or wrong MAC, or a send time outside the session timeout. */
  get rejected(): number {
    return this.#rejected;
  }

  /** With `hmac`: signed pings and heartbeats refused as copies of ones already seen. */
  get replayed(): number {
    return this.#replayed;
  }

  /** Datagrams ignored because they were not messages of the protocol. */
  get malformed(): number {
    return this.#malformed;
  }

  /** How many clients are tracked now. */
  get clients(): number {
    return this.#sessions.size;
  }

  /**
   * Returns a copy of one client's counters.
   *
   * @param peer The client.
   * @returns Its counters, or `undefined` if it is not tracked.
   */
  counters(peer: Peer): ServerCounters | undefined {
    const s = this.#sessions.get(peerKey(peer));
    return s && { ...s.counters };
  }

  /**
   * Handles one datagram.
   *
   * @param data The datagram.
   * @param peer Its sender.
   * @param now The receive time, in milliseconds on a monotonic clock.
   * @param options The wall clock, for heartbeat one-way delays.
   * @returns The replies to send, each never longer than `data`.
   */
  handle(
    data: Uint8Array,
    peer: Peer,
    now: number,
    options: {
      /**
       * Milliseconds since the Unix epoch at receipt.
       * @default {Date.now()}
       */
      wallClock?: number;
      /**
       * Upper-case a ping's echo in `data` itself instead of a copy, and
       * return an array (and entries) that the next call reuses: a ping
       * then allocates nothing. The caller must not reuse `data` until the
       * echo is sent, nor keep the array past the next call.
       * @default {false}
       */
      inPlace?: boolean;
      /**
       * The kernel's receive time, whole seconds since the epoch, for the
       * echo of a stamped ping; negative: none, `wallClock` stands in.
       * @default {-1}
       */
      rxSeconds?: number;
      /**
       * Its nanoseconds.
       * @default {0}
       */
      rxNanoseconds?: number;
    } = {},
  ): Outgoing[] {
    const key = this.#hmac;
    const inPlace = options.inPlace ?? false;
    const none = inPlace ? NONE : [];
    let sessionId: string | undefined;
    let body = data;
    if (key !== undefined) {
      // Authenticated mode: nothing without a valid tail is answered.
      sessionId = verifyDatagram(data, key);
      if (sessionId === undefined) {
        this.#rejected++;
        return none;
      }
      body = data.subarray(0, data.length - AUTH_BYTES);
    }
    // A ping is read into reused fields; anything else is parsed.
    const fields = this.#fields;
    const ping = readPing(body, fields);
    const message = ping === null ? parseMessage(body) : undefined;
    if (ping === false || (ping === null && (message?.kind ?? "stats-reply") === "stats-reply")) {
      this.#malformed++;
      const s = this.#sessions.get(peerKey(peer));
      if (s) s.malformed++;
      return none;
    }
    if (sessionId !== undefined && message?.kind !== "stats") {
      // A signed ping or heartbeat counts once per session id and sequence
      // number, from whatever address (a copy from elsewhere is a replay),
      // and only while its signed send time is within the session timeout
      // of ours (so a replay cannot wait for its session to be forgotten).
      const wall = options.wallClock ?? Date.now();
      const beat = message?.kind === "heartbeat" ? message : undefined;
      const sent = beat ? beat.time : fields.time;
      if (Number.isNaN(sent) || Math.abs(wall - sent * 1000) > this.#sessionTimeout) {
        this.#rejected++;
        return none;
      }
      if (!this.#replays!.fresh(sessionId, beat ? beat.seq : fields.seq, wall)) {
        this.#replayed++;
        return none;
      }
    }
    const session = this.#touch(peer, now);
    switch (ping ? "ping" : message!.kind) {
      case "ping": {
        const out = this.#ping(session, fields.seq, data, inPlace);
        const echo = out[0]?.data;
        const at = echo === undefined ? -1 : stampOffset(echo, key ? AUTH_BYTES : 0);
        if (at >= 0) {
          let seconds = options.rxSeconds ?? -1, nanoseconds = options.rxNanoseconds ?? 0;
          if (seconds < 0) {
            const ms = options.wallClock ?? Date.now();
            seconds = Math.floor(ms / 1000);
            nanoseconds = Math.round((ms - seconds * 1000) * 1e6);
          }
          const txAt = writeStamps(echo!, at, seconds, nanoseconds);
          for (const o of out) o.txAt = txAt;
        }
        if (sessionId !== undefined) { for (const o of out) o.sessionId = sessionId; }
        return out;
      }
      case "stats": {
        if (message?.kind !== "stats") return none;
        const tail = sessionId === undefined ? 0 : AUTH_BYTES;
        const reply = encodeStatsReply(message.nonce, session.counters, {
          maxSize: data.length - tail,
        });
        if (reply === undefined) return [];
        if (sessionId === undefined) return [{ data: reply, delay: 0 }];
        const signed = new Uint8Array(reply.length + AUTH_BYTES);
        signed.set(reply);
        return [{ data: signed, delay: 0, sessionId }];
      }
      case "heartbeat":
        if (message?.kind === "heartbeat") {
          this.#heartbeat(session, message, now, options.wallClock ?? Date.now());
        }
        return none;
    }
    return none;
  }

  /**
   * Logs and forgets idle sessions and heartbeat clients that are gone. Call
   * it periodically (the socket server does, every 100 ms).
   *
   * @param now The time, in milliseconds on the same clock as {@linkcode PingService.handle}.
   */
  sweep(now: number): void {
    for (const s of this.#sessions.values()) {
      const hb = s.heartbeat;
      if (hb) {
        const silence = now - hb.lastAt;
        if (silence > this.#deadAfter * hb.interval) {
          const avg = hb.beats > 0 ? hb.oneWaySum / hb.beats : NaN;
          this.#log(
            `${s.key} gone: no heartbeat for ${Math.floor(silence / hb.interval)} beats ` +
              `(${silence.toFixed(0)} ms, --dead-after ${this.#deadAfter}); ` +
              `${hb.beats} beats, ${hb.lost} lost, last seq ${hb.lastSeq}, one-way delay ` +
              `min/avg/max ${fmtMs(hb.oneWayMin)}/${fmtMs(avg)}/${fmtMs(hb.oneWayMax)} ms`,
          );
          this.#forget(s);
        }
      } else if (now - s.lastSeen > this.#sessionTimeout) {
        this.#end(s, "idle", now);
      }
    }
  }

  /**
   * Logs every open session and forgets them, as at shutdown.
   *
   * @param now The time, in milliseconds on the same clock as {@linkcode PingService.handle}.
   */
  finish(now: number): void {
    for (const s of [...this.#sessions.values()]) this.#end(s, "server stopped", now);
  }

  #touch(peer: Peer, now: number): Session {
    const newest = this.#newest;
    if (newest !== undefined && newest.port === peer.port && newest.hostname === peer.hostname) {
      newest.lastSeen = now;
      return newest;
    }
    const key = peerKey(peer);
    let s = this.#sessions.get(key);
    if (s) {
      // Re-insert so the Map's order is least recently seen first.
      this.#sessions.delete(key);
    } else {
      if (this.#sessions.size >= this.#maxClients) {
        const oldest = this.#sessions.values().next().value;
        if (oldest) this.#end(oldest, "evicted: too many clients", now);
      }
      s = {
        key,
        hostname: peer.hostname,
        port: peer.port,
        firstSeen: now,
        lastSeen: now,
        counters: { rx: 0, dup: 0, drop: 0, tx: 0, extra: 0, held: 0 },
        malformed: 0,
        seen: new SeenWindows(1),
        heartbeat: undefined,
        tokens: RATE_BURST,
        tokensAt: now,
      };
    }
    s.lastSeen = now;
    this.#sessions.set(key, s);
    this.#newest = s;
    return s;
  }

  #end(s: Session, reason: string, now: number): void {
    const c = s.counters;
    const secs = ((now - s.firstSeen) / 1000).toFixed(1);
    const beats = s.heartbeat ? `, ${s.heartbeat.beats} heartbeats` : "";
    this.#log(
      `${s.key} session ended (${reason}): ${c.rx} pings, ${c.tx} replied, ${c.drop} dropped, ` +
        `${c.dup} duplicate, ${c.extra} extra replies, ${s.malformed} malformed${beats}, ${secs} s`,
    );
    this.#forget(s);
  }

  #forget(s: Session): void {
    this.#sessions.delete(s.key);
    if (this.#newest === s) this.#newest = undefined;
  }

  /** Whether a ping of session `s` may be answered under `maxRate` and `maxDuration`. */
  #allowed(s: Session): boolean {
    const now = s.lastSeen;
    if (now - s.firstSeen > this.#maxDuration) return false;
    if (this.#maxRate === Infinity) return true;
    s.tokens = Math.min(RATE_BURST, s.tokens + ((now - s.tokensAt) / 1000) * this.#maxRate);
    s.tokensAt = now;
    if (s.tokens < 1) return false;
    s.tokens--;
    return true;
  }

  /** Marks `seq` seen; returns false when it was already seen (a duplicate). */
  #firstTime(s: Session, seq: number): boolean {
    // Older than the window: cannot tell, so count it as new (as IPsec's
    // window would reject it; here counting is the safer error).
    return s.seen.mark(0, seq, true);
  }

  #ping(s: Session, seq: number, data: Uint8Array, inPlace: boolean): Outgoing[] {
    const c = s.counters;
    const first = this.#firstTime(s, seq);
    if (!this.#allowed(s)) {
      // Over --max-rate or past --max-duration: dropped by the server, so
      // the client's upstream and downstream loss stay right.
      if (first) {
        c.rx++;
        c.drop++;
      } else c.dup++;
      return inPlace ? NONE : [];
    }
    if (!first) {
      // A duplicated request is answered (the echo is what a pinger
      // measures) but not counted again, and draws no random numbers, so a
      // duplicating network does not shift the seeded drop pattern.
      c.dup++;
      return this.#replies(upper(data, inPlace), this.#delay, -1, inPlace);
    }
    c.rx++;
    if (this.#loss > 0 && this.#lossRandom() < this.#loss) {
      c.drop++;
      return inPlace ? NONE : [];
    }
    const echo = upper(data, inPlace);
    const delay = this.#nextDelay();
    let again = -1;
    if (this.#duplicate > 0 && this.#dupRandom() < this.#duplicate) {
      c.extra++;
      again = this.#nextDelay();
    }
    const out = this.#replies(echo, delay, again, inPlace);
    // A reply counts in tx once handed to the socket, so that a client
    // asking for the counters while replies are still held back by --delay
    // does not take them for downstream loss.
    if (delay > 0) {
      c.held++;
      out[0]!.held = true;
    } else c.tx++;
    return out;
  }

  /** The echo `data` after `delay` ms, and again after `again` ms unless it is negative. */
  #replies(data: Uint8Array, delay: number, again: number, inPlace: boolean): Outgoing[] {
    if (!inPlace) return again < 0 ? [{ data, delay }] : [{ data, delay }, { data, delay: again }];
    for (const o of again < 0 ? this.#one : this.#two) {
      o.data = data;
      o.held = false;
      o.txAt = undefined;
      o.sessionId = undefined;
    }
    this.#first.delay = delay;
    this.#second.delay = again;
    return again < 0 ? this.#one : this.#two;
  }

  /**
   * Reports that a held reply (see {@linkcode Outgoing.held}) left: sent,
   * counted in `tx`; or given up (too many pending), counted in `drop`.
   *
   * @param peer The client it was for.
   * @param sent Whether it was handed to the socket.
   */
  release(peer: Peer, sent: boolean): void {
    const s = this.#sessions.get(peerKey(peer));
    if (s === undefined || s.counters.held === 0) return;
    s.counters.held--;
    if (sent) s.counters.tx++;
    else s.counters.drop++;
  }

  #nextDelay(): number {
    if (this.#jitter === 0) return this.#delay;
    return Math.max(0, this.#delay + (this.#delayRandom() * 2 - 1) * this.#jitter);
  }

  #heartbeat(s: Session, m: Extract<Message, { kind: "heartbeat" }>, now: number, wall: number) {
    const oneWay = wall - m.time * 1000;
    let hb = s.heartbeat;
    if (hb === undefined) {
      hb = {
        interval: m.interval,
        beats: 0,
        lost: 0,
        lastSeq: m.seq - 1,
        lastAt: now,
        oneWayMin: Infinity,
        oneWayMax: -Infinity,
        oneWaySum: 0,
      };
      s.heartbeat = hb;
    }
    hb.interval = m.interval;
    if (m.seq > hb.lastSeq) {
      const missing = m.seq - hb.lastSeq - 1;
      if (missing > 0) {
        hb.lost += missing;
        this.#log(
          `${s.key} heartbeat: ${missing} lost (seq ${hb.lastSeq + 1}..${m.seq - 1}), ` +
            `gap ${(now - hb.lastAt).toFixed(0)} ms`,
        );
      }
      hb.lastSeq = m.seq;
    }
    hb.beats++;
    hb.lastAt = now;
    hb.oneWaySum += oneWay;
    if (oneWay < hb.oneWayMin) hb.oneWayMin = oneWay;
    if (oneWay > hb.oneWayMax) hb.oneWayMax = oneWay;
  }
}

function upper(data: Uint8Array, inPlace: boolean): Uint8Array {
  if (!inPlace) return toUpperAscii(data);
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b >= 0x61 && b <= 0x7a) data[i] = b - 0x20;
  }
  return data;
}

/** Options of {@linkcode serve}: the socket, then the service's behaviour. */
export interface ServeOptions extends PingServiceOptions {
  /**
   * Address to bind: an IPv4 or IPv6 literal.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * UDP port to bind; 0 picks a free one.
   * @default {12000}
   */
  port?: number;
  /**
   * Do not log sessions (overrides `log`).
   * @default {false}
   */
  quiet?: boolean;
  /**
   * Most delayed replies waiting at once, per thread; more are not sent, so
   * memory stays bounded.
   * @default {10000}
   */
  maxPending?: number;
  /**
   * Receive loops, each on a worker thread of its own with a socket of its
   * own, all bound to the same port with `SO_REUSEPORT`: the kernel spreads
   * clients over them by their address and port, so one client's pings all
   * reach the same loop (and its counters). Each loop tracks at most
   * `maxClients / threads` clients. The command line's default is the
   * number of cores.
   * @default {1}
   */
  threads?: number;
  /**
   * `SCHED_FIFO` priority (1 to 99) for each receive loop's thread while it
   * is lightly loaded; 0 keeps them in the normal class. A real-time loop
   * runs as soon as a datagram wakes it, where a normal one on a busy
   * machine may wait milliseconds for its share of a core, which would be
   * counted in every round trip. A loop busy for more than a fifth of a core
   * over 100 ms (a flood, a load test) returns to the normal class at once,
   * and to the real-time class after a quiet second, so that it never holds
   * a core from the rest of the machine. Needs `CAP_SYS_NICE` (root) or an
   * `RLIMIT_RTPRIO` of at least the priority; without it the loops stay in
   * the normal class. The command line's default is 1.
   * @default {0}
   */
  realtime?: number;
}

/** One receive loop's counters, from {@linkcode UdpPingServer.threads}. */
export interface ThreadCounters {
  /** Datagrams received. */
  datagrams: number;
  /** Replies sent (echoes, duplicates, stats replies). */
  replies: number;
  /** Datagrams ignored as not of the protocol. */
  malformed: number;
  /** Clients tracked now. */
  clients: number;
  /** With `hmac`: datagrams refused for a missing or wrong MAC or a stale send time. */
  rejected: number;
  /** With `hmac`: signed pings refused as replays. */
  replayed: number;
  /** Whether the loop's thread is in the real-time class now (see {@linkcode ServeOptions.realtime}). */
  realtime: boolean;
  /** Times the loop left the real-time class because it was busy. */
  realtimeExits: number;
}

/** A running server; dispose of it (or call `close()`) to stop it. */
export interface UdpPingServer extends AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /**
   * Each receive loop's counters, read from shared memory (up to date as of
   * the last datagram each loop handled).
   *
   * @returns One entry per thread.
   */
  threads(): ThreadCounters[];
  /**
   * Resolves once every receive loop runs. Datagrams that come earlier wait
   * in the sockets' queues, so waiting for this is needed only to time
   * replies from the first one.
   */
  readonly ready: Promise<void>;
  /** Stops serving, logs open sessions, and resolves when the sockets are closed. */
  close(): Promise<void>;
}

/**
 * Serves the UDP ping protocol on sockets of `lib/rawsock`, one receive
 * loop per thread (see {@linkcode ServeOptions.threads}), each reading
 * datagrams with their kernel receive times (`SO_TIMESTAMPNS`).
 *
 * The sockets are bound before this returns (so a taken port throws here);
 * the loops start on their threads within tens of milliseconds, and what
 * comes meanwhile waits in the sockets' queues.
 *
 * @param options Address, port, threads and the service's behaviour.
 * @returns The running server.
 * @throws {TypeError} If the hostname is not an IP address.
 * @throws {SocketError} If the port cannot be bound (e.g. EADDRINUSE).
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const server = serve({ hostname: "::1", port: 0, threads: 2, seed: 1, quiet: true });
 * assertEquals(server.threads().length, 2);
 * await server.close();
 * ```
 */
export function serve(options: ServeOptions = {}): UdpPingServer {
  const custom = options.log;
  // A batch of lines from a loop: one write to stderr, or one call per line of a custom sink.
  const log = options.quiet ? undefined : custom !== undefined
    ? (lines: string[]) => {
      for (const line of lines) custom(line);
    }
    : (lines: string[]) => console.error(lines.join("\n"));
  const hostname = options.hostname ?? "0.0.0.0";
  const family = hostname.includes(":") ? 6 : 4;
  const threads = positive("threads", options.threads ?? 1);
  const realtime = options.realtime ?? 0;
  if (!(Number.isInteger(realtime) && realtime >= 0 && realtime <= 99)) {
    throw new RangeError(`Cannot use real-time priority ${realtime}: it must be 0 to 99`);
  }
  if (!Number.isInteger(threads)) {
    throw new RangeError(`Cannot use threads ${threads}: it must be an integer >= 1`);
  }
  const service: Omit<PingServiceOptions, "log"> = {
    ...options,
    // Every loop the same seed: one client meets one loop, so its drops are
    // what a single-threaded server with that seed would drop.
    seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
    maxClients: Math.max(1, Math.ceil((options.maxClients ?? 10000) / threads)),
  };
  // One replay table for all the loops: a copy from another address can
  // reach a loop that never saw the original.
  if (options.hmac !== undefined) service.replayMemory = replayMemory(options.maxClients ?? 10000);
  delete (service as { log?: unknown }).log;
  const sockets = bindAll(hostname, family, options.port ?? DEFAULT_PORT, threads);
  const port = sockets[0]!.localAddress().port;
  const control = new SharedArrayBuffer(4);
  const counters = new SharedArrayBuffer(threads * COUNTERS.length * 8);
  const logBacklog = new SharedArrayBuffer(threads * 4);
  const inFlight = new Int32Array(logBacklog);
  const values = new Float64Array(counters);
  const stopped: Promise<void>[] = [];
  const started: Promise<void>[] = [];
  const workers = sockets.map((sock, index) => {
    const worker = new Worker(new URL("./_server_worker.ts", import.meta.url), { type: "module" });
    const done = Promise.withResolvers<void>();
    const running = Promise.withResolvers<void>();
    stopped.push(done.promise);
    started.push(running.promise);
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      const m = event.data;
      if (m.type === "log") {
        try {
          log?.(m.lines);
        } finally {
          Atomics.sub(inFlight, index, m.lines.length);
        }
      } else if (m.type === "ready") running.resolve();
      else {
        running.resolve();
        done.resolve();
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      console.error(`udp-server: receive loop ${index} failed: ${event.message}`);
      running.resolve();
      done.resolve();
    };
    const start: WorkerStart = {
      fd: sock.fd,
      family,
      index,
      service,
      log: log !== undefined,
      logBacklog,
      maxPending: options.maxPending ?? 10000,
      realtime,
      control,
      counters,
    };
    worker.postMessage(start);
    return worker;
  });
  let closing: Promise<void> | undefined;
  function close(): Promise<void> {
    closing ??= (async () => {
      Atomics.store(new Int32Array(control), 0, 1);
      await Promise.all(stopped);
      for (const worker of workers) worker.terminate();
      for (const sock of sockets) sock.close();
    })();
    return closing;
  }
  return {
    addr: { transport: "udp", hostname, port },
    ready: Promise.all(started).then(() => {}),
    threads: () =>
      sockets.map((_, i) => {
        const at = i * COUNTERS.length;
        return {
          datagrams: values[at]!,
          replies: values[at + 1]!,
          malformed: values[at + 2]!,
          clients: values[at + 3]!,
          rejected: values[at + 4]!,
          replayed: values[at + 5]!,
          realtime: values[at + 6] === 1,
          realtimeExits: values[at + 7]!,
        };
      }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The receive buffer each loop's socket asks for (`SO_RCVBUF`; the kernel
 * caps it at `net.core.rmem_max`, 208 KiB by default, 4 MiB on the
 * development machine): at the default, a loop stalled for 0.3 s while a
 * client pings every millisecond (a busy machine's stalls are longer)
 * overflowed it, and the pings lost in it counted as upstream loss (a 2 s
 * stop lost 1346 of the 2000). 4 MiB holds about 10,000 pings.
 */
const RECEIVE_BUFFER = 4 * 1024 * 1024;

/**
 * Opens `threads` UDP sockets on one address and port with `SO_REUSEPORT`.
 * The port is first bound alone, without the option: that fails if anyone
 * holds it, even another server with `SO_REUSEPORT`, which would otherwise
 * silently share our datagrams (and, for port 0, picks the port).
 */
function bindAll(hostname: string, family: 4 | 6, port: number, threads: number): Socket[] {
  const address = { family, address: hostname, port };
  const probe = openSocket({
    kind: "udp",
    family,
    receiveTtl: false,
    receiveErrors: false,
    receiveBufferSize: RECEIVE_BUFFER,
  });
  try {
    probe.bind(address);
    address.port = probe.localAddress().port;
  } catch (err) {
    probe.close();
    throw err;
  }
  // The probe is the first loop's socket: closing it and binding another
  // would leave a moment in which another program (or a parallel test) can
  // take the port. Bound without SO_REUSEPORT, it checked that nothing
  // holds the port; set now, the option lets the other loops' sockets join.
  if (threads === 1) return [probe];
  const sockets: Socket[] = [probe];
  try {
    sharePort(probe);
    for (let i = 1; i < threads; i++) {
      const sock = openSocket({
        kind: "udp",
        family,
        receiveTtl: false,
        receiveErrors: false,
        receiveBufferSize: RECEIVE_BUFFER,
        reusePort: true,
      });
      sockets.push(sock);
      sock.bind(address);
    }
  } catch (err) {
    for (const sock of sockets) sock.close();
    throw err;
  }
  return sockets;
}
