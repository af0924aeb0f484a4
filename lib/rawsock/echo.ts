/**
 * The batched ICMP echo path a flood ping runs ({@linkcode EchoBurst}), and
 * the kernel filter that keeps other pings' replies off a raw socket
 * ({@linkcode echoIdFilter}).
 *
 * V8 compiles an FFI call into a direct call (its "fast call") only inside
 * code its top tier (TurboFan) has optimized, and it optimizes a function
 * after it has run its own bytecode enough times over: a small wrapper
 * method called once per datagram gets there only after 10,000 or more
 * datagrams (measured), while a loop that holds the calls in its own body
 * gets there several times sooner. So {@linkcode EchoBurst.run} holds
 * `clock_gettime`, `sendto` and `recvmsg` in its loop body; the per-request
 * bookkeeping is the caller's, through a handler it calls back. A plain
 * method called again and again keeps its optimized code across the
 * caller's awaits, where an async loop's own code would not.
 *
 * @module
 */
import { checksumRange, verifyRange } from "../_checksum.ts";
import { timespecUs } from "./clock.ts";
import { CLOCK_REALTIME, MSG_DONTWAIT } from "./constants.ts";
import { bindFastCalls, errnoCell, lib } from "./ffi.ts";
import type { BpfInstruction, DatagramInfo, Socket } from "./socket.ts";

export { bindFastCalls };

// ICMP types (RFC 792, RFC 4443).
const ECHO_REPLY_V4 = 0;
const ECHO_REPLY_V6 = 129;
/** Bytes of the send time at the start of an echo's data (where iputils puts its `struct timeval`). */
export const ECHO_TIME_BYTES = 16;
const TIME_BYTES = ECHO_TIME_BYTES;
// Classic BPF opcodes (linux/bpf_common.h): class | size | mode.
const BPF_LD_B_ABS = 0x30;
const BPF_LD_H_ABS = 0x28;
const BPF_LD_B_IND = 0x50;
const BPF_LD_H_IND = 0x48;
const BPF_LDX_MSH = 0xb1;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;

/**
 * A classic BPF program for a raw ICMP socket that drops echo replies whose
 * identifier is not `id` and keeps everything else (errors, which name the
 * request they quote only inside, are sorted out in user space), as iputils
 * attaches. On IPv4 the data starts with the IP header, on IPv6 with the
 * ICMPv6 header.
 *
 * @param family The socket's IP version.
 * @param id The echo identifier to keep.
 * @returns The program, for {@linkcode Socket.attachFilter}.
 *
 * @example
 * ```ts
 * import { echoIdFilter } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(echoIdFilter(4, 0x1234).length, 7);
 * ```
 */
export function echoIdFilter(family: 4 | 6, id: number): BpfInstruction[] {
  const KEEP: BpfInstruction = [BPF_RET_K, 0, 0, 0xffffffff];
  const DROP: BpfInstruction = [BPF_RET_K, 0, 0, 0];
  if (family === 4) {
    return [
      [BPF_LDX_MSH, 0, 0, 0], // X = the IP header's length
      [BPF_LD_B_IND, 0, 0, 0], // A = the ICMP type
      [BPF_JEQ_K, 0, 2, ECHO_REPLY_V4], // not an echo reply: keep
      [BPF_LD_H_IND, 0, 0, 4], // A = the identifier
      [BPF_JEQ_K, 0, 1, id],
      KEEP,
      DROP,
    ];
  }
  return [
    [BPF_LD_B_ABS, 0, 0, 0],
    [BPF_JEQ_K, 0, 2, ECHO_REPLY_V6],
    [BPF_LD_H_ABS, 0, 0, 4],
    [BPF_JEQ_K, 0, 1, id],
    KEEP,
    DROP,
  ];
}

