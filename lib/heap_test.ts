import { assertEquals } from "./testing/assert.ts";
import { boundHeap } from "./heap.ts";

Deno.test("boundHeap without --expose-gc never reads its activity counter", async () => {
  // A watch that ran without gc() would read the counter at start and at each look.
  let reads = 0;
  const stop = boundHeap({ step: 1, checkMs: 1, minIntervalMs: 0, activity: () => ++reads });
  await new Promise((r) => setTimeout(r, 30));
  stop();
  assertEquals(reads, 0);
});

Deno.test("boundHeap collects once the heap grows while its activity counter moves", async () => {
  // A process of its own with V8's gc() exposed; calls to it are counted.
  const script = `
    import { boundHeap } from ${JSON.stringify(new URL("./heap.ts", import.meta.url).href)};
    const real = globalThis.gc;
    let calls = 0;
    globalThis.gc = (o) => (calls++, real(o));
    let work = 0;
    const stop = boundHeap({ step: 1, checkMs: 5, minIntervalMs: 0, activity: () => work });
    const keep = [];
    const tick = () => new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 20; i++) (keep.push(new Array(10000).fill(i)), await tick());
    const idle = calls;
    for (let i = 0; i < 50 && calls === idle; i++) (work++, keep.push(new Array(10000).fill(i)), await tick());
    stop();
    console.log(JSON.stringify([idle, calls - idle, keep.length > 0]));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const [idle, active] = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(idle, 0, "no activity, no collection");
  assertEquals(active > 0, true, "a collection once the counter moved");
});
