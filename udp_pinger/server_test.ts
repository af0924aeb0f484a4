import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createRandom } from "../lib/random.ts";
import { PingService, serve } from "./server.ts";
import { replayMemory as sharedReplayMemory, ReplayTable, SeenWindows } from "./_seen.ts";
import { assertThrows } from "../lib/testing/assert.ts";
import { delay } from "../lib/deadline.ts";
import { SocketError } from "../lib/rawsock/errno.ts";
import { openSocket } from "../lib/rawsock/socket.ts";
import {
  encodeHeartbeat,
  encodePing,
  encodeStatsRequest,
  parseMessage,
  parseStamps,
  signDatagram,
  verifyDatagram,
  writeStamp,
} from "./protocol.ts";

const peer = { hostname: "192.0.2.1", port: 5000 };
const text = new TextEncoder();

function droppedSeqs(service: PingService, n: number): number[] {
  const dropped: number[] = [];
  for (let seq = 1; seq <= n; seq++) {
    if (service.handle(encodePing(seq, 0), peer, seq).length === 0) dropped.push(seq);
  }
  return dropped;
}

Deno.test("PingService drops the same pings for the same seed", async (t) => {
  await t.step("same seed, same drops, whatever the other options", () => {
    const a = droppedSeqs(new PingService({ loss: 0.3, seed: 42 }), 1000);
    const b = droppedSeqs(new PingService({ loss: 0.3, seed: 42, delay: 5, jitter: 2 }), 1000);
    assertEquals(a, b);
    // 30% of 1000 with a binomial spread (sd ≈ 14.5): far outside is a broken PRNG.
    assert(a.length > 220 && a.length < 380, `dropped ${a.length}`);
  });
  await t.step("another seed, other drops", () => {
    const a = droppedSeqs(new PingService({ loss: 0.3, seed: 42 }), 200);
    const b = droppedSeqs(new PingService({ loss: 0.3, seed: 43 }), 200);
    assert(JSON.stringify(a) !== JSON.stringify(b));
  });
  await t.step("the counters add up", () => {
    const service = new PingService({ loss: 0.3, seed: 7 });
    const dropped = droppedSeqs(service, 1000).length;
    assertEquals(service.counters(peer), {
      rx: 1000,
      dup: 0,
      drop: dropped,
      tx: 1000 - dropped,
      extra: 0,
      held: 0,
    });
  });
  await t.step("createRandom() stays in [0, 1)", () => {
    const next = createRandom(1);
    for (let i = 0; i < 10000; i++) {
      const x = next();
      assert(x >= 0 && x < 1);
    }
  });
});

Deno.test("PingService ignores malformed datagrams and never replies larger than the request", async (t) => {
  const service = new PingService({ duplicate: 0.5, seed: 1 });
  await t.step("junk is counted and not answered", () => {
    for (
      const junk of [
        "",
        "hello",
        "Ping",
        "Ping x",
        "STATS AB rx=1 dup=0 drop=0 tx=1 extra=0 held=0",
      ]
    ) {
      assertEquals(service.handle(text.encode(junk), peer, 0), []);
    }
    assertEquals(service.malformed, 5);
    assertEquals(service.clients, 0, "junk creates no client state");
  });
  await t.step("random datagrams: every reply is at most the request's size", () => {
    const next = createRandom(99);
    for (let i = 0; i < 5000; i++) {
      const size = Math.floor(next() * 300);
      const data = new Uint8Array(size).map(() => Math.floor(next() * 256));
      // Half of them start like real messages, to reach the reply paths.
      const prefix = ["Ping 1 ", "Stats x ", "Heartbeat 1 2 3", ""][i % 4]!;
      const input = new Uint8Array([...text.encode(prefix), ...data]);
      for (const out of service.handle(input, { ...peer, port: 6000 + (i % 10) }, i)) {
        assert(
          out.data.length <= input.length,
          `reply ${out.data.length} > request ${input.length}`,
        );
      }
    }
  });
  await t.step("a short stats request gets no reply rather than a larger one", () => {
    assertEquals(service.handle(text.encode("Stats a"), peer, 0), []);
    const [reply] = service.handle(encodeStatsRequest("a"), peer, 0);
    assertEquals(parseMessage(reply!.data)?.kind, "stats-reply");
  });
});

