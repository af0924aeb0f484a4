/**
 * What every probe method (UDP, ICMP echo, TCP SYN) provides to the trace
 * engine, and the classification of ICMP replies into Butskoy traceroute's
 * annotations.
 *
 * @module
 */
import { type Family, formatIPv4, type SocketAddress } from "../lib/sockaddr.ts";
import { realtimeNs } from "../lib/rawsock/clock.ts";
import { SocketError } from "../lib/rawsock/errno.ts";
import {
  type Datagram,
  type ErrorReport,
  type OpenOptions,
  openSocket,
  type Socket,
} from "../lib/rawsock/socket.ts";

/** A reply matched to the probe that caused it. */
export interface ProbeReply {
  /** The index of the probe, as given to {@linkcode ProbeMethod.send}. */
  index: number;
  /** The address that answered. */
  from: string;
  /** When the reply arrived (CLOCK_REALTIME nanoseconds, the kernel's time when known). */
  receivedNs: bigint;
  /** The trace ends at this probe's hop: the destination answered, or an unreachable came back. */
  final: boolean;
  /** Butskoy's annotation, such as `"!H"`; empty when there is none. */
  annotation: string;
  /** The path MTU a "fragmentation needed" / "packet too big" (or the local interface) reported. */
  mtu?: number;
  /** The error came from the local host (`SO_EE_ORIGIN_LOCAL`), not from a node of the path. */
  local?: boolean;
}

/** The constant flow of a Paris trace: what every probe carried. */
export interface Flow {
  /** The transport protocol. */
  protocol: "udp" | "icmp" | "tcp";
  /** The source address. */
  source: string;
  /** The destination address. */
  destination: string;
  /** Source port (UDP, TCP) or echo identifier (ICMP). */
  sourcePort: number;
  /** Destination port (UDP, TCP) or the constant ICMP checksum. */
  destinationPort: number;
}

/** What the engine needs from a probe method. */
export interface ProbeMethod extends Disposable {
  /** The method's name. */
  readonly name: "udp" | "icmp" | "tcp";
  /** The size of the probe packets, IP header included. */
  readonly packetLength: number;
  /**
   * Sends probe `index` with the given TTL.
   *
   * @returns The send time in CLOCK_REALTIME nanoseconds.
   */
  send(index: number, ttl: number): bigint;
  /** Reads every queued reply without waiting; unmatched ones are dropped. */
  drain(): ProbeReply[];
  /** Waits until a reply may be queued, at most `timeoutMs`. */
  wait(timeoutMs: number): Promise<void>;
  /** The constant flow of a Paris trace, once known. */
  flow(): Flow | undefined;
  /**
   * Changes the size of later probes (`--mtu` after a smaller path MTU was
   * reported); methods that cannot leave it out.
   */
  resize?(packetLength: number): void;
}

/** Settings shared by the probe methods. */
export interface MethodOptions {
  /** The IP version. */
  family: Family;
  /** The destination address. */
  destination: string;
  /** UDP: first destination port; ICMP: first sequence; TCP: destination port. */
  port: number;
  /** Total packet length asked for (IP header included). */
  packetLength: number;
  /** Keep the flow identifier constant (Paris traceroute). */
  paris: boolean;
  /** Probes per hop, for Butskoy's numbering of ports and sequences. */
  queries: number;
  /** Source address to bind to. */
  source?: string;
  /** Source port (`--sport`; UDP and TCP). */
  sourcePort?: number;
  /** Interface to send through (`SO_BINDTODEVICE`). */
  device?: string;
  /** Set DF and never fragment (`-F`; `IP_PMTUDISC_PROBE`, as Butskoy). */
  dontFragment?: boolean;
}

const V4_UNREACH: Record<number, string> = {
  0: "!N",
  1: "!H",
  2: "!P",
  3: "",
  5: "!S",
  6: "!N",
  7: "!H",
  8: "!N",
  9: "!X",
  10: "!X",
  11: "!N",
  12: "!H",
  13: "!X",
  14: "!V",
  15: "!C",
};

const V6_UNREACH: Record<number, string> = {
  0: "!N",
  1: "!X",
  2: "!H",
  3: "!H",
  4: "",
};

