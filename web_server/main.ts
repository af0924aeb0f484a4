/**
 * `deno task webserver [options] [ROOT]`: serves ROOT (default
 * `web_server/public/`) over HTTP/1.1 or HTTPS. See web_server/SERVER.md.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { CliError, parseArgs, parseNumber, runMain } from "../lib/cli.ts";
import { SERVER_CLI_OPTIONS, serverCliSettings, serverCliUsage } from "../lib/http/server_cli.ts";
import { startCluster } from "./cluster.ts";
import type { ServeDirOptions } from "./serve.ts";

const USAGE = `Usage: deno task webserver [options] [ROOT]

Serves the files under ROOT (default: web_server/public/).

Options:
  -p, --port PORT          port to listen on (default 8000; 0 picks a free one)
      --host HOST          address to listen on (default localhost; 0.0.0.0 to expose)
      --cors               send Access-Control-Allow-Origin: * and answer preflights
  -H, --header 'N: v'      add a header to every response (repeatable)
      --cache-control VAL  Cache-Control for files and listings (e.g. 'max-age=3600')
      --spa                serve index.html for unknown extension-less paths
      --dotfiles           serve and list names that start with a dot
      --no-listing         403 instead of a listing for directories without index.html
      --no-compression     never compress on the fly (precompressed .br/.gz still served)
      --cert FILE          PEM certificate chain: serve HTTPS (with --key)
      --key FILE           PEM private key for --cert
      --log FILE           access log in Combined Log Format (default: stdout)
      --no-log             no access log
      --no-cache           do not keep small responses in memory
  -w, --workers N          event loops sharing the port (default: one per core)
  -h, --help               show this help

${serverCliUsage("1M")}

Exit codes: 0 after SIGINT/SIGTERM, 1 when the server cannot start, 2 on bad usage.`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs(Deno.args, {
    port: { type: "string", short: "p" },
    host: { type: "string" },
    cors: { type: "boolean" },
    header: { type: "string", short: "H", multiple: true },
    "cache-control": { type: "string" },
    spa: { type: "boolean" },
    dotfiles: { type: "boolean" },
    "no-listing": { type: "boolean" },
    "no-compression": { type: "boolean" },
    cert: { type: "string" },
    key: { type: "string" },
    log: { type: "string" },
    "no-log": { type: "boolean" },
    "no-cache": { type: "boolean" },
    workers: { type: "string", short: "w" },
    help: { type: "boolean", short: "h" },
    ...SERVER_CLI_OPTIONS,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new CliError("too many arguments: one ROOT at most");
  const root = positionals[0] ?? fileURLToPath(new URL("./public/", import.meta.url));
  try {
    if (!(await Deno.stat(root)).isDirectory) throw new Error("not a directory");
  } catch (err) {
    throw new CliError(`cannot serve "${root}": ${err instanceof Error ? err.message : err}`, 1);
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
  let cluster;
  try {
    cluster = await startCluster({
      serve: options,
      hostname: values.host ?? "localhost",
      port,
      ...(values.cert !== undefined
        ? { cert: await Deno.readTextFile(values.cert), key: await Deno.readTextFile(values.key!) }
        : {}),
      cache: !values["no-cache"],
      log: values["no-log"] ? null : values.log ?? "-",
      core,
    }, workers);
  } catch (err) {
    throw new CliError(`cannot start: ${err instanceof Error ? err.message : err}`, 1);
  }
  const { hostname } = cluster.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  const scheme = values.cert !== undefined ? "https" : "http";
  const name = values.host === undefined ? "localhost" : shown;
  console.log(`Listening on ${scheme}://${name}:${cluster.addr.port}/ (serving ${root})`);
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", resolve);
  Deno.addSignalListener("SIGTERM", resolve);
  await stopped;
  Deno.removeSignalListener("SIGINT", resolve);
  Deno.removeSignalListener("SIGTERM", resolve);
  await cluster.stop();
  return 0;
}

if (import.meta.main) await runMain("webserver", main);
