/**
 * icmp_pinger against iputils ping on the same lab path:
 * client -- r1 -- r2 -- r3 -- target.
 */
import { type ExecResult, type Lab, labTest, taskCommand } from "../lib/testing/mod.ts";
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { maskPingOutput as mask } from "./_compare.ts";

/** As `deno task ping` runs it, V8 flags included. */
function oursCmd(args: string[]): string[] {
  return taskCommand("ping", args);
}

function ours(lab: Lab, args: string[], user?: "nobody"): Promise<ExecResult> {
  return lab.exec("client", oursCmd(args), user ? { user } : {});
}

function iputils(lab: Lab, args: string[]): Promise<ExecResult> {
  return lab.exec("client", ["ping", ...args]);
}

/** Runs both tools with the same arguments and checks they print and exit alike. */
async function sameAsIputils(lab: Lab, args: string[]): Promise<ExecResult> {
  const a = await ours(lab, args);
  const b = await iputils(lab, args);
  assertEquals(mask(a.stdout), mask(b.stdout), `stdout of ping ${args.join(" ")}`);
  assertEquals(a.code, b.code, `exit code of ping ${args.join(" ")}`);
  return a;
}

/** The ICMP echo replies `host`'s kernel has taken in (`Icmp: InEchoReps`). */
async function echoRepliesIn(lab: Lab, host: string): Promise<number> {
  const snmp = (await lab.exec(host, ["cat", "/proc/net/snmp"])).stdout;
  const [names, values] = snmp.split("\n").filter((line) => line.startsWith("Icmp:"));
  const column = names!.split(/\s+/).indexOf("InEchoReps");
  return Number(values!.split(/\s+/)[column]);
}

function counts(stdout: string): { transmitted: number; received: number } {
  const m = stdout.match(/(\d+) packets transmitted, (\d+) received/);
  if (!m) throw new Error(`No statistics in: ${stdout}`);
  return { transmitted: Number(m[1]), received: Number(m[2]) };
}

labTest("ping prints what iputils prints through three routers, IPv4 and IPv6", async (t, lab) => {
  const target = lab.host("target");
  const r2 = lab.host("r2");
  for (const [family, address] of [[4, target.v4], [6, target.v6]] as const) {
    await t.step(`IPv${family}: five pings, same counts and ttl`, async () => {
      const a = await sameAsIputils(lab, ["-c", "5", "-i", "0.05", address]);
      assertEquals(counts(a.stdout), { transmitted: 5, received: 5 });
      assertEquals(a.stdout.match(/ ttl=61 /g)?.length, 5);
    });
    await t.step(`IPv${family}: -t 2 gets time exceeded from r2`, async () => {
      const a = await sameAsIputils(lab, ["-c", "3", "-i", "0.05", "-t", "2", address]);
      const line = family === 4
        ? `From ${r2.v4} icmp_seq=1 Time to live exceeded`
        : `From ${r2.v6} icmp_seq=1 Time exceeded: Hop limit`;
      assert(a.stdout.includes(`\n${line}\n`), `"${line}" in\n${a.stdout}`);
      assertMatch(a.stdout, /3 packets transmitted, 0 received, \+3 errors, 100% packet loss/);
    });
    for (const options of [["-O"], ["-q"], ["-D"], ["-n"], ["-w", "2"]]) {
      await t.step(`IPv${family}: -t 2 with ${options.join(" ")}`, async () => {
        await sameAsIputils(lab, [...options, "-c", "3", "-i", "0.05", "-t", "2", address]);
      });
    }
    await t.step(`IPv${family}: flood mode's dots and backspaces, with errors`, async () => {
      await sameAsIputils(lab, ["-f", "-c", "50", address]);
      await sameAsIputils(lab, ["-f", "-c", "5", "-t", "2", address]);
    });
    await t.step(`IPv${family}: -I with an interface and with an address`, async () => {
      const client = lab.host("client");
      await sameAsIputils(lab, ["-c", "1", "-I", "to-r1", address]);
      await sameAsIputils(lab, ["-c", "1", "-I", family === 4 ? client.v4 : client.v6, address]);
    });
  }
  for (const code of ["host-unreachable", "admin-prohibited"] as const) {
    await t.step(`nftables reject with ${code}, IPv4 and IPv6`, async () => {
      const rule = await lab.reject("r2", { code });
      try {
        for (const address of [target.v4, target.v6]) {
          const a = await sameAsIputils(lab, ["-c", "2", "-i", "0.05", address]);
          assertMatch(a.stdout, /From \S+ icmp_seq=1 (Destination|Packet filtered)/);
        }
      } finally {
        await rule.delete();
      }
    });
  }
});

