/**
 * Loopback port helpers for tests that start a peer as a child process
 * (nginx, a CLI server), which must be told its port in advance.
 *
 * @module
 */

/**
 * Finds a TCP port on 127.0.0.1 that is free now, by binding port 0 and
 * closing the listener. Another process may take it before it is used, so
 * prefer passing port 0 to servers that report their port.
 *
 * @returns The port number.
 *
 * @example
 * ```ts
 * import { freePort } from "./ports.ts";
 * import { assertEquals } from "./assert.ts";
 * const port = freePort();
 * using listener = Deno.listen({ hostname: "127.0.0.1", port });
 * assertEquals(listener.addr.port, port);
 * ```
 */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Reserves a TCP port on which connects are refused: a socket bound to it on
 * every address (`0.0.0.0`) that never listens. Unlike a port from
 * {@linkcode freePort}, no other socket can bind it while it is held (a
 * listener there would accept, and the connect would not be refused), so
 * tests running in parallel cannot take it. Loads the libc bindings (FFI).
 *
 * @returns The port, released on dispose.
 *
 * @example
 * ```ts
 * import { refusedPort } from "./ports.ts";
 * import { assertRejects } from "./assert.ts";
 * using reserved = await refusedPort();
 * await assertRejects(() => Deno.connect({ hostname: "127.0.0.1", port: reserved.port }));
 * ```
 */
export async function refusedPort(): Promise<{ port: number } & Disposable> {
  const { lib, errnoCell } = await import("../rawsock/ffi.ts");
  const { decodeSockaddr, encodeSockaddr } = await import("../sockaddr.ts");
  const libc = lib();
  const fd = libc.socket(2, 1, 0);
  if (fd < 0) throw new Error(`socket() failed: errno ${errnoCell[0]}`);
  const sa = encodeSockaddr({ family: 4, address: "0.0.0.0", port: 0 });
  const len = new Uint8Array(new Uint32Array([sa.length]).buffer);
  if (libc.bind(fd, sa, sa.length) !== 0 || libc.getsockname(fd, sa, len) !== 0) {
    const errno = errnoCell[0];
    libc.close(fd);
    throw new Error(`Cannot reserve a port: errno ${errno}`);
  }
  return { port: decodeSockaddr(sa)!.port, [Symbol.dispose]: () => void libc.close(fd) };
}
