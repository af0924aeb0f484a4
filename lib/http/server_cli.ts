/**
 * The command-line options of the server core's deadlines and caps, shared
 * by every tool that runs an {@linkcode HttpServer} (the web server and the
 * proxy), so they are spelled, documented and checked the same way.
 *
 * @module
 */
import { type ParsedValues, parseNumber, parseSize } from "../cli.ts";
import type { ServerOptions } from "./server.ts";

/** The option table; spread it into a tool's own. */
export const SERVER_CLI_OPTIONS = {
  "header-timeout": { type: "string" },
  "keepalive-timeout": { type: "string" },
  "body-timeout": { type: "string" },
  "send-timeout": { type: "string" },
  "max-body-size": { type: "string" },
  "max-conns": { type: "string" },
  "max-conns-per-ip": { type: "string" },
} as const;

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
>;

/**
 * The help text of the options, with the tool's own default body size.
 *
 * @param maxBodySize The default of `--max-body-size`, as written (`1M`).
 * @returns The lines, ready to append to a usage text.
 *
 * @example
 * ```ts
 * import { serverCliUsage } from "./server_cli.ts";
 * import { assertMatch } from "../testing/assert.ts";
 * assertMatch(serverCliUsage("1M"), /--max-body-size SIZE .*default 1M/);
 * ```
 */
export function serverCliUsage(maxBodySize: string): string {
  return `Connections (nginx's directive in brackets):
      --header-timeout SEC     a request head must arrive within (default 10) [client_header_timeout]
      --keepalive-timeout SEC  close idle keep-alive connections after (default 30) [keepalive_timeout]
      --body-timeout SEC       a request-body read may wait (default 60) [client_body_timeout]
      --send-timeout SEC       a response write may stall (default 60) [send_timeout]
      --max-body-size SIZE     largest request body, e.g. 1M; larger gets 413 (default ${maxBodySize})
                               [client_max_body_size]
      --max-conns N            connections open at once; 0 for no limit (default: what the
                               open-file limit allows)
      --max-conns-per-ip N     connections from one address; 0 for no limit (default: an eighth
                               of --max-conns, 16 to 1024) [limit_conn]`;
}

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
  return out;
}