/**
 * Classifies an ICMP error as Butskoy traceroute does: a time exceeded in
 * transit is an intermediate hop; every other error ends the trace, with
 * `!H` `!N` `!P` `!S` `!X` `!V` `!C` `!F-mtu` or `!<code>` (a port
 * unreachable, from the destination, has no annotation).
 *
 * @param family The IP version.
 * @param type The ICMP type.
 * @param code The ICMP code.
 * @param mtu The MTU of a "fragmentation needed" / "packet too big".
 * @returns `null` for an intermediate hop, else the annotation of a final reply.
 *
 * @example
 * ```ts
 * import { classifyIcmp } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(classifyIcmp(4, 11, 0, 0), null);
 * assertEquals(classifyIcmp(4, 3, 13, 0), "!X");
 * assertEquals(classifyIcmp(6, 1, 4, 0), "");
 * ```
 */
export function classifyIcmp(
  family: Family,
  type: number,
  code: number,
  mtu: number,
): string | null {
  if (family === 4) {
    if (type === 11 && code === 0) return null;
    if (type === 3) {
      if (code === 4) return `!F-${mtu}`;
      return V4_UNREACH[code] ?? `!<${code}>`;
    }
  } else {
    if (type === 3 && code === 0) return null;
    if (type === 1) return V6_UNREACH[code] ?? `!<${code}>`;
    if (type === 2) return `!F-${mtu}`;
  }
  return `!<${type}-${code}>`;
}

/**
 * Probe payload bytes after the transport header: the probe index as a
 * 16-bit number at the start (so a quoted payload names its probe), then
 * Butskoy's filler `0x40, 0x41, …`.
 *
 * @param length The payload length.
 * @param index The probe index.
 * @returns The payload.
 *
 * @example
 * ```ts
 * import { payload } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(payload(4, 258)[1], 2);
 * ```
 */
export function payload(length: number, index: number): Uint8Array {
  const data = new Uint8Array(Math.max(length, 2));
  for (let i = 0; i < data.length; i++) data[i] = 0x40 + (i & 0x3f);
  data[0] = (index >>> 8) & 0xff;
  data[1] = index & 0xff;
  return data;
}

/**
 * Waits on several sockets at once: resolves when any has something queued
 * or the timeout passes, and ends the other waits before resolving.
 *
 * @param sockets The sockets.
 * @param timeoutMs How long to wait at most.
 * @returns When done.
 *
 * @example
 * ```ts ignore
 * await waitAny([icmpSocket, tcpSocket], 5);
 * ```
 */
