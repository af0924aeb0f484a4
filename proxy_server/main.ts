/**
 * `deno task proxy [options]`: runs the caching proxy until SIGINT or SIGTERM.
 *
 * @module
 */
import { CliError, parseArgs, parseNumber, parseSize, runMain } from "../lib/cli.ts";
import { LogWriter } from "../lib/http/access_log.ts";
import { SERVER_CLI_OPTIONS, serverCliSettings, serverCliUsage } from "../lib/http/server_cli.ts";
import { startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";

const USAGE = `Usage: deno task proxy [options]

A caching HTTP/1.1 proxy (RFC 9111). Forward mode by default: point a browser
or curl (-x) at http://127.0.0.1:8888. Reverse mode with --upstream.

Options:
  -l, --listen ADDR         address to listen on (default 127.0.0.1)
  -p, --port N              port (default 8888)
  -u, --upstream URL        reverse mode: accelerate this origin (http:// or https://)
      --upstream-ca FILE    also trust this PEM CA for an https:// upstream (repeatable)
  -a, --allow CIDR          also allow clients from CIDR (repeatable; loopback is always allowed)
      --connect-ports LIST  ports CONNECT may reach, comma-separated (default 443)
  -d, --cache-dir DIR       disk tier directory (default: memory only)
      --cache-size SIZE     disk tier size, e.g. 1G (default 1G)
      --memory-size SIZE    memory tier size (default 64M)
      --max-object-size S   largest cacheable body (default 64M)
      --timeout SEC         upstream connect/response timeout (default 30) → 504
      --drop-rate P         drop this fraction (0..1) of client connections unanswered
      --delay MS            delay every response by MS milliseconds
      --seed N              seed for --drop-rate (reproducible runs)
      --access-log PATH     Squid-format access log: a file, "-" for stdout (default), or "none"
  -h, --help                show this help

${serverCliUsage("1G")}

Exit codes: 0 after SIGINT/SIGTERM, 1 when the proxy cannot start, 2 on bad usage.
`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs(Deno.args, {
    listen: { type: "string", short: "l" },
    port: { type: "string", short: "p" },
    upstream: { type: "string", short: "u" },
    "upstream-ca": { type: "string", multiple: true },
    allow: { type: "string", short: "a", multiple: true },
    "connect-ports": { type: "string" },
    "cache-dir": { type: "string", short: "d" },
    "cache-size": { type: "string" },
    "memory-size": { type: "string" },
    "max-object-size": { type: "string" },
    timeout: { type: "string" },
    "drop-rate": { type: "string" },
    delay: { type: "string" },
    seed: { type: "string" },
    "access-log": { type: "string" },
    help: { type: "boolean", short: "h" },
    ...SERVER_CLI_OPTIONS,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new CliError(`unexpected argument '${positionals[0]}'`);
  const port = values.port === undefined
    ? 8888
    : parseNumber("--port", values.port, { min: 0, max: 65535, integer: true });
  if (values.upstream !== undefined) {
    let u: URL;
    try {
      u = new URL(values.upstream);
    } catch {
      throw new CliError(`invalid --upstream '${values.upstream}': not a URL`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new CliError(
        `invalid --upstream '${values.upstream}': only http:// and https:// are supported`,
      );
    }
  }
  const connectPorts = (values["connect-ports"] ?? "443").split(",").map((p) =>
    parseNumber("--connect-ports", p, { min: 1, max: 65535, integer: true })
  );
  const store = await CacheStore.open({
    ...(values["cache-dir"] !== undefined ? { dir: values["cache-dir"] } : {}),
    diskSize: parseSize("--cache-size", values["cache-size"] ?? "1G"),
    memorySize: parseSize("--memory-size", values["memory-size"] ?? "64M"),
    maxObjectSize: parseSize("--max-object-size", values["max-object-size"] ?? "64M"),
  });
  const logPath = values["access-log"] ?? "-";
  let logFile: Deno.FsFile | undefined;
  let log: LogWriter | undefined;
  if (logPath === "-") log = new LogWriter(Deno.stdout);
  else if (logPath !== "none") {
    logFile = await Deno.open(logPath, { append: true, create: true });
    log = new LogWriter(logFile);
  }
  const upstreamCaCerts: string[] = [];
  for (const file of values["upstream-ca"] ?? []) {
    try {
      upstreamCaCerts.push(await Deno.readTextFile(file));
    } catch (err) {
      throw new CliError(`cannot read --upstream-ca '${file}': ${(err as Error).message}`);
    }
  }
  const core = serverCliSettings(values, "1G");
  let allow: string[] = values.allow ?? [];
  try {
    const proxy = await startProxy({
      hostname: values.listen ?? "127.0.0.1",
      port,
      ...(values.upstream !== undefined ? { upstream: values.upstream } : {}),
      allow,
      connectPorts,
      store,
      dropRate: values["drop-rate"] === undefined
        ? 0
        : parseNumber("--drop-rate", values["drop-rate"], { min: 0, max: 1 }),
      delay: values.delay === undefined ? 0 : parseNumber("--delay", values.delay, { min: 0 }),
      ...(values.seed !== undefined
        ? { seed: parseNumber("--seed", values.seed, { integer: true }) }
        : {}),
      timeout: values.timeout === undefined
        ? 30000
        : parseNumber("--timeout", values.timeout, { min: 0.001 }) * 1000,
      ...core,
      ...(upstreamCaCerts.length > 0 ? { upstreamCaCerts } : {}),
      ...(log !== undefined ? { log: (line: string) => log.write(line) } : {}),
    });
    allow = [];
    console.error(
      `proxy: listening on http://${proxy.hostname}:${proxy.port} (${
        values.upstream ? `reverse mode for ${values.upstream}` : "forward mode"
      }, cache ${values["cache-dir"] ?? "in memory"})`,
    );
    await new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGINT", resolve);
      Deno.addSignalListener("SIGTERM", resolve);
    });
    await proxy.close();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new CliError(err.message);
    if (err instanceof Deno.errors.AddrInUse || err instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`cannot start: ${err.message}`, 1);
    }
    throw err;
  } finally {
    await log?.close();
    logFile?.close();
  }
  return 0;
}

if (import.meta.main) await runMain("proxy", main);
