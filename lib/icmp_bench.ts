// Internet checksum micro-benchmarks (issue 2): 64-byte and 1500-byte
// packets, aligned and not, against the obvious byte-pair loop as a baseline.
import { buildEcho, checksum, parseIcmp } from "./icmp.ts";

const backing = crypto.getRandomValues(new Uint8Array(1504));
const small64Unaligned = backing.subarray(1, 65);
const small = backing.subarray(0, 64);
const large = backing.subarray(0, 1500);
const largeUnaligned = backing.subarray(1, 1501);

/** Baseline: 16-bit big-endian words assembled from byte pairs. */
function bytePairChecksum(bytes: Uint8Array): number {
  let sum = 0;
  const n = bytes.length & ~1;
  for (let i = 0; i < n; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (n < bytes.length) sum += bytes[n]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

let sink = 0;

Deno.bench("checksum 64 B", { group: "checksum 64 B", baseline: true }, () => {
  sink ^= checksum(small);
});
Deno.bench("checksum 64 B unaligned", { group: "checksum 64 B" }, () => {
  sink ^= checksum(small64Unaligned);
});
Deno.bench("byte-pair loop 64 B", { group: "checksum 64 B" }, () => {
  sink ^= bytePairChecksum(small);
});
Deno.bench("checksum 1500 B", { group: "checksum 1500 B", baseline: true }, () => {
  sink ^= checksum(large);
});
Deno.bench("checksum 1500 B unaligned", { group: "checksum 1500 B" }, () => {
  sink ^= checksum(largeUnaligned);
});
Deno.bench("byte-pair loop 1500 B", { group: "checksum 1500 B" }, () => {
  sink ^= bytePairChecksum(large);
});

const payload = new Uint8Array(56);
Deno.bench("buildEcho + parseIcmp, 56-byte payload", () => {
  const msg = parseIcmp(buildEcho({ id: 1, seq: sink & 0xffff, payload }), 4);
  if (msg.kind === "echo") sink ^= msg.seq;
});
