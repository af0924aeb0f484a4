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
