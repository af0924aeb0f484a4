/**
 * The socket layer moved to `lib/rawsock/` (import `./rawsock/mod.ts`, or
 * the one module needed); this re-export keeps the two CLI entry points
 * that still name this path working until their imports change.
 *
 * @module
 */
export * from "./rawsock/mod.ts";
