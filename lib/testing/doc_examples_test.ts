// Shows that the JSDoc examples are real tests: for a seeded sample of
// examples whose `assertEquals` compares with a literal, the example passes as
// written and fails with an AssertionError once that literal is changed.

import { docExamples, sourceFiles } from "./_doc_asserts.ts";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { createRandom } from "../random.ts";

const ROOT = new URL("../../", import.meta.url);
const SAMPLE = 12;
const SEED = 24;
// Examples that open sockets, start processes or wait on timers are left out:
// under a parallel suite they are slow, and their failures would not be about
// the literal.
const SIDE_EFFECTS =
  /\b(listen|connect|serve|fetch|Lab|lab|socket|Socket|Command|spawn|setTimeout|sleep|Deno\.exit)\b/;
const NUMBER = /^-?\d+(\.\d+)?$/;
const STRING = /^"(?:[^"\\\n]|\\.)*"$|^'(?:[^'\\\n]|\\.)*'$/;

interface Literal {
  start: number;
  end: number;
  text: string;
}

interface Candidate {
  path: string;
  line: number;
  code: string;
  literals: Literal[];
}

// Finds where the `)` matching the `(` at `open` is and the offsets of the
// top-level commas between them; undefined when the call does not close.
function callArguments(
  code: string,
  open: number,
): { commas: number[]; close: number } | undefined {
  const commas: number[] = [];
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    const c = code[i]!;
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < code.length && code[j] !== c) j += code[j] === "\\" ? 2 : 1;
      i = j;
    } else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) {
      depth--;
      if (depth === 0) return { commas, close: i };
    } else if (c === "," && depth === 1) commas.push(i);
  }
  return undefined;
}