export async function waitAny(
  sockets: readonly { wait(o: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> }[],
  timeoutMs: number,
): Promise<void> {
  if (sockets.length === 1) {
    await sockets[0]!.wait({ timeoutMs });
    return;
  }
  const ac = new AbortController();
  const waits = sockets.map((s) => s.wait({ timeoutMs, signal: ac.signal }));
  await Promise.race(waits);
  ac.abort();
  await Promise.allSettled(waits);
}

/**
 * The source address the system would use towards a destination: a UDP
 * socket connected there (no packet is sent) tells it.
 *
 * @param family The IP version.
 * @param destination The destination address.
 * @param device An interface to send through.
 * @returns The source address.
 *
 * @example
 * ```ts
 * import { sourceAddressFor } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(sourceAddressFor(4, "127.0.0.1"), "127.0.0.1");
 * ```
 */
export function sourceAddressFor(family: Family, destination: string, device?: string): string {
  using sock = openSocket({ kind: "udp", family, timestamps: false, receiveTtl: false });
  if (device !== undefined) sock.bindToDevice(device);
  sock.connect({ family, address: destination, port: 9 });
  return sock.localAddress().address;
}

/**
 * Opens a socket, turning a permission failure into Butskoy's message.
 *
 * @param options The socket to open.
 * @returns The socket.
 * @throws {Deno.errors.PermissionDenied} Without the privilege the kind needs.
 *
 * @example
 * ```ts
 * import { openProbeSocket } from "./probe.ts";
 * using sock = openProbeSocket({ kind: "udp", family: 4 });
 * ```
 */
export function openProbeSocket(options: OpenOptions): Socket {
  try {
    return openSocket(options);
  } catch (err) {
    if (err instanceof SocketError && (err.code === "EPERM" || err.code === "EACCES")) {
      throw new Deno.errors.PermissionDenied(PRIVILEGE_MESSAGE, { cause: err });
    }
    throw err;
  }
}

/** Butskoy's message when a method needs privileges the user lacks. */
export const PRIVILEGE_MESSAGE = "You do not have enough privileges to use this traceroute method.";

/**
 * Sizes a UDP or ICMP probe as Butskoy traceroute does: the asked-for
 * length, raised to the smallest packet that holds the IP and transport
 * headers and, in Paris mode, the two payload bytes that tell probes apart.
 *
 * @param options The method options (family, packet length, Paris mode).
 * @param transportHeader The transport header's length in bytes.
 * @returns The whole packet's length and its payload's.
 *
 * @example
 * ```ts
 * import { probeSize } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const s = probeSize({ family: 4, packetLength: 20, paris: true }, 8);
 * assertEquals(s.packetLength, 30);
 * assertEquals(s.dataLength, 2);
 * ```
 */
export function probeSize(
  options: Pick<MethodOptions, "family" | "packetLength" | "paris">,
  transportHeader: number,
): { packetLength: number; dataLength: number } {
  const ipHeader = options.family === 4 ? 20 : 40;
  const packetLength = Math.max(
    options.packetLength,
    ipHeader + transportHeader + (options.paris ? 2 : 0),
  );
  return { packetLength, dataLength: packetLength - ipHeader - transportHeader };
}

/**
 * Completes a reply with what {@linkcode classifyIcmp} made of the ICMP
 * message that carried it.
 *
 * @param reply The probe's index, the responder and the arrival time.
 * @param annotation The classification: `null` for an intermediate hop.
 * @returns The reply, final unless the annotation is `null`.
 *
 * @example
 * ```ts
 * import { classifiedReply } from "./probe.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const r = classifiedReply({ index: 0, from: "10.0.0.1", receivedNs: 0n }, "!H");
 * assert(r.final);
 * assertEquals(r.annotation, "!H");
 * ```
 */
export function classifiedReply(
  reply: Pick<ProbeReply, "index" | "from" | "receivedNs" | "mtu">,
  annotation: string | null,
): ProbeReply {
  return { ...reply, final: annotation !== null, annotation: annotation ?? "" };
}

/**
 * The reply an error-queue report of an ICMP error makes: its responder,
 * Butskoy's annotation and, for a "fragmentation needed" / "packet too
 * big", the MTU it reported.
 *
 * @param got The report.
 * @param index The probe it answers.
 * @param family The IP version.
 * @returns The reply.
 *
 * @example
 * ```ts
 * import { reportReply } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const r = reportReply({
 *   type: "error", errno: 90, code: "EMSGSIZE", origin: "icmp", icmpType: 3, icmpCode: 4,
 *   info: 1400, data: 0, original: new Uint8Array(), offender: { family: 4, address: "10.0.0.1", port: 0 },
 * }, 7, 4);
 * assertEquals([r.index, r.annotation, r.mtu], [7, "!F-1400", 1400]);
 * ```
 */
export function reportReply(
  got: ErrorReport & { offender: SocketAddress },
  index: number,
  family: Family,
): ProbeReply {
  return classifiedReply(
    {
      index,
      from: got.offender.address,
      receivedNs: got.timestampNs ?? realtimeNs(),
      ...mtuField(family, got.icmpType, got.icmpCode, got.info),
    },
    classifyIcmp(family, got.icmpType, got.icmpCode, got.info),
  );
}

/**
 * The `mtu` field of a reply: present for a "fragmentation needed" (ICMP
 * 3/4) or a "packet too big" (ICMPv6 2), which carry the next hop's MTU.
 *
 * @param family The IP version.
 * @param type The ICMP type.
 * @param code The ICMP code.
 * @param mtu The MTU field of the message.
 * @returns `{ mtu }`, or `{}` for any other message.
 *
 * @example
 * ```ts
 * import { mtuField } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(mtuField(6, 2, 0, 1280), { mtu: 1280 });
 * assertEquals(mtuField(4, 11, 0, 0), {});
 * ```
 */
export function mtuField(
  family: Family,
  type: number,
  code: number,
  mtu: number,
): { mtu?: number } {
  const tooBig = family === 4 ? type === 3 && code === 4 : type === 2;
  return tooBig && mtu > 0 ? { mtu } : {};
}

/**
 * The reply a local "message too long" makes (a DF probe larger than the
 * outgoing interface's MTU, reported through the error queue with that
 * MTU): it names no responder, so it only serves `--mtu`.
 *
 * @param got What the socket received.
 * @param index The probe it answers (the last one sent: `--mtu` sends one at a time).
 * @returns The reply, or `undefined` when `got` is no such report.
 *
 * @example
 * ```ts
 * import { localMtuReply } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const r = localMtuReply({
 *   type: "error", errno: 90, code: "EMSGSIZE", origin: "local", icmpType: 0, icmpCode: 0,
 *   info: 1500, data: 0, original: new Uint8Array(),
 * }, 0);
 * assertEquals(r?.mtu, 1500);
 * ```
 */
export function localMtuReply(got: Datagram | ErrorReport, index: number): ProbeReply | undefined {
  if (got.type !== "error" || got.origin !== "local" || got.code !== "EMSGSIZE" || got.info <= 0) {
    return undefined;
  }
  return {
    index,
    from: "",
    receivedNs: got.timestampNs ?? realtimeNs(),
    final: false,
    annotation: "",
    mtu: got.info,
    local: true,
  };
}

const IP_MTU_DISCOVER = 10;
const IPV6_MTU_DISCOVER = 23;
/** Set DF, ignore the cached path MTU, never fragment locally (Butskoy's `-F`). */
const PMTUDISC_PROBE = 3;

/**
 * Makes a socket's probes unfragmentable, as Butskoy's `-F` does
 * (`IP_PMTUDISC_PROBE`): DF set, the path MTU the kernel cached ignored,
 * and a probe above the interface's MTU refused with EMSGSIZE.
 *
 * @param sock The socket.
 * @param family The IP version.
 *
 * @example
 * ```ts
 * import { dontFragment, openProbeSocket } from "./probe.ts";
 * using sock = openProbeSocket({ kind: "udp", family: 6 });
 * dontFragment(sock, 6);
 * ```
 */
export function dontFragment(sock: Socket, family: Family): void {
  if (family === 4) sock.setOption(0, IP_MTU_DISCOVER, PMTUDISC_PROBE);
  else sock.setOption(41, IPV6_MTU_DISCOVER, PMTUDISC_PROBE);
}

/**
 * Sends a probe, tolerating the one failure `-F` expects: a DF probe larger
 * than the interface's MTU is refused with EMSGSIZE, and the error queue
 * then holds that MTU (see {@linkcode localMtuReply}).
 *
 * @param options The method options (`dontFragment`).
 * @param send Sends the probe and returns its send time.
 * @returns The send time, or the time of the refusal.
 *
 * @example
 * ```ts
 * import { sendTolerant } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(sendTolerant({ dontFragment: true }, () => 5n), 5n);
 * ```
 */
export function sendTolerant(
  options: Pick<MethodOptions, "dontFragment">,
  send: () => bigint,
): bigint {
  try {
    return send();
  } catch (err) {
    if (options.dontFragment && err instanceof SocketError && err.code === "EMSGSIZE") {
      return realtimeNs();
    }
    throw err;
  }
}

/**
 * Tells whether an error-queue report is an ICMP error, from a known node,
 * about a packet sent to `destination` (a report without the destination is
 * kept: connected sockets do not get one).
 *
 * @param got What the socket received.
 * @param destination The traced address.
 * @returns `true` when the report answers one of this trace's probes.
 *
 * @example
 * ```ts
 * import { isIcmpReportFor } from "./probe.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const data = { type: "data", data: new Uint8Array(), from: { family: 4, address: "127.0.0.1", port: 0 }, truncated: false } as const;
 * assert(!isIcmpReportFor(data, "127.0.0.1"));
 * ```
 */
export function isIcmpReportFor(
  got: Datagram | ErrorReport,
  destination: string,
): got is ErrorReport & { offender: SocketAddress } {
  return got.type === "error" && (got.origin === "icmp" || got.origin === "icmp6") &&
    got.offender !== undefined &&
    (got.destination === undefined || got.destination.address === destination);
}

/**
 * Splits a packet from a raw socket into its sender and the transport
 * bytes: raw IPv4 sockets deliver the IP header, raw IPv6 sockets do not
 * (RFC 3542 §3), so the sender of an IPv4 packet is read from its header.
 *
 * @param got The datagram.
 * @param family The socket's IP version.
 * @returns The sender and the bytes after the IP header.
 * @throws {RangeError} When an IPv4 header is truncated.
 *
 * @example
 * ```ts
 * import { rawPayload } from "./probe.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const got = { type: "data", data: new Uint8Array([1, 2]), from: { family: 6, address: "::1", port: 0 }, truncated: false } as const;
 * assertEquals(rawPayload(got, 6).from, "::1");
 * ```
 */
export function rawPayload(got: Datagram, family: Family): { from: string; bytes: Uint8Array } {
  if (family === 6) return { from: got.from.address, bytes: got.data };
  // Only the header length and the source are needed (RFC 791 §3.1): read
  // here rather than with lib/icmp.ts's full parser, which the UDP method
  // would otherwise load at start-up for nothing.
  const data = got.data;
  const version = (data[0] ?? 0) >>> 4;
  const headerLength = ((data[0] ?? 0) & 0x0f) * 4;
  const why = data.length < 20
    ? `${data.length} bytes are fewer than the 20 of a header`
    : version !== 4
    ? `the version field is ${version}, not 4`
    : headerLength < 20
    ? `IHL ${headerLength / 4} is below the minimum 5`
    : data.length < headerLength
    ? `${data.length} bytes are fewer than the header's ${headerLength}`
    : undefined;
  if (why !== undefined) throw new RangeError(`Cannot parse IPv4 header: ${why}`);
  return { from: formatIPv4(data.subarray(12, 16)), bytes: data.subarray(headerLength) };
}

/**
 * Applies `-s` and `-i` to a probe socket.
 *
 * @param sock The socket.
 * @param options The method options.
 *
 * @example
 * ```ts
 * import { applyLocal, openProbeSocket } from "./probe.ts";
 * using sock = openProbeSocket({ kind: "udp", family: 4 });
 * applyLocal(sock, { family: 4, destination: "127.0.0.1", port: 1, packetLength: 60, paris: false, queries: 3, source: "127.0.0.1" });
 * ```
 */
export function applyLocal(sock: Socket, options: MethodOptions): void {
  if (options.dontFragment) dontFragment(sock, options.family);
  if (options.device !== undefined) sock.bindToDevice(options.device);
  if (options.source !== undefined || options.sourcePort !== undefined) {
    const any = options.family === 4 ? "0.0.0.0" : "::";
    sock.bind({
      family: options.family,
      address: options.source ?? any,
      port: options.sourcePort ?? 0,
    });
  }
}

const SOL_SOCKET = 1;
const SO_ERROR = 4;
const PENDING: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPROTO",
  "EACCES",
  "EHOSTDOWN",
  "ENONET",
]);

