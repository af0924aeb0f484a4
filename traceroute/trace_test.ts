// The trace engine with a fake probe method (no sockets): Butskoy's -w
// HERE/NEAR rule, the end of a trace, stray and duplicate replies, the
// in-flight limit and streaming. Streaming is shown by holding replies back
// until the test has seen a hop, not by the clock. The -w tests do measure
// the trace's duration: each bound sits at least 10× away from the expected
// wait and says why in a comment.
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { realtimeNs } from "../lib/rawsock/clock.ts";
import { type Hop, type ProbeMethod, type ProbeReply, trace, type TraceOptions } from "./trace.ts";

/** Holds the replies planned behind it until the test opens it. */
class Gate {
  isOpen = false;
  #waiters = new Set<() => void>();

  open(): void {
    this.isOpen = true;
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  /** Calls `wake` when the gate opens; returns the function that cancels this. */
  onOpen(wake: () => void): () => void {
    this.#waiters.add(wake);
    return () => this.#waiters.delete(wake);
  }
}

/**
 * What the fake network does with probe `index` at `ttl`: answers, after a
 * delay and, with a gate, not before the gate opens.
 */
type Plan = {
  from: string;
  delayMs: number;
  final?: boolean;
  annotation?: string;
  gate?: Gate;
}[];

interface Due {
  reply: ProbeReply;
  gate: Gate | undefined;
}

class FakeMethod implements ProbeMethod {
  readonly name = "udp" as const;
  readonly packetLength = 60;
  readonly sends: { index: number; ttl: number; inFlight: number }[] = [];
  #due: Due[] = [];
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
        reply: {
          index,
          from: p.from,
          receivedNs: now + BigInt(Math.round(p.delayMs * 1e6)),
          final: p.final ?? false,
          annotation: p.annotation ?? "",
        },
        gate: p.gate,
      });
    }
    const unanswered = this.sends.filter((s) => !this.#answered.has(s.index)).length;
    this.sends.push({ index, ttl, inFlight: unanswered + 1 });
    return now;
  }

  drain(): ProbeReply[] {
    const now = realtimeNs();
    const isReady = (d: Due) => d.reply.receivedNs <= now && (d.gate?.isOpen ?? true);
    const ready = this.#due.filter(isReady).map((d) => d.reply);
    this.#due = this.#due.filter((d) => !isReady(d));
    for (const r of ready) this.#answered.add(r.index);
    const extra = this.#extra.splice(0);
    return [...extra, ...ready];
  }

  /** Sleeps until the next reply is due or a gate opens, at most `timeoutMs`. */
  async wait(timeoutMs: number): Promise<void> {
    const now = realtimeNs();
    const open = this.#due.filter((d) => d.gate?.isOpen ?? true).map((d) => d.reply.receivedNs);
    const next = open.reduce((m, t) => t < m ? t : m, now + 10n ** 12n);
    const ms = Math.min(timeoutMs, Math.max(0, Number(next - now) / 1e6));
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, ms);
    const closed = new Set(this.#due.flatMap((d) => d.gate && !d.gate.isOpen ? [d.gate] : []));
    const cancels = [...closed].map((g) => g.onOpen(resolve));
    await promise;
    clearTimeout(timer);
    for (const cancel of cancels) cancel();
  }

  /** The TTLs whose probes have had a reply so far. */
  answeredTtls(): number[] {
    const ttls = this.sends.filter((s) => this.#answered.has(s.index)).map((s) => s.ttl);
    return [...new Set(ttls)];
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
  // Expected about 20 ms; without the rule the silent hop waits MAX, 5 s.
  // 2 s is 100× the expected wait and still well short of MAX.
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
  // Expected about 6 ms; without the rule the lost probes wait MAX, 5 s.
  // 2 s is over 100× the expected wait and still well short of MAX.
  assert(elapsed < 2000, `took ${elapsed} ms`);
});

