/**
 * The reference caches the proxy benchmarks compare with, each started in
 * reverse (accelerator) mode in front of one loopback origin with a private
 * configuration in a directory of its own: nginx `proxy_cache` and Squid.
 *
 * @module
 */
import { taskCommand } from "../lib/testing/tasks.ts";

/**
 * Starts this project's proxy as `deno task proxy` does, with no access log.
 *
 * @param port The port to listen on.
 * @param args More options, such as `["--upstream", "http://127.0.0.1:8000"]`.
 * @returns The proxy process (stop it with SIGTERM).
 */
export function startNetkitProxy(port: number, args: string[]): Deno.ChildProcess {
  // As `deno task proxy` runs it, with the task's V8 flags (they bound the heap).
  const [deno, ...argv] = taskCommand("proxy", [
    "-p",
    String(port),
    "--access-log",
    "none",
    ...args,
  ]);
  return new Deno.Command(deno!, {
    args: argv,
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * Starts nginx with `proxy_cache` in front of an origin.
 *
 * @param dir A fresh directory for its configuration, cache and logs.
 * @param options The port to listen on, the origin's port, the worker count, and
 *   whether concurrent misses for one key wait for the first (`proxy_cache_lock on`), and
 *   whether a stale entry is revalidated with a conditional request (`proxy_cache_revalidate on`).
 * @returns The nginx process (stop it with SIGTERM).
 */
export async function startNginxCache(
  dir: string,
  options: {
    port: number;
    originPort: number;
    workers: string;
    lock?: boolean;
    revalidate?: boolean;
  },
): Promise<Deno.ChildProcess> {
  await Deno.mkdir(`${dir}/cache`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `worker_processes ${options.workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path ${dir}/cache keys_zone=c:64m max_size=1g;
  proxy_temp_path ${dir}/tmp;
  client_body_temp_path ${dir}/body;
  upstream origin { server 127.0.0.1:${options.originPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${options.port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;${options.lock ? "\n      proxy_cache_lock on;" : ""}${
      options.revalidate ? "\n      proxy_cache_revalidate on;" : ""
    }
      add_header Cache-Status $upstream_cache_status;
    }
  }
}
`,
  );
  const check = await new Deno.Command("nginx", {
    args: ["-t", "-c", `${dir}/nginx.conf`],
    stderr: "piped",
  }).output();
  if (!check.success) {
    throw new Error(
      `nginx rejected the proxy_cache config: ${new TextDecoder().decode(check.stderr)}`,
    );
  }
  return new Deno.Command("nginx", {
    args: ["-c", `${dir}/nginx.conf`],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/**
 * Waits until something accepts connections on a loopback port.
 *
 * @param port The port.
 * @returns Once it accepts; throws after 10 s.
 */
export async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`Cannot reach 127.0.0.1:${port}: nothing listens after 10 s`);
}
