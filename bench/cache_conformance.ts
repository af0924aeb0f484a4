/**
 * Scores the caching proxy on the HTTP cache conformance suite
 * (http-tests/cache-tests, the version kept in `../shared/cache-tests`),
 * with Squid and nginx `proxy_cache` as peers in the same run. Run:
 *
 *     deno run -A bench/cache_conformance.ts [--suite DIR] [--no-peers] [--json]
 *
 * Each cache runs in front of the suite's origin on 127.0.0.1:8000 (the
 * suite's `run.sh` starts and stops it), one after the other, since that port
 * is fixed:
 * 1. this proxy in reverse mode (`--upstream`), the suite's client asking it;
 * 2. this proxy in forward mode, the suite's client sending it absolute-form
 *    requests: Node's built-in `fetch` ignores `HTTP_PROXY`, so a preload
 *    (`NODE_OPTIONS=--import`) installs the suite's own undici `ProxyAgent`
 *    (absolute-form, no CONNECT) as the global dispatcher and as the `Agent`
 *    its interim-response tests make; the suite itself is unchanged;
 * 3. Squid 5.7 as an accelerator and nginx `proxy_cache`, when installed.
 *
 * The suite needs node and npm (its `run.sh` installs its dependencies from
 * the npm registry into a temporary copy). Scores are "required P/163
 * optimal P/107", counted with dependencies as the public site counts them.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort } from "../lib/testing/ports.ts";
import { startSquid } from "../proxy_server/_squid.ts";
import { startNetkitProxy, startNginxCache, waitPort } from "./_peers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    suite: { type: "string" },
    "no-peers": { type: "boolean" },
    json: { type: "boolean" },
  },
});
// The repository's parent holds shared/ (here and in CI).
const SUITE = values.suite ?? new URL("../../shared/cache-tests", import.meta.url).pathname;
const ORIGIN = "http://127.0.0.1:8000";

// Loaded into every node process run.sh starts (NODE_OPTIONS); acts only in the suite's
// client, where it routes the global fetch through the proxy named by CACHE_TESTS_PROXY.
const PRELOAD = `import { createRequire } from "node:module";
const proxy = process.env.CACHE_TESTS_PROXY;
if (proxy && (process.argv[1] ?? "").endsWith("test-engine/cli.mjs")) {
  const undici = createRequire(process.cwd() + "/")("undici");
  const options = { uri: proxy, proxyTunnel: false };
  undici.setGlobalDispatcher(new undici.ProxyAgent(options));
  // The interim-response tests make their own Agent: through the proxy as well.
  undici.Agent = class extends undici.ProxyAgent {
    constructor(opts) {
      super({ ...opts, ...options });
    }
  };
}
`;

interface Score {
  required: number;
  requiredTotal: number;
  optimal: number;
  optimalTotal: number;
  failedRequired: string[];
}

/** Runs the suite's run.sh against a base URL and reads its score line. */
async function runSuite(base: string, env: Record<string, string> = {}): Promise<Score> {
  const out = await new Deno.Command(`${SUITE}/run.sh`, {
    args: [base],
    env: { SHOW_FAILED: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const err = new TextDecoder().decode(out.stderr);
  const m = /required (\d+)\/(\d+) optimal (\d+)\/(\d+)/.exec(text);
  if (!out.success || m === null) {
    throw new Error(`The conformance suite failed against ${base}: ${err.trim() || text.trim()}`);
  }
  return {
    required: Number(m[1]),
    requiredTotal: Number(m[2]),
    optimal: Number(m[3]),
    optimalTotal: Number(m[4]),
    failedRequired: err.split("\n").map((l) => l.trim()).filter((l) =>
      /^[a-z0-9-]+(=\d+)?$/.test(l)
    ),
  };
}

async function installed(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/** Starts a cache, waits for its port, scores it, and stops it. */
async function score(
  name: string,
  start: (port: number) => AsyncDisposable | Promise<AsyncDisposable>,
  run: (port: number) => Promise<Score>,
): Promise<Score> {
  const port = freePort();
  // Disposal stops the cache (SIGTERM) and waits for it, whatever happens.
  await using _child = await start(port);
  await waitPort(port);
  const s = await run(port);
  console.error(
    `${name}: required ${s.required}/${s.requiredTotal} optimal ${s.optimal}/${s.optimalTotal}`,
  );
  return s;
}

for (const tool of ["node", "npm"]) {
  if (!(await installed(tool))) {
    console.error(`cache_conformance: ${tool} is not installed; the suite needs node and npm`);
    Deno.exit(1);
  }
}
try {
  await Deno.stat(`${SUITE}/run.sh`);
} catch {
  console.error(`cache_conformance: no suite at ${SUITE} (give --suite DIR)`);
  Deno.exit(1);
}

const tmp = await Deno.makeTempDir({ prefix: "cache_conformance_" });
await Deno.chmod(tmp, 0o777);
const results: Record<string, Score> = {};
try {
  results["netkit reverse"] = await score(
    "netkit reverse",
    (port) => startNetkitProxy(port, ["--upstream", ORIGIN]),
    (port) => runSuite(`http://127.0.0.1:${port}`),
  );
  await Deno.writeTextFile(`${tmp}/preload.mjs`, PRELOAD);
  results["netkit forward"] = await score(
    "netkit forward",
    (port) => startNetkitProxy(port, []),
    (port) =>
      runSuite(ORIGIN, {
        NODE_OPTIONS: `--import=${new URL(`file://${tmp}/preload.mjs`).href}`,
        CACHE_TESTS_PROXY: `http://127.0.0.1:${port}`,
      }),
  );
  if (!values["no-peers"] && await installed("squid")) {
    results["squid"] = await score(
      "squid",
      async (port) => {
        // Squid started while nothing listens at its origin fails the suite's first
        // requests (23/163 here, against 117 otherwise): hold the port while it starts.
        using _hold = Deno.listen({ hostname: "127.0.0.1", port: 8000 });
        return await startSquid({ port, originPort: 8000, accessLog: false });
      },
      (port) => runSuite(`http://127.0.0.1:${port}`),
    );
  }
  if (!values["no-peers"] && await installed("nginx")) {
    results["nginx proxy_cache"] = await score(
      "nginx proxy_cache",
      (port) => startNginxCache(`${tmp}/nginx`, { port, originPort: 8000, workers: "1" }),
      (port) => runSuite(`http://127.0.0.1:${port}`),
    );
  }
} finally {
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
if (values.json) console.log(JSON.stringify(results));
else {
  console.log("cache conformance (http-tests/cache-tests), scored with dependencies:");
  for (const [name, s] of Object.entries(results)) {
    console.log(
      `  ${
        name.padEnd(18)
      } required ${s.required}/${s.requiredTotal}  optimal ${s.optimal}/${s.optimalTotal}` +
        (name.startsWith("netkit")
          ? `  failing required: ${s.failedRequired.join(" ") || "none"}`
          : ""),
    );
  }
}
