/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: build and parse them, and
 * the Internet checksum (RFC 1071) with the pseudo-header of RFC 768 / RFC 8200
 * section 8.1. What an error quotes (the IP header and the start of the
 * transport header of the packet that caused it) and the names of types and
 * codes are read by `icmp_error.ts`, apart so that ping, which needs none of
 * it, does not load it at start-up.
 *
 * The parser never copies: payloads and quoted packets are `subarray` views
 * of the input. It throws a `RangeError` on truncated input.
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

/**
 * Parses an ICMP or ICMPv6 message (starting at its type byte: strip the IPv4
 * header a raw IPv4 socket delivers first, see `parseIpv4Header()` in
 * `icmp_error.ts`).
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
  if (bytes.length < ICMP_HEADER_LENGTH) {
    const what = family === 4 ? "ICMP message" : "ICMPv6 message";
    throw new RangeError(`Cannot parse ${what}: ${bytes.length} bytes is shorter than its header`);
  }
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
