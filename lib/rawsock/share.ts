/**
 * Opening a bound port to more sockets of this program, for receive loops
 * on threads of their own that the kernel spreads datagrams over
 * (`SO_REUSEPORT`).
 *
 * @module
 */
import { SO_REUSEPORT, SOL_SOCKET } from "./constants.ts";
import type { Socket } from "./socket.ts";

/**
 * Sets `SO_REUSEPORT` on a socket that is already bound, so that more
 * sockets opened with `reusePort: true` can bind its address and port, and
 * the kernel spreads the datagrams over all of them. Binding the first
 * socket without the option and setting it afterwards checks that nothing
 * else holds the port (a socket of another program with the option would
 * otherwise be joined, not refused) and leaves no moment in which the port
 * is free, as closing a probe and binding again would. Only programs of the
 * same user that set the option can join, as with any `SO_REUSEPORT` port.
 *
 * @param sock A bound UDP or TCP socket.
 * @throws {SocketError} When the kernel refuses the option (a closed socket).
 *
 * @example Two receive sockets on one port
 * ```ts
 * import { openSocket, sharePort } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * using first = openSocket({ kind: "udp", family: 4 });
 * first.bind({ family: 4, address: "127.0.0.1", port: 0 });
 * sharePort(first);
 * const port = first.localAddress().port;
 * using second = openSocket({ kind: "udp", family: 4, reusePort: true });
 * second.bind({ family: 4, address: "127.0.0.1", port });
 * assertEquals(second.localAddress().port, port);
 * ```
 */
export function sharePort(sock: Socket): void {
  sock.setOption(SOL_SOCKET, SO_REUSEPORT, 1);
}
