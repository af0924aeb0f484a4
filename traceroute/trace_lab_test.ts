// Lab tests: our traceroute against Butskoy traceroute 2.1 on the same
// namespace path client -- r1 -- r2 -- r3 -- target, times masked.
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { type Lab, labTest } from "../lib/testing/mod.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

function ours(lab: Lab, args: string[], opts: { user?: "nobody" } = {}) {
  return lab.exec("client", [Deno.execPath(), "run", "-A", MAIN, ...args], {
    timeoutMs: 60_000,
    ...opts,
  });
}

function butskoy(lab: Lab, args: string[], opts: { user?: "nobody" } = {}) {
  return lab.exec("client", ["traceroute", ...args], opts);
}

/** Masks the round-trip times, the only expected difference. */
function mask(text: string): string {
  return text.replace(/\d+\.\d{3} ms/g, "X ms");
}

/**
 * The waiting rule both tools get when a comparison does not set its own.
 * Butskoy's default, `-w 5,3,10`, gives up on a probe 3 × (RTT + 1 ms)
 * after it was sent once a sibling has answered, about 3 ms in this lab.
 * On a loaded 2-core machine an answer can take longer than that, and the
 * tool that saw it late prints `*` where the other prints the address:
 * under two busy loops Butskoy printed `10.0.0.2  X ms * *` for a hop whose
 * every probe was answered. HERE and NEAR of 100 move that limit to 100 ms,
 * a thousand times the lab's round trip and tens of scheduler time slices.
 * Both tools still apply the rule (the silent-router traces end on NEAR, not
 * MAX); its arithmetic is tested against a fake network in trace_test.ts.
 */
const WAIT = ["-w", "5,100,100"];

/**
 * Runs Butskoy and ours once with the same arguments (plus {@linkcode WAIT}
 * unless they set `-w`) and asserts the same exit code and the same text,
 * times masked.
 */
async function compare(lab: Lab, given: string[], opts: { user?: "nobody" } = {}) {
  const args = given.includes("-w") ? given : [...WAIT, ...given];
  const a = await butskoy(lab, args, opts);
  const b = await ours(lab, args, opts);
  assertEquals(b.code, a.code, `exit code for ${args.join(" ")}: ${b.stderr}`);
  assertEquals(mask(b.stdout), mask(a.stdout), `output of ${args.join(" ")}`);
  return b.stdout;
}

const METHODS: [string, string[]][] = [["UDP", []], ["ICMP", ["-I"]], ["TCP", ["-T"]]];

labTest(
  "traceroute prints Butskoy's hops, addresses and line shapes for every method and IP version",
  async (t, lab) => {
    const target = lab.host("target");
    for (const [name, flags] of METHODS) {
      for (const family of [4, 6] as const) {
        await t.step(`${name} over IPv${family}`, async () => {
          const out = await compare(lab, ["-n", ...flags, family === 4 ? target.v4 : target.v6]);
          const lines = out.trimEnd().split("\n");
          assertEquals(lines.length, 5, out);
          for (const [i, host] of ["r1", "r2", "r3", "target"].entries()) {
            const addr = family === 4 ? lab.host(host).v4 : lab.host(host).v6;
            assertMatch(lines[i + 1]!, new RegExp(`^ ${i + 1}  ${addr}(  \\d+\\.\\d{3} ms){3}$`));
          }
        });
      }
    }
    await t.step("packet length, first TTL, max hops and probes per hop as Butskoy", async () => {
      await compare(lab, ["-n", target.v4, "100"]);
      await compare(lab, ["-n", "-I", target.v6, "20"]);
      await compare(lab, ["-n", "-f", "3", "-q", "1", target.v4]);
      await compare(lab, ["-n", "-m", "2", target.v6]);
      // HERE and NEAR as generous as WAIT's, for the same reason.
      await compare(lab, ["-n", "-N", "1", "-w", "2,100,100", target.v6]);
      await compare(lab, ["-n", "-z", "20", "-q", "1", target.v4]);
    });
    await t.step("source address and interface as Butskoy", async () => {
      const client = lab.host("client");
      await compare(lab, ["-n", "-s", client.v4, "-i", "to-r1", target.v4]);
      await compare(lab, ["-n", "-T", "-s", client.v6, "-i", "to-r1", target.v6]);
      await compare(lab, ["-n", "-I", "-i", "to-r1", target.v4]);
    });
  },
);

