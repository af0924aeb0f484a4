import { assert, assertEquals, assertRejects, assertThrows } from "../testing/assert.ts";
import { type ExecResult, type Lab, labTest } from "../testing/lab.ts";
import { buildEcho, Icmp6Type, IcmpType, parseIcmp, TimeExceededCode } from "../icmp.ts";
import { parseIpv4Header } from "../icmp_error.ts";
import {
  type Datagram,
  DatagramInfo,
  type ErrorReport,
  type Family,
  openSocket,
  realtimeNs,
  type Socket,
  SocketError,
} from "./mod.ts";

const LOOPBACK = { 4: "127.0.0.1", 6: "::1" } as const;
const UNPRIVILEGED_SCRIPT =
  new URL("../testdata/rawsock_unprivileged.ts", import.meta.url).pathname;

/** The ICMP message of a datagram (raw IPv4 sockets deliver the IP header first). */
function icmpOf(sock: Socket, d: Datagram) {
  if (sock.kind === "icmp-raw" && sock.family === 4) {
    const ip = parseIpv4Header(d.data);
    return parseIcmp(d.data.subarray(ip.headerLength), 4);
  }
  return parseIcmp(d.data, sock.family);
}

/** Sends one echo and waits for its reply, skipping anything else. */
async function echoRoundTrip(sock: Socket, address: string, seq: number) {
  const family = sock.family;
  // A datagram socket's identifier is its local port, chosen by the kernel.
  const id = sock.kind === "icmp" ? 0 : (Deno.pid & 0xffff);
  const sentNs = realtimeNs();
  sock.send(buildEcho({ family, id, seq, payload: new TextEncoder().encode("rawsock test") }), {
    family,
    address,
    port: 0,
  });
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const got = await sock.receive({ timeoutMs: deadline - Date.now() });
    if (got === null) break;
    const seenNs = realtimeNs();
    if (got.type !== "data") continue;
    const msg = icmpOf(sock, got);
    if (msg.kind === "echo" && !msg.request && msg.seq === seq) {
      return { datagram: got, message: msg, sentNs, seenNs };
    }
  }
  throw new Error(`No echo reply from ${address} for seq ${seq}`);
}

Deno.test("an ICMP echo round trip through a raw socket on loopback, IPv4 and IPv6", async (t) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      using sock = openSocket({ kind: "icmp-raw", family });
      sock.setIcmpFilter([family === 4 ? IcmpType.ECHO_REPLY : Icmp6Type.ECHO_REPLY]);
      const { datagram, message, sentNs, seenNs } = await echoRoundTrip(
        sock,
        LOOPBACK[family],
        7,
      );
      assertEquals(datagram.from.address, LOOPBACK[family]);
      assertEquals(datagram.ttl, 64);
      assert(message.kind === "echo");
      assertEquals(new TextDecoder().decode(message.payload), "rawsock test");
      // The kernel stamped the packet after we sent it and before JS saw it.
      assert(datagram.timestampNs !== undefined, "no SO_TIMESTAMPNS timestamp");
      assert(datagram.timestampNs >= sentNs, "kernel timestamp before the send");
      assert(datagram.timestampNs <= seenNs, "kernel timestamp after JS saw the packet");
    });
  }
});

labTest(
  "an ICMP echo reaches the target three routers away with TTL 64 minus the 3 routers",
  async (t, lab) => {
    const ns = lab.host("client").ns;
    await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
    for (const kind of ["icmp", "icmp-raw"] as const) {
      for (const family of [4, 6] as const) {
        await t.step(`${kind} IPv${family}`, async () => {
          using sock = openSocket({ kind, family, netns: ns });
          if (kind === "icmp-raw") {
            sock.setIcmpFilter([family === 4 ? IcmpType.ECHO_REPLY : Icmp6Type.ECHO_REPLY]);
          }
          const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
          const { datagram, seenNs } = await echoRoundTrip(sock, target, 1);
          assertEquals(datagram.from.address, target);
          assertEquals(datagram.ttl, 61);
          assert(datagram.timestampNs !== undefined && datagram.timestampNs <= seenNs);
        });
      }
    }
  },
);

function isTimeExceededFromR2(report: ErrorReport, family: Family, r2: string) {
  assertEquals(report.origin, family === 4 ? "icmp" : "icmp6");
  assertEquals(report.icmpType, family === 4 ? IcmpType.TIME_EXCEEDED : Icmp6Type.TIME_EXCEEDED);
  assertEquals(report.icmpCode, TimeExceededCode.TTL);
  assertEquals(report.offender?.address, r2);
  assertEquals(report.code, "EHOSTUNREACH");
}

