// The trace engine with a fake probe method (no sockets): Butskoy's -w
// HERE/NEAR rule, the end of a trace, stray and duplicate replies, the
// in-flight limit and streaming. Margins are wide (tens of times the
// expected waits), so the assertions do not depend on the machine's speed.
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { realtimeNs } from "../lib/rawsock/clock.ts";
import { type Hop, type ProbeMethod, type ProbeReply, trace, type TraceOptions } from "./trace.ts";

/** What the fake network does with probe `index` at `ttl`: answers, after a delay. */
type Plan = { from: string; delayMs: number; final?: boolean; annotation?: string }[];

class FakeMethod implements ProbeMethod {
  readonly name = "udp" as const;
  readonly packetLength = 60;
  readonly sends: { index: number; ttl: number; inFlight: number }[] = [];
  #due: ProbeReply[] = [];
  #answered = new Set<number>();
  #plan: (index: number, ttl: number) => Plan;
  #extra: ProbeReply[];

  constructor(plan: (index: number, ttl: number) => Plan, extra: ProbeReply[] = []) {
    this.#plan = plan;
    this.#extra = extra;
  }

  send(index: number, ttl: number): bigint {
    const now = realtimeNs();
    for (const p of this.#plan(index, ttl)) {
      this.#due.push({
        index,
        from: p.from,
        receivedNs: now + BigInt(Math.round(p.delayMs * 1e6)),
        final: p.final ?? false,
        annotation: p.annotation ?? "",
      });
    }
    const unanswered = this.sends.filter((s) => !this.#answered.has(s.index)).length;
    this.sends.push({ index, ttl, inFlight: unanswered + 1 });
    return now;
  }

  drain(): ProbeReply[] {
    const now = realtimeNs();
    const ready = this.#due.filter((r) => r.receivedNs <= now);
    this.#due = this.#due.filter((r) => r.receivedNs > now);
    for (const r of ready) this.#answered.add(r.index);
    const extra = this.#extra.splice(0);
    return [...extra, ...ready];
  }

  async wait(timeoutMs: number): Promise<void> {
    const now = realtimeNs();
    const next = this.#due.reduce((m, r) => r.receivedNs < m ? r.receivedNs : m, now + 10n ** 12n);
    const ms = Math.min(timeoutMs, Math.max(0, Number(next - now) / 1e6));
    await new Promise((r) => setTimeout(r, ms));
  }

  flow() {
    return undefined;
  }

  disposed = 0;

  [Symbol.dispose](): void {
    this.disposed++;
  }
}

/** A path of routers 10.0.N.2 and a destination at `hops`. */
function path(hops: number, opts: { silent?: number[]; delayMs?: number } = {}) {
  return (_index: number, ttl: number): Plan => {
    if (opts.silent?.includes(ttl)) return [];
    const delayMs = opts.delayMs ?? 1;
    if (ttl >= hops) return [{ from: "192.0.2.1", delayMs, final: true }];
    return [{ from: `10.0.${ttl}.2`, delayMs }];
  };
}

async function run(method: FakeMethod, options: TraceOptions = {}) {
  const started = performance.now();
  const hops: (Hop & { at: number })[] = [];
  const t = trace("192.0.2.1", { resolveNames: false, ...options, openMethod: () => method });
  for await (const hop of t) hops.push({ ...hop, at: performance.now() - started });
  return { hops, elapsed: performance.now() - started, summary: t.summary() };
}

Deno.test("trace() ends a silent hop's wait at NEAR × a later hop's round trip", async () => {
  // NEAR 10 × (1 ms + 1 ms) = 20 ms instead of MAX 5 s.
  const { hops, elapsed, summary } = await run(new FakeMethod(path(4, { silent: [2] })));
  assertEquals(hops.map((h) => h.probes.map((p) => p.address ?? "*")), [
    ["10.0.1.2", "10.0.1.2", "10.0.1.2"],
    ["*", "*", "*"],
    ["10.0.3.2", "10.0.3.2", "10.0.3.2"],
    ["192.0.2.1", "192.0.2.1", "192.0.2.1"],
  ]);
  assert(elapsed < 2000, `took ${elapsed} ms`);
  assert(summary.reached);
});

Deno.test("trace() ends a lost probe's wait at HERE × its hop's round trip", async () => {
  // Only the first probe of each hop answers; nothing later answers either
  // (one hop, the destination), so only HERE applies: 3 × (1 + 1) ms.
  const m = new FakeMethod((index) =>
    index % 3 === 0 ? [{ from: "192.0.2.1", delayMs: 1, final: true }] : []
  );
  const { hops, elapsed } = await run(m, { maxHops: 1 });
  assertEquals(hops[0]!.probes.map((p) => p.address ?? "*"), ["192.0.2.1", "*", "*"]);
  assert(elapsed < 2000, `took ${elapsed} ms`);
});

