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
  /** `http://127.0.0.1:port`. */
  url: string;
  /** The master's process id (the workers are its children). */
  pid: number;
  /** The HTTPS port (h2 and HTTP/1.1 by ALPN), when started with `tls`. */
  tlsPort: number | undefined;
  /**
   * The access-log lines, once there are at least `count` of them: nginx
   * writes a line after its response, so a client can be done before it.
   */
  log(count?: number): Promise<string[]>;
}

/** Options of {@linkcode startNginx}. */
export interface NginxOptions {
  /**
   * Worker processes.
   * @default {navigator.hardwareConcurrency}
   */
  workers?: number;
  /** An access-log format (`log_format`); without it the access log is off. */
  logFormat?: string;
  /** More directives for the `server` block (locations). */
  server?: string;
  /**
   * PEM files of a certificate and key: also listen with TLS 1.2 and 1.3,
   * `http2` and `http/1.1` by ALPN, on {@linkcode Nginx.tlsPort}. The client's
   * cipher order decides, as with rustls under Deno.
   */
  tls?: { certPath: string; keyPath: string };
}

/**
 * Starts Debian's nginx (sendfile on) on a free loopback port, serving `root`.
 *
 * @param root The directory to serve.
 * @param options Workers, access log and extra server directives.
 * @returns The running nginx; dispose of it to stop it.
 */
export async function startNginx(
  root: string,
  options: NginxOptions = {},
): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "netkit_nginx_" });
  const port = freePort();
  const tlsPort = options.tls === undefined ? undefined : freePort();
  // nginx 1.22 spells HTTP/2 on the listen line (`http2 on` came in 1.25.1).
  const tls = options.tls === undefined ? "" : `listen 127.0.0.1:${tlsPort} ssl http2;
    ssl_certificate ${options.tls.certPath};
    ssl_certificate_key ${options.tls.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;`;
  const log = options.logFormat === undefined
    ? "access_log off;"
    : `log_format test '${options.logFormat}';\n  access_log ${dir}/access.log test;`;
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `user root;
worker_processes ${options.workers ?? navigator.hardwareConcurrency};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  ${log}
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; ${tls} root ${root}; ${options.server ?? ""} }
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
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    tlsPort,
    async log(count = 0) {
      // 10 s is a generous bound for a line that never comes.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const text = await Deno.readTextFile(`${dir}/access.log`).catch(() => "");
        const lines = text.split("\n").filter((l) => l !== "");
        if (lines.length >= count) return lines;
        if (Date.now() > deadline) {
          throw new Error(`nginx logged ${lines.length} lines, not ${count}, in 10 s`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.stderr.cancel();
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
