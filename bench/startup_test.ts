import { assertEquals } from "../lib/testing/assert.ts";

const ROOT = new URL("../", import.meta.url);

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** The specifiers reachable from `roots` through `next`. */
function closure(roots: string[], next: (s: string) => string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...roots];
  for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
    if (seen.has(s)) continue;
    seen.add(s);
    todo.push(...next(s));
  }
  return seen;
}

/**
 * The modules a run of `entry` loads before its first line runs: the
 * closure of its static imports (`deno info --json`), relative to the
 * repository; the ones `entry` imports itself; and the ones Deno reads
 * before it starts, which adds what a literal `import()` names. Type-only
 * imports load nothing.
 */
async function startPath(
  entry: string,
): Promise<{ loaded: Set<string>; direct: Set<string>; read: Set<string> }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(entry, ROOT).pathname],
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: InfoModule[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const imports = (s: string) =>
    (bySpecifier.get(s)?.dependencies ?? []).flatMap((d) =>
      d.code && !d.isDynamic ? [d.code.specifier] : []
    );
  const seen = closure(info.roots, imports);
  const relative = (specifiers: Iterable<string>) =>
    new Set([...specifiers].map((s) => s.replace(ROOT.href, "")));
  const named = (s: string) =>
    (bySpecifier.get(s)?.dependencies ?? []).flatMap((d) => d.code ? [d.code.specifier] : []);
  return {
    loaded: relative(seen),
    direct: relative(info.roots.flatMap(imports)),
    read: relative(closure(info.roots, named)),
  };
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
    "lib/stats.ts", // --report only
    "traceroute/icmp_probe.ts", // the other methods' modules, once chosen
    "traceroute/tcp.ts",
    "traceroute/report.ts",
  ],
};

Deno.test("ping and traceroute load at start-up only what a plain run needs", async (t) => {
  for (const [entry, cold] of Object.entries(COLD)) {
    await t.step(entry, async () => {
      const { loaded } = await startPath(entry);
      assertEquals(loaded.has(entry), true, `${entry} is not its own start path`);
      assertEquals(cold.filter((m) => loaded.has(m)), []);
      assertEquals([...loaded].filter((m) => m.startsWith("node:")), []);
    });
  }
});

// Deno loads a module's imports only once it has that module, one round per
// level of the import graph; an entry that imports every module of its start
// path itself has them all requested at once (measured with bench/startup.ts:
// 1.5 ms off ping's start-up, 3 ms off traceroute's).
Deno.test("ping and traceroute import every module of their start path themselves", async (t) => {
  for (const entry of Object.keys(COLD)) {
    await t.step(entry, async () => {
      const { loaded, direct } = await startPath(entry);
      assertEquals([...loaded].filter((m) => m !== entry && !direct.has(m)), []);
    });
  }
});

// Deno reads every module that a literal import() names, and its imports,
// before the program starts (measured with bench/startup.ts: 0.3 ms of
// traceroute's start-up); what a plain run does not load is named by URL.
Deno.test("ping and traceroute read at start-up no module that a plain run does not load", async (t) => {
  for (const entry of Object.keys(COLD)) {
    await t.step(entry, async () => {
      const { loaded, read } = await startPath(entry);
      assertEquals([...read].filter((m) => !loaded.has(m) && !m.startsWith("node:")), []);
    });
  }
});
