/**
 * The command a `deno task` runs, as an argument vector, so that tests and
 * benchmarks run a tool exactly as `deno task NAME` does (same runtime
 * flags), from any working directory and any network namespace.
 *
 * @module
 */

import type { Options } from "../cli.ts";

const ROOT = new URL("../../", import.meta.url);

/**
 * The argument vector of task `name` in the project's `deno.json`: `deno`
 * becomes this runtime's executable, `--config` points at that `deno.json`,
 * and the script (the first argument ending in `.ts`) becomes an absolute
 * path; `args` follow.
 *
 * @example Ping the loopback address as `deno task ping` would
 * ```ts
 * import { taskCommand } from "./tasks.ts";
 *
 * const [cmd, ...args] = taskCommand("ping", ["-c", "1", "127.0.0.1"]);
 * console.log(cmd === Deno.execPath(), args.includes("-c"));
 * ```
 */
export function taskCommand(name: string, args: readonly string[] = []): string[] {
  const configPath = new URL("deno.json", ROOT).pathname;
  const config = JSON.parse(Deno.readTextFileSync(configPath)) as {
    tasks?: Record<string, string>;
  };
  const task = config.tasks?.[name];
  if (task === undefined) throw new Error(`deno.json has no task "${name}"`);
  const words = task.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(`task "${name}" is not a plain "deno run": ${task}`);
  }
  const script = words.findIndex((w, i) => i > 1 && w.endsWith(".ts"));
  if (script < 0) throw new Error(`task "${name}" names no script: ${task}`);
  return [
    Deno.execPath(),
    "run",
    "--config",
    configPath,
    ...words.slice(2, script),
    new URL(words[script]!, ROOT).pathname,
    ...words.slice(script + 1),
    ...args,
  ];
}

/**
 * The argument vector that runs task `name` through `deno task` itself with
 * `--config` pointing at the project's `deno.json`, as a user does from
 * another directory: spawn it with {@linkcode inUserDir}'s options, and the
 * task sees that directory in `INIT_CWD`.
 *
 * @param name The task's name in `deno.json`.
 * @param args The task's arguments.
 * @returns The argument vector, the runtime first.
 *
 * @example
 * ```ts
 * import { taskViaConfig } from "./tasks.ts";
 * import { assertEquals } from "./assert.ts";
 * const argv = taskViaConfig("webserver", ["."]);
 * assertEquals([argv[1], argv.at(-1)], ["task", "."]);
 * ```
 */
export function taskViaConfig(name: string, args: readonly string[] = []): string[] {
  return [
    Deno.execPath(),
    "task",
    "-q",
    "--config",
    new URL("deno.json", ROOT).pathname,
    name,
    ...args,
  ];
}

/**
 * The spawn options that run {@linkcode taskViaConfig}'s argument vector as
 * a user in `dir` does: `cwd` is `dir`, and `INIT_CWD` is not inherited.
 * `deno task` keeps an `INIT_CWD` it finds (as npm does), so a test run
 * under `deno task test` would otherwise hand the tool the repository.
 *
 * @param dir The user's directory.
 * @returns Options for `Deno.Command`.
 *
 * @example
 * ```ts
 * import { inUserDir } from "./tasks.ts";
 * import { assert, assertEquals } from "./assert.ts";
 * const options = inUserDir("/tmp");
 * assertEquals(options.cwd, "/tmp");
 * assert(!("INIT_CWD" in options.env));
 * ```
 */
export function inUserDir(
  dir: string,
): { cwd: string; clearEnv: true; env: Record<string, string> } {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  return { cwd: dir, clearEnv: true, env };
}

/**
 * Runs task `name` through `deno task --config` from `dir`, as a user in
 * that directory does, to completion.
 *
 * @param dir The user's directory.
 * @param name The task's name.
 * @param args The task's arguments.
 * @returns The exit code and the output.
 *
 * @example
 * ```ts ignore
 * import { runTaskIn } from "./tasks.ts";
 * const { code, stdout } = await runTaskIn(site, "smtp", ["--dump", "--body", "@note.txt"]);
 * ```
 */
export async function runTaskIn(
  dir: string,
  name: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await output(taskViaConfig(name, args), inUserDir(dir));
}

/**
 * Runs a script in a Deno process of its own (`deno eval`, with this
 * project's unstable `net` APIs), for tests of what would spoil the test
 * process: a failed io_uring ring, an exit. Killed after `timeoutMs`.
 *
 * @param script The module's source.
 * @param timeoutMs Longest run, in ms.
 * @returns The exit code and the output.
 *
 * @example
 * ```ts
 * import { evalScript } from "./tasks.ts";
 * import { assertEquals } from "./assert.ts";
 * const r = await evalScript("console.log(6 * 7)");
 * assertEquals([r.code, r.stdout], [0, "42\n"]);
 * ```
 */
export async function evalScript(
  script: string,
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await output([Deno.execPath(), "eval", "--unstable-net", script], {}, timeoutMs);
}

/**
 * Runs `argv` to its end with no stdin, killed after `timeoutMs` when given;
 * its exit code and decoded output.
 */
async function output(
  argv: readonly string[],
  options: Deno.CommandOptions = {},
  timeoutMs?: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...args] = argv;
  const child = new Deno.Command(cmd!, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).spawn();
  const timer = timeoutMs === undefined
    ? undefined
    : setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `deno task NAME --help` and checks what a user relies on: exit 0,
 * the text on stdout and nothing on stderr, and every option of the tool's
 * table listed with its short form and its default. A tool whose help and
 * parser come from one table cannot fail this; one that drifts does.
 *
 * @param name The task's name.
 * @param options The option table the tool parses with.
 * @param args The arguments that ask for help.
 * @returns The help text.
 *
 * @example
 * ```ts ignore
 * import { assertHelpLists } from "./tasks.ts";
 * import { OPTIONS } from "../../proxy_server/main.ts";
 * await assertHelpLists("proxy", OPTIONS);
 * ```
 */
export async function assertHelpLists(
  name: string,
  options: Options,
  args: readonly string[] = ["--help"],
): Promise<string> {
  const out = await output(taskCommand(name, args));
  const { stdout, stderr } = out;
  const problems: string[] = [];
  if (out.code !== 0) problems.push(`exit code ${out.code}, not 0`);
  if (stderr !== "") problems.push(`stderr is not empty: ${stderr.slice(0, 200)}`);
  for (const [long, spec] of Object.entries(options)) {
    // The option's own row: a summary or another option's text may name it too.
    const row = new RegExp(`^\\s*(?:-\\S, )?--${long}(?![\\w-])`);
    const line = stdout.split("\n").find((l) => row.test(l));
    if (line === undefined) {
      problems.push(`--${long} is not listed`);
      continue;
    }
    if (spec.short && !line.includes(`-${spec.short}, --${long}`)) {
      problems.push(`--${long} is listed without -${spec.short}`);
    }
    if (spec.default && !line.includes(`default: ${spec.default}`)) {
      problems.push(`--${long} is listed without its default ${spec.default}`);
    }
  }
  if (problems.length) {
    throw new Error(`deno task ${name} ${args.join(" ")}:\n  ${problems.join("\n  ")}`);
  }
  return stdout;
}
