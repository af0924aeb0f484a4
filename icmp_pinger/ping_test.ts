import { assert, assertEquals, assertRejects } from "../lib/testing/assert.ts";
import { ping, type PingEvent } from "./ping.ts";

async function collect(events: AsyncIterable<PingEvent>): Promise<PingEvent[]> {
  const all: PingEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

Deno.test("ping() reports each reply with a kernel-timed round trip, then a summary", async (t) => {
  for (const host of ["127.0.0.1", "::1"]) {
    await t.step(host, async () => {
      await using session = await ping(host, { count: 3, intervalMs: 20 });
      assertEquals(session.address, host);
      assertEquals(session.numeric, true);
      const events = await collect(session);
      const replies = events.filter((e) => e.type === "reply");
      assertEquals(replies.map((r) => r.seq), [1, 2, 3]);
      for (const r of replies) {
        assertEquals(r.bytes, 64);
        assertEquals(r.from, host);
        assertEquals(r.duplicate, false);
        assert(r.rttUs !== undefined && r.rttUs >= 0 && r.rttUs < 1_000_000, `rtt ${r.rttUs}`);
      }
      assertEquals(events.filter((e) => e.type === "sent").length, 3);
      const s = await session.summary;
      assertEquals([s.transmitted, s.received, s.duplicates, s.errors], [3, 3, 0, 0]);
      assertEquals(s.lossPercent, 0);
      assert(s.rtt !== undefined && s.rtt.min <= s.rtt.avg && s.rtt.avg <= s.rtt.max, "rtt order");
      assert(s.timeMs >= 30, `three requests 20 ms apart take about 40 ms, got ${s.timeMs}`);
    });
  }
});

Deno.test("ping() sends no time in payloads under 16 bytes, like iputils", async () => {
  await using session = await ping("127.0.0.1", { count: 1, size: 8 });
  const events = await collect(session);
  const reply = events.find((e) => e.type === "reply");
  assert(reply?.type === "reply", "a reply");
  assertEquals(reply.bytes, 16);
  assertEquals(reply.rttUs, undefined);
  const s = await session.summary;
  assertEquals([s.timing, s.rtt], [false, undefined]);
});

Deno.test("ping() stops on abort and still gives its summary", async () => {
  const controller = new AbortController();
  await using session = await ping("127.0.0.1", { intervalMs: 10, signal: controller.signal });
  let replies = 0;
  for await (const e of session) {
    if (e.type === "reply" && ++replies === 3) controller.abort();
  }
  const s = await session.summary;
  assert(s.transmitted >= 3 && s.received >= 3, `${s.transmitted}/${s.received}`);
});

Deno.test("ping() sessions in one process never count each other's replies", async () => {
  await using a = await ping("127.0.0.1", { count: 20, intervalMs: 5 });
  await using b = await ping("127.0.0.1", { count: 20, intervalMs: 5, spin: false });
  const [ea, eb] = await Promise.all([collect(a), collect(b)]);
  for (const events of [ea, eb]) {
    const seqs = events.flatMap((e) => e.type === "reply" ? [e.seq] : []);
    assertEquals(seqs, Array.from({ length: 20 }, (_, k) => k + 1));
    assert(events.every((e) => e.type !== "reply" || !e.duplicate), "no duplicates");
  }
  assertEquals((await a.summary).received, 20);
  assertEquals((await b.summary).received, 20);
});

Deno.test("ping() rejects an unknown host and a size out of range", async () => {
  const err = await assertRejects(() => ping("nowhere.invalid", { count: 1 }));
  assertEquals(err.name, "ResolveError");
  await assertRejects(() => ping("127.0.0.1", { size: 65508 }), RangeError);
  await assertRejects(() => ping("127.0.0.1", { ttl: 0 }), RangeError);
});