Deno.test("PingService counts a repeated sequence number as a duplicate and still echoes it", () => {
  const service = new PingService();
  assertEquals(service.handle(encodePing(1, 0), peer, 0).length, 1);
  assertEquals(service.handle(encodePing(1, 0), peer, 1).length, 1);
  assertEquals(service.handle(encodePing(2, 0), peer, 2).length, 1);
  // Far beyond the window, then an old one inside it.
  service.handle(encodePing(5000, 0), peer, 3);
  service.handle(encodePing(4999, 0), peer, 4);
  service.handle(encodePing(4999, 0), peer, 5);
  assertEquals(service.counters(peer), { rx: 4, dup: 2, drop: 0, tx: 4, extra: 0, held: 0 });
});

Deno.test("PingService applies delay, jitter and duplication", async (t) => {
  await t.step("delay ± jitter stays in range", () => {
    const service = new PingService({ delay: 10, jitter: 4, seed: 3 });
    for (let seq = 1; seq <= 500; seq++) {
      const [out] = service.handle(encodePing(seq, 0), peer, seq);
      assert(out!.delay >= 6 && out!.delay <= 14, `delay ${out!.delay}`);
    }
  });
  await t.step("a delayed reply is held, then counted as sent or dropped on release", () => {
    const service = new PingService({ delay: 50 });
    const [out] = service.handle(encodePing(1, 0), peer, 0);
    service.handle(encodePing(2, 0), peer, 1);
    assertEquals(out!.held, true);
    assertEquals(service.counters(peer), { rx: 2, dup: 0, drop: 0, tx: 0, extra: 0, held: 2 });
    service.release(peer, true);
    service.release(peer, false);
    assertEquals(service.counters(peer), { rx: 2, dup: 0, drop: 1, tx: 1, extra: 0, held: 0 });
  });
  await t.step("duplicate 1 answers every ping twice", () => {
    const service = new PingService({ duplicate: 1 });
    assertEquals(service.handle(encodePing(1, 0), peer, 0).length, 2);
    assertEquals(service.counters(peer)?.extra, 1);
  });
});

Deno.test("PingService keeps bounded per-client state and logs one line per session", async (t) => {
  await t.step("the least recently seen client is evicted beyond maxClients", () => {
    const log: string[] = [];
    const service = new PingService({ maxClients: 3, log: (l) => log.push(l) });
    for (let port = 1; port <= 5; port++) service.handle(encodePing(1, 0), { ...peer, port }, port);
    assertEquals(service.clients, 3);
    assertEquals(log.length, 2);
    assert(log[0]!.startsWith("192.0.2.1:1 session ended (evicted: too many clients): 1 pings"));
  });
  await t.step("a run of pings from one client keeps it most recently seen", () => {
    // Exercises the fast path for the newest client: runs from one client,
    // then another, then the first again; the eviction must still pick the
    // least recently seen.
    const log: string[] = [];
    const service = new PingService({ maxClients: 2, log: (l) => log.push(l) });
    const order = [1, 1, 2, 2, 1, 1, 3]; // port of each ping; 2 is then least recent
    order.forEach((port, i) => service.handle(encodePing(i + 1, 0), { ...peer, port }, i));
    assertEquals(log.length, 1);
    assert(log[0]!.startsWith("192.0.2.1:2 session ended (evicted: too many clients): 2 pings"));
    assertEquals(service.counters({ ...peer, port: 1 })?.rx, 4);
    // A forgotten client that comes back starts a new session.
    service.finish(10);
    service.handle(encodePing(99, 0), { ...peer, port: 3 }, 11);
    assertEquals(service.counters({ ...peer, port: 3 })?.rx, 1);
  });
  await t.step("an idle session is logged and forgotten", () => {
    const log: string[] = [];
    const service = new PingService({ sessionTimeout: 1000, log: (l) => log.push(l) });
    const v6 = { hostname: "2001:db8::1", port: 7 };
    for (let seq = 1; seq <= 3; seq++) service.handle(encodePing(seq, 0), v6, seq * 10);
    service.sweep(500);
    assertEquals(log.length, 0);
    service.sweep(1031);
    assertEquals(service.clients, 0);
    assertEquals(log.length, 1);
    assert(log[0]!.startsWith("[2001:db8::1]:7 session ended (idle): 3 pings, 3 replied"), log[0]);
  });
  await t.step("finish() logs the open sessions", () => {
    const log: string[] = [];
    const service = new PingService({ log: (l) => log.push(l) });
    service.handle(encodePing(1, 0), peer, 0);
    service.finish(2000);
    assertEquals(log.length, 1);
    assert(log[0]!.includes("(server stopped)"));
  });
});