// The expected values of the two-argument `assertEquals` calls in `code` that
// are a number or string literal.
function expectedLiterals(code: string): Literal[] {
  const found: Literal[] = [];
  for (const match of code.matchAll(/\bassertEquals\(/g)) {
    const open = match.index + match[0].length - 1;
    const args = callArguments(code, open);
    if (args === undefined || args.commas.length < 1 || args.commas.length > 2) continue;
    const from = args.commas[0]! + 1;
    let to = args.commas[1] ?? args.close;
    // A trailing comma after the second argument is allowed; a third one is a message.
    if (args.commas.length === 2 && code.slice(args.commas[1]! + 1, args.close).trim() !== "") {
      continue;
    }
    if (args.commas.length === 1) to = args.close;
    const raw = code.slice(from, to);
    const text = raw.trim();
    if (!NUMBER.test(text) && !STRING.test(text)) continue;
    const start = from + raw.indexOf(text);
    found.push({ start, end: start + text.length, text });
  }
  return found;
}

// Number + 1, or the string with an "x" added before its closing quote.
function mutate(text: string): string {
  return NUMBER.test(text) ? String(Number(text) + 1) : `${text.slice(0, -1)}x${text.slice(-1)}`;
}

// Rewrites the example's relative imports to absolute URLs of the file it came
// from, so it runs from a temporary folder.
function absoluteImports(code: string, base: URL): string {
  return code.replace(
    /(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(["'])(\.\.?\/[^"']*)\2/g,
    (_, lead: string, quote: string, spec: string) =>
      `${lead}${quote}${new URL(spec, base).href}${quote}`,
  );
}

async function candidates(): Promise<Candidate[]> {
  const found: Candidate[] = [];
  for await (const path of sourceFiles(ROOT)) {
    if (path.endsWith("_test.ts") || path.startsWith("bench/")) continue;
    const base = new URL(path, ROOT);
    for (const example of docExamples(await Deno.readTextFile(base))) {
      if (example.info !== "ts" || SIDE_EFFECTS.test(example.code)) continue;
      const code = absoluteImports(example.code, base);
      const literals = expectedLiterals(code);
      if (literals.length > 0) found.push({ path, line: example.line, code, literals });
    }
  }
  return found;
}

// Spreads the sample over the top-level folders: shuffles each folder's
// candidates with the seed, then takes one from each folder in turn.
function sample(all: Candidate[], size: number, random: () => number): Candidate[] {
  const groups = new Map<string, Candidate[]>();
  for (const c of all) {
    const key = c.path.split("/")[0]!;
    groups.set(key, [...groups.get(key) ?? [], c]);
  }
  const shuffled = [...groups.values()].map((group) => {
    for (let i = group.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [group[i], group[j]] = [group[j]!, group[i]!];
    }
    return group;
  });
  const picked: Candidate[] = [];
  for (let round = 0; picked.length < size && shuffled.some((g) => g.length > round); round++) {
    for (const group of shuffled) {
      const c = group[round];
      if (c !== undefined && picked.length < size) picked.push(c);
    }
  }
  return picked;
}

async function run(dir: string, name: string, code: string): Promise<Deno.CommandOutput> {
  const file = `${dir}/${name}.ts`;
  await Deno.writeTextFile(file, code);
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-lock", "--config", new URL("deno.json", ROOT).pathname, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

interface Outcome {
  where: string;
  literal: string;
  changed: string;
  original: Deno.CommandOutput;
  mutated: Deno.CommandOutput;
}

async function check(dir: string, c: Candidate, literal: Literal, index: number) {
  const changed = mutate(literal.text);
  const mutatedCode = c.code.slice(0, literal.start) + changed + c.code.slice(literal.end);
  const original = await run(dir, `example_${index}`, c.code);
  const mutated = await run(dir, `example_${index}_mutated`, mutatedCode);
  return { where: `${c.path}:${c.line}`, literal: literal.text, changed, original, mutated };
}

// Runs `jobs` two at a time, keeping their order.
async function twoAtATime<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  async function worker() {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  }
  await Promise.all([worker(), worker()]);
  return results;
}

Deno.test("expectedLiterals() finds literal expected values of assertEquals only", () => {
  const code = [
    'assertEquals(f("a, b"), "x");',
    "assertEquals(g([1, 2]), -2.5);",
    "assertEquals(h(), [1]);",
    'assertEquals(k(), 3, "message");',
    "assertEquals(\n  m(),\n  7,\n);",
  ].join("\n");
  assertEquals(expectedLiterals(code).map((l) => l.text), ['"x"', "-2.5", "7"]);
  assertEquals(mutate('"x"'), '"xx"');
  assertEquals(mutate("-2.5"), "-1.5");
  assertEquals(
    absoluteImports('import { a } from "./a.ts";', new URL("file:///r/lib/b.ts")),
    'import { a } from "file:///r/lib/a.ts";',
  );
});

Deno.test("a sample of doc examples passes, and fails once its expected literal changes", async () => {
  const all = await candidates();
  const random = createRandom(SEED);
  const picked = sample(all, SAMPLE, random);
  assertEquals(picked.length, SAMPLE, `only ${all.length} examples qualify`);
  // The sample must reach beyond lib/ into the tools.
  assert(picked.some((c) => !c.path.startsWith("lib/")), "the sample has no tool's example");
  const dir = await Deno.makeTempDir({ prefix: "doc_examples_" });
  try {
    // Which literal of each example changes is drawn before any run starts.
    const literals = picked.map((c) => c.literals[Math.floor(random() * c.literals.length)]!);
    const outcomes: Outcome[] = await twoAtATime(
      picked.map((c, i) => () => check(dir, c, literals[i]!, i)),
    );
    const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    for (const o of outcomes) {
      assert(o.original.success, `${o.where} fails as written:\n${decode(o.original.stderr)}`);
      assert(
        !o.mutated.success,
        `${o.where} still passes with ${o.literal} changed to ${o.changed}`,
      );
      assertMatch(decode(o.mutated.stderr), /AssertionError/, `${o.where} (${o.changed})`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
