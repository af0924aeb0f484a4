/**
 * Raw, ICMP-datagram and UDP sockets through `Deno.dlopen` bindings to libc:
 * the only FFI in the project. One concept per module:
 *
 * - `ffi.ts`: the symbol table and its bindings, the only `Deno.dlopen`s
 *   ({@linkcode bindFastCalls} binds the per-datagram calls for a hot loop);
 * - `constants.ts`: the kernel's socket constants (internal);
 * - `errno.ts`: errno names and text, {@linkcode SocketError};
 * - `socket.ts`: {@linkcode openSocket} and {@linkcode Socket};
 * - `echo.ts`: the batched ICMP echo path a flood runs ({@linkcode EchoBurst}),
 *   and the kernel filter on an echo identifier;
 * - `netns.ts`: sockets in other network namespaces (internal);
 * - `clock.ts`: CLOCK_REALTIME, the clock of the kernel's receive times;
 * - `sched.ts`: a short time slice for a thread that answers datagrams;
 * - `timer.ts`: sleeping a thread until an exact CLOCK_MONOTONIC time;
 * - `share.ts`: opening a bound port to more `SO_REUSEPORT` sockets;
 * - `lookup.ts`: `getaddrinfo` / `getnameinfo`;
 * - `tcp_listener.ts`: TCP_NODELAY on listeners Deno gives no handle to
 *   ({@linkcode setListenerNoDelay}); it loads libc only when called, so a
 *   server imports it directly rather than through this module;
 * - `uring.ts`: TCP listeners and connections on an io_uring ring, the
 *   server core's plain-TCP transport (`listenUring`); imported
 *   directly by `lib/http/server.ts`, for the same reason.
 *
 * Linux with glibc only; elsewhere the first use throws a clear error.
 *
 * @example An ICMP echo to the loopback address
 * ```ts ignore
 * import { openSocket } from "./mod.ts";
 * import { buildEcho } from "../icmp.ts";
 * using sock = openSocket({ kind: "icmp", family: 4 });
 * sock.send(buildEcho({ family: 4, id: 1, seq: 1 }), { family: 4, address: "127.0.0.1", port: 0 });
 * const reply = await sock.receive({ timeoutMs: 1000 });
 * ```
 *
 * @module
 */
export type { Family, SocketAddress } from "../sockaddr.ts";
export { errnoName, noRoomToSend, SocketError, strerror } from "./errno.ts";
export {
  type BpfInstruction,
  type Datagram,
  DatagramInfo,
  type DirectReceive,
  type ErrorOrigin,
  type ErrorReport,
  type OpenOptions,
  openSocket,
  type ReceiveOptions,
  Socket,
  type SocketKind,
} from "./socket.ts";
export {
  bindFastCalls,
  EchoBurst,
  type EchoBurstHandler,
  type EchoBurstOptions,
  echoIdFilter,
} from "./echo.ts";
export { realtimeInto, realtimeNs, timespecUs } from "./clock.ts";
export { requestSlice } from "./sched.ts";
export { monotonicMs, setTimerSlack, sleepUntil, timerSlack } from "./timer.ts";
export { sharePort } from "./share.ts";
export { LookupError, lookupHost, lookupName } from "./lookup.ts";
export { connectionNoDelay, setListenerNoDelay } from "./tcp_listener.ts";