Deno.test("PingService reports lost heartbeats and a client that stops as gone", () => {
  const log: string[] = [];
  const service = new PingService({ deadAfter: 3, log: (l) => log.push(l) });
  const wall = 1_700_000_000_000;
  for (const seq of [1, 2, 3, 6, 7]) {
    const now = seq * 100;
    const out = service.handle(encodeHeartbeat(seq, (wall + now - 2) / 1000, 100), peer, now, {
      wallClock: wall + now,
    });
    assertEquals(out, [], "heartbeats are not answered");
  }
  assertEquals(log, ["192.0.2.1:5000 heartbeat: 2 lost (seq 4..5), gap 300 ms"]);
  service.sweep(1000); // 300 ms after the last beat: 3 beats, not more than 3
  assertEquals(log.length, 1);
  service.sweep(1001);
  assertEquals(log.length, 2);
  assert(
    log[1]!.startsWith(
      "192.0.2.1:5000 gone: no heartbeat for 3 beats (301 ms, --dead-after 3); 5 beats, 2 lost",
    ),
    log[1],
  );
  assert(log[1]!.includes("one-way delay min/avg/max 2.000/2.000/2.000 ms"), log[1]);
  assertEquals(service.clients, 0);
});

Deno.test("serve() with 2 threads spreads clients over both receive loops, and holds its port", async (t) => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, threads: 2, quiet: true });
  await server.ready;
  await t.step("32 clients, each answered, on both loops", async () => {
    // The kernel picks a socket by a hash of the sender's address and port:
    // with 32 source ports, all on one loop has odds of 2 in 2^32.
    const clients = Array.from(
      { length: 32 },
      () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
    );
    try {
      const replies = await Promise.all(clients.map(async (conn, i) => {
        await conn.send(encodePing(i, 0), server.addr);
        const [data] = await conn.receive();
        return new TextDecoder().decode(data);
      }));
      assertEquals(replies, clients.map((_, i) => `PING ${i} 0.000000`));
    } finally {
      for (const conn of clients) conn.close();
    }
    const loops = server.threads();
    assertEquals(loops.length, 2);
    assertEquals(loops[0]!.datagrams + loops[1]!.datagrams, 32);
    assertEquals(loops[0]!.replies + loops[1]!.replies, 32);
    assert(loops.every((l) => l.datagrams > 0), `load not spread: ${JSON.stringify(loops)}`);
    assertEquals(loops[0]!.clients + loops[1]!.clients, 32);
  });
  await t.step("a second server cannot join the port, SO_REUSEPORT or not", () => {
    for (const threads of [1, 2]) {
      const err = assertThrows(
        () => serve({ hostname: "127.0.0.1", port: server.addr.port, threads, quiet: true }),
        SocketError,
      );
      assertEquals(err.code, "EADDRINUSE");
    }
  });
});

Deno.test("PingService writes its stamps over a stamped ping's padding, never growing it", async (t) => {
  const service = new PingService();
  const at = { rxSeconds: 1700000000, rxNanoseconds: 123456789 };
  await t.step("room for them: rx now, tx where the caller writes it", () => {
    const ping = encodePing(7, 1.5, { stamps: true, size: 120 });
    const [out] = service.handle(ping.slice(), peer, 0, at);
    assertEquals(out!.data.length, 120);
    const echo = new TextDecoder().decode(out!.data);
    assert(echo.startsWith("PING 7 1.500000 STAMPS rx=1700000000.123456789 tx="), echo);
    writeStamp(out!.data, out!.txAt!, 1700000000, 123460000);
    assertEquals(parseStamps(out!.data), {
      rxSeconds: 1700000000,
      rxNanoseconds: 123456789,
      txSeconds: 1700000000,
      txNanoseconds: 123460000,
    });
  });
  await t.step("no room, or no marker: the plain echo", () => {
    for (const text of ["Ping 8 1.5 stamps xx", "Ping 9 1.5 " + "x".repeat(100)]) {
      const [out] = service.handle(new TextEncoder().encode(text), peer, 0, at);
      assertEquals(out!.txAt, undefined);
      assertEquals(new TextDecoder().decode(out!.data), text.toUpperCase());
    }
  });
});

