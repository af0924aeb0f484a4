/**
 * Start-up cost of `ping` and `traceroute` over Deno's own floor, in paired
 * runs: each round runs, one after the other in alternating order, an empty
 * module with exactly the flags of the tool's `deno task` (the floor), and
 * the tool on a one-hop target:
 *
 * - `ping -c 1 127.0.0.1`;
 * - `traceroute 127.0.0.1` (the first hop answers).
 *
 * It prints the median of each, and each tool's cost over its floor: the
 * median of the rounds' differences, which cancels the machine's slower and
 * faster spells. Run as root: `deno run -A bench/startup.ts [rounds]`
 * (default 21; `deno task bench startup`). On a machine busy with other
 * work, `chrt -f 10 deno task bench startup` runs the tools and the floor
 * alike at real-time priority, which takes most of that load's noise out
 * (the floor stays near its quiet 15 ms).
 *
 * What is measured is a user's start-up, with Deno's caches in place. The
 * V8 code cache of a run's modules is stored in a later turn of its event
 * loop, which a run as quick as `ping -c 1 127.0.0.1` does not reach before
 * it exits (checked in Deno's `v8_code_cache_v2` database: five such runs
 * stored nothing for `icmp_pinger/`), so the warm-up runs are longer ones,
 * as a user's usual runs are: `ping -c 2 -i 0.2` and `traceroute -z 50`.
 * The tasks' `--no-lazy` makes that cache hold every function, not only the
 * modules' top levels. `startup_test.ts` checks that neither tool loads at
 * start what these runs do not use (quoted-packet parsing, other probe
 * methods, ping's resolver), that each entry imports its whole start path
 * itself, and that no literal `import()` makes Deno read more.
 *
 * Deno keeps one code-cache entry per module, and V8 rejects an entry made
 * under other V8 flags: a run of the same modules without the tasks' flags
 * (`deno test`, a task without them, `deno run` of `main.ts`) replaces the
 * entries, and the tool's next run compiles those modules again, once. The
 * warm-up runs restore the entries before the rounds; after them, the
 * benchmark also times that first run after a run under other flags
 * (median of a few), so both figures are known.
 *
 * @module
 */
import { median } from "../lib/stats.ts";
import { taskCommand } from "../lib/testing/tasks.ts";

const rounds = Number(Deno.args[0] ?? 21);
const empty = await Deno.makeTempFile({ prefix: "startup_floor_", suffix: ".ts" });

/** Task `name`'s command with its script swapped for the empty module. */
function floorOf(name: string): string[] {
  const cmd = taskCommand(name);
  const script = cmd.findIndex((w, i) => i > 1 && w.endsWith(".ts"));
  return [...cmd.slice(0, script), empty, ...cmd.slice(script + 1)];
}

const CASES: Record<string, string[]> = {
  "ping floor": floorOf("ping"),
  "ping -c 1 127.0.0.1": taskCommand("ping", ["-c", "1", "127.0.0.1"]),
  "traceroute floor": floorOf("traceroute"),
  "traceroute 127.0.0.1": taskCommand("traceroute", ["127.0.0.1"]),
};
/** The warm-up run of each case that is not its own (see the module doc). */
const WARM_UP: Record<string, string[]> = {
  "ping -c 1 127.0.0.1": taskCommand("ping", ["-c", "2", "-i", "0.2", "127.0.0.1"]),
  "traceroute 127.0.0.1": taskCommand("traceroute", ["-z", "50", "127.0.0.1"]),
};
const PAIRS: [tool: string, floor: string][] = [
  ["ping -c 1 127.0.0.1", "ping floor"],
  ["traceroute 127.0.0.1", "traceroute floor"],
];

/** `cmd` without its V8 flags: a run that replaces the tool's code-cache entries. */
function withoutV8Flags(cmd: string[]): string[] {
  return cmd.filter((w) => !w.startsWith("--v8-flags"));
}
/** Runs after a run under other V8 flags, per tool (see the module doc). */
const COLD_ROUNDS = 5;

/** Milliseconds from spawn to exit of `cmd`. */
async function time(cmd: string[]): Promise<number> {
  const t0 = performance.now();
  const { code, stderr } = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  if (code !== 0) {
    throw new Error(`${cmd.join(" ")}: exit ${code}: ${new TextDecoder().decode(stderr)}`);
  }
  return ms;
}

const times: Record<string, number[]> = Object.fromEntries(
  Object.keys(CASES).map((name) => [name, []]),
);
const afterOtherFlags: Record<string, number> = {};
try {
  // One unmeasured run of each: the first run of a module compiles it into
  // Deno's caches, which a user's later runs no longer pay.
  for (const [name, cmd] of Object.entries(CASES)) await time(WARM_UP[name] ?? cmd);
  for (let r = 0; r < rounds; r++) {
    for (const [tool, floor] of PAIRS) {
      const order = r % 2 === 0 ? [floor, tool] : [tool, floor];
      for (const name of order) times[name]!.push(await time(CASES[name]!));
    }
  }
  for (const [tool, floor] of PAIRS) {
    const over: number[] = [];
    for (let r = 0; r < COLD_ROUNDS; r++) {
      await time(withoutV8Flags(WARM_UP[tool]!));
      const base = await time(CASES[floor]!);
      over.push(await time(CASES[tool]!) - base);
    }
    afterOtherFlags[tool] = median(over);
    // Leaves the caches as a user's usual runs do.
    await time(WARM_UP[tool]!);
  }
} finally {
  await Deno.remove(empty);
}

const fmt = (x: number) => x.toFixed(1);
console.log(`rounds: ${rounds} (median ms, spawn to exit)`);
for (const [tool, floor] of PAIRS) {
  const own = times[tool]!;
  const base = times[floor]!;
  const over = own.map((x, i) => x - base[i]!);
  console.log(
    `${tool}: ${fmt(median(own))}  floor ${fmt(median(base))}  over the floor ${
      fmt(median(over))
    } ms (median of paired differences; difference of medians ${fmt(median(own) - median(base))})`,
  );
}
for (const [tool] of PAIRS) {
  console.log(
    `${tool}, first run after a run under other V8 flags: over the floor ${
      fmt(afterOtherFlags[tool]!)
    } ms (median of ${COLD_ROUNDS})`,
  );
}