labTest("a probe with TTL 2 yields a Time Exceeded naming router 2", async (t, lab) => {
  const ns = lab.host("client").ns;
  await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
  for (const family of [4, 6] as const) {
    const r2 = family === 4 ? lab.host("r2").v4 : lab.host("r2").v6;
    const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
    const dst = { family, address: target, port: 0 };

    await t.step(`IPv${family} datagram socket: from the error queue`, async () => {
      using sock = openSocket({ kind: "icmp", family, netns: ns });
      sock.setTtl(2);
      const probe = buildEcho({ family, id: 0, seq: 42 });
      sock.send(probe, dst);
      const got = await sock.receive({ timeoutMs: 3000 });
      assert(got !== null && got.type === "error", `expected an error report, got ${got?.type}`);
      isTimeExceededFromR2(got, family, r2);
      // The quoted original is our own echo request, sequence included.
      const quoted = parseIcmp(got.original, family);
      assert(quoted.kind === "echo" && quoted.request && quoted.seq === 42);
      assertEquals(got.destination?.address, target);
      assertEquals(sock.receiveError(), null);
    });

    await t.step(`IPv${family} UDP socket: from the error queue`, async () => {
      using sock = openSocket({ kind: "udp", family, netns: ns });
      sock.setHopLimit(2);
      sock.send(new TextEncoder().encode("probe"), { family, address: target, port: 33434 });
      const got = await sock.receive({ timeoutMs: 3000 });
      assert(got !== null && got.type === "error");
      isTimeExceededFromR2(got, family, r2);
      assertEquals(new TextDecoder().decode(got.original), "probe");
    });

    await t.step(`IPv${family} raw socket: as an ICMP message`, async () => {
      using sock = openSocket({ kind: "icmp-raw", family, netns: ns });
      sock.setIcmpFilter([family === 4 ? IcmpType.TIME_EXCEEDED : Icmp6Type.TIME_EXCEEDED]);
      sock.setTtl(2);
      const id = 0x4242;
      sock.send(buildEcho({ family, id, seq: 43 }), dst);
      const got = await sock.receive({ timeoutMs: 3000 });
      assert(got !== null && got.type === "data");
      assertEquals(got.from.address, r2);
      const msg = icmpOf(sock, got);
      assert(msg.kind === "error");
      assertEquals(msg.type, family === 4 ? IcmpType.TIME_EXCEEDED : Icmp6Type.TIME_EXCEEDED);
    });
  }
});

/** Runs the unprivileged socket script in the lab's client namespace as user nobody. */
function asNobody(lab: Lab, args: string[]): Promise<ExecResult> {
  return lab.exec("client", ["deno", "run", "-A", UNPRIVILEGED_SCRIPT, ...args], {
    user: "nobody",
  });
}

labTest(
  "without privilege raw sockets explain how to get it; ping_group_range opens datagram ICMP",
  async (t, lab) => {
    await t.step("raw socket as nobody: the message says to setcap", async () => {
      const r = await asNobody(lab, ["icmp-raw", "4"]);
      assertEquals(r.code, 3, r.stderr);
      assert(r.stdout.includes("SocketError EPERM"), r.stdout);
      assert(r.stdout.includes("to fix, as root: setcap cap_net_raw+ep "), r.stdout);
      // A raw socket is needed: widening ping_group_range would not help.
      assert(!r.stdout.includes("ping_group_range"), r.stdout);
    });
    await t.step("datagram ICMP as nobody before and after widening ping_group_range", async () => {
      const target = lab.host("target").v4;
      const before = await asNobody(lab, ["icmp", "4", target]);
      assertEquals(before.code, 3, before.stdout + before.stderr);
      assert(before.stdout.includes("SocketError EACCES"), before.stdout);
      // Outside the range, the fix is to widen it.
      assert(
        before.stdout.includes(
          'to fix, as root: sysctl -w net.ipv4.ping_group_range="0 2147483647"',
        ),
        before.stdout,
      );
      await lab.sysctl("client", "net.ipv4.ping_group_range", "0 2147483647");
      const after = await asNobody(lab, ["icmp", "4", target]);
      assertEquals(after.code, 0, after.stdout + after.stderr);
      assertEquals(after.stdout.trim(), `reply from ${target} ttl=61`);
    });
  },
);

