/**
 * The ICMP echo probe method (`-I`). As Butskoy traceroute does, it tries a
 * raw ICMP socket first and falls back to an ICMP datagram ("ping") socket,
 * whose ICMP errors arrive through the error queue (`IP_RECVERR`).
 *
 * Probes carry a constant identifier and sequence numbers `base + n`. In
 * Paris mode the first two bytes of the payload compensate the sequence
 * number, so the ICMP checksum, which per-flow load balancers hash with the
 * identifier, is the same for every probe.
 *
 * @module
 */
import { buildEcho, parseIcmp } from "../lib/icmp.ts";
import { parseQuoted } from "../lib/icmp_error.ts";
import { realtimeNs } from "../lib/rawsock/clock.ts";
import type { Socket } from "../lib/rawsock/socket.ts";
import {
  applyLocal,
  classifiedReply,
  classifyIcmp,
  type Flow,
  isIcmpReportFor,
  localMtuReply,
  type MethodOptions,
  mtuField,
  openProbeSocket,
  payload,
  type ProbeMethod,
  type ProbeReply,
  probeSize,
  rawPayload,
  reportReply,
  sendProbe,
  sendTolerant,
  sourceAddressFor,
} from "./probe.ts";

const ICMP_HEADER = 8;

/**
 * Opens the ICMP echo probe method.
 *
 * @param options Destination, first sequence number, packet length, Paris mode.
 * @returns The method; dispose of it to close its socket.
 * @throws {Deno.errors.PermissionDenied} When neither a raw nor a datagram ICMP socket is allowed.
 *
 * @example
 * ```ts ignore
 * import { openIcmpMethod } from "./icmp_probe.ts";
 * using m = openIcmpMethod({ family: 4, destination: "127.0.0.1", port: 1, packetLength: 60, paris: false, queries: 3 });
 * ```
 */
export function openIcmpMethod(options: MethodOptions): ProbeMethod {
  return new IcmpMethod(options);
}

class IcmpMethod implements ProbeMethod {
  readonly name = "icmp" as const;
  packetLength: number;
  #last = 0;
  #o: MethodOptions;
  #sock: Socket;
  #raw: boolean;
  #id = 0;
  #ttl = 0;
  #dataLength: number;
  #flow: Flow | undefined;

