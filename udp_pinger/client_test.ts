import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { ResolveError } from "../lib/resolve.ts";
import { serve } from "./server.ts";
import {
  formatEvent,
  formatMs,
  formatSummary,
  splitHostPort,
  udpPing,
  type UdpPingEvent,
} from "./client.ts";
import {
  encodePing,
  parseMessage,
  signDatagram,
  toUpperAscii,
  verifyDatagram,
} from "./protocol.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const PY_SERVER = new URL("./testdata/UDPPingerServer.py", import.meta.url).pathname;
const PY_CLIENT = new URL("./testdata/UDPPingerClient.py", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";

/** Runs a command to completion and returns its exit code and output. */
async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Reads lines from a stream until one matches, and returns the match. */
async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
): Promise<{ match: RegExpExecArray; rest: () => Promise<string> }> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before a line matching ${pattern}: ${buffered}`);
    buffered += value;
    const match = pattern.exec(buffered);
    if (match) {
      return {
        match,
        async rest() {
          for (;;) {
            const r = await reader.read();
            if (r.done) return buffered;
            buffered += r.value;
          }
        },
      };
    }
  }
}

Deno.test("udpPing() pings our server on loopback over IPv4 and IPv6", async (t) => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    await t.step(hostname, async () => {
      await using server = serve({ hostname, port: 0, quiet: true });
      // Replies are timed: wait until the receive loop runs.
      await server.ready;
      const events: string[] = [];
      const summary = await udpPing(hostname, {
        port: server.addr.port,
        count: 5,
        interval: 20,
        size: 64,
        onEvent: (e) => events.push(formatEvent(e) ?? ""),
      });
      assertEquals(summary.address, hostname);
      assertEquals([summary.sent, summary.received, summary.lossPercent], [5, 5, 0]);
      assertEquals(summary.server, { rx: 5, dup: 0, drop: 0, tx: 5, extra: 0, held: 0 });
      assertEquals([summary.upstreamLoss, summary.downstreamLoss], [0, 0]);
      assertEquals(summary.rtt.count, 5);
      assert(summary.rtt.min > 0 && summary.rtt.min <= summary.rtt.median);
      assertEquals(summary.rtt.ipdv.count, 4);
      assertEquals(events[0], `UDP PING ${hostname} (${hostname}) port ${server.addr.port}`);
      for (let seq = 1; seq <= 5; seq++) {
        assertMatch(
          events[seq]!,
          new RegExp(`^64 bytes from ${hostname}: seq=${seq} time=[\\d.]+ ms$`),
        );
      }
    });
  }
});

Deno.test("udpPing() never sends before the scheduled time, with or without the spin", async (t) => {
  // An echo peer that keeps each ping's send time, which the client writes
  // into the datagram from the clock reading it sent on.
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sentAt = new Map<number, number>();
  const echoing = (async () => {
    for await (const [data, from] of peer) {
      const message = parseMessage(data);
      if (message?.kind === "ping" && message.time !== undefined) {
        sentAt.set(message.seq, message.time * 1000);
      }
      await peer.send(toUpperAscii(data), from);
    }
  })().catch(() => {});
  try {
    for (const spin of [0, 0.3]) {
      await t.step(`spin ${spin} ms`, async () => {
        sentAt.clear();
        const interval = 2, count = 20;
        // Ping k is due at t0 + (k − 1)·interval, where t0 is read after the
        // "start" event: the time taken here is a lower bound of t0, so a
        // send on time is never before start + (k − 1)·interval. The gap from
        // start to t0 (about 55 µs here) is the least earliness this can see.
        let start = NaN;
        const summary = await udpPing("127.0.0.1", {
          port: (peer.addr as Deno.NetAddr).port,
          count,
          interval,
          spin,
          serverStats: false,
          onEvent: (e) => {
            if (e.type === "start") start = performance.timeOrigin + performance.now();
          },
        });
        assertEquals([summary.sent, summary.received, sentAt.size], [count, count, count]);
        const lateness = [...sentAt].map(([seq, at]) => at - (start + (seq - 1) * interval));
        // The datagram carries the time to the microsecond, rounded to the
        // nearest: a send exactly on time can read up to 0.5 µs early.
        const resolution = 0.0005;
        assert(
          Math.min(...lateness) >= -resolution,
          `sent early: lateness ${lateness.map((l) => l.toFixed(4)).join(" ")} ms`,
        );
      });
    }
  } finally {
    peer.close();
    await echoing;
  }
});

Deno.test("udpPing() loss equals the server's seeded drop count over 1000 pings", async () => {
  const log: string[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    loss: 0.3,
    seed: 2026,
    log: (l) => log.push(l),
  });
  await server.ready;
  let timeouts = 0;
  let summary;
  try {
    summary = await udpPing("127.0.0.1", {
      port: server.addr.port,
      count: 1000,
      // Fast, but not so fast that a stalled event loop's catch-up burst
      // could overflow a socket buffer, which would be real loss.
      interval: 3,
      timeout: 2000,
      onEvent: (e) => {
        if (e.type === "timeout") timeouts++;
      },
    });
  } finally {
    await server.close();
  }
  const dropped = Number(/ (\d+) dropped/.exec(log.join("\n"))?.[1]);
  assert(dropped > 200 && dropped < 400, `server dropped ${dropped}`);
  const context = JSON.stringify({ ...summary, rtt: undefined });
  assertEquals(summary.sent, 1000);
  // A reply delayed past -W by a stalled machine is late, not lost: count
  // both, so the test checks the protocol and not the scheduler.
  assertEquals(summary.sent - summary.received - summary.late, dropped, context);
  assertEquals(timeouts, dropped + summary.late, context);
  assertEquals(summary.server?.drop, dropped, context);
  assertEquals([summary.upstreamLoss, summary.downstreamLoss], [0, 0], context);
});

Deno.test("the server keeps serving after malformed and oversized datagrams", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const junk = [
      new Uint8Array(0),
      new TextEncoder().encode("hello"),
      new Uint8Array(65507).fill(0xff),
      new Uint8Array(1500).map((_, i) => i * 7),
      new TextEncoder().encode("Ping not-a-number"),
    ];
    for (const data of junk) await conn.send(data, server.addr);
    // A maximum-size ping is answered whole: same size, no more.
    await conn.send(encodePing(1, 0, { size: 65507 }), server.addr);
    const [reply] = await conn.receive(new Uint8Array(70000));
    assertEquals(reply.length, 65507);
  } finally {
    conn.close();
  }
  const summary = await udpPing("127.0.0.1", { port: server.addr.port, count: 3, interval: 10 });
  assertEquals(summary.received, 3);
  assertEquals(server.threads()[0]!.malformed, 5);
});

Deno.test("a heartbeat client that stops is logged as gone", async () => {
  const log: string[] = [];
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    deadAfter: 3,
    log: (l) => log.push(l),
  });
  await server.ready;
  const summary = await udpPing("127.0.0.1", {
    port: server.addr.port,
    count: 5,
    interval: 50,
    heartbeat: true,
  });
  assertEquals([summary.sent, summary.received], [5, 0]);
  const isFinal = (l: string) => / gone: .* last seq 5,/.test(l);
  for (let i = 0; i < 200 && !log.some(isFinal); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  // On a stalled machine a gap can already look like death (and be logged);
  // the last line must still be the client gone after its fifth beat.
  const gone = log.findLast((l) => l.includes(" gone: "));
  assert(gone !== undefined, `no "gone" line in ${JSON.stringify(log)}`);
  assertMatch(
    gone,
    /^127\.0\.0\.1:\d+ gone: no heartbeat for \d+ beats \(\d+ ms, --dead-after 3\); \d+ beats, 0 lost, last seq 5,/,
  );
});

Deno.test("our client works against the course's original Python server", async (t) => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    await t.step(hostname, async () => {
      const child = new Deno.Command(PYTHON, {
        args: ["-u", PY_SERVER, "0", hostname],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      try {
        const { match } = await waitForLine(child.stdout, /^(\d+)\n/);
        const events: string[] = [];
        const summary = await udpPing(hostname, {
          port: Number(match[1]),
          count: 20,
          interval: 10,
          timeout: 300,
          oneWay: true,
          onEvent: (e) => events.push(e.type),
        });
        assertEquals(summary.sent, 20);
        // It echoes stamped pings as any other: no stamps, so no split.
        assertEquals(summary.oneWay, undefined);
        // The original drops 4 of 11 at random; all 20 lost has odds of 1e-9.
        assert(summary.received > 0 && summary.received < 20 || summary.received === 20);
        assertEquals(events.filter((e) => e === "reply").length, summary.received);
        assertEquals(events.filter((e) => e === "timeout").length, 20 - summary.received);
        // It echoes the stats request instead of answering: no counters.
        assertEquals(summary.server, undefined);
      } finally {
        child.kill();
        await child.status;
      }
    });
  }
});

Deno.test("the course's original Python client works against our server CLI", async (t) => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    await t.step(hostname, async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--unstable-net", MAIN, "server", "--host", hostname, "-p", "0"],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        const { match, rest } = await waitForLine(
          child.stderr,
          /listening on \[?[\d.:a-f]+\]?:(\d+)\n/,
        );
        const py = await run(PYTHON, [PY_CLIENT, hostname, match[1]!]);
        assertEquals(py.code, 0, py.stderr);
        const lines = py.stdout.trim().split("\n");
        assertEquals(lines.length, 20);
        for (let seq = 1; seq <= 10; seq++) {
          assertMatch(lines[2 * seq - 2]!, new RegExp(`^PING ${seq} \\d+\\.\\d+$`));
          assertMatch(lines[2 * seq - 1]!, /^RTT: \d+\.\d{6} seconds$/);
        }
        child.kill("SIGTERM");
        const log = await rest();
        assertEquals((await child.status).code, 0);
        // One line per client session, on stderr.
        assertMatch(log, /session ended \(server stopped\): 10 pings, 10 replied, 0 dropped/);
      } finally {
        try {
          child.kill();
        } catch {
          // Already exited.
        }
        await child.status;
      }
    });
  }
});

Deno.test("udpPing() times replies by the kernel's receive stamps, or in user space with a note", async (t) => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  for (const kernelStamps of [true, false]) {
    await t.step(kernelStamps ? "kernel stamps" : "without kernel stamps", async () => {
      const stamps: string[] = [];
      // The span from just before the first send to the end: every RTT lies within it.
      const before = performance.now();
      const summary = await udpPing("127.0.0.1", {
        port: server.addr.port,
        count: 5,
        interval: 10,
        kernelStamps,
        onEvent: (e) => {
          if (e.type === "reply") {
            stamps.push(e.stamp);
            assert(e.rttMs > 0, `RTT ${e.rttMs} ms is not positive`);
          }
        },
      });
      const span = performance.now() - before;
      const source = kernelStamps ? "kernel" : "user space";
      assertEquals(stamps, Array(5).fill(source));
      assertEquals(summary.timestamps, {
        send: "user space",
        receive: source,
        kernel: kernelStamps ? 5 : 0,
        userSpace: kernelStamps ? 0 : 5,
      });
      assert(summary.rtt.max < span, `RTT ${summary.rtt.max} ms exceeds the run's ${span} ms`);
      const lines = formatSummary(summary);
      assert(lines.includes(`timestamps: send user space, receive ${source}`), lines.join("\n"));
      assertEquals(
        lines.some((l) => l.startsWith("note: 5 of 5 replies had no kernel receive time")),
        !kernelStamps,
      );
    });
  }
});

