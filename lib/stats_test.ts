import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { percentile, RttStats } from "./stats.ts";

function assertAlmostEquals(actual: number, expected: number, tolerance: number, msg = ""): void {
  if (Number.isNaN(expected) && Number.isNaN(actual)) return;
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new Error(`${msg} expected ${expected} ± ${tolerance}, got ${actual}`);
  }
}

function assertThrows(fn: () => unknown, cls: ErrorConstructor, includes: string): void {
  throws(fn, (err: unknown) => err instanceof cls && err.message.includes(includes));
}
function fill(samples: readonly number[]): RttStats {
  const stats = new RttStats();
  samples.forEach((rtt, i) => stats.add(rtt, i + 1));
  return stats;
}

Deno.test("RttStats summarises known samples like iputils and mtr", async (t) => {
  const table: {
    name: string;
    samples: number[];
    want: { min: number; avg: number; median: number; max: number; mdev: number; stddev: number };
  }[] = [
    {
      name: "1..4",
      samples: [1, 2, 3, 4],
      want: {
        min: 1,
        avg: 2.5,
        median: 2.5,
        max: 4,
        mdev: Math.sqrt(1.25),
        stddev: Math.sqrt(5 / 3),
      },
    },
    {
      name: "textbook set with population sd 2",
      samples: [2, 4, 4, 4, 5, 5, 7, 9],
      want: { min: 2, avg: 5, median: 4.5, max: 9, mdev: 2, stddev: Math.sqrt(32 / 7) },
    },
    {
      name: "odd count, unsorted",
      samples: [0.3, 0.1, 0.2],
      want: {
        min: 0.1,
        avg: 0.2,
        median: 0.2,
        max: 0.3,
        mdev: Math.sqrt(0.02 / 3),
        stddev: 0.1,
      },
    },
    {
      name: "large offset keeps precision (Welford)",
      samples: [1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4],
      want: {
        min: 1e9 + 1,
        avg: 1e9 + 2.5,
        median: 1e9 + 2.5,
        max: 1e9 + 4,
        mdev: Math.sqrt(1.25),
        stddev: Math.sqrt(5 / 3),
      },
    },
  ];
  for (const { name, samples, want } of table) {
    await t.step(name, () => {
      const s = fill(samples).summary();
      assertEquals(s.count, samples.length);
      for (const key of ["min", "avg", "median", "max", "mdev", "stddev"] as const) {
        assertAlmostEquals(s[key], want[key], 1e-9, key);
      }
    });
  }
});

Deno.test("RttStats reports NaN for empty figures and zero spread for one sample", () => {
  const empty = new RttStats().summary();
  assertEquals(empty.count, 0);
  for (const key of ["min", "avg", "median", "max", "mdev", "stddev"] as const) {
    assertEquals(empty[key], NaN, key);
  }
  assertEquals(empty.jitter, 0);
  assertEquals(empty.ipdv.count, 0);
  const one = fill([7]).summary();
  assertEquals([one.min, one.avg, one.median, one.max, one.mdev], [7, 7, 7, 7, 0]);
  assertEquals(one.stddev, NaN);
  assertEquals(one.jitter, 0);
});

Deno.test("RttStats computes RFC 3550 jitter in arrival order", async (t) => {
  const table: { samples: number[]; want: number }[] = [
    { samples: [10, 26], want: 1 },
    { samples: [10, 26, 10], want: 1 + 15 / 16 },
    { samples: [5, 5, 5, 5], want: 0 },
    // A constant step of 16 converges towards 16: J(n) = 16 (1 − (15/16)^n).
    { samples: [0, 16, 32, 48], want: 16 * (1 - (15 / 16) ** 3) },
  ];
  for (const { samples, want } of table) {
    await t.step(samples.join(","), () => {
      assertAlmostEquals(fill(samples).jitter, want, 1e-12);
    });
  }
});

Deno.test("RttStats computes IPDV over consecutive sequence numbers only", async (t) => {
  const table: {
    name: string;
    samples: [seq: number, rtt: number][];
    want: { count: number; min: number; max: number; mean: number; meanAbs: number };
  }[] = [
    {
      name: "a loss splits the pairs",
      samples: [[1, 10], [2, 12], [4, 11], [5, 15]],
      want: { count: 2, min: 2, max: 4, mean: 3, meanAbs: 3 },
    },
    {
      name: "reordered arrival pairs by sequence",
      samples: [[2, 12], [1, 10], [3, 9]],
      want: { count: 2, min: -3, max: 2, mean: -0.5, meanAbs: 2.5 },
    },
    {
      name: "a duplicate keeps the first round trip",
      samples: [[1, 10], [1, 50], [2, 11]],
      want: { count: 1, min: 1, max: 1, mean: 1, meanAbs: 1 },
    },
    {
      name: "no consecutive pair",
      samples: [[1, 10], [3, 11]],
      want: { count: 0, min: NaN, max: NaN, mean: NaN, meanAbs: NaN },
    },
  ];
  for (const { name, samples, want } of table) {
    await t.step(name, () => {
      const stats = new RttStats();
      for (const [seq, rtt] of samples) stats.add(rtt, seq);
      assertEquals(stats.ipdv(), want);
    });
  }
  await t.step("samples without a sequence number are left out", () => {
    const stats = new RttStats();
    stats.add(1);
    stats.add(2);
    assertEquals(stats.ipdv().count, 0);
    assertEquals(stats.count, 2);
  });
});

Deno.test("percentile() interpolates between closest ranks", async (t) => {
  const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const table: { sorted: number[]; p: number; want: number }[] = [
    { sorted: ten, p: 0, want: 1 },
    { sorted: ten, p: 50, want: 5.5 },
    { sorted: ten, p: 90, want: 9.1 },
    { sorted: ten, p: 99, want: 9.91 },
    { sorted: ten, p: 100, want: 10 },
    { sorted: [42], p: 99, want: 42 },
    { sorted: [], p: 50, want: NaN },
  ];
  for (const { sorted, p, want } of table) {
    await t.step(`p${p} of ${sorted.length}`, () => {
      assertAlmostEquals(percentile(sorted, p), want, 1e-9);
    });
  }
  await t.step("RttStats.percentile() sorts first", () => {
    assertAlmostEquals(fill([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]).percentile(90), 9.1, 1e-9);
  });
});

Deno.test("RttStats and percentile() reject invalid input with RangeError", async (t) => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    await t.step(`add(${bad})`, () => {
      assertThrows(() => new RttStats().add(bad), RangeError, "not a finite number");
    });
  }
  for (const p of [-1, 101, NaN]) {
    await t.step(`percentile(${p})`, () => {
      assertThrows(() => percentile([1], p), RangeError, "between 0 and 100");
    });
  }
});