Deno.test("bad arguments raise typed errors, not crashes", async (t) => {
  await t.step("invalid address", () => {
    using sock = openSocket({ kind: "icmp-raw", family: 4 });
    assertThrows(
      () => sock.send(new Uint8Array(8), { family: 4, address: "1.2.3", port: 0 }),
      TypeError,
    );
    assertThrows(
      () => sock.send(new Uint8Array(8), { family: 6, address: "::1", port: 0 }),
      TypeError,
    );
  });
  await t.step("too-large buffer", () => {
    using sock = openSocket({ kind: "icmp-raw", family: 4 });
    assertThrows(
      () => sock.send(new Uint8Array(70000), { family: 4, address: "127.0.0.1", port: 0 }),
      RangeError,
    );
  });
  await t.step("out-of-range TTL", () => {
    using sock = openSocket({ kind: "udp", family: 6 });
    assertThrows(() => sock.setTtl(0), RangeError);
    assertThrows(() => sock.setHopLimit(256), RangeError);
  });
  await t.step("closed socket", async () => {
    const sock = openSocket({ kind: "udp", family: 4 });
    sock.close();
    sock.close(); // idempotent
    const err = assertThrows(
      () => sock.send(new Uint8Array(1), { family: 4, address: "127.0.0.1", port: 9 }),
      SocketError,
    );
    assertEquals(err.code, "EBADF");
    assertEquals(err.syscall, "sendto");
    assertEquals(await sock.receive({ timeoutMs: 10 }), null);
    await assertRejects(() => sock.wait(), SocketError);
  });
  await t.step("kernel refusal becomes a SocketError with errno name and syscall", () => {
    using sock = openSocket({ kind: "udp", family: 4 });
    // TEST-NET-1 is not a local address: bind() fails with EADDRNOTAVAIL.
    const err = assertThrows(
      () => sock.bind({ family: 4, address: "192.0.2.1", port: 0 }),
      SocketError,
    );
    assertEquals(err.code, "EADDRNOTAVAIL");
    assertEquals(err.syscall, "bind");
  });
  await t.step("unknown network namespace", () => {
    const err = assertThrows(
      () => openSocket({ kind: "udp", family: 4, netns: "netkit-no-such-ns" }),
      SocketError,
    );
    assertEquals(err.code, "ENOENT");
  });
  await t.step("invalid kind and family", () => {
    assertThrows(() => openSocket({ kind: "sctp" as "udp", family: 4 }), TypeError);
    assertThrows(() => openSocket({ kind: "udp", family: 5 as 4 }), TypeError);
  });
});

Deno.test("waiting does not block the event loop, and close() ends a pending wait", async () => {
  const sock = openSocket({ kind: "udp", family: 4 });
  sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  const pending = sock.receive({ timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  sock.close();
  assertEquals(await pending, null);
  clearInterval(timer);
  assert(ticks >= 5, `the event loop ran only ${ticks} timer ticks while a receive waited`);
  assert(performance.now() - started < 5000, "close() did not end the wait");
});

Deno.test("receive() times out with null, and an abort signal ends the wait", async () => {
  using sock = openSocket({ kind: "udp", family: 6 });
  sock.bind({ family: 6, address: "::1", port: 0 });
  assertEquals(await sock.receive({ timeoutMs: 30 }), null);
  const controller = new AbortController();
  const pending = sock.receive({ signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  assertEquals(await pending, null);
});

Deno.test("a UDP socket sends to itself and reports the sender and receive time", async () => {
  using sock = openSocket({ kind: "udp", family: 4 });
  sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
  const self = sock.localAddress();
  assert(self.port > 0);
  const before = realtimeNs();
  sock.send(new TextEncoder().encode("hello"), self);
  const got = await sock.receive({ timeoutMs: 1000 });
  assert(got !== null && got.type === "data");
  assertEquals(new TextDecoder().decode(got.data), "hello");
  assertEquals(got.from, self);
  assertEquals(got.ttl, 64);
  assert(got.timestampNs !== undefined && got.timestampNs >= before);
});

Deno.test("receiveInto() fills the caller's buffer and a reused DatagramInfo", async (t) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      using sock = openSocket({ kind: "udp", family });
      sock.bind({ family, address: LOOPBACK[family], port: 0 });
      const self = sock.localAddress();
      const buffer = new Uint8Array(8);
      const info = new DatagramInfo();
      // Nothing queued: -1, and the info is left as it was.
      assertEquals(sock.receiveInto(buffer, info), -1);
      const before = realtimeNs();
      sock.send(new TextEncoder().encode("hello"), self);
      await sock.wait({ timeoutMs: 1000 });
      assertEquals(sock.receiveInto(buffer, info), 5);
      assertEquals(new TextDecoder().decode(buffer.subarray(0, 5)), "hello");
      assertEquals([info.length, info.truncated, info.ttl], [5, false, 64]);
      const stamp = BigInt(info.timestampSec) * 1_000_000_000n + BigInt(info.timestampNsec);
      assert(stamp >= before && stamp <= realtimeNs(), "kernel timestamp out of order");
      assertEquals(sock.lastSender(), self);
      // A datagram longer than the buffer is cut and says so.
      sock.send(new TextEncoder().encode("a longer datagram"), self);
      await sock.wait({ timeoutMs: 1000 });
      assertEquals(sock.receiveInto(buffer, info), 8);
      assertEquals([info.length, info.truncated], [8, true]);
      assertEquals(new TextDecoder().decode(buffer), "a longer");
    });
  }
});