labTest(
  "traceroute shows a silent router as stars and still reaches the target",
  async (t, lab) => {
    await lab.silence("r2");
    const target = lab.host("target");
    for (const [name, flags] of METHODS) {
      for (const family of [4, 6] as const) {
        await t.step(`${name} over IPv${family}`, async () => {
          const out = await compare(lab, ["-n", ...flags, family === 4 ? target.v4 : target.v6]);
          const lines = out.trimEnd().split("\n");
          assertEquals(lines[2], " 2  * * *");
          assertMatch(lines[4]!, new RegExp(`^ 4  ${family === 4 ? target.v4 : target.v6}  `));
        });
      }
    }
    await t.step("--json gives null probes for the silent hop, then the summary", async () => {
      const r = await ours(lab, ["-n", "--json", "-I", target.v6]);
      assertEquals(r.code, 0, r.stderr);
      const lines = jsonLines(r.stdout);
      assertEquals(lines.length, 5);
      assertEquals(lines[1], {
        type: "hop",
        ttl: 2,
        probes: [0, 1, 2].map(() => ({ address: null, name: null, rtt: null, annotation: null })),
      });
      const last = lines[3] as { probes: { address: string; rtt: number }[] };
      assert(last.probes.every((p) => p.address === target.v6 && p.rtt > 0), r.stdout);
      assertEquals((lines[4] as unknown as Summary).reached, true);
      assertEquals((lines[4] as unknown as Summary).hops, 4);
    });
    await t.step("with -w MAX only, as Butskoy (HERE and NEAR off)", async () => {
      const out = await compare(lab, ["-n", "-w", "1", target.v4]);
      assertEquals(out.trimEnd().split("\n")[2], " 2  * * *");
    });
  },
);

labTest(
  "traceroute annotates admin-prohibited with !X and host-unreachable with !H",
  async (t, lab) => {
    const target = lab.host("target");
    const cases = [["admin-prohibited", "!X"], ["host-unreachable", "!H"]] as const;
    for (const [code, mark] of cases) {
      const rule = await lab.reject("r2", { code });
      for (const [name, flags] of METHODS) {
        for (const family of [4, 6] as const) {
          await t.step(`${code} for ${name} over IPv${family}`, async () => {
            const out = await compare(lab, ["-n", ...flags, family === 4 ? target.v4 : target.v6]);
            const lines = out.trimEnd().split("\n");
            const r2 = family === 4 ? lab.host("r2").v4 : lab.host("r2").v6;
            assertEquals(lines.length, 4, out);
            assertMatch(lines[3]!, new RegExp(`^ 3  ${r2}(  \\d+\\.\\d{3} ms ${mark}){3}$`));
          });
        }
      }
      await rule.delete();
    }
  },
);

labTest(
  "traceroute -T ends at the target for a closed port (RST) and an open port (SYN-ACK)",
  async (t, lab) => {
    const target = lab.host("target");
    await t.step("closed port 80", async () => {
      const out = await compare(lab, ["-n", "-T", target.v4]);
      assertMatch(out.trimEnd().split("\n").at(-1)!, new RegExp(`^ 4  ${target.v4}  `));
    });
    const server = lab.spawn("target", [
      "/usr/bin/python3",
      "-c",
      "import socket,sys\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n" +
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('::', 8080))\ns.listen()\n" +
      "print('ready', flush=True)\nsys.stdin.read()",
    ], { stdin: "piped" });
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assertEquals(first.value?.trim(), "ready");
    for (const family of [4, 6] as const) {
      await t.step(`open port 8080 over IPv${family}`, async () => {
        const addr = family === 4 ? target.v4 : target.v6;
        const out = await compare(lab, ["-n", "-T", "-p", "8080", addr]);
        assertMatch(out.trimEnd().split("\n").at(-1)!, new RegExp(`^ 4  ${addr}  `));
      });
    }
    await server.stdin.close();
    await reader.cancel();
    await server.stderr.cancel();
    await server.status;
  },
);

