/**
 * Test and benchmark helper: runs Debian's nginx as the reference server.
 *
 * @module
 */
import { freePort } from "../lib/testing/ports.ts";

/** A running nginx, stopped by disposal. */
export interface Nginx extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** The master's process id (the workers are its children). */
  pid: number;
}

/**
 * Starts Debian's nginx (workers = cores, sendfile on, no access log) on a
 * free loopback port, serving `root`.
 *
 * @param root The directory to serve.
 * @returns The running nginx; dispose of it to stop it.
 */
export async function startNginx(
  root: string,
): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_nginx_" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `user root;
worker_processes ${navigator.hardwareConcurrency};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`,
  );
  const child = new Deno.Command("nginx", {
    args: ["-e", `${dir}/error.log`, "-p", dir, "-c", `${dir}/nginx.conf`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  for (let i = 0;; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (err) {
      if (i > 200) {
        child.kill("SIGKILL");
        throw new Error(`Cannot start nginx: nothing listens on port ${port}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  return {
    port,
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.stderr.cancel();
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
