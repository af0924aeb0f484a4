/**
 * TCP_NODELAY for the listeners Deno gives no handle to set it on, such as
 * `Deno.listenTls`'s: Linux copies the option from a listening socket to
 * every connection it accepts, so setting it on the listener once turns
 * Nagle's algorithm off for all of them.
 *
 * Deno's TLS connections have no `setNoDelay`. With Nagle on, the last,
 * partial segment of each response waited for the client's ACK of the
 * previous ones: one HTTP/2 connection fetching a 1 MiB file ran at about
 * 140 MB/s, and at 580 MB/s with the option set (h2load `-c1 -m1`, same
 * minute; nginx sets `tcp_nodelay on` by default).
 *
 * This module loads the C library only when called, and only with FFI
 * permission, so importing it never asks for that permission.
 *
 * @module
 */
import { IPPROTO_TCP, TCP_NODELAY } from "./constants.ts";

/** `st` of a listening socket in `/proc/net/tcp` (`TCP_LISTEN`). */
const LISTEN = "0A";

/**
 * Sets TCP_NODELAY on this process's TCP listeners bound to `port`, so that
 * the connections they accept from then on send each write at once.
 *
 * The listeners are found through `/proc/net/tcp`, `/proc/net/tcp6` and
 * `/proc/self/fd`; every loop of the process sharing the port (Web Workers
 * included) is covered by one call. Without FFI or read permission, or off
 * Linux, nothing changes and the result is 0.
 *
 * @param port The listening port.
 * @returns How many listening sockets now have the option.
 *
 * @example A TLS-less listener: the call finds it by its port
 * ```ts
 * import { setListenerNoDelay } from "./tcp_listener.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * assertEquals(await setListenerNoDelay(listener.addr.port), 1);
 * ```
 */
export async function setListenerNoDelay(port: number): Promise<number> {
  if (Deno.build.os !== "linux") return 0;
  try {
    if (
      Deno.permissions.querySync({ name: "ffi" }).state !== "granted" ||
      Deno.permissions.querySync({ name: "read", path: "/proc" }).state !== "granted"
    ) return 0;
    const inodes = listeningInodes(port);
    if (inodes.size === 0) return 0;
    // Loaded here, not at import: loading binds libc, which needs the permission checked above.
    const { int32, lib } = await import("./ffi.ts");
    const setsockopt = lib().setsockopt;
    const one = int32(1);
    let set = 0;
    for (const fd of socketFds(inodes)) {
      if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, one.length) === 0) set++;
    }
    return set;
  } catch {
    // No C library, or /proc unreadable: Nagle stays on, which is only slower.
    return 0;
  }
}

/** The socket inodes of the listeners on `port`, IPv4 and IPv6. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue; // No IPv6 in this kernel.
    }
    // "sl local_address rem_address st ... inode": the local port is the hex after the colon.
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN) continue;
      const local = f[1]!;
      if (parseInt(local.slice(local.indexOf(":") + 1), 16) === port) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** This process's descriptors of the sockets with those inodes. */
function socketFds(inodes: Set<string>): number[] {
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // Closed since the listing.
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m !== null && inodes.has(m[1]!)) fds.push(Number(entry.name));
  }
  return fds;
}
