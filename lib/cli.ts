/**
 * Shared command-line plumbing: argument parsing on `node:util` `parseArgs`,
 * usage errors with exit codes, and colour only where it belongs.
 *
 * Only `main.ts` files call {@linkcode runMain}; libraries throw errors and
 * let the CLI turn them into messages and exit codes.
 *
 * @module
 */
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from "node:util";

/** Exit code for bad input (a bad option, an unknown host): as iputils and most tools. */
export const EXIT_USAGE = 2;

/**
 * An error whose message is meant for the user of a CLI, with the exit code
 * the CLI must end with. {@linkcode runMain} prints only the message.
 *
 * @example Throwing a usage error
 * ```ts
 * import { CliError } from "./cli.ts";
 * const err = new CliError("invalid count: -1", 2);
 * console.assert(err.exitCode === 2);
 * ```
 */
export class CliError extends Error {
  /** The process exit code to end with. */
  readonly exitCode: number;

  /**
   * Creates an error that a CLI reports as one line.
   *
   * @param message What failed, then why.
   * @param exitCode The exit code to end with.
   */
  constructor(message: string, exitCode: number = EXIT_USAGE) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** The option table accepted by {@linkcode parseArgs}. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses command-line arguments strictly, turning parse failures into a
 * {@linkcode CliError} (exit code 2) with a one-line message.
 *
 * @param args The arguments, usually `Deno.args`.
 * @param options The option table, as `node:util` `parseArgs` takes it.
 * @returns The parsed values and positionals.
 *
 * @example Parsing a count and a host
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * const { values, positionals } = parseArgs(["-c", "3", "localhost"], {
 *   count: { type: "string", short: "c" },
 * });
 * console.assert(values.count === "3" && positionals[0] === "localhost");
 * ```
 */
export function parseArgs<T extends Options>(
  args: string[],
  options: T,
): {
  values: ReturnType<typeof nodeParseArgs<{ options: T; allowPositionals: true }>>["values"];
  positionals: string[];
} {
  try {
    const parsed = nodeParseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] ?? err.message : String(err);
    throw new CliError(message.replace(/\. To specify a positional.*$/, ""), EXIT_USAGE);
  }
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
 * console.assert(parseNumber("-c", "5", { min: 1, max: 100, integer: true }) === 5);
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
 * Tells whether colour may be used on a stream: only on a TTY, and never when
 * `NO_COLOR` is set (https://no-color.org).
 *
 * @param stream The stream that will be written.
 * @returns `true` when colour escapes may be written.
 *
 * @example
 * ```ts
 * import { colorEnabled } from "./cli.ts";
 * const useColor: boolean = colorEnabled(Deno.stdout);
 * ```
 */
export function colorEnabled(stream: { isTerminal(): boolean } = Deno.stdout): boolean {
  let noColor: string | undefined;
  try {
    noColor = Deno.env.get("NO_COLOR");
  } catch {
    noColor = undefined;
  }
  return (noColor === undefined || noColor === "") && stream.isTerminal();
}

/**
 * Runs a CLI's main function and exits with its code. A {@linkcode CliError}
 * prints `prog: message` and exits with its code; any other error prints its
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
    console.error(`${prog}: ${message}`);
    if (Deno.env.get("NETKIT_DEBUG") && err instanceof Error) console.error(err.stack);
  }
  Deno.exit(code);
}
