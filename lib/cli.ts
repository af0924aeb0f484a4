/**
 * Shared command-line plumbing: getopt-style argument parsing over an option
 * table that also prints `--help`, usage errors with exit codes, user paths,
 * and the one main runner.
 *
 * Only `main.ts` files call {@linkcode runMain}; libraries throw errors and
 * let the CLI turn them into messages and exit codes.
 *
 * @module
 */
/** Exit code for bad input (a bad option, an unknown host): as iputils and most tools. */
export const EXIT_USAGE = 2;

/** Exit code of every server that cannot start (port taken, unreadable certificate, no privilege). */
export const EXIT_CANNOT_START = 1;

/**
 * The exit codes of a server tool, as its `--help` ends: the same in every
 * server, so scripts can tell "cannot start" from bad usage.
 */
export const SERVER_EXIT_CODES: string =
  `Exit codes: 0 after SIGINT/SIGTERM, ${EXIT_CANNOT_START} when the server cannot start\n` +
  `(address in use, or a file it cannot use), ${EXIT_USAGE} on bad usage.`;

/**
 * An error whose message is meant for the user of a CLI, with the exit code
 * the CLI must end with. {@linkcode runMain} prints only the message.
 *
 * @example Throwing a usage error
 * ```ts
 * import { CliError } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const err = new CliError("invalid count: -1", 2);
 * assertEquals(err.exitCode, 2);
 * ```
 */
export class CliError extends Error {
  /** The process exit code to end with. */
  readonly exitCode: number;
  /** Print the message as it is, without the `prog: ` prefix. */
  readonly bare: boolean;

  /**
   * Creates an error that a CLI reports as one line.
   *
   * @param message What failed, then why.
   * @param exitCode The exit code to end with.
   * @param options `bare: true` for lines a reference tool prints without
   *   its name (Butskoy traceroute's), which parity needs as they are.
   */
  constructor(message: string, exitCode: number = EXIT_USAGE, options: { bare?: boolean } = {}) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.bare = options.bare ?? false;
  }
}

/** One option of an option table, in `node:util` `parseArgs`' shape. */
export interface OptionSpec {
  /** Whether the option takes a value (`"string"`) or is a flag (`"boolean"`). */
  type: "string" | "boolean";
  /** A one-letter alias, used as `-x`. */
  short?: string;
  /** Collect every occurrence into an array instead of keeping the last. */
  multiple?: boolean;
  /** What the option does, one line, for `--help`. */
  description?: string;
  /** The value's placeholder in `--help`, such as `N` or `FILE`; `VALUE` when unset. */
  arg?: string;
  /** The default as `--help` shows it; omitted when the option has none. */
  default?: string;
  /** A heading `--help` prints before this option, to start a group of options. */
  group?: string;
}

/** An option table: long names to specs. */
export type Options = Readonly<Record<string, OptionSpec>>;

/** The parsed value type of one option spec. */
export type OptionValue<S extends OptionSpec> = S extends { type: "boolean" }
  ? (S extends { multiple: true } ? boolean[] : boolean)
  : (S extends { multiple: true } ? string[] : string);

/** The parsed values of an option table: absent options are `undefined`. */
export type ParsedValues<T extends Options> = { [K in keyof T]?: OptionValue<T[K]> };

/**
 * Parses command-line arguments strictly, getopt-style: `-n -q`, `-nq`,
 * `-c3`, `-c 3`, `--count=3`, `--count 3`, and `--` to end the options.
 * The option table has `node:util` `parseArgs`' shape; the parser is our own
 * because loading Node's compatibility layer costs several milliseconds of
 * start-up, which tools that finish in a few milliseconds cannot afford, and
 * because iputils-style `-c3` and `-i0.2` must work. Errors are worded as
 * glibc's `getopt_long` words them, as iputils and most tools print them.
 *
 * @param args The arguments, usually `Deno.args`.
 * @param options The option table.
 * @returns The parsed values (by long name) and the positionals.
 * @throws {CliError} With exit code 2 on an unknown option or a missing value.
 *
 * @example Parsing a count and a host
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const { values, positionals } = parseArgs(["-nc3", "localhost"], {
 *   count: { type: "string", short: "c" },
 *   numeric: { type: "boolean", short: "n" },
 * });
 * assertEquals(values, { numeric: true, count: "3" });
 * assertEquals(positionals, ["localhost"]);
 * ```
 */
