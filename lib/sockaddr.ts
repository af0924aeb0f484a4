/**
 * IPv4 and IPv6 addresses in text and binary form, and the Linux
 * `sockaddr_in` / `sockaddr_in6` structures built from them.
 *
 * Text forms follow RFC 4291 §2.2 on input and RFC 5952 (canonical form) on
 * output, so `formatIPv6(parseIPv6("2001:DB8:0:0::1"))` is `"2001:db8::1"`.
 *
 * @module
 */

/** An IP version: 4 or 6. */
export type Family = 4 | 6;

/** An IP address with a port, as a socket sees it. */
export interface SocketAddress {
  /** The IP version. */
  family: Family;
  /** The address in text form (canonical for IPv6). */
  address: string;
  /** The port, or 0 where the protocol has none (ICMP). */
  port: number;
  /** The IPv6 scope (interface index) of a link-local address; 0 otherwise. */
  scopeId?: number;
}

/** Linux `AF_INET`. */
export const AF_INET = 2;
/** Linux `AF_INET6`. */
export const AF_INET6 = 10;
/** Size of `struct sockaddr_in`. */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `struct sockaddr_in6`. */
export const SOCKADDR_IN6_SIZE = 28;
/** Size of `struct sockaddr_storage`, big enough for any address. */
export const SOCKADDR_STORAGE_SIZE = 128;

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses a dotted-quad IPv4 address.
 *
 * @param text The address, e.g. `"192.0.2.1"`.
 * @returns The four address bytes.
 * @throws {TypeError} When the text is not an IPv4 address.
 *
 * @example
 * ```ts
 * import { parseIPv4 } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(parseIPv4("10.0.0.1")[3], 1);
 * ```
 */
export function parseIPv4(text: string): Uint8Array {
  if (!IPV4_RE.test(text)) throw new TypeError(`Invalid IPv4 address "${text}"`);
  return new Uint8Array(text.split(".").map(Number));
}

/**
 * Formats four bytes as a dotted-quad IPv4 address.
 *
 * @param bytes At least four bytes; the first four are used.
 * @returns The address text.
 *
 * @example
 * ```ts
 * import { formatIPv4 } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(formatIPv4(new Uint8Array([127, 0, 0, 1])), "127.0.0.1");
 * ```
 */