labTest(
  "traceroute without privileges traces with UDP and ICMP datagram sockets, refuses TCP",
  async (t, lab) => {
    const target = lab.host("target");
    await t.step("UDP through the error queue", async () => {
      await compare(lab, ["-n", target.v4], { user: "nobody" });
      await compare(lab, ["-n", target.v6], { user: "nobody" });
    });
    await t.step("TCP prints Butskoy's message and exits 1", async () => {
      const r = await ours(lab, ["-n", "-T", target.v4], { user: "nobody" });
      assertEquals(r.code, 1);
      assertEquals(r.stdout, "");
      assertMatch(r.stderr, /You do not have enough privileges to use this traceroute method\./);
    });
    await t.step("ICMP through a ping socket once ping_group_range allows it", async () => {
      await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
      for (const family of [4, 6] as const) {
        const args = ["-n", "-I", family === 4 ? target.v4 : target.v6];
        // Butskoy's ping-socket mode loses answers here (it prints `*` for
        // probes the path did answer), so compare the hops, not the lines.
        const a = await butskoy(lab, args, { user: "nobody" });
        const b = await ours(lab, args, { user: "nobody" });
        assertEquals(b.code, 0, b.stderr);
        const theirs = mask(a.stdout).trimEnd().split("\n");
        const mine = mask(b.stdout).trimEnd().split("\n");
        assertEquals(mine[0], theirs[0]);
        assertEquals(mine.length, 5, b.stdout);
        for (const [i, host] of ["r1", "r2", "r3", "target"].entries()) {
          const addr = family === 4 ? lab.host(host).v4 : lab.host(host).v6;
          assertEquals(mine[i + 1], ` ${i + 1}  ${addr}  X ms  X ms  X ms`);
          for (const shown of theirs[i + 1]!.matchAll(/ ([0-9a-f:.]+) {2}X ms/g)) {
            assertEquals(shown[1], addr, `Butskoy: ${theirs[i + 1]}`);
          }
        }
      }
    });
  },
);

interface Summary {
  type: "summary";
  probesSent: number;
  reached: boolean;
  hops: number;
  flow: { source: string; sourcePort: number; destinationPort: number } | null;
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
}

