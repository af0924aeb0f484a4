import { Deadline, delay } from "./deadline.ts";
import { assert, assertEquals, assertRejects } from "./testing/assert.ts";

/** Every test here checks that it leaves no timer, socket or pending op behind. */
const sanitized = { sanitizeOps: true, sanitizeResources: true } as const;

const never = () => new Promise<never>(() => {});
const late = () => new Error("late");

Deno.test(
  "Deadline.race() settles like the promise when it wins, and rejects with error() when time runs out",
  sanitized,
  async (t) => {
    await t.step("a value before the deadline", async () => {
      using deadline = new Deadline(200);
      assertEquals(await deadline.race(delay(10).then(() => "done"), late), "done");
      assertEquals(deadline.expired, false);
    });

    await t.step("a rejection before the deadline keeps its own error", async () => {
      using deadline = new Deadline(200);
      const failing = delay(10).then(() => Promise.reject(new TypeError("own")));
      const err = await assertRejects(() => deadline.race(failing, late), TypeError);
      assertEquals(err.message, "own");
    });

    await t.step(
      "a promise still pending at the deadline: error() after about 100 ms",
      async () => {
        let built = 0;
        const begin = Date.now();
        using deadline = new Deadline(100);
        const err = await assertRejects(() =>
          deadline.race(never(), () => {
            built++;
            return new RangeError("too slow");
          }), RangeError);
        const took = Date.now() - begin;
        assertEquals([err.message, built, deadline.expired, deadline.remaining], [
          "too slow",
          1,
          true,
          0,
        ]);
        assert(took >= 99 && took < 1000, `rejected after ${took} ms`);
      },
    );

    await t.step("an expired deadline rejects even an already settled promise", async () => {
      using deadline = new Deadline(0);
      await delay(5);
      assertEquals(deadline.expired, true);
      await assertRejects(() => deadline.race(Promise.resolve(1), late), Error);
    });

    await t.step(
      "one deadline shared by two phases: the second gets what the first left",
      async () => {
        using deadline = new Deadline(300);
        await deadline.race(delay(100), late);
        const left = deadline.remaining;
        assert(left > 0 && left <= 200, `${left} ms left after 100 of 300`);
        const begin = Date.now();
        await assertRejects(() => deadline.race(never(), late), Error);
        assert(Date.now() - begin < 290, "the second phase got a fresh budget");
      },
    );
  },
);

Deno.test(
  "Deadline.on() runs a listener once when the deadline passes, and at once when it already has",
  sanitized,
  async (t) => {
    await t.step("registered before: runs once, at the deadline", async () => {
      using deadline = new Deadline(100);
      let runs = 0;
      deadline.on(() => runs++);
      await delay(30);
      assertEquals(runs, 0);
      await delay(120);
      assertEquals(runs, 1);
      await delay(60);
      assertEquals(runs, 1);
    });

    await t.step("registered after expiry: runs synchronously, once", async () => {
      using deadline = new Deadline(10);
      await delay(30);
      let runs = 0;
      deadline.on(() => runs++)();
      assertEquals(runs, 1);
    });

    await t.step("the returned function removes the listener", async () => {
      using deadline = new Deadline(30);
      const ran: string[] = [];
      const off = deadline.on(() => ran.push("removed"));
      deadline.on(() => ran.push("kept"));
      off();
      await delay(60);
      assertEquals(ran, ["kept"]);
    });
  },
);

Deno.test(
  "Deadline.clear() stops the timer: pending listeners never run and races wait for their promise",
  sanitized,
  async () => {
    const deadline = new Deadline(30);
    let runs = 0;
    deadline.on(() => runs++);
    const raced = deadline.race(delay(80).then(() => "finished"), late);
    deadline.clear();
    assertEquals(await raced, "finished");
    assertEquals([runs, deadline.expired], [0, false]);
    deadline.on(() => runs++);
    await delay(10);
    assertEquals(runs, 0);
  },
);

Deno.test(
  "An infinite Deadline has no timer: remaining is Infinity and race() returns the promise itself",
  sanitized,
  () => {
    // Not disposed on purpose: the op sanitizer fails the test if a timer was started.
    const deadline = new Deadline(Infinity);
    const work = Promise.resolve(7);
    assert(deadline.race(work, late) === work, "race() wrapped the promise");
    assertEquals([deadline.remaining, deadline.expired], [Infinity, false]);
    let runs = 0;
    deadline.on(() => runs++)();
    assertEquals(runs, 0);
  },
);

Deno.test(
  "A Deadline declared with `using` is cleared at the end of its block",
  sanitized,
  async () => {
    let runs = 0;
    let kept: Deadline;
    {
      using deadline = new Deadline(30);
      deadline.on(() => runs++);
      kept = deadline;
    }
    await delay(60);
    assertEquals([runs, kept.expired], [0, false]);
  },
);

Deno.test(
  "delay() waits its time, and an AbortSignal ends it early with the signal's reason",
  sanitized,
  async (t) => {
    await t.step("no signal: at least the time asked", async () => {
      const begin = Date.now();
      await delay(50);
      assert(Date.now() - begin >= 49, `resolved after ${Date.now() - begin} ms`);
    });

    await t.step(
      "aborted midway: rejects at once with the reason (and leaves no timer)",
      async () => {
        const controller = new AbortController();
        const begin = Date.now();
        const waiting = delay(10_000, { signal: controller.signal });
        setTimeout(() => controller.abort(new RangeError("stop")), 20);
        const err = await assertRejects(() => waiting, RangeError);
        assertEquals(err.message, "stop");
        assert(Date.now() - begin < 1000, `rejected after ${Date.now() - begin} ms`);
      },
    );

    await t.step("already aborted: rejects without waiting", async () => {
      const begin = Date.now();
      const err = await assertRejects(() => delay(10_000, { signal: AbortSignal.abort() }));
      assertEquals(err.name, "AbortError");
      assert(Date.now() - begin < 100);
    });

    await t.step("aborted after it resolved: nothing happens", async () => {
      const controller = new AbortController();
      await delay(5, { signal: controller.signal });
      controller.abort();
    });
  },
);
