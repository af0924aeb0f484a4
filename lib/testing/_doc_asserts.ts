/**
 * The check that no JSDoc example asserts with `console.assert`. That call
 * only logs, so an example using it passes `deno test --doc` with a wrong
 * value; examples assert with `assert` and `assertEquals` from
 * `lib/testing/assert.ts`, which throw.
 *
 * Usage: `deno run --allow-read lib/testing/_doc_asserts.ts` (run by
 * `deno task check`). It prints `file:line` for each `console.assert` in an
 * example and exits 1 when there is one, or when a file of
 * {@linkcode NOT_YET_CONVERTED} no longer needs its exemption; 2 on a usage
 * error; 0 otherwise.
 *
 * @module
 */

/**
 * Files whose examples still use `console.assert`, exempt until they are
 * converted. This list must only shrink, to empty: the check fails when a
 * listed file has no `console.assert` left, so remove the file then.
 */
export const NOT_YET_CONVERTED: readonly string[] = [
  "icmp_pinger/format.ts",
  "lib/_checksum.ts",
  "lib/cli.ts",
  "lib/icmp.ts",
  "lib/rawsock/clock.ts",
  "lib/rawsock/echo.ts",
  "lib/rawsock/errno.ts",
  "lib/rawsock/lookup.ts",
  "lib/rawsock/socket.ts",
  "lib/resolve.ts",
  "lib/sockaddr.ts",
  "lib/stats.ts",
  "traceroute/format.ts",
  "traceroute/probe.ts",
  "traceroute/report.ts",
  "traceroute/trace.ts",
  "traceroute/udp.ts",
];

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
  const exempt = new Set(NOT_YET_CONVERTED);
  let failed = false;
  for await (const path of sourceFiles(ROOT)) {
    const lines = consoleAssertLines(await Deno.readTextFile(new URL(path, ROOT)));
    if (exempt.delete(path)) {
      if (lines.length === 0) {
        console.error(
          `${path}: converted; remove it from NOT_YET_CONVERTED in lib/testing/_doc_asserts.ts`,
        );
        failed = true;
      }
      continue;
    }
    for (const line of lines) {
      console.error(
        `${path}:${line}: console.assert in a JSDoc example only logs; use assert or assertEquals from lib/testing/assert.ts`,
      );
      failed = true;
    }
  }
  for (const path of exempt) {
    console.error(
      `${path}: no such file; remove it from NOT_YET_CONVERTED in lib/testing/_doc_asserts.ts`,
    );
    failed = true;
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
