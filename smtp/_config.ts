/**
 * The `smtp` configuration file, in msmtp's spirit: named accounts with a
 * default, written in a documented subset of TOML (smtp/README.md,
 * "Configuration file"). Each account key is the long name of a command-line
 * option; an option given on the command line overrides it.
 *
 * @module
 */
import { dirname, isAbsolute, join } from "node:path";

/** A value of the subset: a string, a number, a boolean, or an array of strings. */
export type ConfigValue = string | number | boolean | string[];

/** A parse or validation failure, with the file and line. */
export class ConfigError extends Error {
  /**
   * Creates an error naming the place in the file.
   *
   * @param message What is wrong, with the file and line.
   */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The parsed file: top-level keys and tables (`[account.NAME]` → `"account.NAME"`). */
export interface ParsedToml {
  /** Keys before the first table header. */
  top: Map<string, ConfigValue>;
  /** Each table's keys, by its dotted name. */
  tables: Map<string, Map<string, ConfigValue>>;
}

const KEY = /^[A-Za-z0-9_-]+$/;

/**
 * Parses the TOML subset: `# comments`, `[table.name]` headers, and
 * `key = value` lines where the value is a basic string ("…" with \" \\ \n
 * \t escapes), a literal string ('…'), an integer, `true`/`false`, or a
 * one-line array of strings.
 */
export function parseToml(text: string, file: string): ParsedToml {
  const top = new Map<string, ConfigValue>();
  const tables = new Map<string, Map<string, ConfigValue>>();
  let current = top;
  text.split(/\r?\n/).forEach((raw, index) => {
    const where = `${file}:${index + 1}`;
    const line = stripComment(raw, where).trim();
    if (line === "") return;
    const header = /^\[\s*([A-Za-z0-9_.-]+)\s*\]$/.exec(line);
    if (header) {
      const name = header[1]!;
      if (tables.has(name)) throw new ConfigError(`${where}: table [${name}] defined twice`);
      current = new Map();
      tables.set(name, current);
      return;
    }
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!KEY.test(key)) throw new ConfigError(`${where}: expected key = value or [table]`);
    if (current.has(key)) throw new ConfigError(`${where}: key "${key}" given twice`);
    current.set(key, parseValue(line.slice(eq + 1).trim(), where));
  });
  return { top, tables };
}

/** Removes a `#` comment that is not inside a string. */
function stripComment(line: string, where: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === '"' && c === "\\") i++;
    else if (quote !== "" && c === quote) quote = "";
    else if (quote === "" && (c === '"' || c === "'")) quote = c;
    else if (quote === "" && c === "#") return line.slice(0, i);
  }
  if (quote !== "") throw new ConfigError(`${where}: unterminated string`);
  return line;
}

function parseValue(text: string, where: string): ConfigValue {
  if (text === "true") return true;
  if (text === "false") return false;
  if (/^[+-]?\d+$/.test(text)) return Number(text);
  if (text.startsWith("[") && text.endsWith("]")) {
    const inner = text.slice(1, -1).trim();
    if (inner === "") return [];
    const items: string[] = [];
    const item = /\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*(,|$)/y;
    while (item.lastIndex < inner.length) {
      const match = item.exec(inner);
      if (!match) throw new ConfigError(`${where}: an array holds only strings`);
      items.push(parseString(match[1]!, where));
    }
    return items;
  }
  return parseString(text, where);
}

function parseString(text: string, where: string): string {
  if (text.length >= 2 && text.startsWith("'") && text.endsWith("'")) return text.slice(1, -1);
  if (!(text.length >= 2 && text.startsWith('"') && text.endsWith('"'))) {
    throw new ConfigError(
      `${where}: cannot read value ${text}: expected "string", 'string', a number, true, false or [strings]`,
    );
  }
  const escapes: Record<string, string> = { '"': '"', "\\": "\\", n: "\n", t: "\t" };
  return text.slice(1, -1).replace(/\\(.)/g, (_, c: string) => {
    const out = escapes[c];
    if (out === undefined) throw new ConfigError(`${where}: unknown escape \\${c}`);
    return out;
  });
}

/** An account: option name → value, file paths made absolute. */
export type Account = Map<string, ConfigValue>;