  constructor(o: MethodOptions) {
    this.#o = o;
    const size = probeSize(o, ICMP_HEADER);
    this.packetLength = size.packetLength;
    this.#dataLength = size.dataLength;
    if (o.sourcePort !== undefined) {
      throw new TypeError("Cannot use a source port with ICMP probes: ICMP has no ports");
    }
    let sock: Socket;
    try {
      // No IP_RECVTTL on either kind: nothing reads the TTL of a reply.
      sock = openProbeSocket({
        kind: "icmp-raw",
        family: o.family,
        receiveBufferSize: 1 << 20,
        receiveTtl: false,
        // A DF probe above the interface's MTU is reported, with that MTU,
        // only through the error queue.
        receiveErrors: o.dontFragment ?? false,
      });
      this.#raw = true;
    } catch (err) {
      if (!(err instanceof Deno.errors.PermissionDenied)) throw err;
      sock = openProbeSocket({
        kind: "icmp",
        family: o.family,
        receiveErrors: true,
        receiveTtl: false,
      });
      this.#raw = false;
    }
    this.#sock = sock;
    try {
      if (this.#raw) {
        sock.setIcmpFilter(o.family === 4 ? [0, 3, 11] : [129, 1, 2, 3]);
        // Any identifier unlikely to clash will do (Butskoy's is random as
        // well); Math.random() spares start-up the first-use cost of the Web
        // Crypto RNG (about 0.2 ms).
        this.#id = Math.floor(Math.random() * 0x10000);
      } else {
        this.#id = 0;
      }
      applyLocal(sock, o);
      if (!this.#raw) {
        // A ping socket's identifier is its local port, chosen at bind.
        if (o.source === undefined) {
          sock.bind({ family: o.family, address: anyAddress(o), port: 0 });
        }
        this.#id = sock.localAddress().port;
      }
      if (o.paris) {
        const first = buildEcho({
          family: o.family,
          id: this.#id,
          seq: 0,
          payload: this.#payload(0, 0),
        });
        this.#flow = {
          protocol: "icmp",
          source: o.source ?? sourceAddressFor(o.family, o.destination, o.device),
          destination: o.destination,
          sourcePort: this.#id,
          destinationPort: o.family === 4 ? (first[2]! << 8) | first[3]! : 0,
        };
      }
    } catch (err) {
      sock.close();
      throw err;
    }
  }

  #payload(index: number, seq: number): Uint8Array {
    const data = payload(this.#dataLength, index);
    if (this.#o.paris) {
      // RFC 1071: adding the one's complement of seq cancels it in the sum,
      // so every probe's checksum equals that of seq 0.
      const comp = 0xffff - seq;
      data[0] = comp >>> 8;
      data[1] = comp & 0xff;
    }
    return data;
  }

  #seq(index: number): number {
    return (this.#o.port + index) & 0xffff;
  }

  send(index: number, ttl: number): bigint {
    const o = this.#o;
    // Probes of a hop share a TTL: set it only when it changes.
    if (ttl !== this.#ttl) {
      this.#sock.setTtl(ttl);
      this.#ttl = ttl;
    }
    const seq = this.#seq(index);
    const msg = buildEcho({
      family: o.family,
      id: this.#id,
      seq,
      payload: this.#payload(index, seq),
    });
    const to = { family: o.family, address: o.destination, port: 0 };
    this.#last = index;
    if (!this.#raw) return sendTolerant(o, () => sendProbe(this.#sock, msg, to));
    // An unconnected raw socket without IP_RECVERR never holds a pending
    // error (Linux raw_err(), rawv6_err()), so nothing needs clearing first
    // (with -F it has IP_RECVERR, but only for local reports).
    return sendTolerant(o, () => {
      const sent = realtimeNs();
      this.#sock.send(msg, to);
      return sent;
    });
  }

  resize(packetLength: number): void {
    const size = probeSize({ ...this.#o, packetLength }, ICMP_HEADER);
    this.packetLength = size.packetLength;
    this.#dataLength = size.dataLength;
  }

  #index(seq: number): number {
    return (seq - this.#o.port) & 0xffff;
  }

  drain(): ProbeReply[] {
    const replies: ProbeReply[] = [];
    const o = this.#o;
    for (;;) {
      const got = this.#sock.tryReceive();
      if (got === null) break;
      const receivedNs = got.timestampNs ?? realtimeNs();
      const local = localMtuReply(got, this.#last);
      if (local) {
        replies.push(local);
        continue;
      }
      if (got.type === "error") {
        // A raw socket reads ICMP errors as packets (below); its error queue
        // is only for local reports.
        if (this.#raw) continue;
        // Datagram sockets: the report quotes our echo request as sent.
        if (!isIcmpReportFor(got, o.destination) || got.original.length < 8) continue;
        const seq = (got.original[6]! << 8) | got.original[7]!;
        replies.push(reportReply(got, this.#index(seq), o.family));
        continue;
      }
      try {
        // A datagram ICMP socket delivers the ICMP message alone.
        const { from, bytes } = this.#raw
          ? rawPayload(got, o.family)
          : { from: got.from.address, bytes: got.data };
        const msg = parseIcmp(bytes, o.family);
        if (msg.kind === "echo") {
          if (msg.request || (this.#raw && msg.id !== this.#id)) continue;
          if (from !== o.destination) continue;
          replies.push({
            index: this.#index(msg.seq),
            from,
            receivedNs,
            final: true,
            annotation: "",
          });
        } else if (msg.kind === "error") {
          const q = parseQuoted(msg.quoted, o.family);
          const t = q.transport;
          if (t?.kind !== "icmp" || t.id !== this.#id || q.dst !== o.destination) continue;
          replies.push(classifiedReply(
            {
              index: this.#index(t.seq),
              from,
              receivedNs,
              ...mtuField(o.family, msg.type, msg.code, msg.mtu ?? 0),
            },
            classifyIcmp(o.family, msg.type, msg.code, msg.mtu ?? 0),
          ));
        }
      } catch {
        // A truncated or malformed packet answers nothing of ours.
      }
    }
    return replies;
  }

  async wait(timeoutMs: number): Promise<void> {
    await this.#sock.wait({ timeoutMs });
  }

  flow(): Flow | undefined {
    return this.#flow;
  }

  [Symbol.dispose](): void {
    this.#sock.close();
  }
}

function anyAddress(o: MethodOptions): string {
  return o.family === 4 ? "0.0.0.0" : "::";
}
