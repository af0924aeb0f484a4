/**
 * End-to-end benchmark of the caching proxy against nginx `proxy_cache` and
 * Squid, side by side in one run, with wrk. Run:
 *
 *     deno run -A bench/proxy.ts [--duration 10] [--json]
 *
 * Measures:
 * 1. cache-hit requests/s for a 1 KiB object (wrk -t2 -c64, `--rounds N` rounds, 5 by default), all three in
 *    reverse (accelerator) mode in front of the same loopback origin, ours with one event
 *    loop and with `--workers 2`; with the CPU time each server and wrk spent per
 *    request (user + system, from `/proc`), which load from other processes changes
 *    far less than requests/s, and which shows how much of the cores wrk takes;
 * 2. the miss path's added median latency over going direct (wrk -t1 -c1, a
 *    `no-store` object, so every request goes to the origin);
 * 3. peak memory (VmHWM) of the proxy in the hit and collapsed cases; with 10,000
 *    distinct cached objects and a 64 MiB and a 16 MiB memory tier, checked
 *    against the bound of the README (tier + 64 MiB: PASS or FAIL); and of a
 *    1 GiB download streamed through it;
 * 4. collapsed forwarding: 100 concurrent misses on each of 100 keys (one key
 *    at a time; the origin answers after 20 ms), against nginx with
 *    `proxy_cache_lock on`: requests/s and origin requests per key;
 * 5. the revalidation path: a stored object that is always stale, which the
 *    origin confirms with a 304 each time, against nginx with
 *    `proxy_cache_revalidate on` (wrk -t2 -c64): requests/s and origin
 *    requests (200s and 304s) per client request;
 * 6. a 512 MiB miss (nginx with sendfile as the origin, the file on tmpfs):
 *    through this proxy and through nginx `proxy_pass` (its default
 *    `proxy_buffering on`), curl to /dev/null, five alternating rounds:
 *    throughput, the ratio, and the proxy's peak RSS.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort } from "../lib/testing/ports.ts";
import { peakResidentBytes, residentBytes } from "../lib/testing/memory.ts";
import { writeAll } from "../lib/bytes.ts";
import { median } from "../lib/stats.ts";
import { startSquid } from "../proxy_server/_squid.ts";
import { startNginx as startNginxServer } from "../web_server/_nginx.ts";
import { startNetkitProxy, startNginxCache, waitPort } from "./_peers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "10" },
    rounds: { type: "string", default: "5" },
    json: { type: "boolean" },
  },
});
const DURATION = Number(values.duration);
/** Rounds of the cache-hit case (each server once per round); the median round counts. */
const HIT_ROUNDS = Number(values.rounds);
const enc = new TextEncoder();

// ---- origin: a minimal keep-alive responder, so the origin is never the bottleneck ----
const BODY = "x".repeat(1024);
// A Date field, as every origin with a clock sends (RFC 9110 §6.6.1); Squid will not
// cache without it. Fixed at start: the run is shorter than the max-age.
const DATE = new Date().toUTCString();
const CACHEABLE = enc.encode(
  `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nContent-Type: text/plain\r\nCache-Control: public, max-age=3600\r\nContent-Length: 1024\r\n\r\n${BODY}`,
);
const NOSTORE = enc.encode(
  `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nContent-Length: 1024\r\n\r\n${BODY}`,
);
// Stale at once for both caches: max-age=0 for ours, and for nginx an X-Accel-Expires
// in the past (it takes precedence over Cache-Control there, and nginx will not
// store max-age=0), so that every request is a revalidation the origin answers with 304.
const REVAL_FIELDS =
  `Date: ${DATE}\r\nX-Accel-Expires: @1\r\nCache-Control: max-age=0\r\nETag: "r1"\r\n`;
