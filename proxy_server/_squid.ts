/**
 * Test helper: runs Debian's Squid as the reference forward proxy, with a
 * private configuration, a memory-only cache and its access log in a
 * temporary directory.
 *
 * @module
 */
import { freePort } from "../lib/testing/ports.ts";

/** A running Squid, stopped by disposal. */
export interface Squid extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** Its access log (`logformat squid`). */
  accessLog: string;
}

/** Options of {@linkcode startSquid}. */
export interface SquidOptions {
  /**
   * Ports CONNECT may reach, as the proxy's `--connect-ports`.
   * @default {[443]}
   */
  connectPorts?: number[];
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

/**
 * Starts Squid on a free loopback port in forward mode: loopback clients
 * only, no disk cache, CONNECT to the given ports only, access log in
 * Squid's native format.
 *
 * @param options The CONNECT ports.
 * @returns The running Squid; dispose of it to stop it.
 */
export async function startSquid(options: SquidOptions = {}): Promise<Squid> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_squid_" });
  // Started as root, Squid drops to its own user (proxy), which must still
  // write its logs here.
  await Deno.chmod(dir, 0o777);
  const port = freePort();
  const connectPorts = (options.connectPorts ?? [443]).join(" ");
  await Deno.writeTextFile(
    `${dir}/squid.conf`,
    `http_port 127.0.0.1:${port}
visible_hostname netkit-test
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log stdio:${dir}/access.log squid
cache_store_log none
coredump_dir ${dir}
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
acl connect_ports port ${connectPorts}
http_access deny CONNECT !connect_ports
http_access allow localhost
http_access deny all
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
  // Ready when cache.log says so: a probe connection would put a line of its
  // own in the access log. Squid takes about half a second; 10 s is a
  // generous bound.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const log = await Deno.readTextFile(`${dir}/cache.log`).catch(() => "");
    if (log.includes(`Accepting HTTP Socket connections at`)) break;
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
    accessLog: `${dir}/access.log`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await status;
      await stderr;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
