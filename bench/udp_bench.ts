// Micro-benchmarks of the UDP pinger's per-packet work (`deno bench -A bench/udp_bench.ts`):
// what the server spends per request outside the socket, and the client's
// statistics. The end-to-end figures against irtt are in bench/udp.ts.
import { PingService } from "../udp_pinger/server.ts";
import {
  encodePing,
  parseMessage,
  signDatagram,
  toUpperAscii,
  verifyDatagram,
} from "../udp_pinger/protocol.ts";
import { createHmac } from "node:crypto";
import { ReusedHmac } from "../udp_pinger/_hmac.ts";
import { RttStats } from "../lib/stats.ts";

const pings = Array.from({ length: 1024 }, (_, i) => encodePing(i + 1, 1700000000.5, { size: 64 }));
const peer = { hostname: "127.0.0.1", port: 40000 };

let i = 0;
Deno.bench("parseMessage() of a 64-byte ping", { group: "codec", baseline: true }, () => {
  parseMessage(pings[i++ & 1023]!);
});
Deno.bench("toUpperAscii() of a 64-byte ping", { group: "codec" }, () => {
  toUpperAscii(pings[i++ & 1023]!);
});

const service = new PingService({ loss: 0.1, seed: 1 });
let seq = 0;
Deno.bench("PingService.handle() of a ping (10% loss)", { group: "server" }, () => {
  service.handle(encodePingCached(++seq), peer, seq);
});
function encodePingCached(n: number): Uint8Array {
  return pings[n & 1023]!;
}

Deno.bench("RttStats.add() ×1000 then summary()", { group: "stats" }, () => {
  const stats = new RttStats();
  for (let k = 0; k < 1000; k++) stats.add(0.05 + (k % 17) * 0.001, k);
  stats.summary();
});

// HMAC-SHA256 of a signed stamped ping (96 + 83 bytes), per datagram, three
// ways: node:crypto (a new Hmac per datagram, what `--hmac` ran before),
// WebCrypto with the key imported once (asynchronous, so a receive loop
// could not wait for it), and plain JavaScript on a reused state (the key's
// inner and outer blocks hashed once: udp_pinger/_hmac.ts, what `--hmac`
// runs); and the server's whole check of a datagram with it.
const hmacKey = new TextEncoder().encode("bench key");
const signed = encodePing(1, 1700000000.5, { stamps: true, auth: true });
signDatagram(signed, hmacKey, "00112233aabb");
Deno.bench("createHmac() per datagram (node:crypto)", { group: "hmac", baseline: true }, () => {
  createHmac("sha256", hmacKey).update(signed).digest();
});
Deno.bench("verifyDatagram() (the server's whole check)", { group: "hmac" }, () => {
  verifyDatagram(signed, hmacKey);
});
const webKey = await crypto.subtle.importKey(
  "raw",
  hmacKey as Uint8Array<ArrayBuffer>,
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["sign"],
);
Deno.bench("crypto.subtle.sign() with the key imported once", { group: "hmac" }, async () => {
  await crypto.subtle.sign("HMAC", webKey, signed as Uint8Array<ArrayBuffer>);
});
const reused = new ReusedHmac(hmacKey);
const digest = new Uint8Array(32);
Deno.bench("JavaScript SHA-256 on the key's reused state", { group: "hmac" }, () => {
  reused.sign(signed, digest);
});