const REVALIDATED = enc.encode(`HTTP/1.1 304 Not Modified\r\n${REVAL_FIELDS}\r\n`);
const REVAL_FULL = enc.encode(
  `HTTP/1.1 200 OK\r\n${REVAL_FIELDS}Content-Type: text/plain\r\nContent-Length: 1024\r\n\r\n${BODY}`,
);
// Origin answers per /reval/ prefix: [200s, 304s].
const revalHits = new Map<string, [number, number]>();
const GIB = 1 << 30;
// Requests the origin received per /slow/ key (the collapsed-forwarding benchmark).
const slowHits = new Map<string, number>();
const originPort = freePort();
const origin = Deno.listen({ hostname: "127.0.0.1", port: originPort });
(async () => {
  for await (const conn of origin) {
    (async () => {
      const buf = new Uint8Array(65536);
      let pending = "";
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          pending += new TextDecoder().decode(buf.subarray(0, n));
          let end;
          while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
            const line = pending.slice(0, pending.indexOf("\r\n"));
            const conditional = /\r\nif-none-match:/i.test(pending.slice(0, end + 2));
            pending = pending.slice(end + 4);
            if (line.includes(" /reval/")) {
              const prefix = line.split(" ")[1]!.split("/").slice(0, 3).join("/");
              const counts = revalHits.get(prefix) ?? [0, 0];
              counts[conditional ? 1 : 0]++;
              revalHits.set(prefix, counts);
              const res = conditional ? REVALIDATED : REVAL_FULL;
              let off = 0;
              while (off < res.length) off += await conn.write(res.subarray(off));
            } else if (line.includes(" /big")) {
              await conn.write(
                enc.encode(
                  `HTTP/1.1 200 OK\r\nContent-Length: ${GIB}\r\nCache-Control: no-store\r\n\r\n`,
                ),
              );
              const chunk = new Uint8Array(1 << 20);
              for (let sent = 0; sent < GIB; sent += chunk.length) {
                let off = 0;
                while (off < chunk.length) off += await conn.write(chunk.subarray(off));
              }
            } else if (line.includes(" /slow/")) {
              // A slow origin (20 ms), so that concurrent misses overlap.
              const path = line.split(" ")[1]!;
              slowHits.set(path, (slowHits.get(path) ?? 0) + 1);
              await new Promise((r) => setTimeout(r, 20));
              let off = 0;
              while (off < CACHEABLE.length) off += await conn.write(CACHEABLE.subarray(off));
            } else {
              const res = line.includes(" /nostore") ? NOSTORE : CACHEABLE;
              let off = 0;
              while (off < res.length) off += await conn.write(res.subarray(off));
            }
          }
        }
      } catch {
        // client gone
      }
      try {
        conn.close();
      } catch {
        // closed
      }
    })();
  }
})();

const tmp = await Deno.makeTempDir({ prefix: "proxy_bench_" });
await Deno.chmod(tmp, 0o777);
const children: Deno.ChildProcess[] = [];
let squid: AsyncDisposable | undefined;

function startOurs(port: number, extra: string[] = []): Deno.ChildProcess {
  const child = startNetkitProxy(port, ["--upstream", `http://127.0.0.1:${originPort}`, ...extra]);
  children.push(child);
  return child;
}

async function startNginx(
  port: number,
  workers: string,
  variant: { lock?: boolean; revalidate?: boolean } = {},
): Promise<Deno.ChildProcess> {
  const name = `${workers}${variant.lock ? "_lock" : ""}${variant.revalidate ? "_reval" : ""}`;
  const child = await startNginxCache(`${tmp}/nginx_${name}`, {
    port,
    originPort,
    workers,
    ...variant,
  });
  children.push(child);
  return child;
}

async function wrk(url: string, args: string[], seconds = DURATION): Promise<string> {
  const out = await new Deno.Command("wrk", {
    args: [...args, "-d", `${seconds}s`, url],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/**
 * CPU seconds (user + system) a process and its direct children (nginx's workers)
 * have used so far, from `/proc/PID/stat` (clock ticks of 1/100 s).
 */
async function cpuSeconds(pid: number): Promise<number> {
  const pids = [pid];
  const kids = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
  for (const k of kids.trim().split(/\s+/)) if (k !== "") pids.push(Number(k));
  let ticks = 0;
  for (const p of pids) {
    const stat = await Deno.readTextFile(`/proc/${p}/stat`).catch(() => "");
    // Fields after the command name, which may hold spaces: utime and stime are 14 and 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(f[11] ?? 0) + Number(f[12] ?? 0);
  }
  return ticks / 100;
}

/**
 * Runs wrk under a shell that prints its own `/proc` stat after wrk exits: the
 * children's CPU time there (cutime + cstime) is wrk's.
 */
async function wrkWithCpu(
  url: string,
  args: string[],
): Promise<{ text: string; wrkCpu: number }> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'wrk "$@"; echo; cat /proc/$$/stat', "sh", ...args, "-d", `${DURATION}s`, url],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const stat = text.trimEnd().split("\n").at(-1) ?? "";
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { text, wrkCpu: (Number(f[13] ?? NaN) + Number(f[14] ?? NaN)) / 100 };
}

function requestCount(text: string): number {
  return Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
}

function reqPerSec(text: string): number {
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN);
}

