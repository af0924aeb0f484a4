/**
 * The TCP SYN probe method (`-T`): half-open probes from a raw TCP socket,
 * as Butskoy traceroute's "tcp" method. A SYN-ACK (open port) or a RST
 * (closed port) from the destination ends the trace; the kernel answers a
 * SYN-ACK with a RST itself, since no socket owns the port. ICMP errors are
 * read from a raw ICMP socket. Both need privilege (root or CAP_NET_RAW).
 *
 * Classic mode gives each probe its own source port and matches replies by
 * port; Paris mode keeps the 5-tuple constant and tells probes apart by the
 * sequence number (acknowledged as `seq + 1`, quoted in ICMP errors).
 *
 * @module
 */
import { checksum, parseIcmp, pseudoHeaderSum } from "../lib/icmp.ts";
import { parseQuoted } from "../lib/icmp_error.ts";
import { realtimeNs } from "../lib/rawsock/clock.ts";
import type { Socket } from "../lib/rawsock/socket.ts";
import {
  classifiedReply,
  classifyIcmp,
  type Flow,
  type MethodOptions,
  openProbeSocket,
  type ProbeMethod,
  type ProbeReply,
  rawPayload,
  sourceAddressFor,
  waitAny,
} from "./probe.ts";

const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;
const SYN_LENGTH = 24; // 20-byte header + the MSS option

/**
 * Opens the TCP SYN probe method.
 *
 * @param options Destination, port (constant), Paris mode.
 * @returns The method; dispose of it to close its sockets.
 * @throws {Deno.errors.PermissionDenied} Without raw socket privilege.
 *
 * @example
 * ```ts ignore
 * import { openTcpMethod } from "./tcp.ts";
 * using m = openTcpMethod({ family: 4, destination: "127.0.0.1", port: 80, packetLength: 60, paris: false, queries: 3 });
 * ```
 */
export function openTcpMethod(options: MethodOptions): ProbeMethod {
  return new TcpMethod(options);
}

class TcpMethod implements ProbeMethod {
  readonly name = "tcp" as const;
  readonly packetLength: number;
  #o: MethodOptions;
  #tcp: Socket;
  #icmp: Socket;
  #source: string;
  #basePort: number;
  #baseSeq: number;
  #pseudo: number;
  #constant = false;
  #ttl = 0;

