import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import { Lab, labAvailable, labTest } from "./lab.ts";

// Tests that create labs themselves follow labTest()'s rule: ignored without
// root (the reason is printed by labAvailable() users), failed under CI=true.
const noLab = !labAvailable().ok && Deno.env.get("CI") !== "true";

/** The hop lines of Butskoy traceroute output: [hop number, first address or "*", rest]. */
function hops(stdout: string): { hop: number; address: string; text: string }[] {
  return stdout.split("\n").slice(1).filter((l) => /^\s*\d+\s/.test(l)).map((l) => {
    const [hop, address, ...rest] = l.trim().split(/\s+/);
    return { hop: Number(hop), address: address ?? "", text: rest.join(" ") };
  });
}

async function namespaces(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");
}

labTest(
  "the client pings the target through three routers, TTL 64 minus 3 hops",
  async (t, lab) => {
    for (const family of [4, 6] as const) {
      await t.step(`IPv${family}`, async () => {
        const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
        const r = await lab.exec("client", ["ping", "-c", "2", "-i", "0.01", "-W", "2", target]);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        // The reply leaves the target with 64 and crosses r3, r2 and r1.
        assertMatch(r.stdout, new RegExp(`from ${target}: icmp_seq=1 ttl=61 `));
        assertMatch(r.stdout, /2 packets transmitted, 2 received/);
      });
    }
  },
);

labTest(
  "traceroute -n from the client lists r1, r2, r3 and the target in order",
  async (t, lab) => {
    for (const family of [4, 6] as const) {
      await t.step(`IPv${family}`, async () => {
        const addr = (name: string) => family === 4 ? lab.host(name).v4 : lab.host(name).v6;
        const r = await lab.exec("client", ["traceroute", `-${family}`, "-n", addr("target")]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          hops(r.stdout).map((h) => [h.hop, h.address]),
          [[1, addr("r1")], [2, addr("r2")], [3, addr("r3")], [4, addr("target")]],
        );
      });
    }
  },
);

labTest("every namespace has ICMP rate limits off; only routers forward", async (_t, lab) => {
  const keys = [
    "net/ipv4/icmp_ratelimit",
    "net/ipv6/icmp/ratelimit",
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
  ];
  for (const name of lab.path) {
    const r = await lab.exec(name, ["sh", "-c", 'cd /proc/sys && cat "$@"', "sh", ...keys]);
    const router = name.startsWith("r") ? "1" : "0";
    assertEquals(r.stdout.trim().split("\n"), ["0", "0", router, router], name);
  }
  await lab.sysctl("target", "net.ipv4.ping_group_range", "0 2147483647");
  const r = await lab.exec("target", ["cat", "/proc/sys/net/ipv4/ping_group_range"]);
  assertEquals(r.stdout.trim().split(/\s+/), ["0", "2147483647"]);
  const e = await assertRejects(() => lab.sysctl("target", "net.ipv4.no_such_key", "1"));
  assertMatch(e.message, /Cannot set net\.ipv4\.no_such_key on "target"/);
});

labTest("a lab of one router has client, r1 and target", async (_t, lab) => {
  assertEquals(lab.path, ["client", "r1", "target"]);
  const r = await lab.exec("client", ["ping", "-c", "1", "-W", "2", lab.host("target").v4]);
  assertMatch(r.stdout, /ttl=63 /);
}, { routers: 1 });

labTest("iface() and address() name each end of a link", async (_t, lab) => {
  assertEquals(lab.iface("r2", "r3"), "to-r3");
  assertEquals(lab.address("r2", "r3", 4), "10.0.2.1");
  assertEquals(lab.address("r3", "r2", 6), "fd00:0:2::2");
  assertEquals(lab.address("r1", "client"), lab.host("r1").v4);
  const r = await lab.exec("r2", ["ip", "-br", "addr", "show", "dev", lab.iface("r2", "r3")]);
  assertMatch(r.stdout, /10\.0\.2\.1\/24/);
  let error: unknown;
  try {
    lab.iface("client", "r2");
  } catch (e) {
    error = e;
  }
  assert(error instanceof RangeError);
  let missing: unknown;
  try {
    lab.host("r9");
  } catch (e) {
    missing = e;
  }
  assert(missing instanceof RangeError);
});