export function parseArgs<T extends Options>(
  args: readonly string[],
  options: T,
): { values: ParsedValues<T>; positionals: string[] } {
  const values: Record<string, string | boolean | (string | boolean)[]> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) byShort.set(spec.short, name);
  const set = (name: string, value: string | boolean) => {
    if (options[name]?.multiple) {
      const list = values[name];
      if (Array.isArray(list)) list.push(value);
      else values[name] = [value];
    } else values[name] = value;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const spec = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!spec) throw new CliError(`unrecognized option '--${name}'`);
      if (spec.type === "boolean") {
        if (eq >= 0) throw new CliError(`option '--${name}' doesn't allow an argument`);
        set(name, true);
      } else if (eq >= 0) {
        set(name, arg.slice(eq + 1));
      } else {
        const next = args[++i];
        if (next === undefined) throw new CliError(`option '--${name}' requires an argument`);
        set(name, next);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j]!;
        const name = byShort.get(letter);
        if (name === undefined) throw new CliError(`invalid option -- '${letter}'`);
        if (options[name]!.type === "boolean") {
          set(name, true);
          continue;
        }
        const rest = arg.slice(j + 1);
        if (rest !== "") set(name, rest);
        else {
          const next = args[++i];
          if (next === undefined) throw new CliError(`option requires an argument -- '${letter}'`);
          set(name, next);
        }
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { values: values as ParsedValues<T>, positionals };
}

/** The texts around the option list that {@linkcode formatHelp} prints. */
export interface HelpText {
  /** The usage line(s), e.g. `Usage: deno task proxy [options]`. */
  usage: string;
  /** A paragraph on what the tool does, printed after the usage. */
  summary?: string;
  /** Text printed after the options, such as the exit codes. */
  footer?: string;
}

/**
 * Formats a tool's `--help` from its option table, so that the help lists
 * exactly the options the parser takes, each with its default.
 *
 * @param options The option table the tool parses with.
 * @param text The usage, summary and footer.
 * @returns The help text, ending in a newline.
 *
 * @example
 * ```ts
 * import { formatHelp } from "./cli.ts";
 * import { assert } from "./testing/assert.ts";
 * const help = formatHelp({
 *   port: { type: "string", short: "p", arg: "N", default: "8000", description: "port to listen on" },
 *   help: { type: "boolean", short: "h", description: "show this help" },
 * }, { usage: "Usage: demo [options]" });
 * assert(help.includes("-p, --port N"));
 * assert(help.includes("port to listen on (default: 8000)"));
 * ```
 */
