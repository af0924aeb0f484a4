/**
 * Test and benchmark helper: runs Debian's `redis-server`, alone or as a
 * cluster of masters made with `redis-cli --cluster create`, on loopback
 * ports, without persistence. Each server can be killed with SIGKILL and
 * started again on its port, as an outage would.
 *
 * @module
 */
import { freePort } from "../lib/testing/ports.ts";

/** One `redis-server` process. */
export interface RedisNode {
  /** Its port on 127.0.0.1. */
  port: number;
  /** Kills it with SIGKILL (as a crash would) and waits for it to be gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port (and, in a cluster, with the same node file). */
  restart(): Promise<void>;
}

/** Running Redis servers, stopped by disposal. */
export interface Redis extends AsyncDisposable {
  /** The `--shared-cache` URL. */
  url: string;
  /** The servers (one, or the cluster's masters). */
  nodes: RedisNode[];
  /** Runs `redis-cli` against the first node (`-c` for a cluster) and returns its output. */
  cli(...args: string[]): Promise<string>;
}

/** The files `redis-server --tls-port` needs: its certificate and key, and the CA that signed it. */
export interface RedisTls {
  /** The server certificate's file (PEM). */
  certPath: string;
  /** Its private key's file (PEM). */
  keyPath: string;
  /** The CA certificate's file (PEM), which clients must trust. */
  caPath: string;
}

/** redis-cli's options to reach a server that speaks TLS only. */
function tlsCli(tls: RedisTls | undefined): string[] {
  return tls === undefined ? [] : ["--tls", "--cacert", tls.caPath];
}

async function waitReady(port: number, tls?: RedisTls): Promise<void> {
  for (let i = 0;; i++) {
    const out = await new Deno.Command("redis-cli", {
      args: [...tlsCli(tls), "-p", String(port), "ping"],
      stdout: "piped",
      stderr: "null",
    }).output();
    // NOAUTH: it answers, but wants a password (--requirepass).
    if (/^(PONG|NOAUTH)/.test(new TextDecoder().decode(out.stdout).trim())) return;
    if (i > 500) throw new Error(`Cannot start redis-server: port ${port} does not answer`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A node as this module manages it. */
interface Managed extends RedisNode {
  start(): Promise<void>;
  stop(): Promise<void>;
}

function node(dir: string, extra: string[], tls?: RedisTls): Managed {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  // With TLS, the port speaks TLS only (no plain-text port at all).
  const listen = tls === undefined ? ["--port", String(port)] : [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--tls-cert-file",
    tls.certPath,
    "--tls-key-file",
    tls.keyPath,
    "--tls-ca-cert-file",
    tls.caPath,
    "--tls-auth-clients",
    "no",
  ];
  const start = async () => {
    child = new Deno.Command("redis-server", {
      args: [
        ...listen,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        ...extra,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitReady(port, tls);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (c === undefined) return;
    try {
      c.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await c.status;
  };
  return { port, kill, restart: start, stop: kill, start };
}

/**
 * Starts one `redis-server` on a free loopback port.
 *
 * @param options Extra `redis-server` arguments (such as `--requirepass`),
 *   and TLS files to serve TLS only (the URL is then `rediss://`).
 * @returns The server; dispose of it to stop it.
 */
export async function startRedis(
  options: { args?: string[]; tls?: RedisTls } = {},
): Promise<Redis> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_redis_" });
  const n = node(dir, options.args ?? [], options.tls);
  await n.start();
  return {
    url: `${options.tls === undefined ? "redis" : "rediss"}://127.0.0.1:${n.port}`,
    nodes: [n],
    cli: (...args) => cli([...tlsCli(options.tls), "-p", String(n.port), ...args]),
    async [Symbol.asyncDispose]() {
      await n.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Starts a Redis Cluster of `masters` masters (no replicas) on free loopback ports.
 *
 * @param masters How many masters.
 * @returns The cluster; dispose of it to stop it.
 */
export async function startRedisCluster(masters = 3): Promise<Redis> {
  const dirs: string[] = [];
  const nodes: Managed[] = [];
  for (let i = 0; i < masters; i++) {
    const dir = await Deno.makeTempDir({ prefix: "netkit_redis_cluster_" });
    dirs.push(dir);
    const n = node(dir, [
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      `${dir}/nodes.conf`,
      // A master that comes back rejoins at once; failure detection in 2 s.
      "--cluster-node-timeout",
      "2000",
    ]);
    await n.start();
    nodes.push(n);
  }
  await cli([
    "--cluster",
    "create",
    ...nodes.map((n) => `127.0.0.1:${n.port}`),
    "--cluster-replicas",
    "0",
    "--cluster-yes",
  ]);
  // Every node must agree that the cluster is ok before it serves.
  for (const n of nodes) {
    for (let i = 0;; i++) {
      const info = await cli(["-p", String(n.port), "cluster", "info"]);
      if (info.includes("cluster_state:ok")) break;
      if (i > 500) throw new Error(`Cannot create the cluster: ${info}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`,
    nodes,
    cli: (...args) => cli(["-c", "-p", String(nodes[0]!.port), ...args]),
    async [Symbol.asyncDispose]() {
      for (const n of nodes) await n.stop();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    },
  };
}

async function cli(args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`redis-cli ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}
