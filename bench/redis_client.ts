/**
 * Micro-benchmark of the shared tier's Redis round trips: node-redis
 * (`@redis/client`, over Deno's node-compat sockets) against our RESP
 * connection (`proxy_server/_resp.ts`, over `Deno.connect`), on one local
 * `redis-server`. Each round keeps N commands in flight (N workers, each
 * sending its next command when the last one is answered), as N concurrent
 * cache hits do, for a fixed time; the clients alternate round by round and
 * the medians count. Run:
 *
 *     deno run -A bench/redis_client.ts [--seconds 2] [--rounds 5] [--concurrency 64]
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import process from "node:process";
import { parseArgs } from "node:util";
import { RespConnection } from "../proxy_server/_resp.ts";
import { startRedis } from "../proxy_server/_redis_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "2" },
    rounds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "64" },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);

// The shared tier's read script, taken from its source so that this measures
// what a hit runs, on a 1 KiB value stored as the tier stores it.
const source = await Deno.readTextFile(new URL("../proxy_server/shared_cache.ts", import.meta.url));
const READ = /const READ = `([^`]*)`/.exec(source)?.[1];
if (READ === undefined) throw new Error("Cannot find the READ script in shared_cache.ts");
const SHA = createHash("sha1").update(READ).digest("hex");
const KEYS = 1000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

type Send = (i: number) => Promise<unknown>;

/** Commands per second, and this process's CPU time (user + system) per command in µs. */
async function rate(send: Send): Promise<[number, number]> {
  const cpu = process.cpuUsage();
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let i = w; performance.now() < end; i += CONCURRENCY) {
      await send(i % KEYS);
      done++;
    }
  }));
  const used = process.cpuUsage(cpu);
  return [done / SECONDS, (used.user + used.system) / done];
}

await using redis = await startRedis();
const port = Number(new URL(redis.url.replace("redis:", "http:")).port);
const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
tcp.setNoDelay(true); // as the shared tier's link does
const ours = new RespConnection(tcp);
const meta = JSON.stringify({ key: "x", status: 200, fields: [["content-type", "text/plain"]] });
const body = new Uint8Array(1024).fill(120);
for (let i = 0; i < KEYS; i++) {
  await ours.send(["HSET", `nk:{${i}}`, "v", "", "n:", "1", "m:", meta, "c::0", body]);
}
await ours.send(["SCRIPT", "LOAD", READ]);

const { createClient, RESP_TYPES } = await import("@redis/client");
const node = createClient({ socket: { host: "127.0.0.1", port } });
await node.connect();
const nodeBuffers = node.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });

const HIT = ["v", "m:", "n:", "c::0"];
const cases: Array<[string, string, Send]> = [
  [
    "HMGET (a one-chunk hit's read, 1 KiB)",
    "node-redis",
    (i) => nodeBuffers.hmGet(`nk:{${i}}`, HIT),
  ],
  [
    "HMGET (a one-chunk hit's read, 1 KiB)",
    "ours",
    (i) => ours.send(["HMGET", `nk:{${i}}`, ...HIT]),
  ],
  [
    "EVALSHA (the read script of several chunks, here 1 KiB)",
    "node-redis",
    (i) => nodeBuffers.evalSha(SHA, { keys: [`nk:{${i}}`], arguments: ["", ""] }),
  ],
  [
    "EVALSHA (the read script of several chunks, here 1 KiB)",
    "ours",
    (i) => ours.send(["EVALSHA", SHA, "1", `nk:{${i}}`, "", ""]),
  ],
  ["HGET 1 KiB", "node-redis", (i) => nodeBuffers.hGet(`nk:{${i}}`, "c::0")],
  ["HGET 1 KiB", "ours", (i) => ours.send(["HGET", `nk:{${i}}`, "c::0"])],
];
const samples = new Map<string, number[]>();
const cpus = new Map<string, number[]>();
for (const [, , send] of cases) await rate(send); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const [what, client, send] of cases) {
    const [r, us] = await rate(send);
    const key = `${what}\t${client}`;
    samples.set(key, [...(samples.get(key) ?? []), r]);
    cpus.set(key, [...(cpus.get(key) ?? []), us]);
    console.error(
      `round ${round + 1} ${what}, ${client}: ${r.toFixed(0)}/s, ${us.toFixed(2)} µs CPU each`,
    );
  }
}
console.log(`\n${CONCURRENCY} in flight, ${SECONDS} s rounds, median of ${ROUNDS}:\n`);
console.log(
  "| command | node-redis /s | ours /s | ratio | node-redis CPU µs/cmd | ours CPU µs/cmd | ratio |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const what of new Set(cases.map(([w]) => w))) {
  const a = median(samples.get(`${what}\tnode-redis`)!);
  const b = median(samples.get(`${what}\tours`)!);
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  const ca = median(cpus.get(`${what}\tnode-redis`)!);
  const cb = median(cpus.get(`${what}\tours`)!);
  console.log(
    `| ${what} | ${f(a)} | ${f(b)} | ${(b / a).toFixed(2)} | ${ca.toFixed(2)} | ${
      cb.toFixed(2)
    } | ${(ca / cb).toFixed(2)} |`,
  );
}
await node.quit();
ours.close();