/** What an account may set, and the type of each: the long option names of `smtp`. */
export const ACCOUNT_KEYS: Record<string, "string" | "boolean" | "strings"> = {
  server: "string",
  port: "string",
  from: "string",
  tls: "boolean",
  "tls-optional": "boolean",
  "tls-on-connect": "boolean",
  "tls-ca": "string",
  "tls-fingerprint": "strings",
  insecure: "boolean",
  auth: "string",
  "auth-user": "string",
  "auth-password": "string",
  "password-eval": "string",
  "allow-plaintext-auth": "boolean",
  ehlo: "string",
  timeout: "string",
  pipeline: "boolean",
  "dkim-key": "string",
  "dkim-selector": "string",
  "dkim-domain": "string",
  "dkim-headers": "string",
  "dkim-canonicalization": "string",
  queue: "string",
};

/** Keys that name files: relative to the configuration file's folder, `~/` the home folder. */
const PATH_KEYS = new Set(["tls-ca", "dkim-key", "queue"]);

/** The default file: `$XDG_CONFIG_HOME/netkit/smtp.toml`, else `~/.config/netkit/smtp.toml`. */
export function defaultConfigPath(): string | undefined {
  const xdg = Deno.env.get("XDG_CONFIG_HOME");
  const home = Deno.env.get("HOME");
  if (xdg) return join(xdg, "netkit", "smtp.toml");
  return home ? join(home, ".config", "netkit", "smtp.toml") : undefined;
}

/**
 * Reads the account to use from a configuration file: `name`, else the file's
 * `default`, else the only account. `undefined` when the file does not exist
 * and was not asked for.
 */
export async function loadAccount(
  path: string,
  options: { name?: string; required: boolean },
): Promise<Account | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && !options.required) return undefined;
    throw new ConfigError(
      `Cannot read the configuration file "${path}": ${err instanceof Error ? err.message : err}`,
    );
  }
  const { top, tables } = parseToml(text, path);
  for (const key of top.keys()) {
    if (key !== "default") throw new ConfigError(`${path}: unknown top-level key "${key}"`);
  }
  const accounts = new Map<string, Map<string, ConfigValue>>();
  for (const [table, keys] of tables) {
    const match = /^account\.([A-Za-z0-9_-]+)$/.exec(table);
    if (!match) throw new ConfigError(`${path}: unknown table [${table}]; expected [account.NAME]`);
    accounts.set(match[1]!, keys);
  }
  const fallback = top.get("default");
  if (fallback !== undefined && typeof fallback !== "string") {
    throw new ConfigError(`${path}: default must be an account name in quotes`);
  }
  const name = options.name ?? fallback ?? (accounts.size === 1 ? [...accounts.keys()][0] : "");
  if (name === undefined || name === "") {
    if (accounts.size === 0) return new Map();
    throw new ConfigError(
      `${path}: no default account: set default = "NAME" or choose one with --account`,
    );
  }
  const keys = accounts.get(name);
  if (!keys) {
    throw new ConfigError(
      `${path}: no account "${name}" (it has: ${[...accounts.keys()].join(", ") || "none"})`,
    );
  }
  const account: Account = new Map();
  for (const [key, value] of keys) {
    const type = ACCOUNT_KEYS[key];
    if (!type) throw new ConfigError(`${path}: account "${name}": unknown key "${key}"`);
    let checked: ConfigValue = value;
    if (type === "boolean" && typeof value !== "boolean") {
      throw new ConfigError(`${path}: account "${name}": ${key} must be true or false`);
    }
    if (type === "string" && typeof value === "number") checked = String(value);
    else if (type === "string" && typeof value !== "string") {
      throw new ConfigError(`${path}: account "${name}": ${key} must be a string`);
    }
    if (type === "strings") checked = typeof value === "string" ? [value] : value;
    if (type === "strings" && !Array.isArray(checked)) {
      throw new ConfigError(`${path}: account "${name}": ${key} must be a string or [strings]`);
    }
    if (PATH_KEYS.has(key) && typeof checked === "string") checked = resolvePath(checked, path);
    account.set(key, checked);
  }
  return account;
}

function resolvePath(value: string, configPath: string): string {
  const home = Deno.env.get("HOME");
  if (value.startsWith("~/") && home) return join(home, value.slice(2));
  return isAbsolute(value) ? value : join(dirname(configPath), value);
}

/** Runs a `password-eval` command with `sh -c` and returns the first line it prints. */
export async function evalPassword(command: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("sh", {
      args: ["-c", command],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new ConfigError(
      `Cannot run password-eval: ${err instanceof Error ? err.message : err}`,
    );
  }
  if (!out.success) {
    throw new ConfigError(
      `password-eval "${command}" failed with exit code ${out.code}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout).split(/\r?\n/)[0] ?? "";
}