Deno.test("PingService with hmac: refuses a wrong key, detects a replay, signs its replies", async (t) => {
  const key = new TextEncoder().encode("k1");
  const signed = (seq: number, as = key, wall = Date.now()) => {
    const ping = encodePing(seq, wall / 1000, { auth: true });
    signDatagram(ping, as, "0123456789ab");
    return ping;
  };
  await t.step("a signed ping is answered, and the echo carries the session's signature", () => {
    const service = new PingService({ hmac: key });
    const [out] = service.handle(signed(1), peer, 0);
    assertEquals(out!.sessionId, "0123456789ab");
    signDatagram(out!.data, key, out!.sessionId!);
    assertEquals(verifyDatagram(out!.data, key), "0123456789ab");
    assertEquals([service.rejected, service.replayed], [0, 0]);
  });
  await t.step("a wrong key, no signature, or a stale send time: refused", () => {
    const service = new PingService({ hmac: key, sessionTimeout: 30_000 });
    const wrong = signed(1, new TextEncoder().encode("k2"));
    const plain = encodePing(2, Date.now() / 1000, { size: 120 });
    const stale = signed(3, key, Date.now() - 60_000);
    for (const data of [wrong, plain, stale]) assertEquals(service.handle(data, peer, 0), []);
    assertEquals(service.rejected, 3);
    assertEquals(service.clients, 0, "refused datagrams create no client state");
  });
  await t.step("a copy, from the same address or another: a replay, not answered", () => {
    const service = new PingService({ hmac: key });
    const ping = signed(5);
    assertEquals(service.handle(ping.slice(), peer, 0).length, 1);
    assertEquals(service.handle(ping.slice(), peer, 1), []);
    assertEquals(service.handle(ping.slice(), { hostname: "198.51.100.7", port: 1 }, 2), []);
    assertEquals(service.replayed, 2);
    assertEquals(service.handle(signed(6), peer, 3).length, 1);
  });
  await t.step("services sharing a replay table refuse each other's copies", () => {
    const replayMemory = sharedReplayMemory(100);
    const [a, b] = [0, 1].map(() => new PingService({ hmac: key, replayMemory }));
    const ping = signed(7);
    assertEquals(a!.handle(ping.slice(), peer, 0).length, 1);
    assertEquals(b!.handle(ping.slice(), { hostname: "198.51.100.7", port: 1 }, 0), []);
    assertEquals([a!.replayed, b!.replayed], [0, 1]);
  });
  await t.step("without hmac, the course's plain mode: a signed ping is just a ping", () => {
    const service = new PingService();
    assertEquals(service.handle(signed(1), peer, 0).length, 1);
    assertEquals(service.handle(encodePing(2, 0), peer, 0).length, 1);
  });
});