Deno.test("udpPing() with oneWay splits each round trip by our server's stamps", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const replies: { rttMs: number; upMs?: number; downMs?: number; serverMs?: number }[] = [];
  const summary = await udpPing("127.0.0.1", {
    port: server.addr.port,
    count: 10,
    interval: 10,
    oneWay: true,
    onEvent: (e) => {
      if (e.type === "reply") replies.push(e);
    },
  });
  assertEquals(summary.received, 10);
  assertEquals(summary.oneWay?.count, 10);
  for (const r of replies) {
    // One host, one clock: each part is a real duration, and they add up
    // to the round trip (to the nanosecond, in floating point).
    assert(r.upMs! > 0 && r.downMs! > 0 && r.serverMs! > 0, JSON.stringify(r));
    assert(Math.abs(r.upMs! + r.serverMs! + r.downMs! - r.rttMs) < 1e-6, JSON.stringify(r));
  }
  const w = summary.oneWay!;
  // The true offset is 0; the estimate's bound must cover it.
  assert(Math.abs(w.offsetMs) <= w.offsetErrorMs, JSON.stringify(w));
  const lines = formatSummary(summary);
  assert(lines.some((l) => l.startsWith("one-way min/median/max: up ")), lines.join("\n"));
  assertMatch(formatEvent({ type: "reply", ...replies[0]! } as UdpPingEvent)!, / up=[\d.]+ down=/);
});

