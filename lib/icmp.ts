/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: build and parse them, the
 * Internet checksum (RFC 1071) with the pseudo-header of RFC 768 / RFC 8200
 * §8.1, and the IPv4 / IPv6 headers that raw sockets deliver and that ICMP
 * errors quote.
 *
 * Parsers never copy: payloads and quoted packets are `subarray` views of the
 * input. Every parser throws a `RangeError` on truncated input.
 *
 * @example Building and parsing an echo request
 * ```ts
 * import { buildEcho, parseIcmp, verifyChecksum } from "./icmp.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * const packet = buildEcho({ type: "request", id: 7, seq: 1, payload: new Uint8Array(8) });
 * assert(verifyChecksum(packet));
 * const msg = parseIcmp(packet, 4);
 * assert(msg.kind === "echo");
 * assertEquals(msg.id, 7);
 * assertEquals(msg.seq, 1);
 * ```
 *
 * @module
 */
import { checksum, fold, onesComplementSum } from "./_checksum.ts";
import { type Family, formatIP, parseIP } from "./sockaddr.ts";

export type { Family } from "./sockaddr.ts";

/** IP protocol numbers (IANA) used with ICMP. */
export const IpProtocol = {
  /** ICMP (RFC 792). */
  ICMP: 1,
  /** TCP (RFC 9293). */
  TCP: 6,
  /** UDP (RFC 768). */
  UDP: 17,
  /** ICMPv6 (RFC 4443). */
  ICMPV6: 58,
} as const;

/** ICMPv4 message types (RFC 792, RFC 1812). */
export const IcmpType = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  SOURCE_QUENCH: 4,
  REDIRECT: 5,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
  TIMESTAMP: 13,
  TIMESTAMP_REPLY: 14,
} as const;

/** ICMPv4 destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1). */
export const UnreachableCode = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  FRAGMENTATION_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  NET_UNKNOWN: 6,
  HOST_UNKNOWN: 7,
  SOURCE_ISOLATED: 8,
  NET_PROHIBITED: 9,
  HOST_PROHIBITED: 10,
  NET_TOS: 11,
  HOST_TOS: 12,
  ADMIN_PROHIBITED: 13,
  HOST_PRECEDENCE: 14,
  PRECEDENCE_CUTOFF: 15,
} as const;

/** ICMPv4 time exceeded codes (RFC 792). */
export const TimeExceededCode = {
  TTL: 0,
  REASSEMBLY: 1,
} as const;

/** ICMPv4 redirect codes (RFC 792). */
export const RedirectCode = {
  NET: 0,
  HOST: 1,
  TOS_NET: 2,
  TOS_HOST: 3,
} as const;

/** ICMPv6 message types (RFC 4443 §2.1): errors below 128, informational above. */
export const Icmp6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
} as const;

/** ICMPv6 destination unreachable codes (RFC 4443 §3.1). */
export const Unreachable6Code = {
  NO_ROUTE: 0,
  ADMIN_PROHIBITED: 1,
  BEYOND_SCOPE: 2,
  ADDRESS: 3,
  PORT: 4,
  SOURCE_POLICY: 5,
  REJECT_ROUTE: 6,
} as const;

/** ICMPv6 time exceeded codes (RFC 4443 §3.3). */
export const TimeExceeded6Code = {
  HOP_LIMIT: 0,
  REASSEMBLY: 1,
} as const;

/** ICMPv6 parameter problem codes (RFC 4443 §3.4). */
export const ParameterProblem6Code = {
  HEADER_FIELD: 0,
  NEXT_HEADER: 1,
  OPTION: 2,
} as const;

/** Length of the ICMP header: type, code, checksum and the 4-byte "rest of header". */
export const ICMP_HEADER_LENGTH = 8;

export { checksum, onesComplementSum, verifyChecksum } from "./_checksum.ts";

function addressBytes(address: string | Uint8Array, what: string): Uint8Array {
  if (typeof address === "string") return parseIP(address).bytes;
  if (address.length !== 4 && address.length !== 16) {
    throw new RangeError(
      `Invalid ${what} address: an IP address has 4 or 16 bytes, got ${address.length}`,
    );
  }
  return address;
}