Deno.test("PingService caps a client's rate and session length, counting the rest as dropped", async (t) => {
  const answered = (service: PingService, times: number[], from = peer) =>
    times.map((ms, i) => service.handle(encodePing(i + 1, 0), from, ms).length);
  await t.step("--max-rate 10: a burst of 5, then one per 100 ms", () => {
    const service = new PingService({ maxRate: 10 });
    // 8 at once, then one every 50 ms for 500 ms.
    const times = [...Array(8).fill(0), ...Array.from({ length: 10 }, (_, i) => 50 * (i + 1))];
    const got = answered(service, times);
    assertEquals(got.slice(0, 8), [1, 1, 1, 1, 1, 0, 0, 0]);
    // 50 ms of tokens is half a ping: every second one is answered.
    assertEquals(got.slice(8), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
    const c = service.counters(peer)!;
    assertEquals([c.rx, c.drop, c.tx], [18, 8, 10]);
    // Another client has its own bucket.
    assertEquals(answered(service, [0], { hostname: "192.0.2.2", port: 1 }), [1]);
  });
  await t.step("--max-duration 1 s: answered for a second from the first ping", () => {
    const service = new PingService({ maxDuration: 1000 });
    assertEquals(answered(service, [0, 500, 1000, 1001, 5000]), [1, 1, 1, 0, 0]);
    assertEquals(service.counters(peer)!.drop, 2);
  });
});

Deno.test("SeenWindows and ReplayTable: a sliding window of sequence numbers per session", async (t) => {
  await t.step("seen, new, too old, and a jump past the window", () => {
    const w = new SeenWindows(2);
    const cases: [number, boolean][] = [
      [5, true],
      [5, false],
      [3, true],
      [3, false],
      [1030, true], // 5 is now 1025 behind: too old
      [5, false],
      [1029, true],
      [2 ** 40 + 3, true], // beyond 32 bits: bit positions still right
      [2 ** 40 + 3, false],
      [2 ** 40 + 2, true],
    ];
    for (const [seq, fresh] of cases) assertEquals(w.mark(0, seq, false), fresh, `seq ${seq}`);
    assertEquals(w.mark(1, 5, false), true, "windows are independent");
    assertEquals(w.mark(0, 1, true), true, "too old counts as tooOld says");
  });
  await t.step("a full bucket forgets its least recently seen session", () => {
    // Room for 8: one bucket.
    const table = new ReplayTable(sharedReplayMemory(8));
    const ids = Array.from({ length: 9 }, (_, i) => i.toString(16).padStart(12, "0"));
    for (const [i, id] of ids.slice(0, 8).entries()) assert(table.fresh(id, 1, i + 1));
    assert(!table.fresh(ids[0]!, 1, 10), "remembered, and now the most recently seen");
    assert(table.fresh(ids[8]!, 1, 11));
    assert(table.fresh(ids[1]!, 1, 12), "the least recently seen was forgotten");
    assert(!table.fresh(ids[0]!, 1, 13));
  });
  await t.step("memory not made for a table is refused", () => {
    assertThrows(() => new ReplayTable(new SharedArrayBuffer(100)), RangeError);
  });
});

Deno.test("serve() with 2 threads and hmac: a copy from another address is a replay on the other loop too", async () => {
  const key = new TextEncoder().encode("k1");
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    threads: 2,
    hmac: key,
    quiet: true,
  });
  await server.ready;
  const ping = encodePing(1, Date.now() / 1000, { auth: true });
  signDatagram(ping, key, "00000000abcd");
  const senders: Deno.DatagramConn[] = [];
  try {
    // The kernel picks a loop by a hash of the source address and port:
    // copies from new ports until both loops have had one (odds of 64
    // misses: 2 in 2^64).
    // Handled: answered or refused (counted after the datagram is).
    const seen = () => server.threads().map((l) => l.replies + l.replayed);
    while (senders.length < 64 && seen().some((n) => n === 0)) {
      const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      senders.push(conn);
      const before = seen().reduce((a, b) => a + b, 0);
      await conn.send(ping, server.addr);
      while (seen().reduce((a, b) => a + b, 0) === before) await delay(1);
    }
    const loops = server.threads();
    assert(
      loops.every((l) => l.datagrams > 0),
      `one loop got every copy: ${JSON.stringify(loops)}`,
    );
    // The original is answered once; every copy, on either loop, is refused and counted.
    assertEquals(loops[0]!.replies + loops[1]!.replies, 1);
    assertEquals(loops[0]!.replayed + loops[1]!.replayed, senders.length - 1);
    const first = loops.findIndex((l) => l.replies === 1);
    assert(loops[1 - first]!.replayed > 0, "the loop without the original refused its copy");
    const [reply] = await senders[0]!.receive();
    assertEquals(verifyDatagram(reply, key), "00000000abcd");
  } finally {
    for (const conn of senders) conn.close();
  }
});

Deno.test("serve() with realtime: its loops wait in SCHED_FIFO, leave it under a flood and come back", async () => {
  const privileged = Deno.uid() === 0;
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    threads: 1,
    realtime: 1,
    quiet: true,
  });
  await server.ready;
  // A loop sets its class once it runs; without privilege the kernel refuses it.
  assertEquals(server.threads()[0]!.realtime, privileged);
  if (!privileged) return;
  // A flood far above a fifth of a core: synchronous sends in a tight loop.
  using sock = openSocket({ kind: "udp", family: 4, receiveTtl: false, receiveErrors: false });
  sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
  const to = { family: 4 as const, address: "127.0.0.1", port: server.addr.port };
  const ping = encodePing(1, 0);
  for (let i = 0; i < 200_000 && server.threads()[0]!.realtimeExits === 0; i++) {
    try {
      sock.send(ping, to);
    } catch {
      // A full send queue: the next tries again.
    }
  }
  assert(server.threads()[0]!.realtimeExits >= 1, "the loop never left the real-time class");
  // Quiet again: back in the class after a second, however long the
  // replies queued meanwhile take to drain.
  while (!server.threads()[0]!.realtime) await delay(50);
  assertEquals(server.threads()[0]!.datagrams > 0, true);
});

Deno.test("serve() refuses a real-time priority outside 0 to 99", () => {
  for (const bad of [-1, 100, 1.5]) {
    assertThrows(() => serve({ hostname: "127.0.0.1", port: 0, realtime: bad }), RangeError);
  }
});