/** What {@linkcode EchoBurst.run} calls back, per request and per reply. */
export interface EchoBurstHandler {
  /** The sequence number of the next request (after the caller's own bookkeeping), or -1 to stop. */
  next(): number;
  /** Request `seq` went out. */
  sent(seq: number): void;
  /** `sendto()` failed with `errno`; the burst ends. */
  sendFailed(errno: number): void;
  /** The reply to the request just sent came, checked: its round trip in microseconds (-1 untimed). */
  replied(seq: number, rttUs: number): void;
  /**
   * Anything else came (a duplicate, a foreign or damaged reply, or any
   * reply when `matchReplies` is off): `length` bytes in the buffer, the
   * details in the `info` given to the constructor.
   * @returns Whether the burst may go on.
   */
  other(length: number): boolean;
}

/** Options of {@linkcode EchoBurst}. */
export interface EchoBurstOptions {
  /** The request: an ICMP (ICMPv6) echo request, e.g. from `buildEcho()`, filled in place per request. */
  request: Uint8Array;
  /** Where replies go (65,535 bytes and an IP header hold any). */
  buffer: Uint8Array;
  /** Receives the details of a reply passed to {@linkcode EchoBurstHandler.other}. */
  info: DatagramInfo;
  /** Whether the request's first 16 data bytes carry its send time. @default {true when the data has room} */
  timed?: boolean;
  /** Recognize plain replies (else every reply goes to `other`). @default {true} */
  matchReplies?: boolean;
}

/**
 * ICMP echo requests and their replies on one connected ICMP socket: stamps
 * a request (sequence number, send time, checksum where the kernel does not
 * fill it in) and runs bursts of send-then-receive, while each reply is in
 * by the time `sendto()` returns (on veth and loopback the whole round trip
 * runs inside it), without allocating.
 *
 * @example A burst of 8 echoes to the loopback address
 * ```ts ignore
 * import { DatagramInfo, EchoBurst, openSocket } from "./mod.ts";
 * import { buildEcho } from "../icmp.ts";
 * using sock = openSocket({ kind: "icmp", family: 4 });
 * sock.connect({ family: 4, address: "127.0.0.1", port: 0 });
 * const request = buildEcho({ type: "request", id: 0, seq: 0, payload: new Uint8Array(56) });
 * const burst = new EchoBurst(sock, { request, buffer: new Uint8Array(65600), info: new DatagramInfo() });
 * let seq = 0;
 * const rtts: number[] = [];
 * burst.run({
 *   next: () => seq < 8 ? ++seq : -1,
 *   sent() {},
 *   sendFailed() {},
 *   replied: (_seq, rttUs) => void rtts.push(rttUs),
 *   other: () => false,
 * });
 * ```
 */
export class EchoBurst {
  #sock: Socket;
  #request: Uint8Array;
  #length: bigint;
  #time: Uint8Array | undefined;
  #rx: Uint8Array;
  #info: DatagramInfo;
  #raw4: boolean;
  #id: number;
  #replyType: number;
  #minLength: number;
  #match: boolean;

  /**
   * Prepares bursts on `sock`, which must be connected.
   *
   * @param sock An ICMP socket (`"icmp"` or `"icmp-raw"`), connected to the target.
   * @param options The request, the receive buffer and what to check.
   */
  constructor(sock: Socket, options: EchoBurstOptions) {
    const request = options.request;
    this.#sock = sock;
    this.#request = request;
    // sendto()'s size_t takes V8's fast path only as a BigInt: made once.
    this.#length = BigInt(request.length);
    const timed = options.timed ?? request.length >= 8 + TIME_BYTES;
    this.#time = timed ? request.subarray(8, 8 + TIME_BYTES) : undefined;
    this.#rx = options.buffer;
    this.#info = options.info;
    this.#raw4 = sock.family === 4 && sock.kind === "icmp-raw";
    // A datagram socket's identifier is the kernel's; a raw one's is ours.
    this.#id = sock.kind === "icmp-raw" ? (request[4]! << 8) | request[5]! : -1;
    this.#replyType = sock.family === 4 ? ECHO_REPLY_V4 : ECHO_REPLY_V6;
    this.#minLength = timed ? 8 + TIME_BYTES : 8;
    this.#match = options.matchReplies ?? true;
  }