/**
 * Sends a probe on a datagram socket with error reporting. One socket
 * carries every probe, so an ICMP error to an earlier probe leaves a pending
 * socket error that the next `sendto()` returns (and clears); the report
 * itself stays in the error queue. That error is read (and so cleared)
 * first; a send that still fails with it is tried again.
 *
 * @param sock The socket.
 * @param data The probe.
 * @param to The destination, unless the socket is connected.
 * @returns The send time (CLOCK_REALTIME nanoseconds).
 *
 * @example
 * ```ts
 * import { openProbeSocket, sendProbe } from "./probe.ts";
 * using sock = openProbeSocket({ kind: "udp", family: 4 });
 * sendProbe(sock, new Uint8Array(4), { family: 4, address: "127.0.0.1", port: 33434 });
 * ```
 */
export function sendProbe(sock: Socket, data: Uint8Array, to?: SocketAddress): bigint {
  // Reading SO_ERROR clears the pending error without the cost of a failed
  // send (and the exception it turns into).
  sock.getOption(SOL_SOCKET, SO_ERROR);
  for (let attempt = 0;; attempt++) {
    const sent = realtimeNs();
    try {
      sock.send(data, to);
      return sent;
    } catch (err) {
      if (!(err instanceof SocketError) || !PENDING.has(err.code) || attempt >= 3) throw err;
    }
  }
}
