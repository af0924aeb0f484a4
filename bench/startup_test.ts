import { assertEquals } from "../lib/testing/assert.ts";

const ROOT = new URL("../", import.meta.url);

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/**
 * The modules a run of `entry` loads before its first line runs: the
 * closure of its static imports (`deno info --json`), relative to the
 * repository. Dynamic imports and type-only imports load nothing at start.
 */
async function startPath(entry: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, ROOT).pathname],
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [...info.roots];
  for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) todo.push(d.code.specifier);
    }
  }
  return new Set([...seen].map((s) => s.replace(ROOT.href, "")));
}

// What `bench/startup.ts` times (`ping -c 1 127.0.0.1`, `traceroute
// 127.0.0.1`) needs none of these: each is loaded when a run uses it.
const COLD = {
  "icmp_pinger/main.ts": [
    "lib/icmp_error.ts", // quoted packets: ping reads an error's echo with parseIcmp()
    "lib/resolve.ts", // only for a host name, or names to print
    "lib/stats.ts",
  ],
  "traceroute/main.ts": [
    "lib/icmp.ts", // the ICMP and TCP methods only
    "lib/icmp_error.ts",
    "lib/resolve.ts", // loaded while the host resolves
    "lib/stats.ts", // --report only
    "traceroute/udp.ts", // each method's module, once chosen
    "traceroute/icmp_probe.ts",
    "traceroute/tcp.ts",
    "traceroute/report.ts",
  ],
};

Deno.test("ping and traceroute load at start-up only what a plain run needs", async (t) => {
  for (const [entry, cold] of Object.entries(COLD)) {
    await t.step(entry, async () => {
      const loaded = await startPath(entry);
      assertEquals(loaded.has(entry), true, `${entry} is not its own start path`);
      assertEquals(cold.filter((m) => loaded.has(m)), []);
      assertEquals([...loaded].filter((m) => m.startsWith("node:")), []);
    });
  }
});
