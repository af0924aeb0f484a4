/**
 * Test support: the network lab (namespaces, veth links, routers and
 * nftables rules; see {@linkcode Lab} and {@linkcode labTest}), minimal
 * assertions, throw-away TLS certificates ({@linkcode makeTestCa}) and
 * {@linkcode freePort} and {@linkcode taskCommand}. A headless Chromium for page tests is in
 * `lib/testing/browser.ts`.
 *
 * @module
 */
export * from "./lab.ts";
export * from "./assert.ts";
export * from "./tls.ts";
export * from "./ports.ts";
export * from "./tasks.ts";
