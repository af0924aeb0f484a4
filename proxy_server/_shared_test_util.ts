/**
 * Test and benchmark helper: runs the proxy's CLI as a child process, as an
 * operator runs several of them, and reads where it listens from its stderr.
 *
 * @module
 */

/** A proxy process, stopped by disposal. */
export interface ProxyProcess extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  port: number;
  /** Its process id. */
  pid: number;
  /** Its admin port (`/metrics`). */
  adminPort: number;
  /** Every line it wrote to stderr so far. */
  stderr: string[];
  /** The value of one `/metrics` sample, such as `netkit_proxy_shared_lookups_total{result="hit"}`. */
  metric(name: string): Promise<number>;
}

/**
 * Starts `proxy_server/main.ts` on a free port with an admin port, no access
 * log and no per-address connection cap, plus `args`.
 *
 * @param args More options (`--upstream`, `--shared-cache`, …).
 * @returns The running proxy.
 */
export async function spawnProxy(args: string[]): Promise<ProxyProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      "-p",
      "0",
      "--admin-port",
      "0",
      "--access-log",
      "none",
      "--max-conns-per-ip",
      "0",
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr: string[] = [];
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let port = 0;
  let adminPort = 0;
  let rest = "";
  while (port === 0 || adminPort === 0) {
    const { value, done } = await lines.read();
    if (done) {
      await child.status;
      throw new Error(`The proxy did not start: ${stderr.join("\n")}${rest}`);
    }
    rest += value;
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      stderr.push(line);
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(line);
      if (m) port = Number(m[1]);
      const a = /metrics on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (a) adminPort = Number(a[1]);
    }
  }
  // Keep reading, so the child never blocks on a full pipe.
  const drained = (async () => {
    for (;;) {
      const { value, done } = await lines.read().catch(() => ({ value: "", done: true }));
      if (done) return;
      rest += value;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        stderr.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
  })();
  return {
    port,
    pid: child.pid,
    adminPort,
    stderr,
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? NaN : Number(line.slice(name.length + 1));
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await drained;
    },
  };
}

/** Lines of text, each different, so a misplaced or missing piece shows. */
export function linesOf(bytes: number, tag = ""): string {
  const lines: string[] = [];
  for (let i = 0; lines.length * 16 < bytes; i++) {
    lines.push(`${tag}l ${String(i).padStart(12 - tag.length, "0")}\n`);
  }
  return lines.join("");
}

/**
 * Waits until a condition holds (each check ~20 ms apart), failing after 20 s:
 * tests wait for a state, never for a time.
 */
export async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const give = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > give) throw new Error(`Still not true after 20 s: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What {@linkcode loadWithOutage} saw. */
export interface LoadReport {
  /** Requests answered 200 with the right body. */
  ok: number;
  /** Every other outcome, described. */
  failures: string[];
  /** The longest time one request took, in ms. */
  slowest: number;
}

/**
 * The process id of the `redis-server` on a loopback port, from its `INFO`,
 * so that a test can stop (SIGSTOP) and continue it.
 */
export async function redisPid(port: number): Promise<number> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), "info", "server"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const m = /^process_id:(\d+)/m.exec(new TextDecoder().decode(out.stdout));
  if (m === null) throw new Error(`No redis-server answers on port ${port}`);
  return Number(m[1]);
}

/**
 * Sends GETs for `paths` round-robin through `ports` from `concurrency`
 * clients for `seconds`, calling `kill` a quarter of the way through and
 * `restart` halfway (a crash and a restart, or a stop and a continue), and
 * checks every answer against `bodyOf`.
 *
 * @returns What the clients saw.
 */
export async function loadWithOutage(options: {
  ports: number[];
  paths: string[];
  bodyOf: (path: string) => string;
  seconds: number;
  concurrency: number;
  kill: () => Promise<void>;
  restart: () => Promise<void>;
}): Promise<LoadReport> {
  const { get, rawRequest } = await import("./_test_util.ts");
  const report: LoadReport = { ok: 0, failures: [], slowest: 0 };
  const end = Date.now() + options.seconds * 1000;
  let turn = 0;
  const client = async () => {
    while (Date.now() < end) {
      const i = turn++;
      const port = options.ports[i % options.ports.length]!;
      const path = options.paths[(i * 7919) % options.paths.length]!;
      const start = Date.now();
      try {
        const r = await rawRequest(port, get(path));
        report.slowest = Math.max(report.slowest, Date.now() - start);
        if (r?.status === 200 && r.body === options.bodyOf(path)) report.ok++;
        else report.failures.push(`${path} via ${port}: ${r?.status ?? "no answer"}`);
      } catch (err) {
        report.failures.push(`${path} via ${port}: ${(err as Error).message}`);
      }
    }
  };
  const outage = (async () => {
    await new Promise((r) => setTimeout(r, options.seconds * 250));
    await options.kill();
    await new Promise((r) => setTimeout(r, options.seconds * 250));
    await options.restart();
  })();
  await Promise.all([...Array.from({ length: options.concurrency }, client), outage]);
  return report;
}
