/**
 * Reading the project's Markdown for tests: the shell examples each manual
 * shows (so a test can run them as written) and the benchmark figures the
 * README and the manuals quote (so a test can check they quote the same run).
 *
 * Conventions, as the documents use them:
 *
 * - Every ```` ```sh ````, ```` ```bash ````, ```` ```shell ```` or
 *   ```` ```console ```` block is an example that runs. In a `sh` block each
 *   line (with its `\` continuations) is one command; `#` comments are left to
 *   the shell. In a `console` block, `$ ` starts a command and the lines after
 *   it are output the command must print, in order (`...` stands for any
 *   text).
 * - `<!-- example: server PORT[/udp] ... -->` on the line before a block
 *   makes every command in it a long-running server: they are started in the
 *   background, the listed ports must be listening, and they keep running
 *   through the next block without a `server` marker (their client), then
 *   stop. No other marker exists, so no block can be left out.
 * - A quoted figure is written `<!-- fig:SUITE.NAME -->TEXT<!-- /fig -->`,
 *   where SUITE is the `deno task bench SUITE` that produced it; a document
 *   quoting figures of a suite names the run in its visible text as
 *   `` `deno task bench SUITE`, YYYY-MM-DD ``.
 *
 * @module
 */

/** A fenced shell block of a Markdown document. */
export interface ShellBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's language: `sh`, `bash`, `shell` or `console`. */
  lang: string;
  /** The ports the block's servers listen on, when it has a `server` marker. */
  server?: Port[];
  /** The block's commands, in order. */
  commands: Command[];
}

/** A port a server block listens on. */
export interface Port {
  /** The port number. */
  port: number;
  /** The transport. */
  proto: "tcp" | "udp";
}

/** One command of a block. */
export interface Command {
  /** The command as the shell gets it (continuation lines joined). */
  text: string;
  /** Output lines the command must print, in order (`console` blocks only). */
  expect: string[];
}

const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);
const MARKER = /^<!--\s*example:(.*?)-->$/;

/**
 * Extracts the shell blocks of a Markdown document with their markers.
 *
 * @param markdown The document's text.
 * @returns The blocks in document order.
 * @throws {SyntaxError} On an unknown or malformed marker, a marker before a
 *   block that is not a shell block, or an unclosed fence.
 *
 * @example
 * ```ts
 * import { shellBlocks } from "./_docs.ts";
 * import { assertEquals } from "./assert.ts";
 * const fence = "`".repeat(3);
 * const [block] = shellBlocks(`${fence}sh\ndeno task ping -c 1 \\\n  127.0.0.1\n${fence}\n`);
 * assertEquals(block?.commands[0]?.text, "deno task ping -c 1 127.0.0.1");
 * ```
 */
export function shellBlocks(markdown: string): ShellBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShellBlock[] = [];
  let pending: { line: number; ports: Port[] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const marker = MARKER.exec(line);
    if (marker !== null) {
      pending = { line: i + 1, ports: parseMarker(marker[1]!.trim(), i + 1) };
      continue;
    }
    const fence = /^(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (fence === null) {
      if (line !== "" && pending !== undefined) {
        throw new SyntaxError(`line ${pending.line}: an example marker must precede a block`);
      }
      continue;
    }
    const lang = fence[2]!.toLowerCase();
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.trim().startsWith(fence[1]!); i++) {
      body.push(lines[i]!);
    }
    if (i >= lines.length) throw new SyntaxError(`line ${start + 1}: the fence is never closed`);
    if (!SHELL_LANGS.has(lang)) {
      if (pending !== undefined) {
        throw new SyntaxError(`line ${pending.line}: an example marker before a "${lang}" block`);
      }
      continue;
    }
    const block: ShellBlock = {
      line: start + 1,
      lang,
      commands: lang === "console" ? consoleCommands(body) : scriptCommands(body),
    };
    if (pending !== undefined) block.server = pending.ports;
    if (block.commands.length === 0) throw new SyntaxError(`line ${start + 1}: an empty example`);
    blocks.push(block);
    pending = undefined;
  }
  return blocks;
}