Deno.test("udpPing() with hmac: answered under the server's key only, replays refused", async (t) => {
  const key = new TextEncoder().encode("course secret");
  await using server = serve({ hostname: "127.0.0.1", port: 0, hmac: key, quiet: true });
  await server.ready;
  const port = server.addr.port;
  await t.step("the same key: every ping, the counters and the one-way split", async () => {
    const summary = await udpPing("127.0.0.1", {
      port,
      count: 5,
      interval: 10,
      hmac: key,
      oneWay: true,
    });
    assertEquals([summary.received, summary.unauthenticated], [5, 0]);
    assertEquals(summary.server?.rx, 5);
    assertEquals(summary.oneWay?.count, 5);
  });
  await t.step("another key, or none: nothing answered, each refused", async () => {
    const before = server.threads()[0]!.rejected;
    for (const hmac of [new TextEncoder().encode("guess"), undefined]) {
      const summary = await udpPing("127.0.0.1", {
        port,
        count: 3,
        interval: 10,
        timeout: 200,
        serverStats: false,
        ...(hmac ? { hmac } : {}),
      });
      assertEquals(summary.received, 0);
    }
    // Each run's 3 pings and the stats request sent before them.
    assertEquals(server.threads()[0]!.rejected - before, 8);
  });
  await t.step("a signed ping sent again from elsewhere is a replay", async () => {
    const ping = encodePing(1, Date.now() / 1000, { auth: true });
    signDatagram(ping, key, "00000000beef");
    const senders = [0, 1].map(() =>
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
    );
    try {
      await senders[0]!.send(ping, server.addr);
      const [echo] = await senders[0]!.receive();
      assertEquals(verifyDatagram(echo, key), "00000000beef");
      await senders[1]!.send(ping, server.addr);
      // Condition, not a sleep: the loop counts the replay when it reads it.
      while (server.threads().every((l) => l.replayed === 0)) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assertEquals(server.threads().reduce((n, l) => n + l.replayed, 0), 1);
    } finally {
      for (const s of senders) s.close();
    }
  });
});