labTest("ping counts loss exactly and exits as iputils with total loss", async (t, lab) => {
  const target = lab.host("target").v4;
  await t.step("20% loss over 200 pings: transmitted − received is the drop count", async () => {
    const rule = await lab.drop("r2", { percent: 20, match: "icmp type echo-request" });
    try {
      for (const run of [ours, iputils]) {
        const before = (await rule.counters()).packets;
        const r = await run(lab, ["-q", "-c", "200", "-i", "0.002", "-W", "1", target]);
        const dropped = (await rule.counters()).packets - before;
        const c = counts(r.stdout);
        assertEquals(c.transmitted, 200);
        assertEquals(c.transmitted - c.received, dropped, `${run.name}: ${r.stdout}`);
        assert(dropped > 0, "some requests were dropped");
      }
    } finally {
      await rule.delete();
    }
  });
  await t.step("total loss: the same text and exit code 1", async () => {
    const rule = await lab.drop("r2", { match: "icmp type echo-request" });
    try {
      for (
        const args of [
          ["-c", "2", "-i", "0.05", "-W", "1", target],
          ["-O", "-c", "3", "-i", "0.05", "-W", "1", target],
        ]
      ) {
        const a = await sameAsIputils(lab, args);
        assertEquals(a.code, 1);
      }
      // With a deadline, how many requests fit in it is a matter of timing.
      const args = ["-c", "3", "-i", "0.05", "-w", "1", target];
      const [a, b] = [await ours(lab, args), await iputils(lab, args)];
      const n = (text: string) =>
        mask(text).replace(/\d+ packets transmitted/, "N packets transmitted");
      assertEquals(n(a.stdout), n(b.stdout));
      assertEquals([a.code, b.code], [1, 1]);
    } finally {
      await rule.delete();
    }
  });
  await t.step("-w with -c: fewer replies than the count exits 1, as iputils", async () => {
    const rule = await lab.drop("r2", { percent: 50, match: "icmp type echo-request" });
    try {
      const a = await ours(lab, ["-q", "-c", "100", "-i", "0.01", "-w", "1", target]);
      const b = await iputils(lab, ["-q", "-c", "100", "-i", "0.01", "-w", "1", target]);
      assertEquals(a.code, 1);
      assertEquals(b.code, 1);
    } finally {
      await rule.delete();
    }
  });
});

labTest("ping marks duplicated replies (DUP!) and counts them as iputils", async (t, lab) => {
  const target = lab.host("target");
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      const rule = await lab.duplicate("r1", {
        family,
        match: family === 4 ? "icmp type echo-reply" : "icmpv6 type echo-reply",
      });
      try {
        const address = family === 4 ? target.v4 : target.v6;
        const a = await sameAsIputils(lab, ["-c", "3", "-i", "0.1", address]);
        assertMatch(a.stdout, /icmp_seq=1 ttl=61 time=[\d.]+ ms \(DUP!\)\n/);
        assertMatch(a.stdout, /3 received, \+\d duplicates/);
        await sameAsIputils(lab, ["-q", "-c", "3", "-i", "0.1", address]);
      } finally {
        await rule.delete();
      }
    });
  }
});

