/**
 * The UDP probe method (Butskoy's "default" method): datagrams to unlikely
 * ports from an ordinary UDP socket, with the ICMP errors they cause read
 * from the socket's error queue (`IP_RECVERR`), so no privilege is needed.
 *
 * Classic mode sends probe `n` to port `base + n` and matches an error by
 * the destination port of the quoted datagram. Paris mode connects the
 * socket, so every probe has the same 5-tuple; the probe index travels in
 * the payload (which also makes every UDP checksum differ) and is read back
 * from the quoted payload.
 *
 * @module
 */
import { realtimeNs, type Socket } from "../lib/rawsock.ts";
import {
  applyLocal,
  classifyIcmp,
  type Flow,
  type MethodOptions,
  openProbeSocket,
  payload,
  type ProbeMethod,
  type ProbeReply,
  sendProbe,
} from "./probe.ts";

const UDP_HEADER = 8;

/**
 * Opens the UDP probe method.
 *
 * @param options Destination, ports, packet length, Paris mode.
 * @returns The method; dispose of it to close its socket.
 *
 * @example
 * ```ts
 * import { openUdpMethod } from "./udp.ts";
 * using m = openUdpMethod({ family: 4, destination: "127.0.0.1", port: 33434, packetLength: 60, paris: false, queries: 3 });
 * console.assert(m.packetLength === 60);
 * ```
 */
export function openUdpMethod(options: MethodOptions): ProbeMethod {
  return new UdpMethod(options);
}

class UdpMethod implements ProbeMethod {
  readonly name = "udp" as const;
  readonly packetLength: number;
  #o: MethodOptions;
  #sock: Socket;
  #dataLength: number;
  #flow: Flow | undefined;

  constructor(o: MethodOptions) {
    this.#o = o;
    const ipHeader = o.family === 4 ? 20 : 40;
    this.packetLength = Math.max(o.packetLength, ipHeader + UDP_HEADER + (o.paris ? 2 : 0));
    this.#dataLength = this.packetLength - ipHeader - UDP_HEADER;
    this.#sock = openProbeSocket({ kind: "udp", family: o.family, receiveErrors: true });
    try {
      applyLocal(this.#sock, o);
      if (o.paris) {
        this.#sock.connect({ family: o.family, address: o.destination, port: o.port });
        const local = this.#sock.localAddress();
        this.#flow = {
          protocol: "udp",
          source: local.address,
          destination: o.destination,
          sourcePort: local.port,
          destinationPort: o.port,
        };
      }
    } catch (err) {
      this.#sock.close();
      throw err;
    }
  }

  send(index: number, ttl: number): bigint {
    const o = this.#o;
    this.#sock.setTtl(ttl);
    const data = payload(this.#dataLength, index);
    const to = o.paris
      ? undefined
      : { family: o.family, address: o.destination, port: (o.port + index) & 0xffff };
    return sendProbe(this.#sock, data, to);
  }

  drain(): ProbeReply[] {
    const replies: ProbeReply[] = [];
    for (;;) {
      const got = this.#sock.tryReceive();
      if (got === null) break;
      // A datagram back from the destination is not part of the protocol:
      // only ICMP errors answer a probe.
      if (got.type !== "error" || (got.origin !== "icmp" && got.origin !== "icmp6")) continue;
      if (got.offender === undefined) continue;
      if (got.destination !== undefined && got.destination.address !== this.#o.destination) {
        continue;
      }
      let index: number;
      if (this.#o.paris) {
        if (got.original.length < 2) continue;
        index = (got.original[0]! << 8) | got.original[1]!;
      } else {
        if (got.destination === undefined) continue;
        index = (got.destination.port - this.#o.port) & 0xffff;
      }
      const annotation = classifyIcmp(this.#o.family, got.icmpType, got.icmpCode, got.info);
      replies.push({
        index,
        from: got.offender.address,
        receivedNs: got.timestampNs ?? realtimeNs(),
        final: annotation !== null,
        annotation: annotation ?? "",
      });
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
