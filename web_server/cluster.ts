/**
 * Runs the static web server on one or more event loops: the main thread
 * plus `workers - 1` Web Workers, all listening on the same port with
 * `SO_REUSEPORT`, the way nginx runs one worker process per core. A Deno
 * event loop is single-threaded, so on a 2-core machine one loop leaves a
 * core to the client and the kernel; see web_server/SERVER.md for figures.
 *
 * @module
 */
import { boundHeap } from "../lib/heap.ts";
import { formatCombinedLog, LogWriter } from "../lib/http/access_log.ts";
import { ConnectionLimits } from "../lib/http/limits.ts";
import type { AccessLogEntry, HttpServer } from "../lib/http/server.ts";
import type { ServerCliSettings } from "../lib/http/server_cli.ts";
import { DEFAULT_CACHE_BYTES, serveHttp } from "./engine.ts";
import { serveDir, type ServeDirOptions } from "./serve.ts";

/** Everything needed to start one server loop; plain data, so it can be posted to a worker. */
export interface ServerConfig {
  /** What to serve and how. */
  serve: ServeDirOptions & { fsRoot: string };
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on; 0 picks one (the workers then reuse the chosen one). */
  port: number;
  /** PEM certificate chain for HTTPS. */
  cert?: string;
  /** PEM key for `cert`. */
  key?: string;
  /** Keep small responses in memory, invalidated by file-system events. */
  cache: boolean;
  /** Bytes those responses may take, all loops together (64 MiB when unset). */
  cacheBytes?: number;
  /** The access log: a file path, `"-"` for stdout, or `null` for none. */
  log: string | null;
  /** Accept HTTP/2 with prior knowledge on a plain port (h2c). */
  h2c?: boolean;
  /** Set `SO_REUSEPORT` (needed when several loops share the port). */
  reusePort?: boolean;
  /** Deadlines and caps of the server core (plain numbers, so they can be posted). */
  core?: ServerCliSettings;
  /** The connection counters every loop shares (made by {@linkcode startCluster}). */
  counters?: SharedArrayBuffer;
}

/** A started loop: the server and its log, to be shut down together. */
export interface Running {
  /** The server. */
  server: HttpServer;
  /** Stops the server and flushes the log. */
  stop(): Promise<void>;
  /** Serves new connections with another certificate and key (see {@linkcode HttpServer.reloadTls}). */
  reloadTls(cert: string, key: string): Promise<void>;
}

/**
 * Starts one server loop on the current thread from a config.
 *
 * @param config What to serve, where, and how to log.
 * @returns The running loop.
 *
 * @example
 * ```ts
 * import { startServer } from "./cluster.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const root = await Deno.makeTempDir();
 * const running = await startServer({
 *   serve: { fsRoot: root }, hostname: "127.0.0.1", port: 0, cache: false, log: null,
 * });
 * assert(running.server.addr.port > 0);
 * await running.stop();
 * await Deno.remove(root);
 * ```
 */
export async function startServer(config: ServerConfig): Promise<Running> {
  let file: Deno.FsFile | undefined;
  let log: LogWriter | undefined;
  if (config.log === "-") log = new LogWriter(Deno.stdout);
  else if (config.log !== null) {
    file = await Deno.open(config.log, { append: true, create: true });
    log = new LogWriter(file);
  }
  const serveOptions = config.serve;
  const core = config.core ?? {};
  const limits = new ConnectionLimits({
    ...(core.maxConnections !== undefined ? { maxConnections: core.maxConnections } : {}),
    ...(core.maxConnectionsPerIp !== undefined
      ? { maxConnectionsPerIp: core.maxConnectionsPerIp }
      : {}),
    ...(config.counters !== undefined ? { buffer: config.counters } : {}),
  });
  const server = serveHttp((request) => serveDir(request, serveOptions), {
    ...core,
    limits,
    hostname: config.hostname,
    port: config.port,
    reusePort: config.reusePort ?? false,
    h2c: config.h2c ?? false,
    ...(config.cert !== undefined && config.key !== undefined
      ? { cert: config.cert, key: config.key }
      : {}),
    ...(config.cache ? { cacheRoot: config.serve.fsRoot } : {}),
    ...(config.cacheBytes !== undefined ? { cacheBytes: config.cacheBytes } : {}),
    ...(log ? { onLog: (e: AccessLogEntry) => log.write(formatCombinedLog(e)) } : {}),
  });
  // Deno's TLS connections have no setNoDelay: their listener passes TCP_NODELAY on.
  // Imported here: the libc bindings are only needed with TLS.
  if (config.cert !== undefined) await listenerNoDelay(server.addr.port);
  // A full collection after each 3 MiB of heap growth keeps each loop's peak about
  // 5 MB lower; see web_server/SERVER.md "Memory" for what it costs.
  const stopHeapWatch = boundHeap({ step: 3 * 1024 * 1024, minIntervalMs: 500 });
  return {
    server,
    async stop() {
      stopHeapWatch();
      await server.shutdown();
      await log?.close();
      file?.close();
    },
    async reloadTls(cert, key) {
      server.reloadTls(cert, key);
      await listenerNoDelay(server.addr.port);
    },
  };
}