Deno.test("trace() waits MAX for a silent hop when HERE and NEAR are 0", async () => {
  const { hops, elapsed } = await run(new FakeMethod(path(3, { silent: [2] })), {
    wait: { max: 0.3, here: 0, near: 0 },
  });
  assertEquals(hops[1]!.probes.map((p) => p.address ?? "*"), ["*", "*", "*"]);
  assert(elapsed >= 290, `took ${elapsed} ms`);
});

Deno.test("trace() stops at the hop of a final reply and keeps its annotation", async (t) => {
  await t.step("the destination", async () => {
    const m = new FakeMethod(path(3));
    const { hops, summary } = await run(m);
    assertEquals(hops.length, 3);
    assert(summary.reached);
    // Probes in flight beyond the destination were sent (16 at once) but not shown.
    assert(summary.probesSent >= 16, `${summary.probesSent} sent`);
  });
  await t.step("an unreachable", async () => {
    const m = new FakeMethod((_i, ttl) =>
      ttl === 1
        ? [{ from: "10.0.1.2", delayMs: 1 }]
        : [{ from: "10.0.1.2", delayMs: 1, final: true, annotation: "!X" }]
    );
    const { hops, summary } = await run(m);
    assertEquals(hops.length, 2);
    assertEquals(hops[1]!.probes.map((p) => p.annotation), ["!X", "!X", "!X"]);
    assert(!summary.reached);
  });
});

Deno.test("trace() ignores stray and duplicate replies", async () => {
  const stray: ProbeReply = {
    index: 999,
    from: "203.0.113.9",
    receivedNs: realtimeNs(),
    final: true,
    annotation: "",
  };
  const m = new FakeMethod((_i, ttl) => {
    const from = ttl >= 2 ? "192.0.2.1" : "10.0.1.2";
    // Every probe is answered twice; the copy comes later, from elsewhere.
    return [
      { from, delayMs: 1, final: ttl >= 2 },
      { from: "198.51.100.7", delayMs: 3, final: true, annotation: "!H" },
    ];
  }, [stray]);
  const { hops } = await run(m);
  assertEquals(hops.map((h) => h.probes.map((p) => `${p.address}${p.annotation}`)), [
    ["10.0.1.2", "10.0.1.2", "10.0.1.2"],
    ["192.0.2.1", "192.0.2.1", "192.0.2.1"],
  ]);
});

Deno.test("trace() keeps at most `simultaneous` probes unanswered", async () => {
  const m = new FakeMethod(path(6, { delayMs: 3 }));
  const { hops } = await run(m, { simultaneous: 4 });
  assertEquals(hops.length, 6);
  assert(m.sends.every((s) => s.inFlight <= 4), JSON.stringify(m.sends));
  assertEquals(m.sends.map((s) => s.ttl).slice(0, 6), [1, 1, 1, 2, 2, 2]);
});

Deno.test("trace() yields each hop as soon as it and the earlier ones are complete", async () => {
  // The destination (hop 3) answers after 400 ms; hops 1 and 2 after 1 ms.
  const m = new FakeMethod((_i, ttl) =>
    ttl >= 3
      ? [{ from: "192.0.2.1", delayMs: 400, final: true }]
      : [{ from: `10.0.${ttl}.2`, delayMs: 1 }]
  );
  const { hops } = await run(m);
  assertEquals(hops.length, 3);
  assert(hops[0]!.at < 300 && hops[1]!.at < 300, `hops at ${hops.map((h) => h.at)}`);
  assert(hops[2]!.at >= 390, `hop 3 at ${hops[2]!.at}`);
});

Deno.test("trace() probes from the first TTL and numbers probes as Butskoy", async () => {
  const m = new FakeMethod(path(4));
  const { hops } = await run(m, { firstHop: 3, queries: 2 });
  assertEquals(hops.map((h) => h.ttl), [3, 4]);
  // Probe numbers count from TTL 1: (ttl - 1) × queries + k.
  assertEquals(m.sends.slice(0, 4).map((s) => s.index), [4, 5, 6, 7]);
});

Deno.test("a trace closes its probe method when iterated to the end or closed early", async (t) => {
  await t.step("iterated", async () => {
    const m = new FakeMethod(path(2));
    await run(m);
    assertEquals(m.disposed, 1);
  });
  await t.step("started, then closed without iterating", async () => {
    const m = new FakeMethod(path(2));
    await using tr = trace("192.0.2.1", { resolveNames: false, openMethod: () => m });
    const target = await tr.target();
    assertEquals([target.address, target.family, target.maxHops], ["192.0.2.1", 4, 30]);
    await tr.close();
    assertEquals(m.disposed, 1);
  });
  await t.step("left by break", async () => {
    const m = new FakeMethod(path(5));
    for await (const hop of trace("192.0.2.1", { resolveNames: false, openMethod: () => m })) {
      if (hop.ttl === 2) break;
    }
    assertEquals(m.disposed, 1);
  });
});