/**
 * Computes the one's complement sum of the pseudo-header that ICMPv6, UDP and
 * TCP checksums cover: IPv4 (RFC 768, RFC 9293 §3.1) or IPv6 (RFC 8200 §8.1).
 * Pass the result as `initial` to {@linkcode checksum}.
 *
 * @param src The source address (text, or 4 / 16 bytes).
 * @param dst The destination address, of the same family.
 * @param protocol The upper-layer protocol, e.g. `IpProtocol.ICMPV6`.
 * @param length The upper-layer length (header and data) in bytes.
 * @returns The folded sum, 0 to 0xffff.
 * @throws {TypeError} On an invalid address or mixed families.
 *
 * @example An ICMPv6 checksum
 * ```ts
 * import { checksum, IpProtocol, pseudoHeaderSum } from "./icmp.ts";
 * import { assert } from "./testing/assert.ts";
 * const msg = new Uint8Array([128, 0, 0, 0, 0, 1, 0, 1]);
 * const sum = checksum(msg, pseudoHeaderSum("::1", "::1", IpProtocol.ICMPV6, msg.length));
 * assert(sum >= 0);
 * assert(sum <= 0xffff);
 * ```
 */
export function pseudoHeaderSum(
  src: string | Uint8Array,
  dst: string | Uint8Array,
  protocol: number,
  length: number,
): number {
  const s = addressBytes(src, "source");
  const d = addressBytes(dst, "destination");
  if (s.length !== d.length) {
    throw new TypeError("Cannot build a pseudo-header: source and destination families differ");
  }
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff) {
    throw new RangeError(`Invalid pseudo-header length ${length}`);
  }
  // Zero bytes and the protocol byte add protocol; the length adds its two
  // 16-bit halves (IPv4 has only the low half, length < 2^16 there).
  const sum = onesComplementSum(s) + onesComplementSum(d) + (protocol & 0xff) +
    (length >>> 16) + (length & 0xffff);
  return fold(sum);
}

// ---------------------------------------------------------------------------
// Building

/** Options of {@linkcode buildEcho}. */
export interface EchoOptions {
  /**
   * Echo request or echo reply.
   *
   * @default {"request"}
   */
  type?: "request" | "reply";
  /** The identifier, 0 to 65535. */
  id: number;
  /** The sequence number, 0 to 65535. */
  seq: number;
  /**
   * The data after the header.
   *
   * @default {new Uint8Array(0)}
   */
  payload?: Uint8Array;
  /**
   * ICMP (4) or ICMPv6 (6).
   *
   * @default {4}
   */
  family?: Family;
  /** IPv6 source address: with `dst`, the ICMPv6 checksum is computed. */
  src?: string | Uint8Array;
  /** IPv6 destination address: with `src`, the ICMPv6 checksum is computed. */
  dst?: string | Uint8Array;
}

/** Options of {@linkcode buildIcmp}. */
export interface IcmpOptions {
  /**
   * ICMP (4) or ICMPv6 (6).
   *
   * @default {4}
   */
  family?: Family;
  /** The message type, 0 to 255. */
  type: number;
  /**
   * The code, 0 to 255.
   *
   * @default {0}
   */
  code?: number;
  /**
   * The 32-bit "rest of header" (id and sequence, MTU, pointer, gateway…), big-endian.
   *
   * @default {0}
   */
  rest?: number;
  /**
   * The body after the 8-byte header (echo data, or the quoted packet of an error).
   *
   * @default {new Uint8Array(0)}
   */
  body?: Uint8Array;
  /** IPv6 source address: with `dst`, the ICMPv6 checksum is computed. */
  src?: string | Uint8Array;
  /** IPv6 destination address: with `src`, the ICMPv6 checksum is computed. */
  dst?: string | Uint8Array;
}

function checkU(value: number, bits: 8 | 16 | 32, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(
      `Invalid ICMP ${what} ${value}: expected an integer from 0 to ${2 ** bits - 1}`,
    );
  }
}