labTest(
  "traceroute --paris sends every probe with the same 5-tuple; classic mode does not",
  async (t, lab) => {
    const client = lab.host("client");
    const target = lab.host("target");
    const cases = [
      ["UDP", "udp", 33434, []],
      ["TCP", "tcp", 80, ["-T"]],
    ] as const;
    for (const [name, proto, dport, flags] of cases) {
      for (const paris of [true, false]) {
        await t.step(`${name} ${paris ? "Paris" : "classic"}`, async () => {
          const sport = 40000 + Math.floor(Math.random() * 20000);
          const exact = await lab.counter("client", {
            chain: "output",
            match:
              `ip saddr ${client.v4} ip daddr ${target.v4} ${proto} sport ${sport} ${proto} dport ${dport}`,
          });
          const all = await lab.counter("client", {
            chain: "output",
            match: `ip daddr ${target.v4} meta l4proto ${proto}`,
          });
          const args = ["-n", "--json", ...flags, target.v4];
          if (paris) args.unshift("--paris", "--sport", String(sport));
          const r = await ours(lab, args);
          assertEquals(r.code, 0, r.stderr);
          const lines = jsonLines(r.stdout);
          const summary = lines.at(-1) as unknown as Summary;
          assert(summary.reached, r.stdout);
          const exactCount = (await exact.counters()).packets;
          const allCount = (await all.counters()).packets;
          if (paris) {
            assertEquals(summary.flow?.sourcePort, sport);
            assertEquals(allCount, summary.probesSent);
            assertEquals(exactCount, summary.probesSent, "every probe on the one flow");
          } else {
            assertEquals(summary.flow, null);
            assert(
              allCount === summary.probesSent && exactCount < allCount,
              `${exactCount}/${allCount}`,
            );
          }
          await exact.delete();
          await all.delete();
        });
      }
    }
    for (const family of [4, 6] as const) {
      for (const paris of [true, false]) {
        await t.step(`ICMP over IPv${family} ${paris ? "Paris" : "classic"}`, async () => {
          // A dynamic nftables set on the client collects each distinct
          // (identifier, checksum) pair of the echo requests sent: what a
          // per-flow load balancer hashes for ICMP.
          const set = `flows${family}${paris ? "p" : "c"}`;
          const icmp = family === 4 ? "icmp" : "icmpv6";
          const daddr = family === 4 ? `ip daddr ${target.v4}` : `ip6 daddr ${target.v6}`;
          const nft = await lab.exec("client", ["nft", "-f", "-"], {
            stdin:
              `add set inet lab ${set} { typeof ${icmp} id . ${icmp} checksum; flags dynamic; }\n` +
              `add rule inet lab output ${daddr} ${icmp} type echo-request ` +
              `add @${set} { ${icmp} id . ${icmp} checksum }\n`,
          });
          assertEquals(nft.code, 0, nft.stderr);
          const args = ["-n", "--json", "-I", family === 4 ? target.v4 : target.v6];
          if (paris) args.unshift("--paris");
          const r = await ours(lab, args);
          const summary = jsonLines(r.stdout).at(-1) as unknown as Summary;
          assert(summary.reached, r.stdout);
          const list = await lab.exec("client", ["nft", "-j", "list", "set", "inet", "lab", set]);
          const doc = JSON.parse(list.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
          const flows = doc.nftables.find((o) => o.set)?.set?.elem?.length ?? 0;
          if (paris) assertEquals(flows, 1, list.stdout);
          else assertEquals(flows, summary.probesSent, list.stdout);
        });
      }
    }
  },
);

labTest(
  "traceroute --report loss at the target matches the packets nftables dropped",
  async (t, lab) => {
    const target = lab.host("target");
    // Only the probes whose TTL runs out exactly at the target (TTL 1 on
    // arrival) are dropped, so each cycle risks exactly one probe.
    const drop = await lab.drop("target", { percent: 30, match: "ip ttl 1 meta l4proto udp" });
    const cycles = 40;
    const r = await ours(lab, ["-n", "--report", "-c", String(cycles), "--json", target.v4]);
    assertEquals(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      hops: { ttl: number; host: string | null; loss: number; sent: number; received: number }[];
    };
    const last = rep.hops.at(-1)!;
    const dropped = (await drop.counters()).packets;
    await t.step("the last row is the target with every cycle counted", () => {
      assertEquals(last.ttl, 4);
      assertEquals(last.host, target.v4);
      assertEquals(last.sent, cycles);
    });
    await t.step("lost probes equal the counter's drops", () => {
      assertEquals(last.sent - last.received, dropped);
      assertEquals(last.loss, Math.round(dropped / cycles * 1000) / 10);
    });
    await t.step("routers before it lost nothing", () => {
      for (const hop of rep.hops.slice(0, -1)) assertEquals(hop.loss, 0);
    });
    await drop.delete();
    await t.step("the text report has mtr's layout", async () => {
      const mtr = await lab.exec("client", ["mtr", "-r", "-c", "1", "-i", "0.1", "-n", target.v4]);
      const mine = await ours(lab, ["-n", "--report", "-c", "1", target.v4]);
      // Same columns: each field where it ends (numbers are right-aligned, so a slow
      // probe's wider RTT keeps its column), numbers masked; the start time differs.
      const shape = (s: string) =>
        s.trimEnd().split("\n").slice(1).map((l) =>
          [...l.matchAll(/\S+/g)].map((m) =>
            `${/^[\d.%]+$/.test(m[0]) ? "#" : m[0]}@${m.index + m[0].length}`
          ).join(" ")
        ).join("\n");
      assertEquals(shape(mine.stdout), shape(mtr.stdout));
    });
  },
);

labTest(
  "traceroute prints each hop's line while later hops' probes are still unanswered",
  async (_t, lab) => {
    // Every probe beyond r1 is lost: r2 drops what it would forward and its
    // time-exceeded messages. With `-w 30` (MAX only) those probes keep the
    // trace running for 30 s, so hop 1's line must come while the process
    // is still waiting; the test then stops it with SIGTERM. A traceroute
    // that printed at its end would have exited with 0 instead. 30 s is
    // thousands of times the usual delay from the line to the test's read.
    const forward = await lab.drop("r2", { chain: "forward", match: "meta l4proto udp" });
    const silent = await lab.silence("r2");
    const child = lab.spawn("client", [
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "-n",
      "-w",
      "30",
      "-m",
      "4",
      lab.host("target").v4,
    ]);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/\n 1 .*\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited: the status below says so.
    }
    await reader.cancel();
    await child.stderr.cancel();
    const status = await child.status;
    assertEquals(mask(text).split("\n")[1], ` 1  ${lab.host("r1").v4}  X ms  X ms  X ms`);
    assertEquals(status.signal, "SIGTERM", `exit code ${status.code}: printed only at its end`);
    // The 9 probes of hops 2 to 4: 3 expired at r2 (their answers dropped),
    // 6 dropped on the way through it. None was ever answered.
    assertEquals((await forward.counters()).packets + (await silent.counters()).packets, 9);
  },
);

