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
import { AF_INET, AF_INET6 } from "../sockaddr.ts";
import { EBADF, IPPROTO_TCP, SO_ACCEPTCONN, SOL_SOCKET, TCP_NODELAY } from "./constants.ts";

/** `st` of a connected socket (`TCP_ESTABLISHED`). */
const ESTABLISHED = "01";

/** Free descriptor numbers in a row after which the scan stops (Linux hands out the lowest free one). */
const FD_GAP = 1024;

/**
 * Sets TCP_NODELAY on this process's TCP listeners bound to `port`, so that
 * the connections they accept from then on send each write at once.
 *
 * The listeners are found by asking each descriptor of the process whether
 * it is a listening socket and on which port (`SO_ACCEPTCONN`,
 * `getsockname`; Deno opens `/proc/self/fd` only under `--allow-all`), so
 * every loop sharing the port (Web Workers included) is covered by one
 * call. Without FFI permission, or off Linux, nothing changes and the
 * result is 0.
 *
 * @param port The listening port.
 * @returns How many listening sockets now have the option.
 *
 * @example A plain listener: the call finds it by its port
 * ```ts
 * import { setListenerNoDelay } from "./tcp_listener.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * assertEquals(await setListenerNoDelay(listener.addr.port), 1);
 * ```
 */
export async function setListenerNoDelay(port: number): Promise<number> {
  if (Deno.build.os !== "linux") return 0;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return 0;
  // Loaded here, not at import: loading binds libc, which needs the permission checked above.
  const ffi = await import("./ffi.ts");
  let libc: ReturnType<typeof ffi.lib>;
  try {
    libc = ffi.lib();
  } catch {
    return 0; // No glibc: Nagle stays on, which is only slower.
  }
  const one = ffi.int32(1);
  const value = new Uint8Array(4);
  const address = new Uint8Array(128);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  let set = 0;
  for (let fd = 0, free = 0; free < FD_GAP; fd++) {
    lengthView.setUint32(0, value.length, true);
    if (libc.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, value, length) !== 0) {
      // EBADF: a free number; anything else (ENOTSOCK): a file or pipe.
      free = ffi.errnoCell[0] === EBADF ? free + 1 : 0;
      continue;
    }
    free = 0;
    if (value[0] === 0) continue; // A socket, but not a listening one.
    lengthView.setUint32(0, address.length, true);
    if (libc.getsockname(fd, address, length) !== 0) continue;
    const family = address[0]! | (address[1]! << 8);
    // sockaddr_in and sockaddr_in6 both keep the port, big-endian, at offset 2.
    if (family !== AF_INET && family !== AF_INET6) continue;
    if (((address[2]! << 8) | address[3]!) !== port) continue;
    if (libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, one.length) === 0) set++;
  }
  return set;
}

/**
 * Whether this process's side of a TCP connection has TCP_NODELAY set: a
 * check for tests and diagnostics of {@linkcode setListenerNoDelay}.
 *
 * @param localPort The connection's port on this side (a server's listening port).
 * @param remotePort The peer's port.
 * @returns `true` or `false`, or `undefined` when no such connection of this
 * process is found, or without FFI permission and `--allow-all` (it reads
 * `/proc/net/tcp` and `/proc/self/fd`, which Deno opens only then).
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
  let fd: number | undefined;
  try {
    const inodes = tcpInodes((state, local, remote) =>
      state === ESTABLISHED && local === localPort && remote === remotePort
    );
    fd = socketFds(inodes)[0];
  } catch {
    return undefined; // /proc is closed to this process.
  }
  if (fd === undefined) return undefined;
  const { lib } = await import("./ffi.ts");
  const value = new Uint8Array(4);
  const length = new Uint8Array(new Uint32Array([4]).buffer);
  if (lib().getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, value, length) !== 0) return undefined;
  return new DataView(value.buffer).getInt32(0, true) !== 0;
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
