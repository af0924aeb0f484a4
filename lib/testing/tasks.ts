/**
 * The command a `deno task` runs, as an argument vector, so that tests and
 * benchmarks run a tool exactly as `deno task NAME` does (same runtime
 * flags), from any working directory and any network namespace.
 *
 * @module
 */

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
