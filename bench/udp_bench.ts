// Micro-benchmarks of the UDP pinger's per-packet work (`deno bench -A bench/udp_bench.ts`):
// what the server spends per request outside the socket, and the client's
// statistics. The end-to-end figures against irtt are in bench/udp.ts.
import { PingService } from "../udp_pinger/server.ts";
import { encodePing, parseMessage, toUpperAscii } from "../udp_pinger/protocol.ts";
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