labTest(
  "traceroute looks up hop names as Butskoy does, and prefers IPv4 for a name",
  async (t, lab) => {
    // `ip netns exec` mounts /etc/netns/<ns>/* over /etc, so the client gets
    // its own hosts file (names for the lab) and a resolver that fails fast.
    const dir = `/etc/netns/${lab.host("client").ns}`;
    await Deno.mkdir(dir, { recursive: true });
    try {
      const names = ["r1", "r2", "r3", "target"].flatMap((h) => [
        `${lab.host(h).v4} ${h}.lab`,
        `${lab.host(h).v6} ${h}.lab`,
      ]);
      await Deno.writeTextFile(`${dir}/hosts`, `127.0.0.1 localhost\n${names.join("\n")}\n`);
      await Deno.writeTextFile(
        `${dir}/resolv.conf`,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
      );
      // Every probe here is answered, so these steps wait on MAX alone
      // (`-w 5`): Butskoy looks each name up between reading answers, and
      // under load a lookup outlasted even WAIT's 100 ms HERE and NEAR, so
      // Butskoy printed `* * *` for hops 2 to 6 whose probes were all
      // answered. Without HERE and NEAR, a late read is still a reply.
      const NAMES_WAIT = ["-w", "5"];
      await t.step("UDP to a name with both address families", async () => {
        const out = await compare(lab, [...NAMES_WAIT, "target.lab"]);
        assertMatch(out, /^traceroute to target\.lab \(10\.0\.3\.2\)/);
        assertMatch(out, /\n 2 {2}r2\.lab \(10\.0\.1\.2\) {2}/);
      });
      await t.step("ICMP over IPv6 with names", async () => {
        const out = await compare(lab, [...NAMES_WAIT, "-I", lab.host("target").v6]);
        assertEquals(
          mask(out).trimEnd().split("\n").slice(1),
          ["r1", "r2", "r3", "target"].map((h, i) =>
            ` ${i + 1}  ${h}.lab (${lab.host(h).v6})  X ms  X ms  X ms`
          ),
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

labTest(
  "traceroute --mtu reports each drop of the path MTU at its hop, as Butskoy",
  async (t, lab) => {
    // client -1500- r1 -1400- r2 -1280- r3 -1280- target: r1 reports 1400
    // for probes to r2 and beyond, r2 reports 1280 for those to r3.
    const links: [string, string, number][] = [
      ["r1", "r2", 1400],
      ["r2", "r3", 1280],
      ["r3", "target", 1280],
    ];
    for (const [a, b, mtu] of links) {
      for (const [host, towards] of [[a, b], [b, a]] as const) {
        const dev = lab.iface(host, towards);
        const r = await lab.exec(host, ["ip", "link", "set", "dev", dev, "mtu", String(mtu)]);
        assertEquals(r.code, 0, r.stderr);
      }
    }
    const target = lab.host("target");
    for (const [name, flags] of METHODS.slice(0, 2)) {
      for (const family of [4, 6] as const) {
        await t.step(`${name} over IPv${family}`, async () => {
          const addr = family === 4 ? target.v4 : target.v6;
          const out = await compare(lab, ["-n", "--mtu", ...flags, addr]);
          const lines = mask(out).trimEnd().split("\n");
          assertMatch(lines[0]!, /, 65000 byte packets$/);
          for (
            const [i, host, note] of [[1, "r1", 1500], [2, "r2", 1400], [3, "r3", 1280]] as const
          ) {
            const a = family === 4 ? lab.host(host).v4 : lab.host(host).v6;
            assertEquals(lines[i], ` ${i}  ${a}  X ms F=${note}  X ms  X ms`);
          }
        });
      }
    }
    await t.step("an asked-for size below the first MTU, as Butskoy", async () => {
      await compare(lab, ["-n", "--mtu", target.v4, "1300"]);
    });
    await t.step("-F: a probe too big for r2's link ends at r1 with !F-1400", async () => {
      const out = await compare(lab, ["-n", "-F", target.v4, "1450"]);
      assertMatch(out.trimEnd().split("\n")[2]!, / !F-1400$/);
    });
    await t.step("--json carries each hop's MTU", async () => {
      const r = await ours(lab, ["-n", "--mtu", "--json", "-I", target.v6]);
      assertEquals(r.code, 0, r.stderr);
      const mtus = jsonLines(r.stdout).slice(0, -1).map((l) => l.mtu);
      assertEquals(mtus, [1500, 1400, 1280, 1280]);
    });
    await t.step("the report's JSON and text carry each hop's MTU", async () => {
      const r = await ours(lab, ["-n", "--mtu", "--report", "-c", "2", "--json", target.v4]);
      assertEquals(r.code, 0, r.stderr);
      const hops = (JSON.parse(r.stdout) as { hops: { mtu: number }[] }).hops;
      assertEquals(hops.map((h) => h.mtu), [1500, 1400, 1280, 1280]);
      const text = await ours(lab, ["-n", "--mtu", "--report", "-c", "1", target.v4]);
      const lines = text.stdout.trimEnd().split("\n");
      assertMatch(lines[1]!, / StDev {3}MTU$/);
      assertMatch(lines[3]!, / 1400$/);
    });
  },
);

/**
 * Adds r2b beside r2 (client -- r1 -- {r2, r2b} -- r3 -- target) and makes
 * r1 balance flows to the target over both, hashing the 5-tuple
 * (`fib_multipath_hash_policy=1`). Returns what removes r2b.
 */
async function addBranch(lab: Lab): Promise<{ v4: string; v6: string; remove(): Promise<void> }> {
  const ns = `${lab.host("r2").ns}b`;
  const sh = async (where: string | null, script: string) => {
    const cmd = where === null
      ? new Deno.Command("sh", { args: ["-e"], stdin: "piped", stderr: "piped" })
      : new Deno.Command("ip", {
        args: ["netns", "exec", where, "sh", "-e"],
        stdin: "piped",
        stderr: "piped",
      });
    const child = cmd.spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(script));
    await w.close();
    const out = await child.output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  const r1 = lab.host("r1").ns;
  const r3 = lab.host("r3").ns;
  await sh(
    null,
    `ip netns add ${ns}\n` +
      `ip link add name to-r2b netns ${r1} type veth peer name to-r1 netns ${ns}\n` +
      `ip link add name to-r2b netns ${r3} type veth peer name to-r3 netns ${ns}\n`,
  );
  const remove = async () => {
    await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
  };
  try {
    const sysctl = (kv: string) => {
      const [k, v] = kv.split("=") as [string, string];
      return `echo ${v} > /proc/sys/${k.replaceAll(".", "/")}\n`;
    };
    const addr = (dev: string, v4: string, v6: string) =>
      `ip addr add ${v4}/24 dev ${dev}\nip addr add ${v6}/64 dev ${dev} nodad\nip link set ${dev} up\n`;
    await sh(
      ns,
      ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.icmp_ratelimit=0"]
        .map(sysctl).join("") +
        "echo 0 > /proc/sys/net/ipv6/icmp/ratelimit\nip link set lo up\n" +
        addr("to-r1", "10.0.100.2", "fd00:0:100::2") +
        addr("to-r3", "10.0.101.1", "fd00:0:101::1") +
        "ip route add 10.0.0.0/24 via 10.0.100.1\nip route add fd00::/64 via fd00:0:100::1\n" +
        "ip route add 10.0.3.0/24 via 10.0.101.2\nip route add fd00:0:3::/64 via fd00:0:101::2\n",
    );
    await sh(
      r3,
      addr("to-r2b", "10.0.101.2", "fd00:0:101::2") +
        sysctl("net.ipv4.conf.all.rp_filter=0") + sysctl("net.ipv4.conf.to-r2b.rp_filter=0"),
    );
    await sh(
      r1,
      addr("to-r2b", "10.0.100.1", "fd00:0:100::1") +
        sysctl("net.ipv4.fib_multipath_hash_policy=1") +
        sysctl("net.ipv6.fib_multipath_hash_policy=1") +
        "ip route replace 10.0.3.0/24 nexthop via 10.0.1.2 nexthop via 10.0.100.2\n" +
        "ip -6 route replace fd00:0:3::/64 nexthop via fd00:0:1::2 nexthop via fd00:0:100::2\n",
    );
  } catch (err) {
    await remove();
    throw err;
  }
  return { v4: "10.0.100.2", v6: "fd00:0:100::2", remove };
}

interface FlowsDoc {
  nodes: { id: string; ttl: number; address: string | null; flows: number[] }[];
  edges: { from: string; to: string; flows: number[] }[];
  flows: { id: number; flow: { sourcePort: number } | null }[];
}

labTest(
  "traceroute --flows finds both branches of an ECMP router and where they join",
  async (t, lab) => {
    const branch = await addBranch(lab);
    try {
      for (const family of [4, 6] as const) {
        const v = (h: string) => family === 4 ? lab.host(h).v4 : lab.host(h).v6;
        const r2b = family === 4 ? branch.v4 : branch.v6;
        for (const [name, flags] of METHODS.filter(([n]) => n !== "ICMP")) {
          await t.step(`${name} over IPv${family}: --flows 8, JSON graph`, async () => {
            // The hash may send all of 8 flows one way (2 × 0.5^8 ≈ 0.8%);
            // distinct source ports from 40000 make the outcome fixed per run.
            const r = await ours(lab, [
              "-n",
              "--flows",
              "8",
              "--sport",
              "40000",
              "--json",
              ...flags,
              v("target"),
            ]);
            assertEquals(r.code, 0, r.stderr);
            const g = JSON.parse(r.stdout) as FlowsDoc;
            assertEquals(
              g.flows.map((f) => f.flow?.sourcePort),
              [0, 1, 2, 3, 4, 5, 6, 7].map((i) => 40000 + i),
            );
            const at = (ttl: number) => g.nodes.filter((n) => n.ttl === ttl);
            assertEquals(at(1).map((n) => n.address), [v("r1")]);
            assertEquals(at(2).map((n) => n.address).sort(), [v("r2"), r2b].sort(), r.stdout);
            const two = at(2).flatMap((n) => n.flows).sort((a, b) => a - b);
            assertEquals(two, [1, 2, 3, 4, 5, 6, 7, 8], "each flow took exactly one branch");
            // Edges: r1 forks to both branches, with each branch's flows.
            for (const n of at(2)) assertEquals(g.edges.find((e) => e.to === n.id)?.flows, n.flows);
            if (family === 4) {
              // r3 answers from the address of its route back (towards r2)
              // whichever way a probe came: the branches join at hop 3.
              assertEquals(at(3).map((n) => [n.address, n.flows.length]), [[v("r3"), 8]], "join");
              for (const n of at(2)) {
                assertEquals(g.edges.find((e) => e.from === n.id)?.to, at(3)[0]!.id);
              }
            } else {
              // ICMPv6 errors come from the interface the probe arrived on
              // (RFC 4443 §2.2), so r3 shows two addresses, one per branch,
              // and the addresses join at the target.
              const r2b3 = "fd00:0:101::2";
              assertEquals(at(3).map((n) => n.address).sort(), [v("r3"), r2b3].sort());
              const viaB = at(2).find((n) => n.address === r2b)!.flows;
              assertEquals(at(3).find((n) => n.address === r2b3)!.flows, viaB);
            }
            assertEquals(at(4).map((n) => [n.address, n.flows.length]), [[v("target"), 8]]);
          });
        }
        await t.step(`a single Paris flow stays on one branch over IPv${family}`, async () => {
          const seen = new Set<string>();
          for (let run = 0; run < 20; run++) {
            const r = await ours(lab, ["-n", "--paris", "--sport", "40001", "--json", v("target")]);
            assertEquals(r.code, 0, r.stderr);
            const hop2 = jsonLines(r.stdout)[1] as { probes: { address: string }[] };
            for (const p of hop2.probes) seen.add(p.address);
          }
          assertEquals(seen.size, 1, [...seen].join(" "));
        });
      }
      await t.step("classic UDP (a port per probe) meets both branches", async () => {
        const seen = new Set<string>();
        for (let run = 0; run < 3; run++) {
          const r = await ours(lab, ["-n", "-q", "6", "--json", lab.host("target").v4]);
          const hop2 = jsonLines(r.stdout)[1] as { probes: { address: string }[] };
          for (const p of hop2.probes) seen.add(p.address);
        }
        assertEquals([...seen].sort(), [lab.host("r2").v4, branch.v4].sort());
      });
      await t.step("text and DOT output name each address's flows", async () => {
        const text = await ours(lab, [
          "-n",
          "--flows",
          "4",
          "--sport",
          "40000",
          lab.host("target").v4,
        ]);
        assertMatch(
          text.stdout,
          /, 4 flows\n 1 {2}10\.0\.0\.2 \[1-4\]\n 2 {2}10\.0\.\d+\.2 \[[\d,-]+\]/,
        );
        assertMatch(text.stdout, /\n 3 {2}10\.0\.2\.2 \[1-4\]\n 4 {2}10\.0\.3\.2 \[1-4\]\n$/);
        const dot = await ours(lab, ["-n", "--flows", "4", "--dot", lab.host("target").v4]);
        assertMatch(dot.stdout, /^digraph traceroute \{\n/);
        assertMatch(dot.stdout, /"2:10\.0\.\d+\.2" -> "3:10\.0\.2\.2" \[label="[\d,-]+"\];/);
      });
    } finally {
      await branch.remove();
    }
  },
);
