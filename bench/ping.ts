/**
 * End-to-end benchmark of `icmp_pinger` against iputils `ping`, side by side
 * in the same run, in alternating rounds so both see the same machine:
 *
 * - RTT accuracy: `-q -c 200 -i 0.002` to the lab target three routers away;
 *   the median over rounds of each tool's reported average, and the gap.
 * - Flood: `-f -q -c 20000` to the same target; packets per second from the
 *   statistics line (transmitted / time) and from the wall clock.
 * - Start-up: whole-process time of `-c 1 127.0.0.1`.
 *
 * Run as root: `deno run -A bench/ping.ts [rounds]` (default 5; `deno task
 * bench ping` runs 11).
 *
 * @module
 */
import { Lab } from "../lib/testing/lab.ts";
import { taskCommand } from "../lib/testing/tasks.ts";
import { median } from "../lib/stats.ts";

const rounds = Number(Deno.args[0] ?? 5);
// Exactly what `deno task ping` runs, V8 flags included.
const ours = taskCommand("ping");
const iputils = ["ping"];

function parseStats(out: string): { transmitted: number; timeMs: number; avgMs: number } {
  const counts = out.match(/(\d+) packets transmitted.*time (\d+)ms/);
  const rtt = out.match(/rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//);
  if (!counts) throw new Error(`Cannot parse ping statistics: ${out.slice(-300)}`);
  return {
    transmitted: Number(counts[1]),
    timeMs: Number(counts[2]),
    avgMs: rtt ? Number(rtt[1]) : NaN,
  };
}

await using lab = await Lab.create();
const target = lab.host("target").v4;

async function run(cmd: string[], args: string[]): Promise<{ out: string; wallMs: number }> {
  const t0 = performance.now();
  const r = await lab.exec("client", [...cmd, ...args], { timeoutMs: 120_000 });
  const wallMs = performance.now() - t0;
  if (r.code !== 0) {
    throw new Error(`${cmd.join(" ")} ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  }
  return { out: r.stdout, wallMs };
}

const rtt = { iputils: [] as number[], ours: [] as number[] };
const flood = { iputils: [] as number[], ours: [] as number[] };
const floodWall = { iputils: [] as number[], ours: [] as number[] };
const startup = { iputils: [] as number[], ours: [] as number[] };

for (let r = 0; r < rounds; r++) {
  for (const [name, cmd] of [["iputils", iputils], ["ours", ours]] as const) {
    const a = await run(cmd, ["-q", "-c", "200", "-i", "0.002", target]);
    rtt[name].push(parseStats(a.out).avgMs * 1000);
    const f = await run(cmd, ["-f", "-q", "-c", "20000", target]);
    const s = parseStats(f.out);
    flood[name].push(s.transmitted / (s.timeMs / 1000));
    floodWall[name].push(s.transmitted / (f.wallMs / 1000));
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const st = await new Deno.Command(cmd[0]!, {
        args: [...cmd.slice(1), "-c", "1", "127.0.0.1"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (st.code !== 0) throw new Error(`${cmd.join(" ")} -c 1 127.0.0.1: exit ${st.code}`);
      startup[name].push(performance.now() - t0);
    }
  }
}

const fmt = (x: number, d = 1) => x.toFixed(d);
console.log(`rounds: ${rounds}`);
console.log(
  `RTT avg (µs, -c 200 -i 0.002, median of rounds): iputils ${fmt(median(rtt.iputils))}  ours ${
    fmt(median(rtt.ours))
  }  gap ${fmt(median(rtt.ours) - median(rtt.iputils))} µs  ratio ${
    fmt(median(rtt.ours) / median(rtt.iputils), 3)
  }`,
);
console.log(`  per round iputils ${rtt.iputils.map((x) => fmt(x)).join(" ")}`);
console.log(`  per round ours    ${rtt.ours.map((x) => fmt(x)).join(" ")}`);
console.log(
  `Flood pps (stats time): iputils ${fmt(median(flood.iputils), 0)}  ours ${
    fmt(median(flood.ours), 0)
  }  ratio ${fmt(median(flood.ours) / median(flood.iputils), 3)}`,
);
// Each round runs the two floods one after the other: the median of the
// rounds' own ratios cancels the machine's slower and faster spells.
const paired = flood.ours.map((x, i) => x / flood.iputils[i]!);
console.log(
  `  median of the rounds' ratios ${fmt(median(paired), 3)} (per round ${
    paired.map((x) => fmt(x, 3)).join(" ")
  })`,
);
console.log(
  `Flood pps (wall clock): iputils ${fmt(median(floodWall.iputils), 0)}  ours ${
    fmt(median(floodWall.ours), 0)
  }  ratio ${fmt(median(floodWall.ours) / median(floodWall.iputils), 3)}`,
);
console.log(
  `Start-up -c 1 127.0.0.1 (ms): iputils ${fmt(median(startup.iputils))}  ours ${
    fmt(median(startup.ours))
  }  difference ${fmt(median(startup.ours) - median(startup.iputils))} ms`,
);