  /**
   * Fills in request `seq`: the sequence number, the send time (a `struct
   * timespec`, where iputils puts its `struct timeval`), straight from
   * `clock_gettime()` and as late as possible, and on a raw IPv4 socket the
   * checksum (the kernel fills it in on the others). Allocates nothing: a
   * garbage collection between stamping and sending would land inside the
   * round trip.
   *
   * @param seq The sequence number.
   */
  stamp(seq: number): void {
    const p = this.#request;
    p[6] = seq >> 8;
    p[7] = seq & 0xff;
    if (this.#time !== undefined) lib().clock_gettime(CLOCK_REALTIME, this.#time);
    if (this.#raw4) {
      p[2] = p[3] = 0;
      const sum = checksumRange(p, 0, p.length);
      p[2] = sum >> 8;
      p[3] = sum & 0xff;
    }
  }

  /**
   * The send time of the request last stamped, in milliseconds since the
   * epoch; without a timed request, now.
   *
   * @returns Milliseconds since the epoch.
   */
  sentAtMs(): number {
    if (this.#time === undefined) return performance.timeOrigin + performance.now();
    return timespecUs(this.#request, 8) / 1000;
  }

  /**
   * Sends, then reads the reply, up to `limit` times, while each reply is
   * queued by the time `sendto()` returns and is a plain answer to the
   * request just sent; stops at the first request the handler declines, the
   * first send that fails, an empty queue, or a reply `other()` ends on.
   *
   * @param handler The caller's bookkeeping.
   * @param limit The most requests in this burst.
   * @returns How many requests went out (a failed send not counted).
   */
  run(handler: EchoBurstHandler, limit = 64): number {
    // Everything read more than once is read into a local first: the fewer
    // bytecodes the function holds, the sooner V8 optimizes it.
    const c = lib();
    const sock = this.#sock;
    const fd = sock.fd;
    const rx = this.#rx;
    const direct = sock.directReceive(rx);
    const message = direct.message;
    const packet = this.#request;
    const length = this.#length;
    const time = this.#time;
    const raw4 = this.#raw4;
    const id = this.#id;
    const size = packet.length;
    const minLength = this.#minLength;
    const replyType = this.#replyType;
    const match = this.#match;
    let sent = 0;
    while (sent < limit) {
      const seq = handler.next();
      if (seq < 0) break;
      // As stamp(), inline: the clock read right before the checksum and sendto().
      packet[6] = seq >> 8;
      packet[7] = seq & 0xff;
      if (time !== undefined) c.clock_gettime(CLOCK_REALTIME, time);
      if (raw4) {
        packet[2] = packet[3] = 0;
        const sum = checksumRange(packet, 0, size);
        packet[2] = sum >> 8;
        packet[3] = sum & 0xff;
      }
      if (c.sendto(fd, packet, length, MSG_DONTWAIT, null, 0) < 0) {
        // errno read before any other call (see ffi.ts's errnoCell).
        handler.sendFailed(errnoCell[0]!);
        return sent;
      }
      sent++;
      handler.sent(seq);
      direct.rearm();
      const n = c.recvmsg(fd, message, MSG_DONTWAIT);
      // Nothing yet, or an error pending: the caller's general path.
      if (n < 0) break;
      const at = raw4 ? (rx[0]! & 0x0f) * 4 : 0;
      const receivedUs = direct.timestampUs();
      // An answer to the request just sent, to count and nothing more?
      let plain = match && receivedUs >= 0 && n - at >= minLength && rx[at] === replyType &&
        ((rx[at + 6]! << 8) | rx[at + 7]!) === seq &&
        (id < 0 || ((rx[at + 4]! << 8) | rx[at + 5]!) === id);
      if (plain && raw4) plain = verifyRange(rx, at, n);
      if (!plain) {
        sock.readControl(n, this.#info);
        if (!handler.other(n)) break;
        continue;
      }
      const rttUs = time === undefined ? -1 : receivedUs - timespecUs(rx, at + 8);
      handler.replied(seq, rttUs < 0 && time !== undefined ? 0 : rttUs);
    }
    return sent;
  }
}