labTest("a quiet flood (its fast path) counts as iputils does", async (t, lab) => {
  const target = lab.host("target");
  for (const [family, address] of [[4, target.v4], [6, target.v6]] as const) {
    await t.step(`IPv${family}: 3,000 requests, all answered, the same text`, async () => {
      const a = await sameAsIputils(lab, ["-f", "-q", "-c", "3000", address]);
      assertEquals(counts(a.stdout), { transmitted: 3000, received: 3000 });
    });
    await t.step(`IPv${family}: errors, with -O's "no answer yet"`, async () => {
      await sameAsIputils(lab, ["-f", "-O", "-c", "5", "-t", "2", address]);
      await sameAsIputils(lab, ["-f", "-q", "-c", "5", "-t", "2", address]);
    });
  }
  await t.step("20% loss: transmitted − received is the drop count", async () => {
    const rule = await lab.drop("r2", { percent: 20, match: "icmp type echo-request" });
    try {
      for (const run of [ours, iputils]) {
        const before = (await rule.counters()).packets;
        const r = await run(lab, ["-f", "-q", "-c", "500", target.v4]);
        const dropped = (await rule.counters()).packets - before;
        const c = counts(r.stdout);
        assertEquals(c.transmitted, 500, `${run.name}: ${r.stdout}`);
        assertEquals(c.transmitted - c.received, dropped, `${run.name}: ${r.stdout}`);
        assert(dropped > 0, "some requests were dropped");
      }
    } finally {
      await rule.delete();
    }
  });
  await t.step("every reply duplicated: +N duplicates, as iputils", async () => {
    const rule = await lab.duplicate("r1", { family: 4, match: "icmp type echo-reply" });
    try {
      for (const run of [ours, iputils]) {
        const r = await run(lab, ["-f", "-q", "-c", "500", target.v4]);
        const m = r.stdout.match(/500 packets transmitted, 500 received, \+(\d+) duplicates/);
        assert(m, `${run.name}: ${r.stdout}`);
        // Each copy is read before the next request goes out, but the last
        // one may still be queued when the count is reached.
        assert(Number(m[1]) >= 499, `${run.name}: ${r.stdout}`);
      }
    } finally {
      await rule.delete();
    }
  });
  await t.step("two floods at once each count only their own replies", async () => {
    const args = ["-f", "-q", "-c", "3000", target.v4];
    const before = await echoRepliesIn(lab, "client");
    const runs = await Promise.all([ours(lab, args), ours(lab, args), iputils(lab, args)]);
    const repliesIn = await echoRepliesIn(lab, "client") - before;
    for (const [k, r] of runs.entries()) {
      assertEquals(r.code, 0, r.stderr);
      // A reply can still be lost past the kernel's count, at the socket:
      // with three floods on two cores a tool is not always scheduled while
      // its replies come in, and a receive queue overflows (drops seen in
      // /proc/net/raw during such runs). Measured: 2 of 36 runs lost one
      // reply (both iputils), none more. 10 is ten times the worst seen; a
      // tool counting another's replies, or missing its own, is off by
      // hundreds to thousands.
      const m = r.stdout.match(
        /\n3000 packets transmitted, (\d+) received, [\d.]+% packet loss, time/,
      );
      assert(m && Number(m[1]) <= 3000 && Number(m[1]) >= 2990, `run ${k}: ${r.stdout}`);
    }
    // The lab lost none of the replies: all 9000 reached the client's kernel.
    assertEquals(repliesIn, 3 * 3000);
  });
});

labTest("ping verifies checksums: a corrupted reply is marked and not counted", async (t, lab) => {
  // r1 rewrites a data byte of each echo reply without fixing the checksum.
  const nft = ["nft", "add", "rule", "inet", "lab", "forward", "icmp", "type", "echo-reply"];
  const r = await lab.exec("r1", [...nft, "@th,160,8", "set", "0x55"]);
  assertEquals(r.code, 0, r.stderr);
  await t.step("raw IPv4 socket: (BAD CHECKSUM!) and +N corrupted", async () => {
    const a = await ours(lab, ["-c", "2", "-i", "0.05", "-W", "1", lab.host("target").v4]);
    assertMatch(a.stdout, /icmp_seq=1 ttl=61 time=[\d.]+ ms \(BAD CHECKSUM!\)\n/);
    // iputils 20221126 does not flag these (it passes 0 for "checksum
    // failed" to its statistics); the newer "+N corrupted" is printed here.
    assertMatch(a.stdout, /2 packets transmitted, 0 received, \+2 corrupted, 100% packet loss/);
    assertEquals(a.code, 1);
  });
});

