/**
 * The UDP probe method (Butskoy's "default" method): datagrams to unlikely
 * ports from an ordinary UDP socket, with the ICMP errors they cause read
 * from the socket's error queue (`IP_RECVERR`), so no privilege is needed.
 *
 * Classic mode sends probe `n` to port `base + n` and matches an error by
 * the destination port of the quoted datagram. Paris mode binds one source
 * port and sends every probe to one destination port, so every probe has
 * the same 5-tuple; the probe index travels in the payload (which also makes
 * every UDP checksum differ) and is read back from the quoted payload.
 *
 * The Paris socket is bound, not connected: connecting gives a socket a
 * random transmit hash (`sk_txhash`), which the kernel attaches to its
 * packets and, for IPv6, turns into the flow label. A router in the same
 * host (a namespace lab) balances on that hash instead of the 5-tuple, and
 * an IPv6 router may hash the label: the same 5-tuple would then take
 * different branches from run to run. Unconnected, the label is derived
 * from the 5-tuple itself.
 *
 * @module
 */
import type { Socket } from "../lib/rawsock/socket.ts";
import {
  applyLocal,
  type Flow,
  isIcmpReportFor,
  localMtuReply,
  type MethodOptions,
  openProbeSocket,
  payload,
  type ProbeMethod,
  type ProbeReply,
  probeSize,
  reportReply,
  sendProbe,
  sendTolerant,
  sourceAddressFor,
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
 * import { assertEquals } from "../lib/testing/assert.ts";
 * using m = openUdpMethod({ family: 4, destination: "127.0.0.1", port: 33434, packetLength: 60, paris: false, queries: 3 });
 * assertEquals(m.packetLength, 60);
 * ```
 */
export function openUdpMethod(options: MethodOptions): ProbeMethod {
  return new UdpMethod(options);
}

class UdpMethod implements ProbeMethod {
  readonly name = "udp" as const;
  packetLength: number;
  #o: MethodOptions;
  #last = 0;
  #sock: Socket;
  #data: Uint8Array;
  #ttl = 0;
  #flow: Flow | undefined;

  constructor(o: MethodOptions) {
    this.#o = o;
    const size = probeSize(o, UDP_HEADER);
    this.packetLength = size.packetLength;
    // No IP_RECVTTL: nothing reads the TTL of a reply, and every option
    // set is a call at start-up.
    this.#sock = openProbeSocket({
      kind: "udp",
      family: o.family,
      receiveErrors: true,
      receiveTtl: false,
    });
    this.#data = payload(size.dataLength, 0);
    try {
      applyLocal(this.#sock, o);
      if (o.paris) {
        if (o.source === undefined && o.sourcePort === undefined) {
          this.#sock.bind({
            family: o.family,
            address: o.family === 4 ? "0.0.0.0" : "::",
            port: 0,
          });
        }
        const local = this.#sock.localAddress();
        this.#flow = {
          protocol: "udp",
          source: o.source ?? sourceAddressFor(o.family, o.destination, o.device),
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
    // Probes of a hop go out back to back with the same TTL (as Butskoy's
    // sequence): set it only when it changes.
    if (ttl !== this.#ttl) {
      this.#sock.setTtl(ttl);
      this.#ttl = ttl;
    }
    // One buffer for every probe: sendto() copies it before returning.
    const data = this.#data;
    data[0] = (index >>> 8) & 0xff;
    data[1] = index & 0xff;
    const to = {
      family: o.family,
      address: o.destination,
      port: o.paris ? o.port : (o.port + index) & 0xffff,
    };
    this.#last = index;
    return sendTolerant(o, () => sendProbe(this.#sock, data, to));
  }

  resize(packetLength: number): void {
    const size = probeSize({ ...this.#o, packetLength }, UDP_HEADER);
    this.packetLength = size.packetLength;
    this.#data = payload(size.dataLength, 0);
  }

  drain(): ProbeReply[] {
    const replies: ProbeReply[] = [];
    for (;;) {
      const got = this.#sock.tryReceive();
      if (got === null) break;
      const local = localMtuReply(got, this.#last);
      if (local) {
        replies.push(local);
        continue;
      }
      // A datagram back from the destination is not part of the protocol:
      // only ICMP errors answer a probe.
      if (!isIcmpReportFor(got, this.#o.destination)) continue;
      let index: number;
      if (this.#o.paris) {
        if (got.original.length < 2) continue;
        index = (got.original[0]! << 8) | got.original[1]!;
      } else {
        if (got.destination === undefined) continue;
        index = (got.destination.port - this.#o.port) & 0xffff;
      }
      replies.push(reportReply(got, index, this.#o.family));
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