function medianMs(text: string): number {
  const m = /\s50%\s+([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

async function warm(url: string): Promise<string> {
  let status = "";
  for (let i = 0; i < 3; i++) {
    const res = await fetch(url);
    status = res.headers.get("cache-status") ?? res.headers.get("x-cache") ?? "";
    await res.arrayBuffer();
  }
  return status;
}

/** Restarts a process's VmHWM from its current RSS (`clear_refs` 5), for per-case peaks. */
async function resetPeak(pid: number): Promise<void> {
  await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
}

const results: Record<string, unknown> = {};
try {
  const oursPort = freePort();
  const ours2Port = freePort();
  const nginx1Port = freePort();
  const nginx2Port = freePort();
  const squidPort = freePort();
  const oursProc = startOurs(oursPort);
  const ours2Proc = startOurs(ours2Port, ["--workers", "2"]);
  const nginx1Proc = await startNginx(nginx1Port, "1");
  const nginx2Proc = await startNginx(nginx2Port, "auto");
  // Squid returns once it accepts connections; it stops with the run.
  const squidServer = await startSquid({ port: squidPort, originPort, accessLog: false });
  squid = squidServer;
  await Promise.all([oursPort, ours2Port, nginx1Port, nginx2Port].map(waitPort));

  // 1. cache hits: HIT_ROUNDS rounds, the servers in turn within each round, so that load
  // from other processes on this shared machine falls on all alike; the median round counts.
  // Each compared pair runs back to back (one loop then nginx with one worker, two
  // then two), as the speed of this VM drifts over tens of seconds, and the ratio of
  // each round is reported beside the ratio of the medians.
  const servers = [
    ["netkit proxy", oursPort, oursProc.pid],
    ["nginx proxy_cache (1 worker)", nginx1Port, nginx1Proc.pid],
    ["netkit proxy --workers 2", ours2Port, ours2Proc.pid],
    ["nginx proxy_cache (auto = 2 workers)", nginx2Port, nginx2Proc.pid],
    ["squid 5.7", squidPort, squidServer.pid],
  ] as const;
  const samples: Record<string, number[]> = {};
  // Microseconds of CPU per request: the server's (all its threads and worker
  // processes) and wrk's, per round.
  const cpuSamples: Record<string, Array<{ server: number; wrk: number }>> = {};
  for (const [name, port] of servers) {
    const cs = await warm(`http://127.0.0.1:${port}/hit`);
    // Two seconds of the same load before the rounds: a JIT-compiled server
    // (ours) would otherwise spend the start of its first round compiling.
    await wrk(`http://127.0.0.1:${port}/hit`, ["-t2", "-c64"], 2);
    console.error(`warm ${name}: ${cs}`);
    samples[name] = [];
    cpuSamples[name] = [];
  }
  for (let round = 0; round < HIT_ROUNDS; round++) {
    for (const [name, port, pid] of servers) {
      const before = await cpuSeconds(pid);
      const { text, wrkCpu } = await wrkWithCpu(`http://127.0.0.1:${port}/hit`, ["-t2", "-c64"]);
      const server = await cpuSeconds(pid) - before;
      const rps = reqPerSec(text);
      const n = requestCount(text);
      const cpu = { server: server / n * 1e6, wrk: wrkCpu / n * 1e6 };
      samples[name]!.push(rps);
      cpuSamples[name]!.push(cpu);
      console.error(
        `hit round ${round + 1} ${name}: ${rps.toFixed(0)} req/s; CPU per request: server ${
          cpu.server.toFixed(2)
        } µs, wrk ${cpu.wrk.toFixed(2)} µs`,
      );
    }
  }
  const hit: Record<string, number> = {};
  const hitCpu: Record<string, { server: number; wrk: number }> = {};
  for (const [name] of servers) {
    hit[name] = median(samples[name]!);
    const c = cpuSamples[name]!;
    hitCpu[name] = {
      server: median(c.map((x) => x.server)),
      wrk: median(c.map((x) => x.wrk)),
    };
    console.error(
      `hits (median of ${HIT_ROUNDS}) ${name}: ${
        hit[name]!.toFixed(0)
      } req/s; CPU per request: server ${hitCpu[name].server.toFixed(2)} µs, wrk ${
        hitCpu[name].wrk.toFixed(2)
      } µs`,
    );
  }
  results.hitReqPerSec = hit;
  results.hitSamples = samples;
  results.hitCpuUsPerRequest = hitCpu;
  results.hitCpuSamples = cpuSamples;
  results.hitPeakRss = await peakResidentBytes(oursProc.pid);
  console.error(`hits: proxy peak RSS ${(results.hitPeakRss as number / 2 ** 20).toFixed(1)} MiB`);
  results.hitPeakRssWorkers2 = await peakResidentBytes(ours2Proc.pid);
  console.error(
    `hits: proxy --workers 2 peak RSS ${
      (results.hitPeakRssWorkers2 as number / 2 ** 20).toFixed(1)
    } MiB`,
  );
  ours2Proc.kill("SIGTERM");
  await ours2Proc.status;

  // 2. miss path latency: alternate direct and proxied runs, five rounds, so that
  // load from other processes hits both alike; report the median round.
  const rounds: Array<{ direct: number; viaProxy: number; added: number }> = [];
  for (let round = 0; round < 5; round++) {
    const direct = medianMs(
      await wrk(`http://127.0.0.1:${originPort}/nostore`, ["-t1", "-c1", "--latency"], 2),
    );
    const viaProxy = medianMs(
      await wrk(`http://127.0.0.1:${oursPort}/nostore`, ["-t1", "-c1", "--latency"], 2),
    );
    rounds.push({ direct, viaProxy, added: viaProxy - direct });
  }
  rounds.sort((a, b) => a.added - b.added);
  const mid = rounds[2]!;
  results.missMedianMs = { ...mid, rounds };
  console.error(
    `miss median (middle of 5 rounds): direct ${mid.direct} ms, via proxy ${mid.viaProxy} ms, ` +
      `added ${mid.added.toFixed(3)} ms; all rounds added: ${
        rounds.map((r) => r.added.toFixed(3)).join(", ")
      }`,
  );

  // 3. collapsed forwarding: for each of 100 keys, 100 concurrent requests (every
  // one a miss when it is sent); the proxies in turn, each with its own keys.
  await resetPeak(oursProc.pid);
  const lockPort = freePort();
  await startNginx(lockPort, "auto", { lock: true });
  await waitPort(lockPort);
  const collapse: Record<string, { reqPerSec: number; originPerKey: number; errors: number }> = {};
  for (
    const [name, port] of [
      ["netkit proxy", oursPort],
      ["nginx proxy_cache_lock (auto = 2 workers)", lockPort],
    ] as const
  ) {
    const prefix = `/slow/${port}/`;
    let errors = 0;
    const t0 = performance.now();
    for (let k = 0; k < 100; k++) {
      await Promise.all(Array.from({ length: 100 }, async () => {
        const res = await fetch(`http://127.0.0.1:${port}${prefix}${k}`);
        if ((await res.arrayBuffer()).byteLength !== 1024 || res.status !== 200) errors++;
      }));
    }
    const secs = (performance.now() - t0) / 1000;
    let origin = 0;
    for (const [path, n] of slowHits) if (path.startsWith(prefix)) origin += n;
    collapse[name] = { reqPerSec: 10000 / secs, originPerKey: origin / 100, errors };
    console.error(
      `collapsed misses ${name}: ${(10000 / secs).toFixed(0)} req/s, ` +
        `${(origin / 100).toFixed(2)} origin requests per key, ${errors} errors`,
    );
  }
  results.collapsedMisses = collapse;
  results.collapsedPeakRss = await peakResidentBytes(oursProc.pid);
  console.error(
    `collapsed misses: proxy peak RSS ${
      (results.collapsedPeakRss as number / 2 ** 20).toFixed(1)
    } MiB`,
  );

  // The revalidation path: every request finds a stale copy, revalidates it
  // with If-None-Match, and the origin answers 304; the two caches in turn, three rounds.
  const revalPort = freePort();
  await startNginx(revalPort, "auto", { revalidate: true });
  await waitPort(revalPort);
  const revalServers = [
    ["netkit proxy", oursPort],
    ["nginx proxy_cache_revalidate (auto = 2 workers)", revalPort],
  ] as const;
  const revalSamples: Record<string, Array<{ reqPerSec: number; originPerRequest: number }>> = {};
  for (const [name, port] of revalServers) {
    const cs = await warm(`http://127.0.0.1:${port}/reval/${port}`);
    console.error(`warm revalidation ${name}: ${cs}`);
    revalSamples[name] = [];
  }
  for (let round = 0; round < 3; round++) {
    for (const [name, port] of revalServers) {
      const [full0, cond0] = revalHits.get(`/reval/${port}`) ?? [0, 0];
      const text = await wrk(`http://127.0.0.1:${port}/reval/${port}`, ["-t2", "-c64"]);
      const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
      const [full1, cond1] = revalHits.get(`/reval/${port}`) ?? [0, 0];
      const sample = {
        reqPerSec: reqPerSec(text),
        originPerRequest: (full1 - full0 + cond1 - cond0) / requests,
      };
      revalSamples[name]!.push(sample);
      console.error(
        `revalidation round ${round + 1} ${name}: ${sample.reqPerSec.toFixed(0)} req/s, ` +
          `${sample.originPerRequest.toFixed(3)} origin requests per request ` +
          `(${cond1 - cond0} 304s, ${full1 - full0} 200s)`,
      );
    }
  }
  const reval: Record<string, { reqPerSec: number; originPerRequest: number }> = {};
  for (const [name] of revalServers) {
    reval[name] = [...revalSamples[name]!].sort((a, b) => a.reqPerSec - b.reqPerSec)[1]!;
  }
  const revalOurs = reval["netkit proxy"]!.reqPerSec;
  const revalNginx = reval["nginx proxy_cache_revalidate (auto = 2 workers)"]!.reqPerSec;
  results.revalidation = { ...reval, ratio: revalOurs / revalNginx, samples: revalSamples };
  console.error(
    `revalidation (median of 3 rounds): netkit ${revalOurs.toFixed(0)} req/s, ` +
      `nginx ${revalNginx.toFixed(0)} req/s, ratio ${(revalOurs / revalNginx).toFixed(2)}`,
  );

  // 4. memory with 10,000 distinct objects, with a roomy and with a tight memory tier
  for (const tier of ["64M", "16M"]) {
    const memPort = freePort();
    const mem = startOurs(memPort, ["--memory-size", tier]);
    await waitPort(memPort);
    const baseline = await residentBytes(mem.pid);
    const N = 10000;
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < N) {
        const i = next++;
        const res = await fetch(`http://127.0.0.1:${memPort}/obj/${i}`);
        await res.arrayBuffer();
      }
    }));
    const check = await fetch(`http://127.0.0.1:${memPort}/obj/${N - 1}`);
    const checkStatus = check.headers.get("cache-status");
    await check.arrayBuffer();
    const peak = await peakResidentBytes(mem.pid);
    const after = await residentBytes(mem.pid);
    // The bound the README promises: the memory tier plus 64 MiB.
    const bound = (Number(tier.slice(0, -1)) + 64) * 2 ** 20;
    results[`memory10k_${tier}`] = {
      objects: N,
      memoryTier: tier,
      baselineRss: baseline,
      peakRss: peak,
      rssAfter: after,
      lastObjectStatus: checkStatus,
      bound,
      pass: peak <= bound,
    };
    console.error(
      `10k objects, memory tier ${tier}: baseline RSS ${(baseline / 2 ** 20).toFixed(1)} MiB, ` +
        `peak ${(peak / 2 ** 20).toFixed(1)} MiB, after ${
          (after / 2 ** 20).toFixed(1)
        } MiB, last object re-read: ${checkStatus}; peak ≤ tier + 64 MiB (${
          bound / 2 ** 20
        } MiB): ${peak <= bound ? "PASS" : "FAIL"}`,
    );
    mem.kill("SIGTERM");
    await mem.status;
  }

  // 5. a 1 GiB download streamed through the proxy
  const bigPort = freePort();
  const big = startOurs(bigPort);
  await waitPort(bigPort);
  const before = await peakResidentBytes(big.pid);
  const t0 = performance.now();
  const dl = await new Deno.Command("curl", {
    args: ["-s", "-o", "/dev/null", "-w", "%{size_download}", `http://127.0.0.1:${bigPort}/big`],
    stdout: "piped",
  }).output();
  const secs = (performance.now() - t0) / 1000;
  const size = Number(new TextDecoder().decode(dl.stdout));
  results.download1GiB = {
    bytes: size,
    seconds: secs,
    peakRssBefore: before,
    peakRssAfter: await peakResidentBytes(big.pid),
  };
  console.error(
    `1 GiB download: ${size} bytes in ${secs.toFixed(1)} s, peak RSS ${
      (before / 2 ** 20).toFixed(1)
    } → ${((await peakResidentBytes(big.pid)) / 2 ** 20).toFixed(1)} MiB`,
  );

  // 6. a 512 MiB miss: every request goes to the origin (the store keeps nothing
  // that large), so this is the path origin → proxy → client alone.
  {
    const MISS_MIB = 512;
    const missRoot = await Deno.makeTempDir({
      prefix: "proxy_bench_miss_",
      ...(await Deno.stat("/dev/shm").then(() => ({ dir: "/dev/shm" }), () => ({}))),
    });
    try {
      {
        using file = await Deno.open(`${missRoot}/big.bin`, { write: true, create: true });
        const piece = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31) & 255);
        for (let i = 0; i < MISS_MIB; i++) await writeAll(file, piece);
      }
      await using originNginx = await startNginxServer(missRoot, { workers: 2 });
      await using passNginx = await startNginxServer(missRoot, {
        workers: 2,
        server: `location /pass/ { proxy_pass ${originNginx.url}/; }`,
      });
      const missPort = freePort();
      const missProxy = startNetkitProxy(missPort, ["--upstream", originNginx.url]);
      children.push(missProxy);
      await waitPort(missPort);
      const baseline = await residentBytes(missProxy.pid);
      const clients = [
        ["netkit proxy", `http://127.0.0.1:${missPort}/big.bin`],
        ["nginx proxy_pass (auto = 2 workers)", `${passNginx.url}/pass/big.bin`],
      ] as const;
      const times: Record<string, number[]> = {};
      for (let round = 0; round < 5; round++) {
        for (const [name, url] of clients) {
          const out = await new Deno.Command("curl", {
            args: ["-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
            stdout: "piped",
          }).output();
          const [size, secs] = new TextDecoder().decode(out.stdout).split(" ").map(Number);
          if (size !== MISS_MIB << 20) {
            throw new Error(`${name}: ${size} bytes, not ${MISS_MIB} MiB`);
          }
          (times[name] ??= []).push(secs!);
        }
      }
      const ours = median(times["netkit proxy"]!);
      const nginx = median(times["nginx proxy_pass (auto = 2 workers)"]!);
      const peak = await peakResidentBytes(missProxy.pid);
      results.miss512MiB = {
        seconds: { ours, nginx },
        mibPerSec: { ours: MISS_MIB / ours, nginx: MISS_MIB / nginx },
        ratio: nginx / ours,
        baselineRss: baseline,
        peakRss: peak,
        samples: times,
      };
      console.error(
        `512 MiB miss (median of 5): netkit ${ours.toFixed(2)} s (${
          (MISS_MIB / ours).toFixed(0)
        } MiB/s), nginx proxy_pass ${nginx.toFixed(2)} s (${
          (MISS_MIB / nginx).toFixed(0)
        } MiB/s), ratio ${(nginx / ours).toFixed(2)} (target 0.7); proxy RSS ${
          (baseline / 2 ** 20).toFixed(1)
        } MiB at start, peak ${(peak / 2 ** 20).toFixed(1)} MiB`,
      );
    } finally {
      await Deno.remove(missRoot, { recursive: true });
    }
  }
} finally {
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch {
      // gone
    }
    await c.status;
  }
  await squid?.[Symbol.asyncDispose]();
  origin.close();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
