/**
 * The web server against nginx, side by side in the same run, with wrk:
 *
 * - 1 KiB file, keep-alive, `-t2 -c64`: requests/s (target: ratio ≥ 1.0);
 * - 1 MiB file, `-t2 -c16`: throughput (target: ratio ≥ 0.7);
 * - over TLS (the same ECDSA P-256 certificate for both; TLS 1.3, the
 *   client's cipher order): h2load `-c64 -m10` on the 1 KiB file (target
 *   ≥ 1.0), h2load `-c16 -m1` on the 1 MiB file (target ≥ 0.7), and wrk
 *   (HTTPS/1.1) on the 1 KiB file (target ≥ 1.0);
 * - peak resident memory (VmHWM) in each case of our server, and of nginx (master + workers).
 *
 * nginx is Debian's nginx-light with workers = cores, sendfile on, access log
 * off, `http2` on its TLS port; ours runs as `deno task webserver --no-log`
 * does, V8 flags included (both without access logs), a second instance with `--cert`/`--key` for the TLS
 * cases. Each case alternates the servers for several rounds and reports the
 * median.
 *
 * Run: `deno run -A bench/web.ts [--duration 5] [--rounds 3] [--workers N] [--json]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startNginx } from "../web_server/_nginx.ts";
import { median } from "../lib/stats.ts";
import { freePort } from "../lib/testing/ports.ts";
import { taskCommand } from "../lib/testing/tasks.ts";
import { makeTestCa } from "../lib/testing/tls.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
    workers: { type: "string", default: String(navigator.hardwareConcurrency) },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);

interface WrkResult {
  requestsPerSecond: number;
  bytesPerSecond: number;
}

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

async function wrk(url: string, connections: number, seconds: number): Promise<WrkResult> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", `-c${connections}`, `-d${seconds}s`, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const tps = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(text);
  if (!out.success || rps === null || tps === null) {
    throw new Error(`Cannot run wrk on ${url}: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  if (/Non-2xx|Socket errors/.test(text)) console.error(`warning: ${url}:\n${text}`);
  return {
    requestsPerSecond: Number(rps[1]),
    bytesPerSecond: Number(tps[1]) * (UNITS[tps[2]!] ?? 1),
  };
}

/** h2load for `seconds` (after a 1 s warm-up); the same figures as wrk's. */
async function h2load(
  url: string,
  connections: number,
  streams: number,
  seconds: number,
): Promise<WrkResult> {
  const out = await new Deno.Command("h2load", {
    args: ["-t2", `-c${connections}`, `-m${streams}`, `-D${seconds}`, "--warm-up-time=1", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const m = /finished in [\d.]+\w+, ([\d.]+) req\/s, ([\d.]+)(\w+)\/s/.exec(text);
  const failed = /requests: .* (\d+) failed/.exec(text);
  if (!out.success || m === null) {
    throw new Error(`Cannot run h2load on ${url}: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  if (failed !== null && failed[1] !== "0") console.error(`warning: ${url}:\n${text}`);
  return {
    requestsPerSecond: Number(m[1]),
    bytesPerSecond: Number(m[2]) * (UNITS[m[3]!] ?? 1),
  };
}

function vmHwmKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Restarts a process's VmHWM from its current RSS (`clear_refs` 5), for per-case peaks. */
function resetPeak(pid: number): void {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // Not ours to reset: the peak then spans the run so far.
  }
}

function sumHwm(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + vmHwmKiB(pid), 0);
}

function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter((s) => s !== "").map(Number);
  } catch {
    return [];
  }
}

/** User + system CPU seconds used so far by the processes (clock ticks are 1/100 s on Linux). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone.
    }
  }
  return ticks / 100;
}

const root = await Deno.makeTempDir({ prefix: "netkit_webbench_" });
await Deno.chmod(root, 0o755);
const kib = new Uint8Array(1024).map((_, i) => (i * 31) & 0xff);
const mib = new Uint8Array(1 << 20).map((_, i) => (i * 17) & 0xff);
await Deno.writeFile(`${root}/1k.bin`, kib);
await Deno.writeFile(`${root}/1m.bin`, mib);

/** Starts our server on a free port; resolves once it listens. */
async function startOurs(extra: string[]): Promise<{ port: number; child: Deno.ChildProcess }> {
  const port = freePort();
  // Run as `deno task webserver` does, with the task's V8 flags (they bound the heaps).
  const [deno, ...args] = taskCommand("webserver", [
    "--no-log",
    "--workers",
    values.workers,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    ...extra,
    root,
  ]);
  const child = new Deno.Command(deno!, {
    args,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // The "Listening on" line.
  reader.releaseLock();
  return { port, child };
}

await using ca = await makeTestCa({ prefix: "netkit_webbench_tls_" });
const plain = await startOurs([]);
const ours = plain.child;
const ourPort = plain.port;
const secure = await startOurs(["--cert", ca.certPath, "--key", ca.keyPath]);
await using nginx = await startNginx(root, {
  tls: { certPath: ca.certPath, keyPath: ca.keyPath },
});

interface Case {
  name: string;
  path: string;
  connections: number;
  /** h2load's streams per connection; wrk (HTTP/1.1) when absent. */
  streams?: number;
  tls?: boolean;
  metric: "requestsPerSecond" | "bytesPerSecond";
}

const cases: Case[] = [
  { name: "1 KiB, -c64", path: "/1k.bin", connections: 64, metric: "requestsPerSecond" },
  { name: "1 MiB, -c16", path: "/1m.bin", connections: 16, metric: "bytesPerSecond" },
  {
    name: "h2 1 KiB, -c64 -m10",
    path: "/1k.bin",
    connections: 64,
    streams: 10,
    tls: true,
    metric: "requestsPerSecond",
  },
  {
    name: "h2 1 MiB, -c16",
    path: "/1m.bin",
    connections: 16,
    streams: 1,
    tls: true,
    metric: "bytesPerSecond",
  },
  {
    name: "HTTPS/1.1 1 KiB, -c64",
    path: "/1k.bin",
    connections: 64,
    tls: true,
    metric: "requestsPerSecond",
  },
];

function load(c: Case, port: number, seconds: number): Promise<WrkResult> {
  const url = `${c.tls ? "https" : "http"}://127.0.0.1:${port}${c.path}`;
  return c.streams === undefined
    ? wrk(url, c.connections, seconds)
    : h2load(url, c.connections, c.streams, seconds);
}
const results = [];
try {
  for (const c of cases) {
    const mine: WrkResult[] = [];
    const theirs: WrkResult[] = [];
    const myPid = c.tls ? secure.child.pid : ours.pid;
    const myPort = c.tls ? secure.port : ourPort;
    const theirPort = c.tls ? nginx.tlsPort! : nginx.port;
    // Each case's own peak: the kernel restarts VmHWM from the current RSS.
    for (const pid of [myPid, nginx.pid, ...childrenOf(nginx.pid)]) resetPeak(pid);
    // Warm both (JIT, page cache, our response cache).
    await load(c, myPort, 1);
    await load(c, theirPort, 1);
    const nginxPids = [nginx.pid, ...childrenOf(nginx.pid)];
    let cpuMine = 0;
    let cpuTheirs = 0;
    for (let r = 0; r < rounds; r++) {
      let before = cpuSeconds([myPid]);
      mine.push(await load(c, myPort, duration));
      cpuMine += cpuSeconds([myPid]) - before;
      before = cpuSeconds(nginxPids);
      theirs.push(await load(c, theirPort, duration));
      cpuTheirs += cpuSeconds(nginxPids) - before;
    }
    // Requests per CPU-second: a fairer view than req/s when other jobs share the cores.
    const sum = (xs: WrkResult[]) => xs.reduce((n, x) => n + x.requestsPerSecond * duration, 0);
    const perCpu = { ours: sum(mine) / cpuMine, nginx: sum(theirs) / cpuTheirs };
    const m = {
      requestsPerSecond: median(mine.map((x) => x.requestsPerSecond)),
      bytesPerSecond: median(mine.map((x) => x.bytesPerSecond)),
    };
    const n = {
      requestsPerSecond: median(theirs.map((x) => x.requestsPerSecond)),
      bytesPerSecond: median(theirs.map((x) => x.bytesPerSecond)),
    };
    results.push({
      case: c.name,
      ours: m,
      nginx: n,
      ratio: m[c.metric] / n[c.metric],
      requestsPerCpuSecond: perCpu,
      peakRssKiB: { ours: vmHwmKiB(myPid), nginx: sumHwm(nginxPids) },
    });
  }
} finally {
  secure.child.kill("SIGTERM");
  await secure.child.status;
  await secure.child.stdout.cancel().catch(() => {});
  ours.kill("SIGTERM");
  await ours.status;
  await ours.stdout.cancel().catch(() => {});
  await Deno.remove(root, { recursive: true });
  if (values.json) {
    console.log(JSON.stringify({ results }));
  } else {
    const fmt = (x: number) => x.toFixed(0).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const gb = (x: number) => `${(x / 1e9).toFixed(2)} GB/s`;
    console.log(
      `web server (${values.workers} loops) vs nginx (${navigator.hardwareConcurrency} workers), ` +
        `wrk -t2, ${duration}s × ${rounds}, median`,
    );
    for (const r of results) {
      console.log(
        `${r.case.padEnd(22)} ours ${fmt(r.ours.requestsPerSecond).padStart(8)} req/s ${
          gb(r.ours.bytesPerSecond).padStart(11)
        }   nginx ${fmt(r.nginx.requestsPerSecond).padStart(8)} req/s ${
          gb(r.nginx.bytesPerSecond).padStart(11)
        }   ratio ${r.ratio.toFixed(2)}   req per CPU-second: ours ${
          fmt(r.requestsPerCpuSecond.ours)
        }, nginx ${fmt(r.requestsPerCpuSecond.nginx)}   peak RSS: ours ${
          (r.peakRssKiB.ours / 1024).toFixed(1)
        } MiB, nginx ${(r.peakRssKiB.nginx / 1024).toFixed(1)} MiB`,
      );
    }
  }
}
