/**
 * End-to-end benchmark of `traceroute/main.ts` against Butskoy traceroute
 * 2.1, side by side in the same run, in alternating rounds so both see the
 * same machine. Whole-process time (Deno start-up included) of
 *
 * - a trace of the 4-hop lab path (client -- r1 -- r2 -- r3 -- target), for
 *   the UDP (default), ICMP (`-I`) and TCP (`-T`) methods;
 * - the same path with r2 silent (its time-exceeded messages dropped), where
 *   Butskoy's `-w` HERE/NEAR rule ends the wait for r2's probes early.
 *
 * Both run with `-n` under `ip netns exec` in the client namespace (the same
 * wrapper cost for both). Target: ours ≤ Butskoy + 40 ms (medians).
 *
 * Besides the median wall-clock time it reports the fastest run of each
 * (the least disturbed by other load) and CPU time (user + system, from bash's
 * `times`), which a loaded machine inflates far less than wall time, and a
 * baseline: `deno run` of an empty module (Deno's own start-up). The last
 * column, our fastest run less the fastest empty-module run, is the tool's
 * own cost on top of Deno, the figure to watch when the machine is noisy.
 *
 * Run as root: `deno run -A bench/traceroute.ts [rounds] [other main.ts]`
 * (default 15 rounds). With a second `main.ts` (say, a copy of an earlier
 * version), that one also runs in every round, so a change is measured
 * against its predecessor under the same load.
 *
 * @module
 */
import { Lab } from "../lib/testing/lab.ts";
import { median } from "../lib/stats.ts";

const rounds = Number(Deno.args[0] ?? 15);
const main = new URL("../traceroute/main.ts", import.meta.url).pathname;
const ours = [Deno.execPath(), "run", "-A", main];
const other = Deno.args[1] === undefined ? undefined : [Deno.execPath(), "run", "-A", Deno.args[1]];
const butskoy = ["traceroute"];

/** Runs a command in the client namespace; returns wall and CPU milliseconds. */
async function timed(lab: Lab, cmd: string[]): Promise<{ wall: number; cpu: number }> {
  const t0 = performance.now();
  // bash's `times` prints the children's user and system time (ms precision).
  const r = await lab.exec("client", ["bash", "-c", '"$@" >/dev/null; times', "bash", ...cmd]);
  const wall = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}): ${r.stderr}`);
  const last = r.stdout.trimEnd().split("\n").at(-1) ?? "";
  const [user, sys] = [...last.matchAll(/(\d+)m([\d.]+)s/g)].map((m) =>
    (Number(m[1]) * 60 + Number(m[2])) * 1000
  );
  return { wall, cpu: (user ?? NaN) + (sys ?? NaN) };
}

await using lab = await Lab.create();
const target = lab.host("target").v4;
const scenarios: { name: string; args: string[]; silent?: boolean }[] = [
  { name: "UDP, 4 hops", args: ["-n", target] },
  { name: "ICMP, 4 hops", args: ["-n", "-I", target] },
  { name: "TCP, 4 hops", args: ["-n", "-T", target] },
  { name: "UDP, r2 silent", args: ["-n", target], silent: true },
  { name: "ICMP, r2 silent", args: ["-n", "-I", target], silent: true },
];
const empty = await Deno.makeTempFile({ suffix: ".ts" });
const baseline: { wall: number[]; cpu: number[] } = { wall: [], cpu: [] };
for (let i = 0; i < rounds; i++) {
  const r = await timed(lab, [Deno.execPath(), "run", "-A", empty]);
  baseline.wall.push(r.wall);
  baseline.cpu.push(r.cpu);
}
await Deno.remove(empty);
const rows: string[] = [];
const otherRows: string[] = [];
let silence: Awaited<ReturnType<Lab["silence"]>> | undefined;
for (const s of scenarios) {
  if (s.silent && !silence) silence = await lab.silence("r2");
  // One warm-up each (page cache, Deno's code cache).
  await timed(lab, [...butskoy, ...s.args]);
  await timed(lab, [...ours, ...s.args]);
  if (other) await timed(lab, [...other, ...s.args]);
  const a = { wall: [] as number[], cpu: [] as number[] };
  const b = { wall: [] as number[], cpu: [] as number[] };
  const c = { wall: [] as number[], cpu: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    const x = await timed(lab, [...butskoy, ...s.args]);
    const y = await timed(lab, [...ours, ...s.args]);
    a.wall.push(x.wall);
    a.cpu.push(x.cpu);
    b.wall.push(y.wall);
    b.cpu.push(y.cpu);
    if (other) {
      const z = await timed(lab, [...other, ...s.args]);
      c.wall.push(z.wall);
      c.cpu.push(z.cpu);
    }
  }
  if (other) {
    const [wa, wc] = [median(a.wall), median(c.wall)];
    otherRows.push(
      `| ${s.name} | ${wa.toFixed(1)} | ${wc.toFixed(1)} | +${(wc - wa).toFixed(1)} | ${
        (median(b.wall) - wc).toFixed(1)
      } | ${median(c.cpu).toFixed(0)} |`,
    );
  }
  const [wa, wb, ca, cb] = [median(a.wall), median(b.wall), median(a.cpu), median(b.cpu)];
  const [ma, mb] = [Math.min(...a.wall), Math.min(...b.wall)];
  rows.push(
    `| ${s.name} | ${wa.toFixed(1)} | ${wb.toFixed(1)} | +${(wb - wa).toFixed(1)} | ${
      (wb / wa).toFixed(2)
    } | ${wb - wa <= 40 ? "yes" : "NO"} | ${ma.toFixed(1)} | ${mb.toFixed(1)} | +${
      (mb - ma).toFixed(1)
    } | ${ca.toFixed(0)} | ${cb.toFixed(0)} | +${(mb - Math.min(...baseline.wall)).toFixed(1)} |`,
  );
}
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(
  `traceroute, whole process, median of ${rounds} alternating rounds (ms); load average ${load}\n`,
);
console.log(
  `Deno start-up alone (empty module): wall ${median(baseline.wall).toFixed(1)} (min ${
    Math.min(...baseline.wall).toFixed(1)
  }), CPU ${median(baseline.cpu).toFixed(0)}\n`,
);
console.log(
  "| scenario | Butskoy wall | ours wall | difference | ratio | ≤ +40 ms | Butskoy min | ours min | min difference | Butskoy CPU | ours CPU | ours min − Deno start-up min |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
if (other) {
  console.log(`\nThe other version (${Deno.args[1]}), same rounds:\n`);
  console.log("| scenario | Butskoy wall | other wall | difference | ours − other | other CPU |");
  console.log("|---|---|---|---|---|---|");
  for (const r of otherRows) console.log(r);
}