export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length < 4) throw new RangeError(`An IPv4 address needs 4 bytes, got ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * Parses an IPv6 address (RFC 4291 §2.2), including `::` compression and an
 * embedded IPv4 tail. A zone suffix (`%eth0`) is not part of the address and
 * is rejected here; see {@linkcode splitZone}.
 *
 * @param text The address, e.g. `"2001:db8::1"`.
 * @returns The sixteen address bytes.
 * @throws {TypeError} When the text is not an IPv6 address.
 *
 * @example
 * ```ts
 * import { parseIPv6 } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(parseIPv6("::1")[15], 1);
 * ```
 */
export function parseIPv6(text: string): Uint8Array {
  const fail = (): never => {
    throw new TypeError(`Invalid IPv6 address "${text}"`);
  };
  if (text.length < 2 || text.length > 45) fail();
  const out = new Uint8Array(16);
  let head = text;
  let v4: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    try {
      v4 = parseIPv4(text.slice(lastColon + 1));
    } catch {
      fail();
    }
    head = text.slice(0, lastColon + 1);
    if (head.endsWith("::")) {
      // "::ffff:1.2.3.4" style: keep the "::" intact.
    } else head = head.slice(0, -1);
  }
  const groupsWanted = v4 ? 6 : 8;
  const halves = head.split("::");
  if (halves.length > 2) fail();
  const parseGroups = (part: string): number[] => {
    if (part === "") return [];
    return part.split(":").map((g) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) fail();
      return parseInt(g, 16);
    });
  };
  const left = parseGroups(halves[0] ?? "");
  const right = halves.length === 2 ? parseGroups(halves[1] ?? "") : [];
  let groups: number[];
  if (halves.length === 2) {
    const zeros = groupsWanted - left.length - right.length;
    if (zeros < 1) fail();
    groups = [...left, ...new Array<number>(zeros).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== groupsWanted) fail();
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (v4) out.set(v4, 12);
  return out;
}

/**
 * Formats sixteen bytes as an IPv6 address in RFC 5952 canonical form: lower
 * case, no leading zeros, the longest run of two or more zero groups
 * compressed to `::`, and IPv4-mapped addresses with a dotted tail.
 *
 * @param bytes At least sixteen bytes; the first sixteen are used.
 * @returns The address text.
 *
 * @example
 * ```ts
 * import { formatIPv6, parseIPv6 } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(formatIPv6(parseIPv6("2001:0DB8:0:0:0:0:0:1")), "2001:db8::1");
 * ```
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length < 16) {
    throw new RangeError(`An IPv6 address needs 16 bytes, got ${bytes.length}`);
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[i * 2] ?? 0) << 8) | (bytes[i * 2 + 1] ?? 0));
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted-quad tail.
  const v4 = unmapIPv4(bytes);
  if (v4 !== undefined) return `::ffff:${formatIPv4(v4)}`;
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/**
 * Finds the IPv4 address inside an IPv4-mapped IPv6 address
 * (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), as a dual-stack socket reports an
 * IPv4 peer.
 *
 * @param bytes Address bytes: 16 for IPv6 (any other length is not mapped).
 * @returns A view of the four IPv4 bytes, or `undefined` when not IPv4-mapped.
 *
 * @example
 * ```ts
 * import { formatIPv4, parseIPv6, unmapIPv4 } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(formatIPv4(unmapIPv4(parseIPv6("::ffff:10.0.0.1"))!), "10.0.0.1");
 * assertEquals(unmapIPv4(parseIPv6("::1")), undefined);
 * ```
 */
export function unmapIPv4(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length < 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return undefined;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return undefined;
  return bytes.subarray(12, 16);
}

/**
 * Tells which IP version an address text is, if any.
 *
 * @param text A candidate address.
 * @returns 4, 6, or `undefined` for a name or garbage.
 *
 * @example
 * ```ts
 * import { ipFamily } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(ipFamily("::1"), 6);
 * assertEquals(ipFamily("localhost"), undefined);
 * ```
 */
export function ipFamily(text: string): Family | undefined {
  if (IPV4_RE.test(text)) return 4;
  if (text.includes(":")) {
    try {
      parseIPv6(splitZone(text).address);
      return 6;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Splits an IPv6 zone suffix (`fe80::1%eth0`) from the address.
 *
 * @param text The address, with or without `%zone`.
 * @returns The address and the zone (empty when absent).
 *
 * @example
 * ```ts
 * import { splitZone } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(splitZone("fe80::1%lo").zone, "lo");
 * ```
 */
export function splitZone(text: string): { address: string; zone: string } {
  const i = text.indexOf("%");
  return i === -1
    ? { address: text, zone: "" }
    : { address: text.slice(0, i), zone: text.slice(i + 1) };
}

/**
 * Parses an address text of either version into bytes.
 *
 * @param text An IPv4 or IPv6 address.
 * @returns The family and the 4 or 16 bytes.
 * @throws {TypeError} When the text is not an IP address.
 *
 * @example
 * ```ts
 * import { parseIP } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(parseIP("::1").family, 6);
 * ```
 */
export function parseIP(text: string): { family: Family; bytes: Uint8Array } {
  if (IPV4_RE.test(text)) return { family: 4, bytes: parseIPv4(text) };
  if (text.includes(":")) return { family: 6, bytes: parseIPv6(splitZone(text).address) };
  throw new TypeError(`Invalid IP address "${text}"`);
}

/**
 * Formats 4 or 16 address bytes as text.
 *
 * @param bytes The address bytes.
 * @returns Dotted quad for 4 bytes, RFC 5952 text for 16.
 *
 * @example
 * ```ts
 * import { formatIP } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(formatIP(new Uint8Array(16)), "::");
 * ```
 */
export function formatIP(bytes: Uint8Array): string {
  if (bytes.length === 4) return formatIPv4(bytes);
  if (bytes.length === 16) return formatIPv6(bytes);
  throw new RangeError(`An IP address has 4 or 16 bytes, got ${bytes.length}`);
}

/**
 * Encodes a `sockaddr_in` or `sockaddr_in6` (Linux layout; port and address
 * in network byte order, the family in host order).
 *
 * @param addr The address; `address` may carry an IPv6 `%zone` only when
 *   `scopeId` is given numerically instead.
 * @returns The structure's bytes (16 or 28).
 * @throws {TypeError} On an invalid address.
 * @throws {RangeError} On a port outside 0–65535.
 *
 * @example
 * ```ts
 * import { encodeSockaddr } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const sa = encodeSockaddr({ family: 4, address: "127.0.0.1", port: 80 });
 * assertEquals(sa.length, 16);
 * assertEquals(sa[3], 80);
 * ```
 */
export function encodeSockaddr(addr: SocketAddress): Uint8Array {
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65535) {
    throw new RangeError(`Invalid port ${addr.port}: must be an integer from 0 to 65535`);
  }
  if (addr.family === 4) {
    const buf = new Uint8Array(SOCKADDR_IN_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, addr.port, false);
    buf.set(parseIPv4(addr.address), 4);
    return buf;
  }
  if (addr.family === 6) {
    const buf = new Uint8Array(SOCKADDR_IN6_SIZE);
    const view = new DataView(buf.buffer);
    view.setUint16(0, AF_INET6, true);
    view.setUint16(2, addr.port, false);
    buf.set(parseIPv6(splitZone(addr.address).address), 8);
    view.setUint32(24, addr.scopeId ?? 0, true);
    return buf;
  }
  throw new TypeError(`Invalid address family ${String((addr as { family: unknown }).family)}`);
}

/**
 * Decodes a `sockaddr_in` or `sockaddr_in6` written by the kernel.
 *
 * @param bytes The structure's bytes.
 * @param length How many bytes the kernel filled in (`socklen_t`).
 * @returns The address, or `undefined` for an empty or foreign family.
 *
 * @example
 * ```ts
 * import { decodeSockaddr, encodeSockaddr } from "./sockaddr.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const sa = encodeSockaddr({ family: 6, address: "::1", port: 53 });
 * assertEquals(decodeSockaddr(sa)?.address, "::1");
 * ```
 */
export function decodeSockaddr(
  bytes: Uint8Array,
  length: number = bytes.length,
): SocketAddress | undefined {
  if (length < 2) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  if (family === AF_INET && length >= SOCKADDR_IN_SIZE) {
    return {
      family: 4,
      address: formatIPv4(bytes.subarray(4, 8)),
      port: view.getUint16(2, false),
    };
  }
  if (family === AF_INET6 && length >= 24) {
    const scopeId = length >= SOCKADDR_IN6_SIZE ? view.getUint32(24, true) : 0;
    return {
      family: 6,
      address: formatIPv6(bytes.subarray(8, 24)),
      port: view.getUint16(2, false),
      scopeId,
    };
  }
  return undefined;
}