  constructor(o: MethodOptions) {
    this.#o = o;
    const ipHeader = o.family === 4 ? 20 : 40;
    // Butskoy prints the asked-for length; the SYN itself carries no data.
    this.packetLength = Math.max(o.packetLength, ipHeader + 20);
    // A raw TCP socket gets a copy of every TCP segment the host receives:
    // a large buffer keeps a busy host's traffic from crowding out replies.
    this.#tcp = openProbeSocket({
      kind: "tcp-raw",
      family: o.family,
      receiveBufferSize: 1 << 20,
      // Nothing reads the TTL of a reply; every option set is start-up time.
      receiveTtl: false,
    });
    try {
      this.#icmp = openProbeSocket({
        kind: "icmp-raw",
        family: o.family,
        receiveBufferSize: 1 << 20,
        receiveTtl: false,
      });
    } catch (err) {
      this.#tcp.close();
      throw err;
    }
    try {
      this.#icmp.setIcmpFilter(o.family === 4 ? [3, 11] : [1, 2, 3]);
      if (o.device !== undefined) {
        this.#tcp.bindToDevice(o.device);
        this.#icmp.bindToDevice(o.device);
      }
      this.#source = o.source ?? sourceAddressFor(o.family, o.destination, o.device);
      if (o.source !== undefined) this.#tcp.bind({ family: o.family, address: o.source, port: 0 });
      // Probes only need values unlikely to clash with other traffic, not
      // secret ones: Math.random() spares start-up the first-use cost of the
      // Web Crypto RNG (about 0.2 ms).
      // Ephemeral range (Linux default 32768–60999), leaving room for the
      // per-probe ports of classic mode.
      this.#basePort = o.sourcePort ?? 32768 + Math.floor(Math.random() * 25000);
      // A fixed source port (--sport) means probes differ by sequence only.
      this.#constant = o.paris || o.sourcePort !== undefined;
      this.#baseSeq = Math.floor(Math.random() * 0x1_0000_0000) >>> 0;
      this.#pseudo = pseudoHeaderSum(this.#source, o.destination, 6, SYN_LENGTH);
    } catch (err) {
      this.#tcp.close();
      this.#icmp.close();
      throw err;
    }
  }

  #sport(index: number): number {
    return this.#constant ? this.#basePort : this.#basePort + index;
  }

  #seq(index: number): number {
    return this.#constant ? (this.#baseSeq + index) >>> 0 : this.#baseSeq;
  }

  send(index: number, ttl: number): bigint {
    const seg = new Uint8Array(SYN_LENGTH);
    const v = new DataView(seg.buffer);
    v.setUint16(0, this.#sport(index));
    v.setUint16(2, this.#o.port);
    v.setUint32(4, this.#seq(index));
    v.setUint32(8, 0);
    seg[12] = (SYN_LENGTH / 4) << 4;
    seg[13] = TCP_SYN;
    v.setUint16(14, 64240);
    // MSS option (RFC 9293 §3.7.1): kind 2, length 4.
    seg[20] = 2;
    seg[21] = 4;
    v.setUint16(22, this.#o.family === 4 ? 1460 : 1440);
    v.setUint16(16, checksum(seg, this.#pseudo));
    // Probes of a hop share a TTL: set it only when it changes.
    if (ttl !== this.#ttl) {
      this.#tcp.setTtl(ttl);
      this.#ttl = ttl;
    }
    const sent = realtimeNs();
    this.#tcp.send(seg, { family: this.#o.family, address: this.#o.destination, port: 0 });
    return sent;
  }

  #indexFromPort(port: number): number {
    return port - this.#basePort;
  }

  drain(): ProbeReply[] {
    const replies: ProbeReply[] = [];
    const o = this.#o;
    for (;;) {
      const got = this.#tcp.tryReceive();
      if (got === null) break;
      if (got.type !== "data") continue;
      try {
        const { from, bytes: seg } = rawPayload(got, o.family);
        if (from !== o.destination || seg.length < 20) continue;
        const v = new DataView(seg.buffer, seg.byteOffset, seg.length);
        const flags = seg[13]!;
        const isReply = (flags & TCP_RST) !== 0 ||
          (flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);
        if (!isReply || v.getUint16(0) !== o.port) continue;
        const ack = v.getUint32(8);
        const index = this.#constant
          ? (ack - 1 - this.#baseSeq) >>> 0
          : this.#indexFromPort(v.getUint16(2));
        if (v.getUint16(2) !== this.#sport(index) || ((this.#seq(index) + 1) >>> 0) !== ack) {
          continue;
        }
        replies.push({
          index,
          from,
          receivedNs: got.timestampNs ?? realtimeNs(),
          final: true,
          annotation: "",
        });
      } catch {
        // Not a segment of ours.
      }
    }
    for (;;) {
      const got = this.#icmp.tryReceive();
      if (got === null) break;
      if (got.type !== "data") continue;
      try {
        const { from, bytes } = rawPayload(got, o.family);
        const msg = parseIcmp(bytes, o.family);
        if (msg.kind !== "error") continue;
        const q = parseQuoted(msg.quoted, o.family);
        const t = q.transport;
        if (t?.kind !== "tcp" || q.dst !== o.destination || t.dstPort !== o.port) continue;
        const index = this.#constant
          ? (t.seq - this.#baseSeq) >>> 0
          : this.#indexFromPort(t.srcPort);
        if (t.srcPort !== this.#sport(index) || t.seq !== this.#seq(index)) continue;
        replies.push(classifiedReply(
          { index, from, receivedNs: got.timestampNs ?? realtimeNs() },
          classifyIcmp(o.family, msg.type, msg.code, msg.mtu ?? 0),
        ));
      } catch {
        // A truncated or malformed packet answers nothing of ours.
      }
    }
    return replies;
  }

  wait(timeoutMs: number): Promise<void> {
    return waitAny([this.#tcp, this.#icmp], timeoutMs);
  }

  flow(): Flow | undefined {
    if (!this.#constant) return undefined;
    return {
      protocol: "tcp",
      source: this.#source,
      destination: this.#o.destination,
      sourcePort: this.#basePort,
      destinationPort: this.#o.port,
    };
  }

  [Symbol.dispose](): void {
    this.#tcp.close();
    this.#icmp.close();
  }
}
