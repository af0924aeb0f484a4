/**
 * What an ICMP or ICMPv6 error says, read: the packet it quotes (the IPv4 or
 * IPv6 header, which raw IPv4 sockets also deliver before each message, and
 * the first 8 bytes of the transport header, which tell which probe caused
 * the error) and the RFC names of its type and code.
 *
 * Kept apart from `icmp.ts` so that ping, which sends and receives echoes
 * and reads an error's quoted echo with `parseIcmp()`, does not load it at
 * start-up.
 * Parsers never copy: payloads are `subarray` views of the input. Every
 * parser throws a `RangeError` on truncated input.
 *
 * @example Which probe a time exceeded message is about
 * ```ts
 * import { buildIcmp, parseIcmp } from "./icmp.ts";
 * import { parseQuoted } from "./icmp_error.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * const probe = new Uint8Array([
 *   0x45, 0, 0, 28, 0, 1, 0, 0, 1, 17, 0, 0, 10, 0, 0, 1, 10, 0, 3, 2,
 *   0x80, 0x00, 0x82, 0x9a, 0, 8, 0, 0,
 * ]);
 * const msg = parseIcmp(buildIcmp({ family: 4, type: 11, body: probe }), 4);
 * assert(msg.kind === "error");
 * const q = parseQuoted(msg.quoted, 4);
 * assert(q.transport?.kind === "udp");
 * assertEquals(q.transport.dstPort, 33434);
 * ```
 *
 * @module
 */
import { IpProtocol } from "./icmp.ts";
import { type Family, formatIP } from "./sockaddr.ts";

function need(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length < length) {
    throw new RangeError(
      `Cannot parse ${what}: ${bytes.length} bytes is shorter than the ${length} it needs`,
    );
  }
}

/** An IPv4 header (RFC 791 §3.1). */
export interface Ipv4Header {
  /** Always 4. */
  version: 4;
  /** The header length in bytes (IHL × 4), 20 to 60. */
  headerLength: number;
  /** The type-of-service byte (DSCP and ECN). */
  tos: number;
  /** The total length of the datagram, header included. */
  totalLength: number;
  /** The identification field. */
  id: number;
  /** The flags (bit 1 = don't fragment, bit 0 = more fragments). */
  flags: number;
  /** The fragment offset in 8-byte units. */
  fragmentOffset: number;
  /** Time to live. */
  ttl: number;
  /** The protocol of the payload, e.g. `IpProtocol.ICMP`. */
  protocol: number;
  /** The header checksum as received. */
  checksum: number;
  /** The source address. */
  src: string;
  /** The destination address. */
  dst: string;
}

/** An IPv6 fixed header (RFC 8200 §3). */
export interface Ipv6Header {
  /** Always 6. */
  version: 6;
  /** Always 40: extension headers are not part of it. */
  headerLength: number;
  /** The traffic class (DSCP and ECN). */
  trafficClass: number;
  /** The flow label. */
  flowLabel: number;
  /** The length of everything after the fixed header. */
  payloadLength: number;
  /** The next header, e.g. `IpProtocol.ICMPV6` or an extension header. */
  nextHeader: number;
  /** The hop limit. */
  hopLimit: number;
  /** The source address (RFC 5952 text). */
  src: string;
  /** The destination address (RFC 5952 text). */
  dst: string;
}

/**
 * Parses an IPv4 header, as raw IPv4 sockets deliver it before the ICMP
 * message and as ICMP errors quote it.
 *
 * @param bytes The header and whatever follows it.
 * @returns The header fields; the payload starts at `headerLength`.
 * @throws {RangeError} When the input is truncated, or is not IPv4.
 *
 * @example
 * ```ts
 * import { parseIpv4Header } from "./icmp_error.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const h = parseIpv4Header(new Uint8Array([
 *   0x45, 0, 0, 28, 0, 1, 0x40, 0, 61, 1, 0, 0, 10, 0, 3, 2, 10, 0, 0, 1,
 * ]));
 * assertEquals(h.ttl, 61);
 * assertEquals(h.src, "10.0.3.2");
 * assertEquals(h.headerLength, 20);
 * ```
 */
export function parseIpv4Header(bytes: Uint8Array): Ipv4Header {
  need(bytes, 20, "IPv4 header");
  const version = bytes[0]! >>> 4;
  if (version !== 4) {
    throw new RangeError(`Cannot parse IPv4 header: the version field is ${version}, not 4`);
  }
  const headerLength = (bytes[0]! & 0x0f) * 4;
  if (headerLength < 20) {
    throw new RangeError(
      `Cannot parse IPv4 header: IHL ${headerLength / 4} is below the minimum 5`,
    );
  }
  need(bytes, headerLength, "IPv4 header with options");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const fragment = view.getUint16(6);
  return {
    version: 4,
    headerLength,
    tos: bytes[1]!,
    totalLength: view.getUint16(2),
    id: view.getUint16(4),
    flags: fragment >>> 13,
    fragmentOffset: fragment & 0x1fff,
    ttl: bytes[8]!,
    protocol: bytes[9]!,
    checksum: view.getUint16(10),
    src: formatIP(bytes.subarray(12, 16)),
    dst: formatIP(bytes.subarray(16, 20)),
  };
}

