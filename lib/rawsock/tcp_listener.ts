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
/** `st` of a connected socket (`TCP_ESTABLISHED`). */
const ESTABLISHED = "01";

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

/**
 * Whether this process's side of a TCP connection has TCP_NODELAY set: a
 * check for tests and diagnostics of {@linkcode setListenerNoDelay}.
 *
 * @param localPort The connection's port on this side (a server's listening port).
 * @param remotePort The peer's port.
 * @returns `true` or `false`, or `undefined` when no such connection of this
 * process is found (or FFI is not permitted).
 *
 * @example
 * ```ts
 * import { connectionNoDelay } from "./tcp_listener.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * using server = await listener.accept();
 * server.setNoDelay(true);
 * const port = (client.localAddr as Deno.NetAddr).port;
 * assertEquals(await connectionNoDelay(listener.addr.port, port), true);
 * client.close();
 * ```
 */
export async function connectionNoDelay(
  localPort: number,
  remotePort: number,
): Promise<boolean | undefined> {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  const inodes = tcpInodes((state, local, remote) =>
    state === ESTABLISHED && local === localPort && remote === remotePort
  );
  const fd = socketFds(inodes)[0];
  if (fd === undefined) return undefined;
  const { lib } = await import("./ffi.ts");
  const value = new Uint8Array(4);
  const length = new Uint8Array(new Uint32Array([4]).buffer);
  if (lib().getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, value, length) !== 0) return undefined;
  return new DataView(value.buffer).getInt32(0, true) !== 0;
}

/** The socket inodes of the listeners on `port`, IPv4 and IPv6. */
function listeningInodes(port: number): Set<string> {
  return tcpInodes((state, local) => state === LISTEN && local === port);
}

/** The inodes of the TCP sockets (IPv4 and IPv6) whose state and ports pass `match`. */
function tcpInodes(match: (state: string, local: number, remote: number) => boolean): Set<string> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue; // No IPv6 in this kernel.
    }
    // "sl local_address rem_address st ... inode": a port is the hex after an address's colon.
    const port = (address: string) => parseInt(address.slice(address.indexOf(":") + 1), 16);
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 10 && match(f[3]!, port(f[1]!), port(f[2]!))) inodes.add(f[9]!);
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