function parseMarker(text: string, line: number): Port[] {
  const [kind, ...ports] = text.split(/\s+/);
  if (kind !== "server" || ports.length === 0) {
    throw new SyntaxError(
      `line ${line}: unknown example marker "${text}": expected "server PORT[/udp] ..."`,
    );
  }
  return ports.map((p) => {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(p);
    if (m === null || Number(m[1]) > 65535) {
      throw new SyntaxError(`line ${line}: "${p}" is not a port (PORT or PORT/udp)`);
    }
    return { port: Number(m[1]), proto: (m[2] ?? "tcp") as "tcp" | "udp" };
  });
}

function joinContinuations(lines: string[]): string[] {
  const out: string[] = [];
  let current: string | undefined;
  for (const raw of lines) {
    const line = current === undefined ? raw.trimEnd() : raw.trim();
    current = current === undefined ? line : `${current} ${line}`;
    if (current.endsWith("\\")) {
      current = current.slice(0, -1).trimEnd();
      continue;
    }
    out.push(current);
    current = undefined;
  }
  if (current !== undefined) out.push(current);
  return out;
}

function scriptCommands(body: string[]): Command[] {
  return joinContinuations(body)
    .filter((l) => l.trim() !== "" && !l.trim().startsWith("#"))
    .map((text) => ({ text: text.trim(), expect: [] }));
}

function consoleCommands(body: string[]): Command[] {
  const commands: Command[] = [];
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!;
    if (line.startsWith("$ ")) {
      const parts = [line.slice(2)];
      while (parts.at(-1)!.trimEnd().endsWith("\\") && i + 1 < body.length) parts.push(body[++i]!);
      commands.push({ text: joinContinuations(parts).join(" ").trim(), expect: [] });
    } else if (line.trim() !== "") {
      const last = commands.at(-1);
      if (last === undefined) throw new SyntaxError(`output before any "$ " command: ${line}`);
      last.expect.push(line.trim());
    }
  }
  return commands;
}

/**
 * Finds the first expected line that the output does not show: each
 * expected line must match a later line of the output than the one before
 * it, where `...` in the expected line stands for any text.
 *
 * @param output What the command printed.
 * @param expected The lines it must print, in order.
 * @returns The first expected line not found, or `undefined` when all are.
 *
 * @example
 * ```ts
 * import { missingOutput } from "./_docs.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(missingOutput("a 1 ms\nb 2 ms\n", ["a ... ms", "b ..."]), undefined);
 * assertEquals(missingOutput("b\na\n", ["a", "b"]), "b");
 * ```
 */
export function missingOutput(output: string, expected: readonly string[]): string | undefined {
  const lines = output.split("\n");
  let from = 0;
  for (const want of expected) {
    const pattern = new RegExp(
      "^" + want.split("...").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*") +
        "$",
    );
    const at = lines.findIndex((l, k) => k >= from && pattern.test(l.trim()));
    if (at < 0) return want;
    from = at + 1;
  }
  return undefined;
}

/** The figures one document quotes, and the runs it names for them. */
export interface QuotedFigures {
  /** Figure text by key (`SUITE.NAME`). */
  figures: Map<string, string>;
  /** For each bench suite, the dates of `` `deno task bench SUITE`, DATE `` in the text. */
  runs: Map<string, Set<string>>;
}

/**
 * Reads the quoted figures of a document and the bench runs it names.
 *
 * @param markdown The document's text.
 * @returns The figures and runs.
 * @throws {SyntaxError} When a key is quoted twice with different text, or a
 *   figure marker is malformed.
 *
 * @example
 * ```ts
 * import { quotedFigures } from "./_docs.ts";
 * import { assert, assertEquals } from "./assert.ts";
 * const q = quotedFigures("`deno task bench web`, 2026-12-03: <!-- fig:web.ratio -->1.65<!-- /fig -->");
 * assertEquals(q.figures.get("web.ratio"), "1.65");
 * assert(q.runs.get("web")?.has("2026-12-03"));
 * ```
 */
