/**
 * `deno task proxy [options]`: runs the caching proxy until SIGINT or SIGTERM.
 *
 * @module
 */
import {
  CliError,
  EXIT_CANNOT_START,
  type Options,
  parseNumber,
  parseOrHelp,
  parseSize,
  runMain,
  SERVER_EXIT_CODES,
} from "../lib/cli.ts";
import { boundHeap } from "../lib/heap.ts";
import { LogWriter } from "../lib/http/access_log.ts";
import { serverCliOptions, serverCliSettings, withUserFile } from "../lib/http/server_cli.ts";
import { startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";
import type { SharedCache } from "./shared_cache.ts";

/** The options `proxy` takes: the parser and `--help` both read this table. */
export const OPTIONS = {
  listen: {
    type: "string",
    short: "l",
    arg: "ADDR",
    default: "127.0.0.1",
    description: "address to listen on",
  },
  port: { type: "string", short: "p", arg: "N", default: "8888", description: "port to listen on" },
  upstream: {
    type: "string",
    short: "u",
    arg: "URL",
    default: "none: forward mode",
    description: "reverse mode: accelerate this origin (http:// or https://)",
  },
  "upstream-ca": {
    type: "string",
    multiple: true,
    arg: "FILE",
    default: "the system's CAs only",
    description: "also trust this PEM CA for an https:// upstream",
  },
  allow: {
    type: "string",
    short: "a",
    multiple: true,
    arg: "CIDR",
    default: "loopback only",
    description: "also allow clients from CIDR (loopback is always allowed)",
  },
  "purge-allow": {
    type: "string",
    multiple: true,
    arg: "CIDR",
    default: "loopback only",
    description: "also accept PURGE from CIDR (loopback always may)",
  },
  "connect-ports": {
    type: "string",
    arg: "LIST",
    default: "443",
    description: "ports CONNECT may reach, comma-separated",
  },
  "cache-dir": {
    type: "string",
    short: "d",
    arg: "DIR",
    default: "none: memory only",
    description: "disk tier directory",
  },
  "cache-size": {
    type: "string",
    arg: "SIZE",
    default: "1G",
    description: "disk tier size, e.g. 1G",
  },
  "memory-size": { type: "string", arg: "SIZE", default: "64M", description: "memory tier size" },
  "max-object-size": {
    type: "string",
    arg: "SIZE",
    default: "64M",
    description: "largest cacheable body",
  },
  timeout: {
    type: "string",
    arg: "SEC",
    default: "30",
    description: "upstream connect/response timeout, then 504",
  },
  "cache-control-target": {
    type: "string",
    multiple: true,
    arg: "NAME",
    default: "CDN-Cache-Control only",
    description: "also obey this targeted cache-control field (RFC 9213), before CDN-Cache-Control",
  },
  "max-stale": {
    type: "string",
    arg: "SEC",
    default: "604800",
    description: "serve a response this stale when the origin cannot be reached (0: never)",
  },
  "stale-if-error": {
    type: "string",
    arg: "SEC",
    default: "none: directives only",
    description:
      "serve a response this stale on a 5xx, refusal or timeout, unless it says otherwise",
  },
  "admin-port": {
    type: "string",
    arg: "N",
    default: "none",
    description: "serve /metrics (Prometheus) and /healthz on 127.0.0.1:N",
  },
  "drop-rate": {
    type: "string",
    arg: "P",
    default: "0",
    description: "drop this fraction (0..1) of client connections unanswered",
  },
  delay: { type: "string", arg: "MS", default: "0", description: "delay every response by MS" },
  seed: {
    type: "string",
    arg: "N",
    default: "random",
    description: "seed for --drop-rate (reproducible runs)",
  },
  "shared-cache": {
    type: "string",
    arg: "URL",
    default: "none: this node's cache only",
    description: "share the cache with other proxies: redis://[user:pass@]host:port[/db], " +
      "rediss://… (TLS), redis-cluster://host:port,host:port,…",
  },
  "shared-max-object-size": {
    type: "string",
    arg: "SIZE",
    default: "8M",
    description: "largest body written to the shared cache; larger ones stay local",
  },
  "shared-timeout": {
    type: "string",
    arg: "MS",
    default: "50",
    description: "deadline of each shared-cache operation; past it, go on without it",
  },
  workers: {
    type: "string",
    arg: "N",
    default: "1",
    description: "event loops: N-1 more answer fresh hits from copies and relay the rest",
  },
  "access-log": {
    type: "string",
    arg: "PATH",
    default: "-",
    description: 'Squid-format access log: a file, "-" for stdout, or "none"',
  },
  help: { type: "boolean", short: "h", description: "show this help" },
  ...serverCliOptions("1G"),
} as const satisfies Options;

const HELP = {
  usage: "Usage: deno task proxy [options]",
  summary: "A caching HTTP/1.1 proxy (RFC 9111). Forward mode by default: point a browser\n" +
    "or curl (-x) at http://127.0.0.1:8888. Reverse mode with --upstream. Relative paths\n" +
    "(--cache-dir, --access-log, --upstream-ca) are taken from the directory the command\n" +
    "runs in.",
  footer: SERVER_EXIT_CODES,
};

async function main(): Promise<number> {
  const parsed = parseOrHelp(Deno.args, OPTIONS, HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
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
  const sizes = {
    diskSize: parseSize("--cache-size", values["cache-size"] ?? "1G"),
    memorySize: parseSize("--memory-size", values["memory-size"] ?? "64M"),
    maxObjectSize: parseSize("--max-object-size", values["max-object-size"] ?? "64M"),
  };
  const cacheDir = values["cache-dir"];
  const store = cacheDir === undefined
    ? await CacheStore.open(sizes)
    : await withUserFile("--cache-dir", cacheDir, (dir) => CacheStore.open({ dir, ...sizes }));
  const logPath = values["access-log"] ?? "-";
  let logFile: Deno.FsFile | undefined;
  let log: LogWriter | undefined;
  if (logPath === "-") log = new LogWriter(Deno.stdout);
  else if (logPath !== "none") {
    logFile = await withUserFile(
      "--access-log",
      logPath,
      (path) => Deno.open(path, { append: true, create: true }),
    );
    log = new LogWriter(logFile);
  }
  const upstreamCaCerts: string[] = [];
  for (const file of values["upstream-ca"] ?? []) {
    upstreamCaCerts.push(await withUserFile("--upstream-ca", file, Deno.readTextFile));
  }
  const targets = values["cache-control-target"] ?? [];
  for (const name of targets) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      throw new CliError(`invalid --cache-control-target '${name}': not a field name`);
    }
  }
  const core = serverCliSettings(values, "1G");
  let sharedCache: SharedCache | undefined;
  if (values["shared-cache"] !== undefined) {
    const timeout = parseNumber("--shared-timeout", values["shared-timeout"] ?? "50", { min: 1 });
    const maxObjectSize = parseSize(
      "--shared-max-object-size",
      values["shared-max-object-size"] ?? "8M",
    );
    // Loaded only when asked for (by URL, so that a plain run does not even
    // read it): the tier and node:crypto cost about 5 MiB of resident memory.
    const { SharedCache }: typeof import("./shared_cache.ts") = await import(
      new URL("./shared_cache.ts", import.meta.url).href
    );
    try {
      sharedCache = SharedCache.connect(values["shared-cache"], {
        timeout,
        maxObjectSize,
        ...(Deno.env.get("REDIS_PASSWORD") ? { password: Deno.env.get("REDIS_PASSWORD")! } : {}),
        log: (line) => console.error(`proxy: ${line}`),
      });
    } catch (err) {
      throw new CliError(`invalid --shared-cache: ${(err as Error).message}`);
    }
  }
  let allow: string[] = values.allow ?? [];
  try {
    const proxy = await startProxy({
      hostname: values.listen ?? "127.0.0.1",
      port,
      ...(values.upstream !== undefined ? { upstream: values.upstream } : {}),
      allow,
      purgeAllow: values["purge-allow"] ?? [],
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
      cacheControlTargets: [...targets, "CDN-Cache-Control"],
      maxStale: values["max-stale"] === undefined
        ? 604800
        : parseNumber("--max-stale", values["max-stale"], { min: 0 }),
      ...(values["stale-if-error"] !== undefined
        ? {
          staleIfError: parseNumber("--stale-if-error", values["stale-if-error"], { min: 0 }),
        }
        : {}),
      ...(values["admin-port"] !== undefined
        ? {
          adminPort: parseNumber("--admin-port", values["admin-port"], {
            min: 0,
            max: 65535,
            integer: true,
          }),
        }
        : {}),
      ...core,
      workers: values.workers === undefined
        ? 1
        : parseNumber("--workers", values.workers, { min: 1, max: 64, integer: true }),
      ...(sharedCache !== undefined ? { sharedCache } : {}),
      ...(upstreamCaCerts.length > 0 ? { upstreamCaCerts } : {}),
      ...(log !== undefined ? { log: (line: string) => log.write(line) } : {}),
    });
    allow = [];
    // Filling the memory tier leaves garbage in the old generation (the objects of
    // misses in flight when a scavenge promotes them, evicted entries) that V8 would let
    // grow 8 MB and more before a full collection: while new entries arrive, collect
    // after each 512 KiB of growth instead. Hits store nothing, so they never pay for
    // it. Needs the task's --expose-gc (proxy_server/README.md "Memory").
    const stopHeapWatch = boundHeap({
      step: 512 << 10,
      minIntervalMs: 50,
      activity: () => store.memoryInserts,
    });
    // Listen for the signals before saying where it listens: whoever reads
    // that line may stop the proxy at once.
    const stopped = new Promise<void>((resolve) => {
      Deno.addSignalListener("SIGINT", resolve);
      Deno.addSignalListener("SIGTERM", resolve);
    });
    console.error(
      `proxy: listening on http://${proxy.hostname}:${proxy.port} (${
        values.upstream ? `reverse mode for ${values.upstream}` : "forward mode"
      }, cache ${values["cache-dir"] ?? "in memory"})`,
    );
    if (proxy.adminPort !== undefined) {
      console.error(`proxy: metrics on http://127.0.0.1:${proxy.adminPort}/metrics`);
    }
    await stopped;
    stopHeapWatch();
    await proxy.close();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new CliError(err.message);
    if (
      err instanceof Deno.errors.AddrInUse || err instanceof Deno.errors.AddrNotAvailable ||
      err instanceof Deno.errors.PermissionDenied
    ) {
      throw new CliError(`cannot start: ${err.message}`, EXIT_CANNOT_START);
    }
    throw err;
  } finally {
    await sharedCache?.close();
    await log?.close();
    logFile?.close();
  }
  return 0;
}

if (import.meta.main) await runMain("proxy", main);
