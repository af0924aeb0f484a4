import { assert, assertEquals } from "./testing/assert.ts";
import { createRandom } from "./random.ts";

Deno.test("createRandom() repeats a sequence for a seed and spreads nearby seeds", async (t) => {
  const draw = (seed: number, n: number) => {
    const next = createRandom(seed);
    return Array.from({ length: n }, next);
  };
  await t.step("the same seed gives the same numbers", () => {
    assertEquals(draw(42, 100), draw(42, 100));
  });
  await t.step("neighbouring seeds give different first numbers", () => {
    const firsts = new Set([0, 1, 2, 3, 4, 5, 6, 7].map((s) => draw(s, 1)[0]));
    assertEquals(firsts.size, 8);
    assert(draw(1, 10).some((x, i) => x !== draw(2, 10)[i]));
  });
  await t.step("numbers stay in [0, 1) and fill the range evenly", () => {
    const buckets = new Array<number>(10).fill(0);
    for (const x of draw(1, 100_000)) {
      assert(x >= 0 && x < 1, `${x}`);
      buckets[Math.floor(x * 10)]!++;
    }
    for (const b of buckets) assert(b > 9_000 && b < 11_000, `bucket ${b} of 100000`);
  });
  await t.step("only the low 32 bits of the seed count", () => {
    assertEquals(draw(2 ** 32 + 5, 3), draw(5, 3));
  });
});
