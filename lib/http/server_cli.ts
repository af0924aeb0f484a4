/**
 * The command-line options of the server core's deadlines and caps, shared
 * by every tool that runs an {@linkcode HttpServer} (the web server and the
 * proxy), so they are spelled, documented and checked the same way.
 *
 * @module
 */
import {
  CliError,
  describePath,
  EXIT_CANNOT_START,
  type OptionSpec,
  type ParsedValues,
  parseNumber,
  parseSize,
  userPath,
} from "../cli.ts";
import type { ServerOptions } from "./server.ts";

/** The long names of the server core's options. */
export type ServerCliOptionName =
  | "header-timeout"
  | "keepalive-timeout"
  | "body-timeout"
  | "send-timeout"
  | "max-body-size"
  | "max-conns"
  | "max-conns-per-ip"
  | "io-uring";

/** The server core's option table: every option takes a value. */
export type ServerCliOptions = {
  readonly [K in ServerCliOptionName]: OptionSpec & { readonly type: "string" };
};

/**
 * The option table, with `--max-body-size`'s default set per tool: the web
 * server takes small uploads, the proxy relays large ones.
 *
 * @param maxBodySize The default of `--max-body-size`, as written (`1M`).
 * @returns The table; spread it into the tool's own.
 *
 * @example
 * ```ts
 * import { serverCliOptions } from "./server_cli.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(serverCliOptions("1G")["max-body-size"].default, "1G");
 * ```
 */
export function serverCliOptions(maxBodySize: string): ServerCliOptions {
  const group = "Connections (nginx's directive in brackets)";
  return {
    "header-timeout": {
      type: "string",
      arg: "SEC",
      default: "10",
      group,
      description: "a request head must arrive within SEC [client_header_timeout]",
    },
    "keepalive-timeout": {
      type: "string",
      arg: "SEC",
      default: "30",
      description: "close idle keep-alive connections after SEC [keepalive_timeout]",
    },
    "body-timeout": {
      type: "string",
      arg: "SEC",
      default: "60",
      description: "a request-body read may wait SEC [client_body_timeout]",
    },
    "send-timeout": {
      type: "string",
      arg: "SEC",
      default: "60",
      description: "a response write may stall SEC [send_timeout]",
    },
    "max-body-size": {
      type: "string",
      arg: "SIZE",
      default: maxBodySize,
      description: "largest request body, e.g. 1M; larger gets 413 [client_max_body_size]",
    },
    "max-conns": {
      type: "string",
      arg: "N",
      default: "what the open-file limit allows",
      description: "connections open at once; 0 for no limit",
    },
    "max-conns-per-ip": {
      type: "string",
      arg: "N",
      default: "an eighth of --max-conns, 16 to 1024",
      description: "connections from one address; 0 for no limit [limit_conn]",
    },
    "io-uring": {
      type: "string",
      arg: "WHEN",
      default: "auto",
      description: "plain TCP on an io_uring ring: auto (with one loop), on, off",
    },
  };
}

/** The option table with the web server's body-size default; see {@linkcode serverCliOptions}. */
export const SERVER_CLI_OPTIONS: ServerCliOptions = serverCliOptions("1M");

/**
 * Runs a start-up step on a file the user named (a certificate, a log, a
 * cache directory) with the path resolved by {@linkcode userPath}; when it
 * fails, the server cannot start, and the message names the option and the
 * path as typed and as resolved.
 *
 * @param option The option, e.g. `"--cert"`.
 * @param typed The path as the user typed it.
 * @param step What to do with the absolute path.
 * @returns What the step returns.
 * @throws {CliError} With {@linkcode EXIT_CANNOT_START} when the step fails.
 *
 * @example
 * ```ts
 * import { withUserFile } from "./server_cli.ts";
 * import { assertRejects } from "../testing/assert.ts";
 * await assertRejects(() => withUserFile("--cert", "/nonexistent.pem", Deno.readTextFile));
 * ```
 */
