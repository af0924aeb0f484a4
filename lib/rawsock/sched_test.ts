import { requestSlice, setRealtime } from "./sched.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";

Deno.test("requestSlice() sets the calling thread's slice and refuses one out of the kernel's bounds", async (t) => {
  await t.step("the kernel reports the slice asked for (Linux 6.12 and later)", () => {
    assertEquals(requestSlice(250), true);
    const sched = Deno.readTextFileSync("/proc/thread-self/sched");
    const slice = /^se\.slice\s+:\s+(\d+)/m.exec(sched);
    // Kernels before EEVDF's custom slices take the call and show no slice.
    if (slice) assertEquals(Number(slice[1]), 250_000);
    else assert(!/se\.slice/.test(sched));
    requestSlice(3000);
  });
  for (const bad of [0, 99, 100_001, NaN]) {
    await t.step(`${bad} µs is refused`, () => {
      const err = assertThrows(() => requestSlice(bad), RangeError);
      assert(err.message.includes("it must be 100 to 100000"), err.message);
    });
  }
});

Deno.test("setRealtime() moves the calling thread into SCHED_FIFO and back", () => {
  requestSlice(250);
  const policy = () =>
    Number(/^policy\s+:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/thread-self/sched"))![1]);
  // Root (CAP_SYS_NICE) may; others are refused, which is not an error.
  if (setRealtime(1)) assertEquals(policy(), 1);
  else assertEquals(policy(), 0);
  assertEquals(setRealtime(0), true);
  assertEquals(policy(), 0);
  requestSlice(3000);
  for (const bad of [-1, 100, 0.5]) assertThrows(() => setRealtime(bad), RangeError);
});
