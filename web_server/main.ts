/**
 * `deno task webserver [options] [ROOT]`: serves ROOT (default
 * `web_server/public/`) over HTTP/1.1 or HTTPS. See web_server/SERVER.md.
 *
 * @module
 */
import {
  CliError,
  describePath,
  EXIT_CANNOT_START,
  type Options,
  parseNumber,
  parseOrHelp,
  parseSize,
  runMain,
  SERVER_EXIT_CODES,
  userPath,
} from "../lib/cli.ts";
import { SERVER_CLI_OPTIONS, serverCliSettings, withUserFile } from "../lib/http/server_cli.ts";
import { startCluster } from "./cluster.ts";
import type { ServeDirOptions } from "./serve.ts";

/** The options `webserver` takes: the parser and `--help` both read this table. */
export const OPTIONS = {
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    default: "8000",
    description: "port to listen on; 0 picks a free one",
  },
  host: {
    type: "string",
    arg: "HOST",
    default: "localhost",
    description: "address to listen on; 0.0.0.0 to expose",
  },
  cors: {
    type: "boolean",
    description: "send Access-Control-Allow-Origin: * and answer preflights",
  },
  header: {
    type: "string",
    short: "H",
    multiple: true,
    arg: "'N: v'",
    description: "add a header to every response",
  },
  "cache-control": {
    type: "string",
    arg: "VALUE",
    default: "none",
    description: "Cache-Control for files and listings (e.g. 'max-age=3600')",
  },
  spa: { type: "boolean", description: "serve index.html for unknown extension-less paths" },
  dotfiles: { type: "boolean", description: "serve and list names that start with a dot" },
  "no-listing": {
    type: "boolean",
    description: "403 instead of a listing for directories without index.html",
  },
  "no-compression": {
    type: "boolean",
    description: "never compress on the fly (precompressed .br/.gz still served)",
  },
  cert: {
    type: "string",
    arg: "FILE",
    default: "none: plain HTTP",
    description: "PEM certificate chain: serve HTTPS (with --key)",
  },
  key: { type: "string", arg: "FILE", default: "none", description: "PEM private key for --cert" },
  log: {
    type: "string",
    arg: "FILE",
    default: "stdout",
    description: "access log in Combined Log Format; - for stdout",
  },
  "no-log": { type: "boolean", description: "no access log" },
  "no-cache": { type: "boolean", description: "do not keep small responses in memory" },
  "cache-size": {
    type: "string",
    arg: "SIZE",
    default: "64M",
    description: "memory for kept responses, shared among the loops",
  },
  h2c: {
    type: "boolean",
    description: "accept HTTP/2 with prior knowledge on a plain port (HTTPS offers h2 by ALPN)",
  },
  workers: {
    type: "string",
    short: "w",
    arg: "N",
    default: "one per core",
    description: "event loops sharing the port",
  },
  help: { type: "boolean", short: "h", description: "show this help" },
  ...SERVER_CLI_OPTIONS,
} as const satisfies Options;

const HELP = {
  usage: "Usage: deno task webserver [options] [ROOT]",
  summary: "Serves the files under ROOT (default: web_server/public/). Relative paths\n" +
    "(ROOT, --cert, --key, --log) are taken from the directory the command runs in.",
  footer: SERVER_EXIT_CODES,
};

async function main(): Promise<number> {
  const parsed = parseOrHelp(Deno.args, OPTIONS, HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new CliError("too many arguments: one ROOT at most");
  const typedRoot = positionals[0];
  const root = typedRoot === undefined
    // node:url on demand: loaded, it takes about 1 MB of the main loop's heap.
    ? (await import("node:url")).fileURLToPath(new URL("./public/", import.meta.url))
    : userPath(typedRoot);
  try {
    if (!(await Deno.stat(root)).isDirectory) throw new Error("not a directory");
  } catch (err) {
    throw new CliError(
      `cannot serve ${typedRoot === undefined ? `"${root}"` : describePath(typedRoot)}: ${
        err instanceof Error ? err.message : err
      }`,
      EXIT_CANNOT_START,
    );
  }
  const headers: [string, string][] = [];
  for (const h of values.header ?? []) {
    const colon = h.indexOf(":");
    if (colon <= 0) throw new CliError(`invalid header '${h}': expected 'Name: value'`);
    headers.push([h.slice(0, colon).trim(), h.slice(colon + 1).trim()]);
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new CliError("--cert and --key go together");
  }
  const port = parseNumber("--port", values.port ?? "8000", { min: 0, max: 65535, integer: true });
  const core = serverCliSettings(values, "1M");
  const cacheBytes = parseSize("--cache-size", values["cache-size"] ?? "64M");
  const options: ServeDirOptions & { fsRoot: string } = {
    fsRoot: root,
    cors: values.cors ?? false,
    headers,
    spa: values.spa ?? false,
    showDotfiles: values.dotfiles ?? false,
    showDirListing: !values["no-listing"],
    compression: !values["no-compression"],
  };
  if (values["cache-control"] !== undefined) options.cacheControl = values["cache-control"];

  const workers = values.workers === undefined
    ? navigator.hardwareConcurrency
    : parseNumber("--workers", values.workers, { min: 1, max: 256, integer: true });
  // Read at start and again on SIGHUP.
  const readTls = async () => ({
    cert: await withUserFile("--cert", values.cert!, Deno.readTextFile),
    key: await withUserFile("--key", values.key!, Deno.readTextFile),
  });
  const tls = values.cert !== undefined ? await readTls() : {};
  const log = values["no-log"] ? null : values.log ?? "-";
  // Opened here too, so a log that cannot be written is named as the user typed it.
  if (log !== null && log !== "-") {
    await withUserFile("--log", log, async (path) => {
      (await Deno.open(path, { append: true, create: true })).close();
    });
  }
  let cluster;
  try {
    cluster = await startCluster({
      serve: options,
      hostname: values.host ?? "localhost",
      port,
      ...tls,
      cache: !values["no-cache"],
      cacheBytes,
      h2c: values.h2c ?? false,
      log: log === null || log === "-" ? log : userPath(log),
      core,
    }, workers);
  } catch (err) {
    throw new CliError(
      `cannot start: ${err instanceof Error ? err.message : err}`,
      EXIT_CANNOT_START,
    );
  }
  const { hostname } = cluster.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  const scheme = values.cert !== undefined ? "https" : "http";
  const name = values.host === undefined ? "localhost" : shown;
  // Listen for the signals before saying where it listens: whoever reads
  // that line may stop the server at once.
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", resolve);
  Deno.addSignalListener("SIGTERM", resolve);
  // SIGHUP: read --cert and --key again; new connections get them, open ones keep theirs.
  const reload = values.cert === undefined ? undefined : async () => {
    try {
      const { cert, key } = await readTls();
      await cluster.reloadTls(cert, key);
      console.error("webserver: reloaded --cert and --key");
    } catch (err) {
      console.error(
        `webserver: kept the old certificate: ${err instanceof Error ? err.message : err}`,
      );
    }
  };
  const onHangup = () => void reload?.();
  if (reload !== undefined) Deno.addSignalListener("SIGHUP", onHangup);
  console.log(`Listening on ${scheme}://${name}:${cluster.addr.port}/ (serving ${root})`);
  await stopped;
  Deno.removeSignalListener("SIGINT", resolve);
  Deno.removeSignalListener("SIGTERM", resolve);
  if (reload !== undefined) Deno.removeSignalListener("SIGHUP", onHangup);
  await cluster.stop();
  return 0;
}

if (import.meta.main) await runMain("webserver", main);