export async function withUserFile<T>(
  option: string,
  typed: string,
  step: (path: string) => Promise<T>,
): Promise<T> {
  try {
    return await step(userPath(typed));
  } catch (err) {
    throw new CliError(
      `cannot use ${option} ${describePath(typed)}: ${err instanceof Error ? err.message : err}`,
      EXIT_CANNOT_START,
    );
  }
}

/** The deadlines and caps the options set. */
export type ServerCliSettings = Pick<
  ServerOptions,
  | "headerTimeout"
  | "keepAliveTimeout"
  | "bodyTimeout"
  | "sendTimeout"
  | "maxBodySize"
  | "maxConnections"
  | "maxConnectionsPerIp"
  | "ioUring"
>;

/**
 * Reads the options into server settings.
 *
 * @param values Parsed values of a table that includes {@linkcode SERVER_CLI_OPTIONS}.
 * @param defaultBodySize The default of `--max-body-size`, as written (`1M`).
 * @returns The settings; absent options are left to the core's defaults.
 * @throws {CliError} On a malformed value (exit code 2).
 *
 * @example
 * ```ts
 * import { serverCliSettings } from "./server_cli.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const s = serverCliSettings({ "header-timeout": "2.5", "max-conns-per-ip": "10" }, "1M");
 * assertEquals(s, { headerTimeout: 2500, maxBodySize: 1048576, maxConnectionsPerIp: 10 });
 * ```
 *
 * @example `--io-uring`: `auto` leaves the core's default, `on` and `off` force it
 * ```ts
 * import { serverCliSettings } from "./server_cli.ts";
 * import { assertEquals, assertThrows } from "../testing/assert.ts";
 * assertEquals(serverCliSettings({ "io-uring": "auto" }, "1M").ioUring, undefined);
 * assertEquals(serverCliSettings({ "io-uring": "on" }, "1M").ioUring, true);
 * assertEquals(serverCliSettings({ "io-uring": "off" }, "1M").ioUring, false);
 * assertThrows(() => serverCliSettings({ "io-uring": "yes" }, "1M"));
 * ```
 */
export function serverCliSettings(
  values: ParsedValues<typeof SERVER_CLI_OPTIONS>,
  defaultBodySize: string,
): ServerCliSettings {
  const out: ServerCliSettings = {};
  const seconds = (name: keyof typeof SERVER_CLI_OPTIONS) => {
    const text = values[name];
    return text === undefined ? undefined : parseNumber(`--${name}`, text, { min: 0.001 }) * 1000;
  };
  const count = (name: keyof typeof SERVER_CLI_OPTIONS) => {
    const text = values[name];
    return text === undefined
      ? undefined
      : parseNumber(`--${name}`, text, { min: 0, max: 1 << 24, integer: true });
  };
  const headerTimeout = seconds("header-timeout");
  const keepAliveTimeout = seconds("keepalive-timeout");
  const bodyTimeout = seconds("body-timeout");
  const sendTimeout = seconds("send-timeout");
  const maxConnections = count("max-conns");
  const maxConnectionsPerIp = count("max-conns-per-ip");
  if (headerTimeout !== undefined) out.headerTimeout = headerTimeout;
  if (keepAliveTimeout !== undefined) out.keepAliveTimeout = keepAliveTimeout;
  if (bodyTimeout !== undefined) out.bodyTimeout = bodyTimeout;
  if (sendTimeout !== undefined) out.sendTimeout = sendTimeout;
  out.maxBodySize = parseSize("--max-body-size", values["max-body-size"] ?? defaultBodySize);
  if (maxConnections !== undefined) out.maxConnections = maxConnections;
  if (maxConnectionsPerIp !== undefined) out.maxConnectionsPerIp = maxConnectionsPerIp;
  const ring = values["io-uring"];
  if (ring === "on") out.ioUring = true;
  else if (ring === "off") out.ioUring = false;
  else if (ring !== undefined && ring !== "auto") {
    throw new CliError(`invalid --io-uring '${ring}': expected auto, on or off`);
  }
  return out;
}
