import { assert } from "../lib/testing/assert.ts";

// The child starts one loop, grows its old generation by about 6 MB of garbage
// (kept alive across scavenges, then dropped), idles for a second and prints
// how much of it is still on the heap.
const CHILD = `
import { startServer } from ${JSON.stringify(new URL("./cluster.ts", import.meta.url).href)};
const root = await Deno.makeTempDir();
const running = await startServer({
  serve: { fsRoot: root }, hostname: "127.0.0.1", port: 0, cache: false, log: null,
});
const before = Deno.memoryUsage().heapUsed;
let kept = [];
for (let i = 0; i < 60_000; i++) kept.push({ i, s: "x" + i });
// Young garbage, so that the kept objects are promoted by scavenges.
for (let i = 0; i < 2_000_000; i++) void { i };
const grown = Deno.memoryUsage().heapUsed - before;
kept = [];
await new Promise((r) => setTimeout(r, 1000));
const left = Deno.memoryUsage().heapUsed - before;
await running.stop();
await Deno.remove(root);
console.log(JSON.stringify({ grown, left }));
`;

async function grownAndLeft(flags: string): Promise<{ grown: number; left: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--v8-flags=${flags}`, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = out.stdin.getWriter();
  await writer.write(new TextEncoder().encode(CHILD));
  await writer.close();
  const { success, stdout } = await out.output();
  assert(success, "the child failed");
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("a loop under --expose-gc collects its old generation once it has grown by 4 MB", async (t) => {
  const base = "--max-semi-space-size=1,--heap-growing-percent=20,--optimize-for-size";
  await t.step("with --expose-gc, the garbage is collected while the loop idles", async () => {
    const { grown, left } = await grownAndLeft(`${base},--expose-gc`);
    assert(grown > 4.5 * 1024 * 1024, `the heap grew by ${grown} bytes only`);
    assert(left < 2 * 1024 * 1024, `${left} of ${grown} bytes are still on the heap`);
  });
  await t.step("without it, V8 keeps the garbage until its own limit", async () => {
    const { grown, left } = await grownAndLeft(base);
    assert(grown > 4.5 * 1024 * 1024, `the heap grew by ${grown} bytes only`);
    assert(left > 4 * 1024 * 1024, `${left} of ${grown} bytes are still on the heap`);
  });
});