export function quotedFigures(markdown: string): QuotedFigures {
  const figures = new Map<string, string>();
  // A marker inside a code span is the convention being described, not a figure.
  const prose = markdown.replace(/`[^`\n]*`/g, "");
  for (const m of prose.matchAll(/<!--\s*fig:(\S*)\s*-->(.*?)<!--\s*\/fig\s*-->/g)) {
    const [, key, text] = m as unknown as [string, string, string];
    if (!/^\w+\.[\w.-]+$/.test(key)) {
      throw new SyntaxError(`figure key "${key}" is not SUITE.NAME`);
    }
    const previous = figures.get(key);
    if (previous !== undefined && previous !== text.trim()) {
      throw new SyntaxError(`figure ${key} is quoted as "${previous}" and as "${text.trim()}"`);
    }
    figures.set(key, text.trim());
  }
  const stray = /^\s*<!--\s*fig:(\S*)/m.exec(prose);
  if (stray !== null) {
    throw new SyntaxError(
      `figure ${
        stray[1]
      } starts a line, where Markdown reads it as an HTML block: move it mid-line`,
    );
  }
  const opened = prose.match(/<!--\s*fig:/g)?.length ?? 0;
  const closed = [...prose.matchAll(/<!--\s*fig:\S*\s*-->.*?<!--\s*\/fig\s*-->/g)].length;
  if (opened !== closed) throw new SyntaxError("a figure marker has no <!-- /fig --> on its line");
  const runs = new Map<string, Set<string>>();
  for (const m of markdown.matchAll(/`deno task bench (\w+)`, (\d{4}-\d{2}-\d{2})/g)) {
    const dates = runs.get(m[1]!) ?? new Set();
    dates.add(m[2]!);
    runs.set(m[1]!, dates);
  }
  return { figures, runs };
}

/**
 * Checks that documents quote the same run: each figure names its run, one
 * run per suite in each document and across documents, and a figure quoted
 * by several documents has the same text in each.
 *
 * @param docs The documents: path and text.
 * @returns One message per disagreement (empty when they agree).
 *
 * @example
 * ```ts
 * import { figureDisagreements } from "./_docs.ts";
 * import { assertEquals } from "./assert.ts";
 * const run = "`deno task bench web`, 2026-12-03";
 * const problems = figureDisagreements([
 *   { path: "README.md", text: `${run} <!-- fig:web.ratio -->1.65<!-- /fig -->` },
 *   { path: "SERVER.md", text: `${run} <!-- fig:web.ratio -->1.44<!-- /fig -->` },
 * ]);
 * assertEquals(problems.length, 1);
 * ```
 */
export function figureDisagreements(docs: readonly { path: string; text: string }[]): string[] {
  const problems: string[] = [];
  const values = new Map<string, { path: string; text: string }>();
  const dates = new Map<string, { path: string; date: string }>();
  for (const doc of docs) {
    let quoted: QuotedFigures;
    try {
      quoted = quotedFigures(doc.text);
    } catch (error) {
      problems.push(`${doc.path}: ${(error as Error).message}`);
      continue;
    }
    const suites = new Set([...quoted.figures.keys()].map((k) => k.split(".")[0]!));
    for (const suite of suites) {
      const named = [...(quoted.runs.get(suite) ?? [])];
      if (named.length !== 1) {
        problems.push(
          `${doc.path}: quotes ${suite} figures but names ${named.length} runs ` +
            `("\`deno task bench ${suite}\`, DATE"): ${named.join(", ") || "none"}`,
        );
        continue;
      }
      const seen = dates.get(suite);
      if (seen === undefined) dates.set(suite, { path: doc.path, date: named[0]! });
      else if (seen.date !== named[0]) {
        problems.push(
          `${doc.path} quotes the ${suite} run of ${named[0]}, ${seen.path} that of ${seen.date}`,
        );
      }
    }
    for (const [key, text] of quoted.figures) {
      const seen = values.get(key);
      if (seen === undefined) values.set(key, { path: doc.path, text });
      else if (seen.text !== text) {
        problems.push(`${key}: ${seen.path} says "${seen.text}", ${doc.path} says "${text}"`);
      }
    }
  }
  return problems;
}
