/**
 * Child-side half of `Lab.run()`: runs inside a network namespace (under
 * `ip netns exec`), imports a module, calls one of its exports with JSON
 * arguments and writes the JSON outcome to a result file.
 *
 * A result file, not stdout, carries the outcome so that the called function
 * may print freely.
 *
 * Usage: `deno run -A _runner.ts <module URL> <export name> <JSON args> <result file>`
 *
 * @module
 */

/** The outcome written to the result file. */
export type RunnerOutcome =
  | { ok: true; value: unknown }
  | { ok: false; name: string; message: string; stack?: string };

async function main(): Promise<number> {
  const [moduleUrl, exportName, argsJson, resultPath] = Deno.args;
  if (
    moduleUrl === undefined || exportName === undefined || argsJson === undefined ||
    resultPath === undefined
  ) {
    console.error("usage: _runner.ts <module URL> <export name> <JSON args> <result file>");
    return 2;
  }
  let outcome: RunnerOutcome;
  try {
    const mod = await import(moduleUrl) as Record<string, unknown>;
    const fn = mod[exportName];
    if (typeof fn !== "function") {
      throw new TypeError(`Cannot call "${exportName}" of ${moduleUrl}: it is not a function`);
    }
    const args = JSON.parse(argsJson) as unknown[];
    const value = await fn(...args);
    outcome = { ok: true, value: value === undefined ? null : value };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    outcome = { ok: false, name: e.name, message: e.message };
    if (e.stack !== undefined) outcome.stack = e.stack;
  }
  await Deno.writeTextFile(resultPath, JSON.stringify(outcome));
  return outcome.ok ? 0 : 1;
}

if (import.meta.main) {
  // Exit explicitly: the called function may leave timers or sockets open,
  // and the parent waits for this process to end.
  Deno.exit(await main());
}
