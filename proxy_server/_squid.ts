/**
 * Runs Debian's Squid as a reference: for the tests, a forward proxy with
 * its access log; for the benchmarks, an accelerator (reverse proxy) in
 * front of an origin. Either has a private configuration, a memory-only
 * cache and its files in a temporary directory, and is ready when its
 * `cache.log` says it accepts connections.
 *
 * @module
 */
import { freePort } from "../lib/testing/ports.ts";

/** A running Squid, stopped by disposal. */
export interface Squid extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** Its process id (for its memory use). */
  pid: number;
  /** Its access log (`logformat squid`); empty when `accessLog` is off. */
  accessLog: string;
}

/** Options of {@linkcode startSquid}. */
export interface SquidOptions {
  /**
   * The port to listen on (127.0.0.1).
   * @default {a free port}
   */
  port?: number;
  /**
   * Serve as an accelerator for the origin on this loopback port (a 64 MiB
   * memory cache, any client) instead of as a forward proxy.
   * @default {undefined}
   */
  originPort?: number;
  /**
   * Ports CONNECT may reach, as the proxy's `--connect-ports` (forward mode).
   * @default {[443]}
   */
  connectPorts?: number[];
  /**
   * Write an access log (a benchmark turns it off: the log costs throughput).
   * @default {true}
   */
  accessLog?: boolean;
}

/**
 * Whether Squid is installed: the reason when it is not.
 *
 * @returns `undefined`, or what is missing.
 */
export function squidMissing(): string | undefined {
  try {
    new Deno.Command("squid", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync();
    return undefined;
  } catch {
    return '"squid" is not installed (Debian package squid)';
  }
}

/** The configuration lines of each mode. */
function modeConfig(port: number, options: SquidOptions): string {
  if (options.originPort !== undefined) {
    return `http_port 127.0.0.1:${port} accel defaultsite=127.0.0.1 vhost
cache_peer 127.0.0.1 parent ${options.originPort} 0 no-query no-digest originserver name=origin
http_access allow all
cache_peer_access origin allow all
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
server_persistent_connections off
`;
  }
  return `http_port 127.0.0.1:${port}
acl connect_ports port ${(options.connectPorts ?? [443]).join(" ")}
http_access deny CONNECT !connect_ports
http_access allow localhost
http_access deny all
`;
}

/**
 * Starts Squid on a loopback port: a forward proxy (loopback clients only,
 * CONNECT to the given ports only), or with `originPort` an accelerator in
 * front of that origin. No disk cache; the access log in Squid's native
 * format unless turned off.
 *
 * @param options The mode, the port and the log.
 * @returns The running Squid; dispose of it to stop it.
 */
export async function startSquid(options: SquidOptions = {}): Promise<Squid> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_squid_" });
  // Started as root, Squid drops to its own user (proxy), which must still
  // write its logs here.
  await Deno.chmod(dir, 0o777);
  const port = options.port ?? freePort();
  const accessLog = (options.accessLog ?? true) ? `${dir}/access.log` : "";
  await Deno.writeTextFile(
    `${dir}/squid.conf`,
    `${modeConfig(port, options)}visible_hostname netkit-test
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log ${accessLog ? `stdio:${accessLog} squid` : "none"}
cache_store_log none
coredump_dir ${dir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
`,
  );
  const child = new Deno.Command("squid", {
    args: ["-N", "-f", `${dir}/squid.conf`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  // Ready when cache.log says so ("Accepting HTTP Socket connections at",
  // or "Accepting reverse-proxy HTTP ..." as an accelerator): a probe
  // connection would put a line of its own in the access log. Squid takes
  // about half a second; 10 s is a generous bound.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const log = await Deno.readTextFile(`${dir}/cache.log`).catch(() => "");
    if (log.includes(`HTTP Socket connections at`)) break;
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      await Deno.remove(dir, { recursive: true });
      throw new Error(`Cannot start squid on port ${port}:\n${await stderr}${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    pid: child.pid,
    accessLog,
    async [Symbol.asyncDispose]() {
      if (!exited) child.kill("SIGTERM");
      await status;
      await stderr;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