labTest("ping works unprivileged on an ICMP datagram socket", async (t, lab) => {
  const target = lab.host("target");
  await t.step("without ping_group_range: iputils' message and exit code 2", async () => {
    await lab.sysctl("client", "net.ipv4.ping_group_range", "1 0");
    const r = await ours(lab, ["-c", "1", target.v4], "nobody");
    assertEquals(r.code, 2);
    // Then one line on how to fix it (main_test.ts checks that line).
    assert(
      r.stderr.startsWith(
        "ping: socktype: SOCK_RAW\nping: socket: Operation not permitted\n" +
          "ping: => missing cap_net_raw+p capability or setuid?\nping: to fix, as root: ",
      ),
      r.stderr,
    );
  });
  await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
  await t.step("intervals under 2 ms are refused to users, as iputils does", async () => {
    for (const args of [["-c", "1", "-i", "0.001"], ["-c", "1", "-f"]]) {
      const r = await ours(lab, [...args, target.v4], "nobody");
      assertEquals(r.code, 2);
      assertEquals(r.stdout, "PING 10.0.3.2 (10.0.3.2) 56(84) bytes of data.\n");
      assertEquals(r.stderr, "ping: cannot flood; minimal interval allowed for user is 2ms\n");
    }
  });
  for (const address of [target.v4, target.v6]) {
    await t.step(`${address} as nobody: replies and errors as iputils prints them`, async () => {
      const json = await ours(lab, ["--json", "-c", "3", "-i", "0.05", address], "nobody");
      const objects = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assertEquals(objects[0].socket, "datagram");
      assertEquals(objects.filter((o) => o.type === "reply").length, 3);
      for (const args of [["-c", "3", "-i", "0.05"], ["-c", "2", "-i", "0.05", "-t", "2"]]) {
        const a = await ours(lab, [...args, address], "nobody");
        const b = await iputils(lab, [...args, address]);
        assertEquals(mask(a.stdout), mask(b.stdout));
        assertEquals(a.code, b.code);
      }
    });
  }
});

labTest(
  "two pings at once from one namespace each count exactly their own replies",
  async (t, lab) => {
    const target = lab.host("target").v4;
    await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
    const args = ["-c", "40", "-i", "0.01", target];
    const check = (r: ExecResult, who: string) => {
      assertEquals(r.code, 0, `${who}: ${r.stderr}`);
      assertMatch(r.stdout, /40 packets transmitted, 40 received, 0% packet loss/);
      assert(!r.stdout.includes("DUP!"), `${who} saw no duplicates`);
      const seqs = [...r.stdout.matchAll(/icmp_seq=(\d+) /g)].map((m) => Number(m[1]));
      assertEquals(seqs, Array.from({ length: 40 }, (_, k) => k + 1), `${who}'s sequence numbers`);
    };
    await t.step("two raw sockets", async () => {
      const [a, b] = await Promise.all([ours(lab, args), ours(lab, args)]);
      check(a, "first");
      check(b, "second");
    });
    await t.step("a raw socket, a datagram socket and iputils", async () => {
      const [a, b, c] = await Promise.all([
        ours(lab, args),
        ours(lab, args, "nobody"),
        iputils(lab, args),
      ]);
      check(a, "raw");
      check(b, "datagram");
      check(c, "iputils");
    });
  },
);