Deno.test("client helpers parse targets and format times", async (t) => {
  await t.step("splitHostPort()", () => {
    const table: [string, { host: string; port: number }][] = [
      ["localhost", { host: "localhost", port: 12000 }],
      ["localhost:9", { host: "localhost", port: 9 }],
      ["::1", { host: "::1", port: 12000 }],
      ["[::1]:7", { host: "::1", port: 7 }],
      ["10.0.0.1:65535", { host: "10.0.0.1", port: 65535 }],
    ];
    for (const [input, want] of table) assertEquals(splitHostPort(input, 12000), want);
  });
  await t.step("formatMs() follows iputils' precision", () => {
    const table: [number, string][] = [[0.0456, "0.046"], [1.234, "1.23"], [12.34, "12.3"], [
      123.4,
      "123",
    ]];
    for (const [input, want] of table) assertEquals(formatMs(input), want);
  });
});

Deno.test("-4 and -6 pick the address family and refuse the other family's literal", async (t) => {
  await t.step("-4 localhost", async () => {
    await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
    await server.ready;
    const summary = await udpPing("localhost", { port: server.addr.port, count: 1, family: 4 });
    assertEquals([summary.address, summary.received], ["127.0.0.1", 1]);
  });
  for (const [family, literal] of [[6, "127.0.0.1"], [4, "::1"]] as const) {
    await t.step(`-${family} ${literal}`, async () => {
      const err = await udpPing(literal, { count: 1, family }).catch((e) => e);
      assert(err instanceof ResolveError, String(err));
      assertEquals(
        err.message,
        `Cannot resolve host "${literal}": no address of the requested family`,
      );
    });
  }
  await t.step("an unknown name fails with lib/resolve.ts's message", async () => {
    const err = await udpPing("nowhere.invalid", { count: 1 }).catch((e) => e);
    assert(err instanceof ResolveError, String(err));
    assert(err.message.startsWith('Cannot resolve host "nowhere.invalid": '), err.message);
  });
});

Deno.test("udpPing() counts duplicated and late replies from the server's --duplicate and --delay", async (t) => {
  await t.step("--duplicate 1: every reply twice, one counted, one a duplicate", async () => {
    await using server = serve({ hostname: "127.0.0.1", port: 0, duplicate: 1, quiet: true });
    await server.ready;
    const dups: number[] = [];
    const summary = await udpPing("127.0.0.1", {
      port: server.addr.port,
      count: 5,
      interval: 20,
      onEvent: (e) => {
        if (e.type === "reply" && e.duplicate) dups.push(e.seq);
      },
    });
    assertEquals([summary.received, summary.duplicates, summary.server?.extra], [5, 5, 5]);
    assertEquals(dups.toSorted(), [1, 2, 3, 4, 5]);
    assertEquals(summary.downstreamLoss, 0);
  });
  await t.step("--delay beyond -W: replies come late or are still held, none lost", async () => {
    await using server = serve({ hostname: "127.0.0.1", port: 0, delay: 100, quiet: true });
    await server.ready;
    const summary = await udpPing("127.0.0.1", {
      port: server.addr.port,
      count: 3,
      interval: 100,
      timeout: 50,
    });
    const c = summary.server!;
    assertEquals([summary.received, summary.lossPercent, c.rx, c.drop], [0, 100, 3, 0]);
    // Ping 1's echo (at 100 ms) beats ping 3's timeout (at 250 ms); the
    // last one may still be held when the client asks for the counters.
    assert(summary.late >= 1, JSON.stringify(summary));
    assertEquals(c.tx + c.held, 3);
    assertEquals(summary.late, c.tx);
    assertEquals([summary.upstreamLoss, summary.downstreamLoss], [0, 0]);
  });
});
