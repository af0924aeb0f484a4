import { assert, assertEquals } from "../lib/testing/assert.ts";
import { type Lab, labTest } from "../lib/testing/lab.ts";
import { median } from "../lib/stats.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const SERVER = [MAIN, "server"];
const CLIENT = [MAIN, "client"];
const DENO = [Deno.execPath(), "run", "-A", "--unstable-net"];
const RELAY = new URL("./testdata/udp_relay.ts", import.meta.url).pathname;

/**
 * Starts a server on a lab host (the target unless said) and resolves once
 * it has printed `ready` (on stdout or stderr, as the server writes it);
 * dispose of the result to stop it.
 */
async function startServer(
  lab: Lab,
  cmd: string[],
  ready: string,
  host = "target",
): Promise<AsyncDisposable & { output(): string }> {
  const server = lab.spawn(host, cmd, { stdin: "null" });
  const text = new TextDecoder();
  let head = "";
  const readers = [server.stdout.getReader(), server.stderr.getReader()];
  // Whatever comes after the ready line is drained, so a chatty server
  // never blocks on a full pipe.
  const draining = readers.map(async (reader) => {
    for (;;) {
      const r = await reader.read();
      if (r.done) return;
      head += text.decode(r.value);
    }
  });
  const stop = {
    output: () => head,
    async [Symbol.asyncDispose]() {
      try {
        server.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await server.status;
      await Promise.all(draining);
    },
  };
  const exited = server.status.then(() => {
    throw new Error(`${cmd.join(" ")} did not start: ${head}`);
  });
  const started = (async () => {
    while (!head.includes(ready)) await new Promise((r) => setTimeout(r, 10));
  })();
  try {
    await Promise.race([started, exited]);
  } catch (err) {
    await stop[Symbol.asyncDispose]();
    throw err;
  }
  exited.catch(() => {});
  return stop;
}

labTest(
  "udp-ping splits loss into upstream and downstream exactly as nftables dropped it",
  async (t, lab) => {
    for (const family of [4, 6] as const) {
      await t.step(`IPv${family}`, async () => {
        const port = 12000 + family;
        await using _server = await startServer(lab, [
          ...DENO,
          ...SERVER,
          "--host",
          family === 4 ? "0.0.0.0" : "::",
          "--port",
          String(port),
        ], "listening on");
        // Pings are padded to 100 bytes (UDP length 108), so the rules
        // count pings and their echoes, not the stats request (256 bytes)
        // nor its reply.
        const up = await lab.drop("r1", {
          percent: 20,
          match: `iifname "to-client" udp dport ${port} udp length 108`,
        });
        const down = await lab.drop("r2", {
          percent: 20,
          match: `iifname "to-r3" udp sport ${port} udp length 108`,
        });
        const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
        const r = await lab.exec("client", [
          ...DENO,
          ...CLIENT,
          "--json",
          "-c",
          "300",
          "-i",
          "5ms",
          "-W",
          "1",
          "-s",
          "100",
          `-${family}`,
          family === 4 ? `${target}:${port}` : `[${target}]:${port}`,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
        const dropsUp = (await up.counters()).packets;
        const dropsDown = (await down.counters()).packets;
        assert(dropsUp > 0 && dropsDown > 0, `nftables dropped ${dropsUp} up, ${dropsDown} down`);
        assertEquals(summary.sent, 300);
        assertEquals(summary.upstreamLoss, dropsUp);
        assertEquals(summary.downstreamLoss, dropsDown);
        assertEquals(summary.server.rx, 300 - dropsUp);
        assertEquals(summary.received + summary.late, 300 - dropsUp - dropsDown);
        await up.delete();
        await down.delete();
      });
    }
  },
);

labTest(
  "udp-ping's loss, RTT and jitter agree with irtt's on the same lossy path",
  async (_t, lab) => {
    const OURS = 12010, IRTT = 12011;
    // Both tools at once, the same rate, the same datagram size (UDP
    // payload 100 bytes, length 108: neither our stats request nor irtt's
    // handshake matches), through the same routers, under the same rules.
    await using _ours = await startServer(lab, [
      ...DENO,
      ...SERVER,
      "--port",
      String(OURS),
    ], "listening on");
    await using _irtt = await startServer(
      lab,
      ["irtt", "server", "-b", `0.0.0.0:${IRTT}`, "-i", "0"],
      "starting IPv4 listener",
    );
    const target = lab.host("target").v4;
    const rules = new Map<string, Awaited<ReturnType<Lab["drop"]>>>();
    for (const [name, port] of [["ours", OURS], ["irtt", IRTT]] as const) {
      rules.set(
        `${name} up`,
        await lab.drop("r1", {
          percent: 10,
          match: `iifname "to-client" udp dport ${port} udp length 108`,
        }),
      );
      rules.set(
        `${name} down`,
        await lab.drop("r2", {
          percent: 10,
          match: `iifname "to-r3" udp sport ${port} udp length 108`,
        }),
      );
    }
    const N = 1000;
    const [ours, irtt] = await Promise.all([
      lab.exec("client", [
        ...DENO,
        ...CLIENT,
        "--json",
        "-c",
        String(N),
        "-i",
        "2ms",
        "-W",
        "1",
        "-s",
        "100",
        `${target}:${OURS}`,
      ]),
      lab.exec("client", [
        "irtt",
        "client",
        "-Q",
        "-i",
        "2ms",
        "-d",
        `${2 * N}ms`,
        "-l",
        "100",
        "-o",
        "-",
        `${target}:${IRTT}`,
      ]),
    ]);
    assertEquals(ours.code, 0, ours.stderr);
    assertEquals(irtt.code, 0, irtt.stderr);
    const drops = async (name: string) => (await rules.get(name)!.counters()).packets;
    const s = JSON.parse(ours.stdout.trim().split("\n").at(-1)!);
    const irttJson = JSON.parse(irtt.stdout);
    const i = irttJson.stats;
    const context = JSON.stringify({ ours: s, irtt: i });

    // Loss: each tool must see exactly the drops nftables counted for its
    // own packets (no tolerance: a miscount is a bug), up and down apart.
    const oursUp = await drops("ours up"), oursDown = await drops("ours down");
    const irttUp = await drops("irtt up"), irttDown = await drops("irtt down");
    assertEquals(s.sent, N);
    assertEquals([s.upstreamLoss, s.downstreamLoss], [oursUp, oursDown], context);
    assertEquals(s.sent - s.received - s.late, oursUp + oursDown, context);
    assertEquals(i.packets_sent - i.packets_received, irttUp + irttDown, context);
    // irtt learns the server's count of received packets only from the
    // replies that arrive, so its upstream loss counts as lost every packet
    // sent after the last reply that came back, up or down.
    const trips = irttJson.round_trips as { seqno: number; lost: string }[];
    const lastReplied = trips.findLast((r) => r.lost === "false")?.seqno ?? -1;
    const trailing = trips.filter((r) => r.seqno > lastReplied).length;
    const irttReportedUp = i.packets_sent - i.server_packets_received;
    assert(
      irttReportedUp >= irttUp && irttReportedUp <= irttUp + trailing,
      `irtt's upstream loss ${irttReportedUp}: nftables dropped ${irttUp}, ${trailing} trailing`,
    );
    // And the two loss rates agree as two samples of the same random drop
    // (10% each way, so p = 0.19 per round trip): with n ≈ 1000 each, the
    // difference of the two rates has a standard deviation of
    // sqrt(2·p·(1−p)/n) ≈ 1.75 points; 5 of them (8.8 points) is exceeded
    // by chance about once in 1.7 million runs, while a tool that missed
    // one direction's loss would be off by about 9.5 points.
    const oursLoss = s.lossPercent, irttLoss = i.packet_loss_percent;
    const sigma = 100 * Math.sqrt((2 * 0.19 * 0.81) / N);
    assert(
      Math.abs(oursLoss - irttLoss) <= 5 * sigma,
      `loss ${oursLoss}% (ours) vs ${irttLoss}% (irtt): more than ${5 * sigma} points apart`,
    );

    // RTT and jitter: the protocols and servers differ (our server is Deno,
    // irtt's Go; we stamp the receive in the kernel, irtt in user space),
    // so the figures differ by what each end adds. On this path (three
    // veth hops each way) both medians are a fraction of a millisecond,
    // and on the shared 2-core machine a woken process is scheduled within
    // a few hundred microseconds; 1 ms is above that, and below what a
    // wrong unit (µs taken for ms), a lost timer period (the 2 ms interval
    // counted in) or a JavaScript-time receive stamp under load would add.
    const ms = (ns: number) => ns / 1e6;
    const rttGap = Math.abs(s.rtt.median - ms(i.rtt.median));
    assert(rttGap <= 1, `median RTT ${s.rtt.median} ms vs irtt's ${ms(i.rtt.median)} ms`);
    assert(s.rtt.min > 0, `minimum RTT ${s.rtt.min} ms is below the path's floor`);
    // Jitter as irtt reports it: |IPDV| of consecutive round trips (RFC
    // 3393), here its median, from our reply events against irtt's. It is a
    // difference of two RTTs, so its error bound is that of the RTT. Not
    // the mean: irtt stamps its receives in user space, so a stall of its
    // process under load (seen: 109 ms) enters two of its IPDVs whole, and
    // put its mean at 2.1 ms against our 0.13 on a busy machine, while its
    // median stayed within tens of microseconds of ours.
    const rtts = new Map<number, number>();
    for (const line of ours.stdout.trim().split("\n")) {
      const e = JSON.parse(line);
      if (e.type === "reply" && !e.late && !e.duplicate) rtts.set(e.seq, e.rttMs);
    }
    const ipdvs = [...rtts].filter(([seq]) => rtts.has(seq - 1))
      .map(([seq, rtt]) => Math.abs(rtt - rtts.get(seq - 1)!)).sort((a, b) => a - b);
    assert(ipdvs.length > N / 2, `${ipdvs.length} consecutive pairs`);
    const ourIpdv = ipdvs[ipdvs.length >> 1]!;
    // The same pairs as the summary's: its mean |IPDV| is theirs.
    assertEquals(ipdvs.length, s.rtt.ipdv.count);
    const meanAbs = ipdvs.reduce((a, b) => a + b, 0) / ipdvs.length;
    assert(Math.abs(meanAbs - s.rtt.ipdv.meanAbs) < 1e-6, `mean |IPDV| ${meanAbs}`);
    const irttIpdv = ms(i.ipdv_round_trip.median);
    assert(
      Math.abs(ourIpdv - irttIpdv) <= 1,
      `median |IPDV| ${ourIpdv} ms vs irtt's ${irttIpdv} ms`,
    );
  },
);

labTest(
  "udp-ping --one-way puts a 25 ms delay in one direction where it is, within 1 ms",
  async (t, lab) => {
    const PORT = 12020, RELAY_PORT = 12021;
    await using _server = await startServer(lab, [
      ...DENO,
      ...SERVER,
      "--port",
      String(PORT),
    ], "listening on");
    for (const [up, down] of [[25, 0], [0, 25]] as const) {
      await t.step(`${up} ms up, ${down} ms down`, async () => {
        // No netem here: a relay on r1 forwards both ways and holds one
        // direction. All hosts share the kernel's clock, so the true clock
        // offset is 0 and the one-way delays are exact.
        await using relay = await startServer(
          lab,
          [
            ...DENO,
            RELAY,
            String(RELAY_PORT),
            lab.host("target").v4,
            String(PORT),
            String(up),
            String(down),
          ],
          "ready",
          "r1",
        );
        const r = await lab.exec("client", [
          ...DENO,
          ...CLIENT,
          "--json",
          "--one-way",
          "-c",
          "20",
          "-i",
          "100ms",
          `${lab.host("r1").v4}:${RELAY_PORT}`,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
        const w = summary.oneWay;
        assertEquals(w.count, summary.received, r.stdout);
        // What the relay did to each datagram, in order, from its kernel
        // receive time to the return of its sendto(): the hold, or longer
        // when the relay woke late or was preempted.
        // By sequence number: the stats requests before and after the pings
        // pass through the relay too.
        const forwarded = (direction: string) =>
          new Map(
            [...relay.output().matchAll(new RegExp(`^${direction} ([\\d.]+) ping (\\d+)$`, "gim"))]
              .map((m) => [Number(m[2]), Number(m[1])]),
          );
        const replies = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
          .filter((e) => e.type === "reply");
        // Every reply timed by the kernel, and no round trip shorter than
        // the path's floor: the relay holds each datagram 25 ms one way.
        assertEquals(summary.timestamps.receive, "kernel", r.stdout);
        for (const e of replies) {
          assertEquals(e.stamp, "kernel", JSON.stringify(e));
          assert(
            e.rttMs >= up + down,
            `seq ${e.seq}: RTT ${e.rttMs} ms below the ${up + down} ms hold`,
          );
        }
        for (
          const [key, direction, hold] of [["upMs", "up", up], ["downMs", "down", down]] as const
        ) {
          const relayed = forwarded(direction);
          // What the client measured minus what the relay took, ping by ping.
          const extra = replies.map((e) => e[key] - relayed.get(e.seq)!);
          assert(
            replies.every((e) => relayed.get(e.seq)! >= hold),
            `${[...relayed.values()]}`,
          );
          // Within 1 ms (median): the rest of the path (three veth hops) is
          // tens of microseconds; a split that put any share of the 25 ms in
          // the other direction would be off by 12.5 ms or more. Checked
          // ping by ping, so that load on the machine, which stretches the
          // relay's forwarding and the client's figure alike, cancels out.
          assert(
            Math.abs(median(extra)) <= 1,
            `${direction}: measured − relayed ${extra.map((x) => x.toFixed(3))} ms`,
          );
        }
        // The NTP estimate cannot see asymmetry: it is off by half of it,
        // and its error bound must say so (the true offset here is 0).
        assert(
          Math.abs(w.offsetMs) <= w.offsetErrorMs,
          `offset ${w.offsetMs} ± ${w.offsetErrorMs} ms excludes the true 0`,
        );
        assert(w.offsetErrorMs >= 12, `error bound ${w.offsetErrorMs} ms hides the asymmetry`);
      });
    }
  },
);