Deno.test("trace() waits MAX for a silent hop when HERE and NEAR are 0", async () => {
  const { hops, elapsed } = await run(new FakeMethod(path(3, { silent: [2] })), {
    wait: { max: 0.3, here: 0, near: 0 },
  });
  assertEquals(hops[1]!.probes.map((p) => p.address ?? "*"), ["*", "*", "*"]);
  // A lower bound: load only lengthens a trace, so this cannot flake. With
  // HERE or NEAR wrongly applied the trace ends after about 6 ms.
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

Deno.test("trace() yields each hop while later hops' replies are still held back", async () => {
  // Replies to hop N+1 are held until the test has hop N. A trace that
  // waited for later hops before yielding would let their probes time out
  // (MAX, 5 s) and show them as `* * *`, so the addresses below fail it.
  const gates = [new Gate(), new Gate(), new Gate()];
  const m = new FakeMethod((_i, ttl) => [{
    from: ttl >= 4 ? "192.0.2.1" : `10.0.${ttl}.2`,
    delayMs: 1,
    final: ttl >= 4,
    // Probes beyond the destination (16 go out at once) wait with it.
    ...(ttl >= 2 ? { gate: gates[Math.min(ttl, 4) - 2]! } : {}),
  }]);
  const seen: string[][] = [];
  for await (const hop of trace("192.0.2.1", { resolveNames: false, openMethod: () => m })) {
    seen.push(hop.probes.map((p) => p.address ?? "*"));
    const later = m.answeredTtls().filter((ttl) => ttl > hop.ttl && ttl <= 4);
    assertEquals(later, [], `hops answered when hop ${hop.ttl} came`);
    gates[hop.ttl - 1]?.open();
  }
  assertEquals(seen, [
    ["10.0.1.2", "10.0.1.2", "10.0.1.2"],
    ["10.0.2.2", "10.0.2.2", "10.0.2.2"],
    ["10.0.3.2", "10.0.3.2", "10.0.3.2"],
    ["192.0.2.1", "192.0.2.1", "192.0.2.1"],
  ]);
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

/** A path whose first link takes 1500 bytes and the rest 1400 (reported by hop 1). */
class MtuPath implements ProbeMethod {
  readonly name = "udp" as const;
  packetLength = 65000;
  sizes: number[] = [];
  #due: ProbeReply[] = [];

  send(index: number, ttl: number): bigint {
    const now = realtimeNs();
    this.sizes.push(this.packetLength);
    const reply = { index, receivedNs: now, annotation: "", final: false };
    if (this.packetLength > 1500) {
      this.#due.push({ ...reply, from: "", mtu: 1500, local: true });
    } else if (ttl >= 2 && this.packetLength > 1400) {
      this.#due.push({ ...reply, from: "h1", mtu: 1400, final: true, annotation: "!F-1400" });
    } else {
      this.#due.push({ ...reply, from: `h${ttl}`, final: ttl === 3 });
    }
    return now;
  }
  drain(): ProbeReply[] {
    return this.#due.splice(0);
  }
  async wait(): Promise<void> {}
  flow(): undefined {
    return undefined;
  }
  resize(packetLength: number): void {
    this.packetLength = packetLength;
  }
  [Symbol.dispose](): void {}
}

Deno.test("trace() with mtu resends a probe at each smaller MTU reported and notes F=MTU", async (t) => {
  const path = new MtuPath();
  const hops = await collect({ mtu: true, openMethod: () => path });
  await t.step("the probe that met a new MTU is annotated, once", () => {
    assertEquals(
      hops.map((h) => h.probes.map((p) => `${p.address}${p.annotation}`).join(" ")),
      ["h1F=1500 h1 h1", "h2F=1400 h2 h2", "h3 h3 h3"],
    );
  });
  await t.step("each hop carries the size that reached it", () => {
    assertEquals(hops.map((h) => h.mtu), [1500, 1400, 1400]);
  });
  await t.step("one probe at a time, sizes shrinking as reported", () => {
    assertEquals(path.sizes.slice(0, 5), [65000, 1500, 1500, 1500, 1500]);
    assertEquals(path.sizes.filter((s) => s === 1400).length, 6);
  });
});

Deno.test("trace() without mtu ends at a too-big error with !F-MTU and no resend", async () => {
  const path = new MtuPath();
  path.packetLength = 1450;
  const hops = await collect({ openMethod: () => path, wait: { max: 0.05, here: 0, near: 0 } });
  assertEquals(hops.map((h) => h.probes.map((p) => p.annotation).join(",")), [
    ",,",
    "!F-1400,!F-1400,!F-1400",
  ]);
  assertEquals(hops[1]!.probes[0]!.address, "h1");
  assertEquals(hops[0]!.mtu, undefined);
});

async function collect(options: TraceOptions): Promise<Hop[]> {
  const hops: Hop[] = [];
  for await (const hop of trace("192.0.2.1", { resolveNames: false, ...options })) hops.push(hop);
  return hops;
}