const ours = (results.hitReqPerSec as Record<string, number>)["netkit proxy"]!;
const n1 = (results.hitReqPerSec as Record<string, number>)["nginx proxy_cache (1 worker)"]!;
const n2 =
  (results.hitReqPerSec as Record<string, number>)["nginx proxy_cache (auto = 2 workers)"]!;
const ours2 = (results.hitReqPerSec as Record<string, number>)["netkit proxy --workers 2"]!;
results.ratioVsNginx1 = ours / n1;
{
  const samples = results.hitSamples as Record<string, number[]>;
  const a = samples["netkit proxy"]!, b = samples["nginx proxy_cache (1 worker)"]!;
  const perRound = a.map((x, i) => x / b[i]!);
  results.ratioVsNginx1Rounds = perRound;
  console.error(
    `hits: ratio to nginx (1 worker) by round ${
      perRound.map((r) => r.toFixed(2)).join(", ")
    }; of the medians ${(ours / n1).toFixed(2)}`,
  );
}
results.ratioVsNginxAuto = ours / n2;
results.ratioWorkers2VsNginx1 = ours2 / n1;
results.ratioWorkers2VsNginxAuto = ours2 / n2;
console.log(values.json ? JSON.stringify(results) : JSON.stringify(results, null, 2));
Deno.exit(0);
