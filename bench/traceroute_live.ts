/**
 * CPU use of the live view (`traceroute --live`) next to mtr's curses view
 * on the same 10-hop lab path (9 routers), each probing once per hop per
 * second (`--interval 1`, mtr's `-i 1`), each in its own tmux pane (a real
 * terminal, 120×30) inside the client namespace. After a warm-up, the CPU
 * time (user + system, `/proc/PID/stat`, the tool's process and its
 * children: mtr's mtr-packet) over a window of SECONDS is
 * printed as a share of one core. Target (issue #19): ≤ 5%.
 *
 * Run as root: `deno run -A bench/traceroute_live.ts [seconds]` (default 20).
 *
 * @module
 */
import { Lab } from "../lib/testing/lab.ts";

const seconds = Number(Deno.args[0] ?? 20);
const main = new URL("../traceroute/main.ts", import.meta.url).pathname;
/** Linux's USER_HZ: /proc times are in these ticks. */
const TICKS = 100;

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

function cpuTicks(pid: number): number {
  // Fields after the command name (which may hold spaces): utime is the 14th
  // field of the line, stime the 15th.
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

async function measure(lab: Lab, name: string, tool: string): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_livebench_" });
  const session = `nk-bench-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(`${dir}/run.sh`, `echo $$ > ${dir}/pid\n${tool}\nsleep 600\n`);
  await run("tmux", [
    ...["new-session", "-d", "-s", session, "-x", "120", "-y", "30"],
    ...["ip", "netns", "exec", lab.host("client").ns, "sh", `${dir}/run.sh`],
  ]);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    const shell = (await Deno.readTextFile(`${dir}/pid`)).trim();
    const pid = Number((await run("pgrep", ["-P", shell])).trim().split("\n")[0]);
    // mtr sends and receives in a child, mtr-packet: count the children too.
    const kids = (await run("pgrep", ["-P", String(pid)]).catch(() => "")).trim().split("\n")
      .filter((k) => k !== "").map(Number);
    const ticks = () => [pid, ...kids].reduce((sum, p) => sum + cpuTicks(p), 0);
    const t0 = ticks();
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const used = (ticks() - t0) / TICKS;
    const percent = used / ((performance.now() - w0) / 1000) * 100;
    console.log(`| ${name} | ${(used * 1000).toFixed(0)} ms | ${percent.toFixed(2)}% |`);
    return percent;
  } finally {
    await run("tmux", ["kill-session", "-t", session]).catch(() => "");
    await Deno.remove(dir, { recursive: true });
  }
}

await using lab = await Lab.create({ routers: 9 });
const target = lab.host("target").v4;
console.log(`Live view CPU over ${seconds} s, 10-hop lab path, 1 probe per hop per second:\n`);
console.log("| tool | CPU time | share of one core |");
console.log("|---|---|---|");
await measure(
  lab,
  "traceroute --live",
  `${Deno.execPath()} run -A --v8-flags=--invocation-count-for-turbofan=300,--no-lazy,--no-sparkplug ${main} --live -n --interval 1 ${target}`,
);
await measure(lab, "mtr (curses)", `mtr -n -i 1 ${target}`);
