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
import { decodeSockaddr } from "../sockaddr.ts";
import { EBADF, IPPROTO_TCP, SO_ACCEPTCONN, SOL_SOCKET, TCP_NODELAY } from "./constants.ts";

/** Free descriptor numbers in a row after which the scan stops (Linux hands out the lowest free one). */
const FD_GAP = 1024;

type Libc = ReturnType<typeof import("./ffi.ts").lib>;

/** The C library, or `undefined` off Linux, without FFI permission or without glibc. */
async function loadLibc(): Promise<{ libc: Libc; errno: Int32Array } | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  // Loaded here, not at import: loading binds libc, which needs the permission checked above.
  const ffi = await import("./ffi.ts");
  try {
    return { libc: ffi.lib(), errno: ffi.errnoCell };
  } catch {
    return undefined; // No glibc.
  }
}

/**
 * This process's TCP sockets (IPv4 or IPv6) bound to local `port`, found by
 * asking each descriptor, since Deno hands out no descriptors (and opens
 * `/proc/self/fd` only under `--allow-all`).
 */
function* socketsOn(
  { libc, errno }: { libc: Libc; errno: Int32Array },
  port: number,
): Generator<{ fd: number; listening: boolean }> {
  const value = new Uint8Array(4);
  const address = new Uint8Array(128);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  for (let fd = 0, free = 0; free < FD_GAP; fd++) {
    lengthView.setUint32(0, value.length, true);
    if (libc.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, value, length) !== 0) {
      // EBADF: a free number; anything else (ENOTSOCK): a file or pipe.
      free = errno[0] === EBADF ? free + 1 : 0;
      continue;
    }
    free = 0;
    lengthView.setUint32(0, address.length, true);
    if (libc.getsockname(fd, address, length) !== 0) continue;
    if (decodeSockaddr(address, lengthView.getUint32(0, true))?.port !== port) continue;
    yield { fd, listening: value[0] !== 0 };
  }
}

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
  const c = await loadLibc();
  if (c === undefined) return 0; // Nagle stays on, which is only slower.
  const one = new Uint8Array(new Int32Array([1]).buffer);
  let set = 0;
  for (const { fd, listening } of socketsOn(c, port)) {
    if (listening && c.libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, one.length) === 0) set++;
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
 * process is found, or without FFI permission.
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
  const c = await loadLibc();
  if (c === undefined) return undefined;
  const address = new Uint8Array(128);
  const value = new Uint8Array(4);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  for (const { fd, listening } of socketsOn(c, localPort)) {
    if (listening) continue;
    lengthView.setUint32(0, address.length, true);
    if (c.libc.getpeername(fd, address, length) !== 0) continue;
    if (decodeSockaddr(address, lengthView.getUint32(0, true))?.port !== remotePort) continue;
    lengthView.setUint32(0, value.length, true);
    if (c.libc.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, value, length) !== 0) return undefined;
    return new DataView(value.buffer).getInt32(0, true) !== 0;
  }
  return undefined;
}
