import { monotonicMs, setTimerSlack, sleepUntil, timerSlack } from "./timer.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";

Deno.test("sleepUntil() wakes at or after each absolute time, and at once for a past one", () => {
  const start = monotonicMs();
  // 50 absolute deadlines 1 ms apart: a schedule that never wakes early.
  for (let k = 1; k <= 50; k++) {
    const due = start + k;
    sleepUntil(due);
    const now = monotonicMs();
    assert(now >= due, `woke ${(due - now).toFixed(4)} ms early for deadline ${k}`);
  }
  // CLOCK_MONOTONIC and performance.now() run at one rate.
  const a = monotonicMs() - performance.now();
  sleepUntil(monotonicMs() + 20);
  const b = monotonicMs() - performance.now();
  assert(Math.abs(a - b) < 0.5, `clocks apart by ${a - b} ms over 20 ms`);
  // A time that has passed returns without sleeping (well under the 1 s asked back).
  const before = monotonicMs();
  sleepUntil(before - 1000);
  assert(monotonicMs() - before < 500);
  assertThrows(() => sleepUntil(-1), RangeError);
  assertThrows(() => sleepUntil(NaN), RangeError);
});

Deno.test("setTimerSlack() sets the calling thread's slack, as timerSlack() reads it back", () => {
  const before = timerSlack();
  try {
    setTimerSlack(1);
    assertEquals(timerSlack(), 1);
    setTimerSlack(123_456);
    assertEquals(timerSlack(), 123_456);
  } finally {
    setTimerSlack(before);
  }
  for (const bad of [0, -1, 1.5, NaN]) assertThrows(() => setTimerSlack(bad), RangeError);
});