export function formatHelp(options: Options, text: HelpText): string {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${
      spec.type === "string" ? ` ${spec.arg ?? "VALUE"}` : ""
    }`;
    const notes = [
      spec.multiple ? "repeatable" : "",
      spec.default ? `default: ${spec.default}` : "",
    ]
      .filter((n) => n !== "");
    const about = `${spec.description ?? ""}${notes.length ? ` (${notes.join("; ")})` : ""}`;
    return { group: spec.group, flag, about };
  });
  const width = Math.min(30, Math.max(...rows.map((r) => r.flag.length)) + 2);
  const lines = [text.usage, ""];
  if (text.summary) lines.push(text.summary, "");
  lines.push("Options:");
  for (const row of rows) {
    if (row.group) lines.push("", `${row.group}:`);
    const pad = " ".repeat(Math.max(2, width - row.flag.length));
    lines.push(`  ${row.flag}${row.about ? `${pad}${row.about}` : ""}`);
  }
  if (text.footer) lines.push("", text.footer);
  return `${lines.join("\n")}\n`;
}

/**
 * Resolves a path the user typed (a positional argument or an option's
 * value) against the directory they ran the command from. `deno task` runs
 * every task in the folder of `deno.json` and passes the caller's directory
 * in `INIT_CWD`; a plain `deno run` leaves the working directory alone.
 *
 * @param typed The path as the user typed it.
 * @returns The absolute path.
 *
 * @example
 * ```ts
 * import { userPath } from "./cli.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * assertEquals(userPath("/etc/hosts"), "/etc/hosts");
 * assert(userPath("note.txt").endsWith("/note.txt"));
 * ```
 */
export function userPath(typed: string): string {
  if (typed.startsWith("/")) return typed;
  let base: string | undefined;
  try {
    base = Deno.env.get("INIT_CWD");
  } catch {
    base = undefined; // no --allow-env: the working directory is all there is
  }
  base ||= Deno.cwd();
  const parts: string[] = [];
  for (const part of `${base}/${typed}`.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/**
 * Names a user's path in a message: as typed, and the absolute path it
 * resolved to when that differs, so a user sees which file was meant.
 *
 * @param typed The path as the user typed it.
 * @returns `"note.txt" (/home/me/note.txt)`, or `"/etc/hosts"`.
 *
 * @example
 * ```ts
 * import { describePath } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(describePath("/etc/hosts"), '"/etc/hosts"');
 * ```
 */
export function describePath(typed: string): string {
  const absolute = userPath(typed);
  return absolute === typed ? `"${typed}"` : `"${typed}" (${absolute})`;
}

/**
 * Parses a number option, rejecting garbage with a {@linkcode CliError}.
 *
 * @param name The option's name, for the message (e.g. `"-c"`).
 * @param text The option's text.
 * @param options Bounds and integer-ness.
 * @returns The number.
 *
 * @example A count between 1 and 100
 * ```ts
 * import { parseNumber } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(parseNumber("-c", "5", { min: 1, max: 100, integer: true }), 5);
 * ```
 */
export function parseNumber(
  name: string,
  text: string,
  options: { min?: number; max?: number; integer?: boolean } = {},
): number {
  const trimmed = text.trim();
  const value = trimmed === "" ? NaN : Number(trimmed);
  if (!Number.isFinite(value) || (options.integer && !Number.isInteger(value))) {
    throw new CliError(`invalid argument for ${name}: '${text}'`);
  }
  if (options.min !== undefined && value < options.min) {
    throw new CliError(
      `invalid argument for ${name}: '${text}': out of range: ${options.min} <= value${
        options.max !== undefined ? ` <= ${options.max}` : ""
      }`,
    );
  }
  if (options.max !== undefined && value > options.max) {
    throw new CliError(
      `invalid argument for ${name}: '${text}': out of range: ${
        options.min !== undefined ? `${options.min} <= ` : ""
      }value <= ${options.max}`,
    );
  }
  return value;
}

/**
 * Parses a size option such as `512`, `64K`, `1M`, `1.5G` or `2GiB` (powers
 * of 1024, as nginx and Squid read them).
 *
 * @param name The option's name, for the message (e.g. `"--cache-size"`).
 * @param text The option's text.
 * @returns The size in bytes.
 * @throws {CliError} With exit code 2 when the text is not a size.
 *
 * @example
 * ```ts
 * import { parseSize } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(parseSize("--max-body-size", "1M"), 1048576);
 * assertEquals(parseSize("--cache-size", "1.5k"), 1536);
 * ```
 */
export function parseSize(name: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new CliError(`invalid size for ${name}: '${text}'`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return Math.floor(Number(m[1]) * mult);
}

/**
 * Runs a CLI's main function and exits with its code. A {@linkcode CliError}
 * prints `prog: message` (or the bare message) and exits with its code; any other error prints its
 * message (never a stack trace, unless `NETKIT_DEBUG` is set) and exits 2.
 *
 * @param prog The program name used as the message prefix.
 * @param main The program; resolves to the exit code.
 * @returns Never: the process exits.
 *
 * @example
 * ```ts ignore
 * import { runMain } from "./cli.ts";
 * await runMain("hello", async () => {
 *   console.log("hello");
 *   return 0;
 * });
 * ```
 */
export async function runMain(prog: string, main: () => Promise<number> | number): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    code = err instanceof CliError ? err.exitCode : EXIT_USAGE;
    const message = err instanceof Error ? err.message : String(err);
    console.error(err instanceof CliError && err.bare ? message : `${prog}: ${message}`);
    if (debugging() && err instanceof Error) console.error(err.stack);
  }
  Deno.exit(code);
}

/** Whether `NETKIT_DEBUG` asks for stack traces; a tool without `--allow-env` never does. */
function debugging(): boolean {
  try {
    return Boolean(Deno.env.get("NETKIT_DEBUG"));
  } catch {
    return false;
  }
}

/**
 * Parses a tool's arguments with {@linkcode parseArgs} and, when they ask
 * for `--help` (an option named `help` in the table), prints the help that
 * {@linkcode formatHelp} makes from the same table to stdout instead.
 *
 * @param args The arguments, usually `Deno.args`.
 * @param options The option table, with a `help` flag.
 * @param help The usage, summary and footer around the option list.
 * @returns The parsed values and positionals, or `undefined` when the help was printed (exit 0).
 * @throws {CliError} With exit code 2 on an unknown option or a missing value.
 *
 * @example
 * ```ts
 * import { parseOrHelp } from "./cli.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const table = { port: { type: "string", short: "p" }, help: { type: "boolean" } } as const;
 * const parsed = parseOrHelp(["-p", "80"], table, { usage: "Usage: demo [options]" });
 * assertEquals(parsed?.values.port, "80");
 * ```
 */
export function parseOrHelp<T extends Options>(
  args: readonly string[],
  options: T,
  help: HelpText,
): { values: ParsedValues<T>; positionals: string[] } | undefined {
  const parsed = parseArgs(args, options);
  if ((parsed.values as Record<string, unknown>).help !== true) return parsed;
  const text = new TextEncoder().encode(formatHelp(options, help));
  for (let done = 0; done < text.length;) done += Deno.stdout.writeSync(text.subarray(done));
  return undefined;
}
