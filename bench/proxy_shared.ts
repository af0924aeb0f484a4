/**
 * End-to-end benchmark of the proxy's shared tier (`--shared-cache`, Redis),
 * in one run on loopback. Run:
 *
 *     deno run -A bench/proxy_shared.ts [--duration 5] [--requests 30000] [--rounds 3] [--json]
 *
 * Measures:
 * 1. hits served from Redis with the node's own store empty (`--memory-size 0`)
 *    against nginx `proxy_cache` hits (1 worker and 2), 1 KiB objects over
 *    1,000 URLs, wrk -t2 -c64, interleaved rounds (the median counts) after
 *    one unmeasured warm-up run of each server (the proxies' JIT, the
 *    shared tier's memos); the proxy's own memory hits are measured
 *    alongside, and the CPU time (user + system, from `/proc`) per request
 *    of the proxies and of `redis-server`, a steadier measure than the rate
 *    on a busy machine;
 * 2. the aggregate hit rate of three proxies behind a round-robin client, with
 *    and without `--shared-cache`, over a Zipf-distributed (s = 1) mix of
 *    10,000 URLs (the same seeded sequence for both), and the origin requests
 *    per object requested.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createRandom } from "../lib/random.ts";
import { freePort } from "../lib/testing/ports.ts";
import { startRedis } from "../proxy_server/_redis_server.ts";
import { type ProxyProcess, redisPid, spawnProxy } from "../proxy_server/_shared_test_util.ts";
import { startNginxCache, waitPort } from "./_peers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    requests: { type: "string", default: "30000" },
    rounds: { type: "string", default: "3" },
    json: { type: "boolean" },
  },
});
const DURATION = Number(values.duration);
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);
const HIT_URLS = 1000;
const ZIPF_URLS = 10_000;
// Generous: on a loaded 2-core machine a 50 ms deadline turns a busy Redis
// into misses, and this measures hits.
const SHARED = ["--shared-timeout", "500"];

// ---- origin: 1 KiB, cacheable for an hour, counting requests per path ----
const BODY = "x".repeat(1024);
const DATE = new Date().toUTCString();
const originHits = new Map<string, number>();
const originPort = freePort();
const origin = Deno.serve({ hostname: "127.0.0.1", port: originPort, onListen() {} }, (req) => {
  const path = new URL(req.url).pathname;
  originHits.set(path, (originHits.get(path) ?? 0) + 1);
  return new Response(BODY, {
    headers: {
      "content-type": "text/plain",
      "cache-control": "public, max-age=3600",
      date: DATE,
    },
  });
});
const upstream = `http://127.0.0.1:${originPort}`;

async function wrk(
  port: number,
  script: string,
  seconds = DURATION,
): Promise<{ rps: number; requests: number }> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", "-c64", "-d", `${seconds}s`, "-s", script, `http://127.0.0.1:${port}/`],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN),
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN),
  };
}

/** Seconds of CPU (user + system) a process has used. */
function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  // utime and stime, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * GETs a URL, once more on a failure: nginx closes a keep-alive connection
 * after 1,000 requests, which a pooled fetch may meet.
 */
async function get(url: string): Promise<Response> {
  try {
    const res = await fetch(url);
    await res.clone().arrayBuffer();
    return res;
  } catch {
    const res = await fetch(url);
    await res.clone().arrayBuffer();
    return res;
  }
}

async function fetchAll(port: number, paths: string[], concurrency = 32): Promise<string[]> {
  const statuses: string[] = new Array(paths.length);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < paths.length) {
      const i = next++;
      const res = await get(`http://127.0.0.1:${port}${paths[i]}`);
      statuses[i] = `${res.status} ${res.headers.get("cache-status") ?? ""}`;
    }
  }));
  return statuses;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** A Zipf(s = 1) sampler over ranks 1..n, by inverse transform on the CDF. */
function zipf(n: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) cdf[k - 1] = sum += 1 / k;
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

