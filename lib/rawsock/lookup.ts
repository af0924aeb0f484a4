/**
 * Name lookups as the C library makes them (`getaddrinfo`, `getnameinfo`:
 * the hosts file, nsswitch and DNS in the configured order), on a worker
 * thread.
 *
 * @module
 */
import { AF_INET, AF_INET6, decodeSockaddr, encodeSockaddr, type Family } from "../sockaddr.ts";
import { SOCK_DGRAM } from "./constants.ts";
import { cString, lib } from "./ffi.ts";

/** `getaddrinfo` / `getnameinfo` error codes (glibc's `EAI_*`) by name. */
const EAI_NAMES: Record<number, string> = {
  [-2]: "ENOTFOUND", // EAI_NONAME
  [-3]: "EAI_AGAIN",
  [-4]: "EAI_FAIL",
  [-5]: "ENODATA", // EAI_NODATA
  [-6]: "EAI_FAMILY",
  [-9]: "EAI_ADDRFAMILY",
  [-10]: "EAI_MEMORY",
  [-11]: "EAI_SYSTEM",
};

/**
 * A failed `getaddrinfo` / `getnameinfo`, with the resolver's code
 * (`ENOTFOUND` for no such name, `EAI_AGAIN` for a temporary failure, …).
 *
 * @example
 * ```ts
 * import { LookupError } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(new LookupError(-2, "getaddrinfo").code, "ENOTFOUND");
 * ```
 */
export class LookupError extends Error {
  /** The resolver's code. */
  readonly code: string;

  /**
   * Creates the error.
   *
   * @param status The `EAI_*` value the call returned.
   * @param syscall The call that failed.
   */
  constructor(status: number, syscall: string) {
    const code = EAI_NAMES[status] ?? `EAI${status}`;
    super(`${syscall}: ${code}`);
    this.name = "LookupError";
    this.code = code;
  }
}

/**
 * Resolves a host name as the C library does (`getaddrinfo`: the hosts file,
 * nsswitch and DNS in the configured order), on a worker thread.
 *
 * @param host The name.
 * @param family Only this IP version; `undefined` for the system's order.
 * @returns The addresses, in the order the system prefers.
 * @throws {LookupError} When the name does not resolve.
 *
 * @example
 * ```ts
 * import { lookupHost } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const [first] = await lookupHost("localhost", 4);
 * assertEquals(first?.address, "127.0.0.1");
 * ```
 */
export async function lookupHost(
  host: string,
  family?: Family,
): Promise<{ family: Family; address: string }[]> {
  const c = lib();
  const hints = new Uint8Array(48);
  const view = new DataView(hints.buffer);
  view.setInt32(4, family === 4 ? AF_INET : family === 6 ? AF_INET6 : 0, true);
  view.setInt32(8, SOCK_DGRAM, true); // one entry per address, not per socket type
  const name = cString(host);
  const result = new Uint8Array(8);
  const status = await c.getaddrinfo(name, null, hints, result);
  if (status !== 0) throw new LookupError(status, "getaddrinfo");
  const head = Deno.UnsafePointer.create(new DataView(result.buffer).getBigUint64(0, true));
  const out: { family: Family; address: string }[] = [];
  try {
    for (let ai = head; ai !== null;) {
      const entry = new Deno.UnsafePointerView(ai);
      const addrlen = entry.getUint32(16);
      const addr = entry.getPointer(24);
      if (addr !== null && addrlen > 0) {
        const bytes = new Uint8Array(addrlen);
        new Deno.UnsafePointerView(addr).copyInto(bytes);
        const decoded = decodeSockaddr(bytes, addrlen);
        if (decoded && !out.some((a) => a.address === decoded.address)) {
          out.push({ family: decoded.family, address: decoded.address });
        }
      }
      ai = entry.getPointer(40);
    }
  } finally {
    if (head !== null) c.freeaddrinfo(head);
  }
  return out;
}

/**
 * Finds the name of an address as the C library does (`getnameinfo` with
 * `NI_NAMEREQD`: the hosts file, then reverse DNS), on a worker thread.
 *
 * @param address An IPv4 or IPv6 address.
 * @returns The name, or `undefined` when the address has none.
 *
 * @example
 * ```ts
 * import { lookupName } from "./mod.ts";
 * const name = await lookupName("127.0.0.1"); // "localhost" on most systems
 * ```
 */
export async function lookupName(address: string): Promise<string | undefined> {
  const c = lib();
  const family: Family = address.includes(":") ? 6 : 4;
  const sa = encodeSockaddr({ family, address, port: 0 });
  const host = new Uint8Array(1025); // NI_MAXHOST
  const NI_NAMEREQD = 8;
  const status = await c.getnameinfo(sa, sa.length, host, host.length, null, 0, NI_NAMEREQD);
  if (status !== 0) return undefined;
  const end = host.indexOf(0);
  return new TextDecoder().decode(host.subarray(0, end < 0 ? host.length : end));
}
