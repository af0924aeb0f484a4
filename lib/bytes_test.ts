import { assertEquals } from "./testing/assert.ts";
import { readFull, writeAll } from "./bytes.ts";

/** A reader that hands out its input a few bytes at a time. */
function trickle(input: number[], step: number) {
  let at = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (at >= input.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, input.length - at);
      p.set(input.slice(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

Deno.test("readFull() fills the buffer across partial reads and stops at the end", async () => {
  const buf = new Uint8Array(5);
  assertEquals(await readFull(trickle([1, 2, 3, 4, 5, 6, 7], 2), buf), 5);
  assertEquals([...buf], [1, 2, 3, 4, 5]);
  const short = new Uint8Array(5);
  assertEquals(await readFull(trickle([9, 8, 7], 2), short), 3);
  assertEquals([...short], [9, 8, 7, 0, 0]);
  assertEquals(await readFull(trickle([], 1), new Uint8Array(0)), 0);
});

Deno.test("writeAll() writes everything across partial writes", async () => {
  const got: number[] = [];
  const writer = {
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(3, p.length);
      got.push(...p.subarray(0, n));
      return Promise.resolve(n);
    },
  };
  await writeAll(writer, Uint8Array.from([1, 2, 3, 4, 5, 6, 7]));
  assertEquals(got, [1, 2, 3, 4, 5, 6, 7]);
});