/** Sets TCP_NODELAY on the listener of `port`, loading the libc bindings on first use. */
async function listenerNoDelay(port: number): Promise<void> {
  const { setListenerNoDelay } = await import("../lib/rawsock/tcp_listener.ts");
  await setListenerNoDelay(port);
}

/** The main loop and its workers. */
export interface Cluster {
  /** The address everyone listens on. */
  addr: Deno.NetAddr;
  /** Shuts every loop down gracefully. */
  stop(): Promise<void>;
  /**
   * Serves new connections of every loop with another certificate and key;
   * open connections are not disturbed.
   */
  reloadTls(cert: string, key: string): Promise<void>;
}

/**
 * Starts the server on the main thread and on `workers - 1` Web Workers
 * sharing its port.
 *
 * @param config What to serve, where, and how to log.
 * @param workers How many loops in all (at least 1).
 * @returns The cluster.
 *
 * @example
 * ```ts
 * import { startCluster } from "./cluster.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "A");
 * const cluster = await startCluster({
 *   serve: { fsRoot: root }, hostname: "127.0.0.1", port: 0, cache: true, log: null,
 * }, 2);
 * const res = await fetch(`http://127.0.0.1:${cluster.addr.port}/a.txt`);
 * assertEquals(await res.text(), "A");
 * await cluster.stop();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function startCluster(config: ServerConfig, workers: number): Promise<Cluster> {
  // One set of counters for every loop: the caps hold for the server as a whole.
  const counters = new ConnectionLimits(config.core ?? {}).buffer;
  // Each loop keeps its own responses: the budget is split so that it bounds the whole.
  const cacheBytes = Math.floor((config.cacheBytes ?? DEFAULT_CACHE_BYTES) / workers);
  const shared = { ...config, reusePort: workers > 1, counters, cacheBytes };
  const main = await startServer(shared);
  const addr = main.server.addr;
  const threads: Worker[] = [];
  try {
    for (let i = 1; i < workers; i++) {
      const worker = new Worker(new URL("./_worker.ts", import.meta.url), { type: "module" });
      threads.push(worker);
      await request(worker, { type: "start", config: { ...shared, port: addr.port } });
    }
  } catch (err) {
    for (const w of threads) w.terminate();
    await main.stop();
    throw err;
  }
  return {
    addr,
    async reloadTls(cert, key) {
      await main.reloadTls(cert, key);
      for (const w of threads) await request(w, { type: "reload", cert, key });
    },
    async stop() {
      await Promise.all([
        main.stop(),
        ...threads.map(async (w) => {
          await request(w, { type: "stop" }).catch(() => {});
          w.terminate();
        }),
      ]);
    },
  };
}

/** Posts a message and waits for the worker's answer (`ok` or an error message). */
function request(worker: Worker, message: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ ok: boolean; error?: string }>) => {
      if (e.data.ok) resolve();
      else reject(new Error(e.data.error ?? "worker failed"));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
    worker.postMessage(message);
  });
}