/**
 * Builds any ICMP or ICMPv6 message. ICMPv4 messages get their checksum;
 * ICMPv6 messages get it when `src` and `dst` are given (otherwise it is 0,
 * which raw and datagram ICMPv6 sockets fill in, RFC 3542 §3.1).
 *
 * @param options Type, code, rest of header, body, family and addresses.
 * @returns The message bytes.
 * @throws {RangeError} On a field out of range.
 *
 * @example A time exceeded message quoting a packet
 * ```ts
 * import { buildIcmp, IcmpType, parseIcmp } from "./icmp.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const msg = buildIcmp({ type: IcmpType.TIME_EXCEEDED, body: new Uint8Array(28) });
 * assertEquals(parseIcmp(msg, 4).kind, "error");
 * ```
 */
export function buildIcmp(options: IcmpOptions): Uint8Array {
  const { type, code = 0, rest = 0, body = new Uint8Array(0), family = 4 } = options;
  checkU(type, 8, "type");
  checkU(code, 8, "code");
  checkU(rest, 32, "rest of header");
  if (family !== 4 && family !== 6) throw new RangeError(`Invalid IP family ${family}`);
  const msg = new Uint8Array(ICMP_HEADER_LENGTH + body.length);
  const view = new DataView(msg.buffer);
  msg[0] = type;
  msg[1] = code;
  view.setUint32(4, rest);
  msg.set(body, ICMP_HEADER_LENGTH);
  if (family === 4) {
    view.setUint16(2, checksum(msg));
  } else if (options.src !== undefined && options.dst !== undefined) {
    const initial = pseudoHeaderSum(options.src, options.dst, IpProtocol.ICMPV6, msg.length);
    view.setUint16(2, checksum(msg, initial));
  }
  return msg;
}

/**
 * Builds an ICMP or ICMPv6 echo request or reply (RFC 792, RFC 4443 §4).
 *
 * @param options Type, identifier, sequence, payload, family and addresses.
 * @returns The message bytes, checksummed for IPv4 (and for IPv6 when `src` and `dst` are given).
 * @throws {RangeError} When the identifier or sequence is not a 16-bit integer.
 *
 * @example An ICMPv6 echo request
 * ```ts
 * import { buildEcho } from "./icmp.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const packet = buildEcho({ type: "request", id: 1, seq: 2, family: 6 });
 * assertEquals(packet[0], 128);
 * assertEquals(packet.length, 8);
 * ```
 */
export function buildEcho(options: EchoOptions): Uint8Array {
  const { id, seq, family = 4, type = "request" } = options;
  checkU(id, 16, "echo identifier");
  checkU(seq, 16, "echo sequence number");
  const icmpType = family === 6
    ? (type === "request" ? Icmp6Type.ECHO_REQUEST : Icmp6Type.ECHO_REPLY)
    : (type === "request" ? IcmpType.ECHO_REQUEST : IcmpType.ECHO_REPLY);
  const built: IcmpOptions = { family, type: icmpType, rest: id * 0x10000 + seq };
  if (options.payload !== undefined) built.body = options.payload;
  if (options.src !== undefined) built.src = options.src;
  if (options.dst !== undefined) built.dst = options.dst;
  return buildIcmp(built);
}

// ---------------------------------------------------------------------------
// Parsing ICMP

/** Fields every parsed ICMP message has. */
export interface MessageBase {
  /** ICMP (4) or ICMPv6 (6). */
  family: Family;
  /** The message type. */
  type: number;
  /** The message code. */
  code: number;
  /** The checksum field as received. */
  checksum: number;
}

/** An echo request or reply. */
export interface EchoMessage extends MessageBase {
  /** Discriminant. */
  kind: "echo";
  /** `true` for a request, `false` for a reply. */
  request: boolean;
  /** The identifier. */
  id: number;
  /** The sequence number. */
  seq: number;
  /** The data after the header (a view of the input). */
  payload: Uint8Array;
}

/** An error message, which quotes the packet that caused it. */
export interface ErrorMessage extends MessageBase {
  /** Discriminant. */
  kind: "error";
  /**
   * The MTU of the next hop: ICMPv6 packet too big (RFC 4443 §3.2) or ICMPv4
   * fragmentation needed (RFC 1191 §4); absent elsewhere.
   */
  mtu?: number;
  /** The offset of the faulty byte of a parameter problem; absent elsewhere. */
  pointer?: number;
  /** The gateway address of an ICMPv4 redirect; absent elsewhere. */
  gateway?: string;
  /** The quoted packet: its IP header and at least 8 bytes after it (a view of the input). */
  quoted: Uint8Array;
}