/**
 * Parses an IPv6 fixed header, as ICMPv6 errors quote it.
 *
 * @param bytes The header and whatever follows it.
 * @returns The header fields; the payload starts at byte 40.
 * @throws {RangeError} When the input is truncated, or is not IPv6.
 *
 * @example
 * ```ts
 * import { parseIpv6Header } from "./icmp_error.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const bytes = new Uint8Array(40);
 * bytes[0] = 0x60;
 * bytes[6] = 17;
 * bytes[7] = 2;
 * bytes[39] = 1;
 * const h = parseIpv6Header(bytes);
 * assertEquals(h.nextHeader, 17);
 * assertEquals(h.hopLimit, 2);
 * assertEquals(h.dst, "::1");
 * ```
 */
export function parseIpv6Header(bytes: Uint8Array): Ipv6Header {
  need(bytes, 40, "IPv6 header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const first = view.getUint32(0);
  const version = first >>> 28;
  if (version !== 6) {
    throw new RangeError(`Cannot parse IPv6 header: the version field is ${version}, not 6`);
  }
  return {
    version: 6,
    headerLength: 40,
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0xfffff,
    payloadLength: view.getUint16(4),
    nextHeader: bytes[6]!,
    hopLimit: bytes[7]!,
    src: formatIP(bytes.subarray(8, 24)),
    dst: formatIP(bytes.subarray(24, 40)),
  };
}

// ---------------------------------------------------------------------------
// Quoted packets

/** The first 8 bytes of a quoted UDP datagram. */
export interface QuotedUdp {
  /** Discriminant. */
  kind: "udp";
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** The UDP length field. */
  length: number;
  /** The UDP checksum field. */
  checksum: number;
}

/** The first 8 bytes of a quoted TCP segment. */
export interface QuotedTcp {
  /** Discriminant. */
  kind: "tcp";
  /** Source port. */
  srcPort: number;
  /** Destination port. */
  dstPort: number;
  /** The sequence number. */
  seq: number;
}

/** The first 8 bytes of a quoted ICMP or ICMPv6 message. */
export interface QuotedIcmp {
  /** Discriminant. */
  kind: "icmp";
  /** The quoted message's type. */
  type: number;
  /** The quoted message's code. */
  code: number;
  /** The echo identifier (meaningful for echo messages). */
  id: number;
  /** The echo sequence number (meaningful for echo messages). */
  seq: number;
}

/** The start of a quoted transport header. */
export type QuotedTransport = QuotedUdp | QuotedTcp | QuotedIcmp;

/** The packet quoted by an ICMP error. */
export interface QuotedPacket {
  /** The quoted IP header. */
  ip: Ipv4Header | Ipv6Header;
  /** The transport protocol, after any IPv6 extension headers. */
  protocol: number;
  /** The original source address. */
  src: string;
  /** The original destination address. */
  dst: string;
  /** The TTL or hop limit the packet had when it was quoted (usually 0 or 1 for time exceeded). */
  ttl: number;
  /**
   * The first 8 bytes of the transport header, when the protocol is UDP, TCP or ICMP
   * and 8 bytes were quoted (RFC 792 requires them); `undefined` otherwise.
   */
  transport: QuotedTransport | undefined;
  /** The quoted transport bytes (a view of the input). */
  payload: Uint8Array;
}

// RFC 8200 §4: extension headers with the generic (next header, length) layout.
const EXTENSION_HEADERS: ReadonlySet<number> = new Set([0, 43, 60]);
const FRAGMENT_HEADER = 44;

/**
 * Parses the packet an ICMP error quotes: the IP header and the first 8 bytes
 * of the transport header, which tell which probe caused the error (UDP
 * ports, TCP ports and sequence, ICMP echo id and sequence).
 *
 * @param bytes The quoted bytes (`ErrorMessage.quoted`).
 * @param family The family of the error message (4 or 6).
 * @returns The quoted packet.
 * @throws {RangeError} When the IP header is truncated or of the wrong version.
 *
 * @example A quoted UDP probe
 * ```ts
 * import { parseQuoted } from "./icmp_error.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * const q = parseQuoted(new Uint8Array([
 *   0x45, 0, 0, 28, 0, 1, 0, 0, 1, 17, 0, 0, 10, 0, 0, 1, 10, 0, 3, 2,
 *   0x80, 0x00, 0x82, 0x9a, 0, 8, 0, 0,
 * ]), 4);
 * assert(q.transport?.kind === "udp");
 * assertEquals(q.transport.dstPort, 33434);
 * ```
 */
export function parseQuoted(bytes: Uint8Array, family: Family): QuotedPacket {
  let ip: Ipv4Header | Ipv6Header;
  let protocol: number;
  let offset: number;
  let ttl: number;
  if (family === 4) {
    const h = parseIpv4Header(bytes);
    ip = h;
    protocol = h.protocol;
    offset = h.headerLength;
    ttl = h.ttl;
  } else {
    const h = parseIpv6Header(bytes);
    ip = h;
    protocol = h.nextHeader;
    offset = 40;
    ttl = h.hopLimit;
    // Skip extension headers while they are complete.
    while (offset + 8 <= bytes.length) {
      if (EXTENSION_HEADERS.has(protocol)) {
        const next = bytes[offset]!;
        offset += (bytes[offset + 1]! + 1) * 8;
        protocol = next;
      } else if (protocol === FRAGMENT_HEADER) {
        protocol = bytes[offset]!;
        offset += 8;
      } else {
        break;
      }
    }
  }
  const payload = bytes.subarray(Math.min(offset, bytes.length));
  let transport: QuotedTransport | undefined;
  if (payload.length >= 8) {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    if (protocol === IpProtocol.UDP) {
      transport = {
        kind: "udp",
        srcPort: view.getUint16(0),
        dstPort: view.getUint16(2),
        length: view.getUint16(4),
        checksum: view.getUint16(6),
      };
    } else if (protocol === IpProtocol.TCP) {
      transport = {
        kind: "tcp",
        srcPort: view.getUint16(0),
        dstPort: view.getUint16(2),
        seq: view.getUint32(4),
      };
    } else if (protocol === (family === 4 ? IpProtocol.ICMP : IpProtocol.ICMPV6)) {
      transport = {
        kind: "icmp",
        type: payload[0]!,
        code: payload[1]!,
        id: view.getUint16(4),
        seq: view.getUint16(6),
      };
    }
  }
  return { ip, protocol, src: ip.src, dst: ip.dst, ttl, transport, payload };
}

// ---------------------------------------------------------------------------
// Names

const V4_NAMES: Record<number, [string, Record<number, string>?]> = {
  0: ["Echo Reply"],
  3: ["Destination Unreachable", {
    0: "Net Unreachable",
    1: "Host Unreachable",
    2: "Protocol Unreachable",
    3: "Port Unreachable",
    4: "Fragmentation Needed and DF Set",
    5: "Source Route Failed",
    6: "Destination Network Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Network Administratively Prohibited",
    10: "Host Administratively Prohibited",
    11: "Network Unreachable for TOS",
    12: "Host Unreachable for TOS",
    13: "Communication Administratively Prohibited",
    14: "Host Precedence Violation",
    15: "Precedence Cutoff in Effect",
  }],
  4: ["Source Quench"],
  5: ["Redirect", {
    0: "Redirect for Network",
    1: "Redirect for Host",
    2: "Redirect for TOS and Network",
    3: "Redirect for TOS and Host",
  }],
  8: ["Echo Request"],
  11: ["Time Exceeded", { 0: "TTL Exceeded in Transit", 1: "Fragment Reassembly Time Exceeded" }],
  12: ["Parameter Problem", {
    0: "Pointer Indicates the Error",
    1: "Missing a Required Option",
    2: "Bad Length",
  }],
  13: ["Timestamp"],
  14: ["Timestamp Reply"],
};

const V6_NAMES: Record<number, [string, Record<number, string>?]> = {
  1: ["Destination Unreachable", {
    0: "No Route to Destination",
    1: "Communication Administratively Prohibited",
    2: "Beyond Scope of Source Address",
    3: "Address Unreachable",
    4: "Port Unreachable",
    5: "Source Address Failed Ingress/Egress Policy",
    6: "Reject Route to Destination",
  }],
  2: ["Packet Too Big"],
  3: ["Time Exceeded", {
    0: "Hop Limit Exceeded in Transit",
    1: "Fragment Reassembly Time Exceeded",
  }],
  4: ["Parameter Problem", {
    0: "Erroneous Header Field",
    1: "Unrecognized Next Header Type",
    2: "Unrecognized IPv6 Option",
  }],
  128: ["Echo Request"],
  129: ["Echo Reply"],
};

/**
 * Names an ICMP or ICMPv6 type and code, after the RFCs' wording.
 *
 * @param message The family, type and code (a parsed message will do).
 * @returns `"Type"` or `"Type: Code"`, e.g. `"Destination Unreachable: Port Unreachable"`;
 *   unknown values read `"Type 42"` / `"Code 9"`.
 *
 * @example
 * ```ts
 * import { describeIcmp } from "./icmp_error.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(
 *   describeIcmp({ family: 6, type: 3, code: 0 }),
 *   "Time Exceeded: Hop Limit Exceeded in Transit",
 * );
 * ```
 */
export function describeIcmp(message: { family: Family; type: number; code: number }): string {
  const entry = (message.family === 4 ? V4_NAMES : V6_NAMES)[message.type];
  if (entry === undefined) return `Type ${message.type}, Code ${message.code}`;
  const [name, codes] = entry;
  if (codes === undefined) return message.code === 0 ? name : `${name}: Code ${message.code}`;
  return `${name}: ${codes[message.code] ?? `Code ${message.code}`}`;
}