labTest(
  "lab.run() calls a module's export inside the namespace and returns its JSON",
  async (t, lab) => {
    const probe = new URL("./testdata/probe.ts", import.meta.url);
    await t.step("the function sees the namespace's interfaces", async () => {
      const addresses = await lab.run<string[]>("r2", probe, "addresses");
      for (const a of ["10.0.1.2", "10.0.2.1", "fd00:0:1::2", "fd00:0:2::1", "127.0.0.1"]) {
        assert(addresses.includes(a), `${a} missing from ${addresses.join(", ")}`);
      }
      assert(!addresses.includes("10.0.0.1"), "the client's address is not on r2");
    });
    await t.step("arguments go through JSON", async () => {
      assertEquals(await lab.run("client", probe, "echo", 1, "two", { three: [3] }), [
        1,
        "two",
        { three: [3] },
      ]);
    });
    await t.step("errors are rethrown with the child's name and message", async () => {
      const e = await assertRejects(() => lab.run("client", probe, "fail", "this"));
      assertEquals(e.name, "RangeError");
      assertEquals(e.message, "Cannot do this: this fixture always fails");
    });
    await t.step("a missing export is a TypeError", async () => {
      const e = await assertRejects(() => lab.run("client", probe, "nothing"));
      assertEquals(e.name, "TypeError");
    });
  },
);

labTest("exec() as nobody pings once ping_group_range is widened", async (_t, lab) => {
  // iputils ping has file capabilities (cap_net_raw); a copy has none, so
  // only the datagram ICMP socket that ping_group_range allows is left.
  const dir = await Deno.makeTempDir({ prefix: "lab-ping-" });
  try {
    await Deno.chmod(dir, 0o755);
    const ping = `${dir}/ping`;
    await Deno.copyFile("/usr/bin/ping", ping);
    await Deno.chmod(ping, 0o755);
    const target = lab.host("target").v4;
    const args = [ping, "-c", "1", "-W", "2", target];
    const before = await lab.exec("client", args, { user: "nobody" });
    assert(before.code !== 0, `ping as nobody worked without the sysctl: ${before.stdout}`);
    await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
    const after = await lab.exec("client", args, { user: "nobody" });
    assertEquals(after.code, 0, after.stdout + after.stderr);
    assertMatch(after.stdout, /1 received/);
    const id = await lab.exec("client", ["id", "-u"], { user: "nobody" });
    assertEquals(id.stdout.trim(), "65534");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a disposed lab leaves no namespace behind, even when the body throws",
  ignore: noLab,
}, async (t) => {
  await t.step("after a normal end", async () => {
    let names: string[];
    {
      await using lab = await Lab.create();
      names = Object.values(lab.hosts).map((h) => h.ns);
      const live = await namespaces();
      assert(names.every((n) => live.includes(n)), "all namespaces exist while the lab lives");
    }
    const left = await namespaces();
    assertEquals(names.filter((n) => left.includes(n)), []);
  });
  await t.step("after a throw, with a server still running", async () => {
    let names: string[] = [];
    const e = await assertRejects(async () => {
      await using lab = await Lab.create();
      names = Object.values(lab.hosts).map((h) => h.ns);
      lab.spawn("target", ["sleep", "60"]);
      throw new Error("the body failed");
    });
    assertEquals(e.message, "the body failed");
    const left = await namespaces();
    assertEquals(names.filter((n) => left.includes(n)), []);
  });
  await t.step("when the process ends without disposing of the lab", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./testdata/forget_dispose.ts", import.meta.url).href],
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const names = JSON.parse(new TextDecoder().decode(out.stdout)) as string[];
    assertEquals(names.length, 3);
    const left = await namespaces();
    assertEquals(names.filter((n) => left.includes(n)), []);
  });
  await t.step("the veths go with the namespaces", async () => {
    const out = await new Deno.Command("ip", { args: ["-br", "link"] }).output();
    assert(!/\bto-(client|r\d|target)\b/.test(new TextDecoder().decode(out.stdout)));
  });
});

Deno.test("Lab.create() rejects a bad router count with a RangeError", async () => {
  for (const routers of [-1, 1.5, 21]) {
    const e = await assertRejects(() => Lab.create({ routers }));
    assert(e instanceof RangeError);
  }
});

Deno.test({ name: "exec() times out with Deno.errors.TimedOut", ignore: noLab }, async () => {
  await using lab = await Lab.create({ routers: 0 });
  const e = await assertRejects(() => lab.exec("client", ["sleep", "5"], { timeoutMs: 100 }));
  assert(e instanceof Deno.errors.TimedOut);
});
