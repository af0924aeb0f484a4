/**
 * Test support: the network lab (namespaces, veth links, routers and
 * nftables rules; see {@linkcode Lab} and {@linkcode labTest}) and minimal
 * assertions.
 *
 * @module
 */
export * from "./lab.ts";
export * from "./assert.ts";