/** Any other message (timestamp, router advertisement, …). */
export interface OtherMessage extends MessageBase {
  /** Discriminant. */
  kind: "other";
  /** The 4-byte "rest of header" (a view of the input). */
  rest: Uint8Array;
  /** The data after the header (a view of the input). */
  body: Uint8Array;
}

/** A parsed ICMP or ICMPv6 message. */
export type IcmpMessage = EchoMessage | ErrorMessage | OtherMessage;

const V4_ERRORS: ReadonlySet<number> = new Set([
  IcmpType.DEST_UNREACHABLE,
  IcmpType.SOURCE_QUENCH,
  IcmpType.REDIRECT,
  IcmpType.TIME_EXCEEDED,
  IcmpType.PARAMETER_PROBLEM,
]);

function need(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length < length) {
    throw new RangeError(
      `Cannot parse ${what}: ${bytes.length} bytes is shorter than the ${length} it needs`,
    );
  }
}

/**
 * Parses an ICMP or ICMPv6 message (starting at its type byte: strip the IPv4
 * header a raw IPv4 socket delivers first, see {@linkcode parseIpv4Header}).
 * The checksum is not checked here; see {@linkcode verifyChecksum}.
 *
 * @param bytes The message.
 * @param family ICMP (4) or ICMPv6 (6).
 * @returns An echo, an error with its quoted packet, or another message.
 * @throws {RangeError} When the message is shorter than its 8-byte header.
 *
 * @example A time exceeded message
 * ```ts
 * import { buildIcmp, parseIcmp } from "./icmp.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * const msg = parseIcmp(buildIcmp({ family: 6, type: 3, body: new Uint8Array(48) }), 6);
 * assert(msg.kind === "error");
 * assertEquals(msg.quoted.length, 48);
 * ```
 */
export function parseIcmp(bytes: Uint8Array, family: Family): IcmpMessage {
  need(bytes, ICMP_HEADER_LENGTH, family === 4 ? "ICMP message" : "ICMPv6 message");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const type = bytes[0]!;
  const code = bytes[1]!;
  const base = { family, type, code, checksum: view.getUint16(2) };
  const body = bytes.subarray(ICMP_HEADER_LENGTH);
  const isEcho = family === 4
    ? type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY
    : type === Icmp6Type.ECHO_REQUEST || type === Icmp6Type.ECHO_REPLY;
  if (isEcho) {
    return {
      kind: "echo",
      ...base,
      request: type === IcmpType.ECHO_REQUEST || type === Icmp6Type.ECHO_REQUEST,
      id: view.getUint16(4),
      seq: view.getUint16(6),
      payload: body,
    };
  }
  // RFC 4443 §2.1: every ICMPv6 type below 128 is an error.
  const isError = family === 4 ? V4_ERRORS.has(type) : type < 128;
  if (!isError) return { kind: "other", ...base, rest: bytes.subarray(4, 8), body };
  const msg: ErrorMessage = { kind: "error", ...base, quoted: body };
  if (family === 4) {
    if (type === IcmpType.DEST_UNREACHABLE && code === UnreachableCode.FRAGMENTATION_NEEDED) {
      msg.mtu = view.getUint16(6); // RFC 1191 §4: next-hop MTU in the low 16 bits
    } else if (type === IcmpType.PARAMETER_PROBLEM) {
      msg.pointer = bytes[4]!;
    } else if (type === IcmpType.REDIRECT) {
      msg.gateway = formatIP(bytes.subarray(4, 8));
    }
  } else if (type === Icmp6Type.PACKET_TOO_BIG) {
    msg.mtu = view.getUint32(4);
  } else if (type === Icmp6Type.PARAMETER_PROBLEM) {
    msg.pointer = view.getUint32(4);
  }
  return msg;
}

// ---------------------------------------------------------------------------
// IP headers

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
 * import { parseIpv4Header } from "./icmp.ts";
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
 * import { parseIpv6Header } from "./icmp.ts";
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
 * import { parseQuoted } from "./icmp.ts";
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
 * import { describeIcmp } from "./icmp.ts";
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
