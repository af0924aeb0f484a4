import { buildEcho } from "./icmp.ts";
import { describeIcmp, parseIpv4Header, parseIpv6Header, parseQuoted } from "./icmp_error.ts";
import { assertEquals, assertThrows } from "./testing/assert.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("IP header parsers throw RangeError on truncated input, at every length", () => {
  const v4 = hex("4500 001c 0001 0000 0111 0000 0a000001 0a000302");
  for (let n = 0; n < 20; n++) assertThrows(() => parseIpv4Header(v4.subarray(0, n)), RangeError);
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  for (let n = 0; n < 40; n++) assertThrows(() => parseIpv6Header(v6.subarray(0, n)), RangeError);
  // An IHL promising options that are not there.
  const withOptions = v4.slice();
  withOptions[0] = 0x46;
  assertThrows(() => parseIpv4Header(withOptions), RangeError);
  // A wrong version, or an IHL below 5.
  assertThrows(() => parseIpv4Header(v6), RangeError);
  assertThrows(() => parseIpv6Header(new Uint8Array(40).fill(0x45)), RangeError);
  const shortIhl = v4.slice();
  shortIhl[0] = 0x44;
  assertThrows(() => parseIpv4Header(shortIhl), RangeError);
});

Deno.test("parseIpv4Header() and parseIpv6Header() read every field", () => {
  const v4 = parseIpv4Header(hex("4600 0054 abcd 4000 3d01 1234 0a000302 0a000001 01010100 ffff"));
  assertEquals(v4, {
    version: 4,
    headerLength: 24,
    tos: 0,
    totalLength: 84,
    id: 0xabcd,
    flags: 2,
    fragmentOffset: 0,
    ttl: 61,
    protocol: 1,
    checksum: 0x1234,
    src: "10.0.3.2",
    dst: "10.0.0.1",
  });
  const v6 = parseIpv6Header(hex(
    "6a1fffff 0010 3a 3d fd000000000000000000000000000001 fd000000000300000000000000000002",
  ));
  assertEquals(v6, {
    version: 6,
    headerLength: 40,
    trafficClass: 0xa1,
    flowLabel: 0xfffff,
    payloadLength: 16,
    nextHeader: 58,
    hopLimit: 61,
    src: "fd00::1",
    dst: "fd00:0:3::2",
  });
});

Deno.test("parseQuoted() finds the probe that caused an error", async (t) => {
  const v4Header = (protocol: number, ttl: number) =>
    hex(
      `4500 003c 1234 0000 ${ttl.toString(16).padStart(2, "0")}${
        protocol.toString(16).padStart(2, "0")
      } 0000 0a000001 0a000302`,
    );
  const v6Header = (next: number, hop: number) =>
    hex(
      `60000000 0010 ${next.toString(16).padStart(2, "0")}${
        hop.toString(16).padStart(2, "0")
      } fd000000000000000000000000000001 fd000000000300000000000000000002`,
    );
  const cases = [
    {
      name: "IPv4 UDP probe (traceroute)",
      family: 4,
      bytes: [...v4Header(17, 1), ...hex("a1b2 829a 0028 beef")],
      transport: { kind: "udp", srcPort: 0xa1b2, dstPort: 33434, length: 40, checksum: 0xbeef },
    },
    {
      name: "IPv4 ICMP echo (ping -t)",
      family: 4,
      bytes: [...v4Header(1, 1), ...buildEcho({ id: 77, seq: 3 })],
      transport: { kind: "icmp", type: 8, code: 0, id: 77, seq: 3 },
    },
    {
      name: "IPv4 TCP SYN probe",
      family: 4,
      bytes: [...v4Header(6, 1), ...hex("c000 0050 01020304")],
      transport: { kind: "tcp", srcPort: 0xc000, dstPort: 80, seq: 0x01020304 },
    },
    {
      name: "IPv6 UDP probe",
      family: 6,
      bytes: [...v6Header(17, 1), ...hex("a1b2 829b 0010 0000")],
      transport: { kind: "udp", srcPort: 0xa1b2, dstPort: 33435, length: 16, checksum: 0 },
    },
    {
      name: "IPv6 ICMPv6 echo",
      family: 6,
      bytes: [...v6Header(58, 1), ...buildEcho({ id: 9, seq: 10, family: 6 })],
      transport: { kind: "icmp", type: 128, code: 0, id: 9, seq: 10 },
    },
    {
      name: "IPv6 UDP after a destination options header",
      family: 6,
      bytes: [...v6Header(60, 1), ...hex("1100 0000 0000 0000"), ...hex("a1b2 829c 0010 0000")],
      transport: { kind: "udp", srcPort: 0xa1b2, dstPort: 33436, length: 16, checksum: 0 },
    },
    {
      name: "IPv4 with fewer than 8 transport bytes has no transport",
      family: 4,
      bytes: [...v4Header(17, 1), 1, 2, 3, 4],
      transport: undefined,
    },
    {
      name: "IPv4 unknown protocol has no transport",
      family: 4,
      bytes: [...v4Header(47, 1), ...new Uint8Array(8)],
      transport: undefined,
    },
  ] as const;
  for (const c of cases) {
    await t.step(c.name, () => {
      const q = parseQuoted(new Uint8Array(c.bytes), c.family);
      assertEquals(q.transport, c.transport);
      assertEquals(q.ttl, 1);
      assertEquals(q.src, c.family === 4 ? "10.0.0.1" : "fd00::1");
      assertEquals(q.dst, c.family === 4 ? "10.0.3.2" : "fd00:0:3::2");
    });
  }
  await t.step("a truncated quoted IP header is a RangeError", () => {
    assertThrows(() => parseQuoted(v4Header(17, 1).subarray(0, 19), 4), RangeError);
    assertThrows(() => parseQuoted(v6Header(17, 1).subarray(0, 39), 6), RangeError);
  });
});

Deno.test("describeIcmp() names types and codes", () => {
  const table = [
    [4, 3, 3, "Destination Unreachable: Port Unreachable"],
    [4, 3, 13, "Destination Unreachable: Communication Administratively Prohibited"],
    [4, 11, 0, "Time Exceeded: TTL Exceeded in Transit"],
    [4, 0, 0, "Echo Reply"],
    [4, 3, 99, "Destination Unreachable: Code 99"],
    [4, 42, 1, "Type 42, Code 1"],
    [6, 1, 3, "Destination Unreachable: Address Unreachable"],
    [6, 2, 0, "Packet Too Big"],
    [6, 129, 0, "Echo Reply"],
  ] as const;
  for (const [family, type, code, text] of table) {
    assertEquals(describeIcmp({ family, type, code }), text);
  }
});
