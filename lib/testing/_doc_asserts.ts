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
  for (const line of docLines(source)) {
    if (line.inExample && CALL.test(line.text)) hits.push(line.number);
  }
  return hits;
}

/** A fenced code block in a JSDoc comment. */
export interface DocExample {
  /** The 1-based line number of the block's first code line. */
  line: number;
  /** The fence's info string, such as `ts` or `ts ignore`. */
  info: string;
  /** The block's code, with each line's leading `*` and one space removed. */
  code: string;
}

/**
 * Finds the fenced code blocks of the JSDoc comments in `source`, as
 * `deno test --doc` sees them.
 *
 * @param source TypeScript source text.
 * @returns The blocks, in order.
 *
 * @example
 * ```ts
 * import { docExamples } from "./_doc_asserts.ts";
 * import { assertEquals } from "./assert.ts";
 * const fence = "`".repeat(3);
 * const source = ["/**", " * @example", ` * ${fence}ts`, " *   f(1);", ` * ${fence}`, " *\/"];
 * assertEquals(docExamples(source.join("\n")), [{ line: 4, info: "ts", code: "  f(1);" }]);
 * ```
 */
export function docExamples(source: string): DocExample[] {
  const blocks: DocExample[] = [];
  let open: { line: number; info: string; code: string[] } | undefined;
  for (const line of docLines(source)) {
    if (line.fence && open === undefined) {
      open = { line: line.number + 1, info: line.text.replace(FENCE, "").trim(), code: [] };
    } else if (line.fence && open !== undefined) {
      blocks.push({ line: open.line, info: open.info, code: open.code.join("\n") });
      open = undefined;
    } else if (open !== undefined) {
      open.code.push(line.text.replace(/^\s*\* ?/, ""));
    }
  }
  return blocks;
}

interface DocLine {
  /** The line's text. */
  text: string;
  /** Its 1-based line number. */
  number: number;
  /** Whether it is in an example: after `@example` or inside a fence. */
  inExample: boolean;
  /** Whether it opens or closes a fence. */
  fence: boolean;
}

// The one reading of JSDoc comments that both the console.assert check and the
// example finder use, so they agree on where an example starts and ends.
function* docLines(source: string): Generator<DocLine> {
  let inDoc = false, inExample = false, inFence = false;
  const lines = source.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    if (!inDoc) {
      const open = text.indexOf("/**");
      if (open < 0 || text.indexOf("*/", open + 3) >= 0) continue;
      inDoc = true;
      inExample = inFence = false;
      continue;
    }
    if (text.includes("*/")) {
      // An unclosed fence ends with its comment; it yields no block.
      inDoc = false;
      continue;
    }
    const fence = FENCE.test(text);
    if (fence) inFence = !inFence;
    else if (!inFence && /@example\b/.test(text)) inExample = true;
    else if (!inFence && OTHER_TAG.test(text)) inExample = false;
    yield { text, number: i + 1, inExample: inExample || inFence, fence };
  }
}

/**
 * Lists the `.ts` files under `dir`, sorted, skipping dot-folders and
 * `node_modules`.
 *
 * @param dir The folder to walk, as a URL ending in `/`.
 * @param prefix Prepended to each yielded path.
 * @returns Paths relative to `dir`, with `/` separators.
 *
 * @example
 * ```ts
 * import { sourceFiles } from "./_doc_asserts.ts";
 * import { assert } from "./assert.ts";
 * const paths = await Array.fromAsync(sourceFiles(new URL("./", import.meta.url)));
 * assert(paths.includes("_doc_asserts.ts"));
 * ```
 */
export async function* sourceFiles(dir: URL, prefix = ""): AsyncGenerator<string> {
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
