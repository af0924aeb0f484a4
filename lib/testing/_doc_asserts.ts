/**
 * The check that no JSDoc example asserts with `console.assert`. That call
 * only logs, so an example using it passes `deno test --doc` with a wrong
 * value; examples assert with `assert` and `assertEquals` from
 * `lib/testing/assert.ts`, which throw.
 *
 * Usage: `deno run --allow-read lib/testing/_doc_asserts.ts` (run by
 * `deno task check`). It prints `file:line` for each `console.assert` in an
 * example and exits 1 when there is one; 2 on a usage error; 0 otherwise.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);
const CALL = /\bconsole\.assert\s*\(/;
const FENCE = /^\s*\*?\s*```/;
// A tag other than @example ends the example it follows.
const OTHER_TAG = /^\s*\*?\s*@(?!example\b)\w/;

/**
 * Finds the lines of `source` where a JSDoc example (the text after an
 * `@example` tag, or a fenced block in a JSDoc comment) calls `console.assert`.
 *
 * @param source TypeScript source text.
 * @returns The 1-based line numbers, in order.
 *
 * @example
 * ```ts
 * import { consoleAssertLines } from "./_doc_asserts.ts";
 * import { assertEquals } from "./assert.ts";
 * const call = "console" + ".assert";
 * const source = [
 *   "/**",
 *   ` * \`${call}\` only logs.`,
 *   " * @example",
 *   ` * ${call}(f() === 1);`,
 *   " *\/",
 *   `${call}(true);`,
 * ].join("\n");
 * assertEquals(consoleAssertLines(source), [4]);
 * ```
 */
export function consoleAssertLines(source: string): number[] {
  const hits: number[] = [];
  let inDoc = false, inExample = false, inFence = false;
  source.split("\n").forEach((line, i) => {
    if (!inDoc) {
      const open = line.indexOf("/**");
      if (open < 0 || line.indexOf("*/", open + 3) >= 0) return;
      inDoc = true;
      inExample = inFence = false;
      return;
    }
    if (line.includes("*/")) {
      inDoc = false;
      return;
    }
    if (FENCE.test(line)) inFence = !inFence;
    else if (!inFence && /@example\b/.test(line)) inExample = true;
    else if (!inFence && OTHER_TAG.test(line)) inExample = false;
    if ((inExample || inFence) && CALL.test(line)) hits.push(i + 1);
  });
  return hits;
}

async function* sourceFiles(dir: URL, prefix = ""): AsyncGenerator<string> {
  const entries = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => a.name < b.name ? -1 : 1);
  for (const entry of entries) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = prefix + entry.name;
    if (entry.isDirectory) yield* sourceFiles(new URL(`${entry.name}/`, dir), `${path}/`);
    else if (entry.isFile && entry.name.endsWith(".ts")) yield path;
  }
}

async function main(args: readonly string[]): Promise<number> {
  if (args.length > 0) {
    console.error("usage: deno run --allow-read lib/testing/_doc_asserts.ts (no arguments)");
    return 2;
  }
  let failed = false;
  for await (const path of sourceFiles(ROOT)) {
    const lines = consoleAssertLines(await Deno.readTextFile(new URL(path, ROOT)));
    for (const line of lines) {
      console.error(
        `${path}:${line}: console.assert in a JSDoc example only logs; use assert or assertEquals from lib/testing/assert.ts`,
      );
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