labTest("ping --json parses and its summary equals the text summary", async (t, lab) => {
  for (const address of [lab.host("target").v4, lab.host("target").v6]) {
    await t.step(address, async () => {
      const j = await ours(lab, ["--json", "-c", "5", "-i", "0.02", address]);
      const text = await ours(lab, ["-c", "5", "-i", "0.02", address]);
      assertEquals(j.code, 0);
      const objects = j.stdout.trim().split("\n").map((l) => JSON.parse(l));
      const summary = objects.at(-1);
      assertEquals(summary.type, "summary");
      const c = counts(text.stdout);
      assertEquals([summary.transmitted, summary.received], [c.transmitted, c.received]);
      const loss = text.stdout.match(/, (\S+)% packet loss/)![1];
      assertEquals(String(summary.lossPercent), loss);
      // The JSON rtt figures are min/avg/max/mdev of its own replies, worked out here
      // from the definitions (mdev is the standard deviation, as iputils computes it),
      // not with the implementation's accumulator. iputils truncates avg and mdev to
      // whole microseconds, hence the 0.001 ms allowance on those two.
      const rtts = objects.filter((o) => o.type === "reply").map((o) => Math.round(o.rttMs * 1000));
      assertEquals(rtts.length, c.received);
      const mean = rtts.reduce((a, b) => a + b, 0) / rtts.length;
      const sd = Math.sqrt(rtts.reduce((a, b) => a + b * b, 0) / rtts.length - mean * mean);
      assertEquals([summary.rtt.min, summary.rtt.max], [
        Math.min(...rtts) / 1000,
        Math.max(...rtts) / 1000,
      ]);
      assert(
        Math.abs(summary.rtt.avg - mean / 1000) <= 0.001,
        `avg ${summary.rtt.avg} vs ${mean / 1000}`,
      );
      assert(
        Math.abs(summary.rtt.mdev - sd / 1000) <= 0.001,
        `mdev ${summary.rtt.mdev} vs ${sd / 1000}`,
      );
    });
  }
});

labTest(
  "a fast ping or a long flood primes its JIT on loopback only and counts only its own requests",
  async (t, lab) => {
    const target = lab.host("target").v4;
    const runs = [
      ["-q", "-c", "150", "-i", "0.002"],
      ["-c", "100", "-i", "0.005"],
      ["-f", "-q", "-c", "10000"],
    ];
    for (const args of runs) {
      await t.step(args.join(" "), async () => {
        const toTarget = await lab.counter("client", {
          chain: "output",
          match: `ip daddr ${target} icmp type echo-request`,
        });
        const toLoopback = await lab.counter("client", {
          chain: "output",
          match: "ip daddr 127.0.0.1 icmp type echo-request",
        });
        try {
          const r = await ours(lab, [...args, target]);
          assertEquals(r.code, 0, r.stderr);
          const c = counts(r.stdout);
          const count = Number(args[args.indexOf("-c") + 1]);
          // The priming flood went to the loopback address, none of it to the
          // target, and none of it shows in the statistics.
          assertEquals((await toTarget.counters()).packets, count);
          assert((await toLoopback.counters()).packets > 0, "the session primed on loopback");
          assertEquals(c, { transmitted: count, received: count });
          assertMatch(r.stdout, /rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/);
        } finally {
          await toTarget.delete();
          await toLoopback.delete();
        }
      });
    }
    await t.step(
      "a slow, short or interface-bound ping or a short flood does not prime",
      async () => {
        const toLoopback = await lab.counter("client", {
          chain: "output",
          match: "ip daddr 127.0.0.1 icmp type echo-request",
        });
        try {
          const runs = [
            ["-c", "3", "-i", "0.05"],
            ["-c", "50", "-i", "0.002"],
            ["-f", "-c", "500"],
            // Bound to an interface, the socket has no way to the loopback.
            ["-c", "150", "-i", "0.002", "-I", lab.iface("client", "r1")],
          ];
          for (const args of runs) {
            const r = await ours(lab, ["-q", ...args, target]);
            assertEquals(r.code, 0, r.stderr);
          }
          assertEquals((await toLoopback.counters()).packets, 0);
        } finally {
          await toLoopback.delete();
        }
      },
    );
  },
);