const tmp = await Deno.makeTempDir({ prefix: "netkit_bench_shared_" });
// nginx's workers (not root) must reach their cache below it.
await Deno.chmod(tmp, 0o777);
const children: Deno.ChildProcess[] = [];
const proxies: ProxyProcess[] = [];
const results: Record<string, unknown> = {};
try {
  await using redis = await startRedis();
  const redisProcess = await redisPid(redis.nodes[0]!.port);
  const script = `${tmp}/paths.lua`;
  await Deno.writeTextFile(
    script,
    `local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/k" .. (n % ${HIT_URLS}) .. ".txt")
end
`,
  );
  const hitPaths = Array.from({ length: HIT_URLS }, (_, i) => `/k${i}.txt`);

  // 1. L2 hits with L1 empty against nginx proxy_cache hits.
  const writer = await spawnProxy(["--upstream", upstream, "--shared-cache", redis.url, ...SHARED]);
  proxies.push(writer);
  const l2 = await spawnProxy([
    "--upstream",
    upstream,
    "--shared-cache",
    redis.url,
    ...SHARED,
    "--memory-size",
    "0",
  ]);
  proxies.push(l2);
  const nginx1Port = freePort();
  const nginx2Port = freePort();
  children.push(
    await startNginxCache(`${tmp}/nginx1`, { port: nginx1Port, originPort, workers: "1" }),
  );
  children.push(
    await startNginxCache(`${tmp}/nginx2`, { port: nginx2Port, originPort, workers: "2" }),
  );
  await waitPort(nginx1Port);
  await waitPort(nginx2Port);
  // Wait for the shared tier to be up (the writer's first lookups would miss it).
  for (
    let i = 0;
    !(writer.stderr.some((l) => l.includes("is up")) && l2.stderr.some((l) => l.includes("is up")));
    i++
  ) {
    if (i > 1000) throw new Error("The proxies' link to Redis did not come up");
    await new Promise((r) => setTimeout(r, 10));
  }
  await fetchAll(writer.port, hitPaths);
  for (let i = 0; Number(await redis.cli("dbsize")) < HIT_URLS; i++) {
    if (i > 1000) throw new Error("The writer did not store every object in Redis");
    await new Promise((r) => setTimeout(r, 10));
  }
  const l2Status = await fetchAll(l2.port, hitPaths.slice(0, 3));
  console.error(`warm L2-only proxy: ${l2Status[2]}`);
  for (const port of [nginx1Port, nginx2Port]) {
    await fetchAll(port, hitPaths);
    console.error(`warm nginx :${port}: ${(await fetchAll(port, hitPaths.slice(0, 1)))[0]}`);
  }
  await fetchAll(writer.port, hitPaths);
  const servers = [
    ["netkit, shared tier (Redis), own store empty", l2.port, [l2.pid, redisProcess]],
    ["netkit, own memory store", writer.port, [writer.pid]],
    ["nginx proxy_cache, 1 worker", nginx1Port, []],
    ["nginx proxy_cache, 2 workers", nginx2Port, []],
  ] as const;
  // Unmeasured: the first seconds of load run the proxies' code before it is optimized.
  for (const [, port] of servers) await wrk(port, script, 2);
  const samples: Record<string, number[]> = {};
  const cpu: Record<string, number[][]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, port, pids] of servers) {
      const before = pids.map(cpuSeconds);
      const { rps, requests } = await wrk(port, script);
      const perRequest = pids.map((pid, i) => (cpuSeconds(pid) - before[i]!) * 1e6 / requests);
      (samples[name] ??= []).push(rps);
      pids.forEach((_, i) => ((cpu[name] ??= [])[i] ??= []).push(perRequest[i]!));
      const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
      console.error(
        `round ${round + 1} ${name}: ${rps.toFixed(0)} req/s` +
          (perRequest.length > 0
            ? `, CPU ${perRequest.map((us) => us.toFixed(1)).join(" + ")} µs/request`
            : "") +
          ` (load ${load})`,
      );
    }
  }
  const hits: Record<string, number> = {};
  for (const [name] of servers) hits[name] = Math.round(median(samples[name]!));
  results.hitReqPerSec = hits;
  const cpuOf = (name: string, i: number) => Number(median(cpu[name]![i]!).toFixed(1));
  results.cpuMicrosPerRequest = {
    sharedProxy: cpuOf(servers[0][0], 0),
    sharedRedis: cpuOf(servers[0][0], 1),
    ownStoreProxy: cpuOf(servers[1][0], 0),
  };
  const sharedHits = hits[servers[0][0]]!;
  results.sharedVsNginx1 = sharedHits / hits[servers[2][0]]!;
  results.sharedVsNginx2 = sharedHits / hits[servers[3][0]]!;
  results.sharedLookups = await l2.metric('netkit_proxy_shared_lookups_total{result="hit"}');
  for (const p of proxies.splice(0)) await p[Symbol.asyncDispose]();

  // 2. Hit rate of three proxies behind a round-robin client, over a Zipf mix.
  const random = createRandom(17);
  const sample = zipf(ZIPF_URLS, random);
  const sequence = Array.from({ length: REQUESTS }, () => `/z${sample()}.txt`);
  const objects = new Set(sequence).size;
  results.zipf = { urls: ZIPF_URLS, requests: REQUESTS, objectsRequested: objects };
  for (const mode of ["local", "shared"] as const) {
    await redis.cli("flushall");
    originHits.clear();
    const args = [
      "--upstream",
      upstream,
      ...(mode === "shared" ? ["--shared-cache", redis.url, ...SHARED] : []),
    ];
    const three = [await spawnProxy(args), await spawnProxy(args), await spawnProxy(args)];
    proxies.push(...three);
    if (mode === "shared") {
      for (let i = 0; !three.every((p) => p.stderr.some((l) => l.includes("is up"))); i++) {
        if (i > 1000) throw new Error("The proxies' link to Redis did not come up");
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    // Round-robin: request i goes to proxy i mod 3, 32 in flight.
    let hitCount = 0;
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < sequence.length) {
        const i = next++;
        const res = await get(`http://127.0.0.1:${three[i % 3]!.port}${sequence[i]}`);
        if (/^netkit; hit/.test(res.headers.get("cache-status") ?? "")) hitCount++;
      }
    }));
    let originRequests = 0;
    for (const n of originHits.values()) originRequests += n;
    results[`zipf_${mode}`] = {
      hitRate: hitCount / REQUESTS,
      originRequests,
      originRequestsPerObject: originRequests / objects,
    };
    console.error(`zipf ${mode}: ${JSON.stringify(results[`zipf_${mode}`])}`);
    for (const p of proxies.splice(0)) await p[Symbol.asyncDispose]();
  }
} finally {
  for (const p of proxies) await p[Symbol.asyncDispose]();
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch {
      // gone
    }
    await c.status;
  }
  await origin.shutdown();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
console.log(values.json ? JSON.stringify(results) : JSON.stringify(results, null, 2));
Deno.exit(0);
