import { assert, assertEquals, assertMatch, assertThrows } from "./assert.ts";
import { labTest } from "./lab.ts";

/** The hop lines of Butskoy traceroute output. */
function hops(stdout: string): { hop: number; address: string; text: string }[] {
  return stdout.split("\n").slice(1).filter((l) => /^\s*\d+\s/.test(l)).map((l) => {
    const [hop, address, ...rest] = l.trim().split(/\s+/);
    return { hop: Number(hop), address: address ?? "", text: rest.join(" ") };
  });
}

function pingTotals(stdout: string): { transmitted: number; received: number } {
  const m = stdout.match(/(\d+) packets transmitted, (\d+) received/);
  assert(m !== null, `no ping summary in ${stdout}`);
  return { transmitted: Number(m[1]), received: Number(m[2]) };
}

labTest("30% loss on r3 drops exactly the packets its counter reports", async (t, lab) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      const rule = await lab.drop("r3", {
        percent: 30,
        match: family === 4 ? "meta l4proto icmp" : "meta l4proto ipv6-icmp",
      });
      const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
      const r = await lab.exec("client", [
        "ping",
        "-q",
        "-c",
        "200",
        "-i",
        "0.002",
        "-W",
        "1",
        target,
      ]);
      const { transmitted, received } = pingTotals(r.stdout);
      const { packets } = await rule.counters();
      assertEquals(transmitted, 200);
      // Each lost echo is one dropped packet: the request, or else its reply.
      assertEquals(transmitted - received, packets);
      // 30% of 400 packets: far from 0 and from all (binomial, sd about 9).
      assert(packets > 20 && packets < 150, `implausible drop count ${packets}`);
      await rule.delete();
    });
  }
});

labTest("drop() of 100% on a router stops the traffic and counts it", async (_t, lab) => {
  const rule = await lab.drop("r1", { match: "icmp type echo-request" });
  const r = await lab.exec("client", [
    "ping",
    "-c",
    "2",
    "-i",
    "0.01",
    "-W",
    "1",
    lab.host("r3").v4,
  ]);
  assertEquals(pingTotals(r.stdout), { transmitted: 2, received: 0 });
  assertEquals((await rule.counters()).packets, 2);
  await rule.delete();
  await rule.delete(); // idempotent
  const again = await lab.exec("client", ["ping", "-c", "1", "-W", "1", lab.host("r3").v4]);
  assertEquals(again.code, 0);
});

labTest("duplicate() makes iputils ping report (DUP!) replies", async (t, lab) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      const rule = await lab.duplicate("r2", { family });
      const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
      const r = await lab.exec("client", ["ping", "-c", "3", "-i", "0.05", "-W", "1", target]);
      const dups = r.stdout.split("\n").filter((l) => l.endsWith("(DUP!)"));
      // ping stops at the third reply, so the third copy may come too late.
      assert(dups.length >= 2, r.stdout);
      assertMatch(r.stdout, /3 received, \+[23] duplicates/);
      assertEquals((await rule.counters()).packets, 3);
      await rule.delete();
    });
  }
});

labTest("silence() makes a router's traceroute hop '* * *'", async (t, lab) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      const rule = await lab.silence("r2", { family });
      const addr = (name: string) => family === 4 ? lab.host(name).v4 : lab.host(name).v6;
      const r = await lab.exec("client", ["traceroute", `-${family}`, "-n", addr("target")]);
      assertEquals(
        hops(r.stdout).map((h) => [h.hop, h.address, h.address === "*" ? h.text : ""]),
        [[1, addr("r1"), ""], [2, "*", "* *"], [3, addr("r3"), ""], [4, addr("target"), ""]],
      );
      assertEquals((await rule.counters()).packets, 3);
      await rule.delete();
    });
  }
});

labTest("reject() on a router shows !X and !H in traceroute", async (t, lab) => {
  const cases = [
    { code: "admin-prohibited", family: 4, mark: "!X" },
    { code: "host-unreachable", family: 4, mark: "!H" },
    { code: "net-unreachable", family: 4, mark: "!N" },
    { code: "admin-prohibited", family: 6, mark: "!X" },
    { code: "host-unreachable", family: 6, mark: "!H" },
    { code: "net-unreachable", family: 6, mark: "!N" },
  ] as const;
  for (const c of cases) {
    await t.step(`${c.code} over IPv${c.family} gives ${c.mark}`, async () => {
      const rule = await lab.reject("r2", { code: c.code, family: c.family });
      const addr = (name: string) => c.family === 4 ? lab.host(name).v4 : lab.host(name).v6;
      const r = await lab.exec("client", ["traceroute", `-${c.family}`, "-n", addr("target")]);
      const h = hops(r.stdout);
      // Hop 2 expires at r2 before the forward chain; hop 3 is rejected by r2.
      assertEquals(h.map((x) => [x.hop, x.address]), [[1, addr("r1")], [2, addr("r2")], [
        3,
        addr("r2"),
      ]]);
      assertMatch(h[2]!.text, new RegExp(`ms ${c.mark}`), r.stdout);
      assert((await rule.counters()).packets >= 3);
      await rule.delete();
    });
  }
  await t.step("a code without an ICMPv6 equivalent is a TypeError for IPv6", () => {
    assertThrows(() => lab.reject("r2", { code: "host-prohibited", family: 6 }), TypeError);
  });
});

labTest("counter() counts the packets of a 5-tuple without changing them", async (_t, lab) => {
  const udp = await lab.counter("target", {
    chain: "input",
    match: `ip saddr ${lab.host("client").v4} udp dport 33434-33534`,
  });
  const icmp = await lab.counter("target", { chain: "input", match: "icmp type echo-request" });
  const r = await lab.exec("client", [
    "traceroute",
    "-4",
    "-n",
    "-q",
    "1",
    "-N",
    "1",
    lab.host("target").v4,
  ]);
  assertEquals(r.code, 0);
  // One probe at a time (-N 1), one per hop (-q 1): only the fourth reaches the target.
  assertEquals((await udp.counters()).packets, 1);
  assertEquals((await icmp.counters()).packets, 0);
  const p = await lab.exec("client", ["ping", "-c", "2", "-i", "0.01", lab.host("target").v4]);
  assertEquals(pingTotals(p.stdout).received, 2);
  const c = await icmp.counters();
  assertEquals(c, { packets: 2, bytes: 2 * 84 });
});
