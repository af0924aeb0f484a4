import { assert, assertEquals, assertThrows } from "./testing/assert.ts";
import {
  decodeSockaddr,
  encodeSockaddr,
  formatIPv6,
  ipFamily,
  parseIP,
  parseIPv4,
  parseIPv6,
  unmapIPv4,
} from "./sockaddr.ts";

Deno.test("formatIPv6() writes the RFC 5952 canonical form", () => {
  const cases: [string, string][] = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single 0 group stays
    ["::", "::"],
    ["::1", "::1"],
    ["fe80::", "fe80::"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["64:ff9b::10.0.0.1", "64:ff9b::a00:1"],
    ["fd00:9:1::2", "fd00:9:1::2"],
  ];
  for (const [input, want] of cases) assertEquals(formatIPv6(parseIPv6(input)), want, input);
});

Deno.test("parseIPv4() and parseIPv6() reject what is not an address with a TypeError", () => {
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.4 ",
    "localhost",
    "1::2::3",
    "12345::",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8:9",
    ":::",
    "g::1",
    "::1.2.3",
  ];
  for (const text of bad) {
    assertThrows(() => parseIP(text), TypeError);
    assertEquals(ipFamily(text), undefined, text);
  }
  assert(assertThrows(() => parseIPv4("::1"), TypeError).message.includes("Invalid IPv4 address"));
});

Deno.test("encodeSockaddr() and decodeSockaddr() round-trip both families", () => {
  const cases = [
    { family: 4 as const, address: "192.0.2.7", port: 33434 },
    { family: 6 as const, address: "2001:db8::7", port: 443, scopeId: 0 },
    { family: 6 as const, address: "fe80::1", port: 0, scopeId: 3 },
  ];
  for (const addr of cases) {
    const bytes = encodeSockaddr(addr);
    assertEquals(bytes.length, addr.family === 4 ? 16 : 28);
    assertEquals(decodeSockaddr(bytes), addr);
  }
  // Port in network byte order, family in host order (little-endian here).
  assertEquals([...encodeSockaddr({ family: 4, address: "1.2.3.4", port: 0x1234 })].slice(0, 8), [
    2,
    0,
    0x12,
    0x34,
    1,
    2,
    3,
    4,
  ]);
  const err = assertThrows(
    () => encodeSockaddr({ family: 4, address: "1.2.3.4", port: 70000 }),
    RangeError,
  );
  assert(err.message.startsWith("Invalid port 70000"));
  assertEquals(decodeSockaddr(new Uint8Array(16), 16), undefined);
});

Deno.test("unmapIPv4() finds the IPv4 address only in ::ffff:0:0/96", () => {
  assertEquals([...unmapIPv4(parseIPv6("::ffff:192.0.2.1"))!], [192, 0, 2, 1]);
  assertEquals([...unmapIPv4(parseIPv6("::ffff:c000:201"))!], [192, 0, 2, 1]);
  for (const text of ["::1", "::192.0.2.1", "64:ff9b::192.0.2.1", "1::ffff:192.0.2.1"]) {
    assertEquals(unmapIPv4(parseIPv6(text)), undefined, text);
  }
  assertEquals(unmapIPv4(parseIPv4("192.0.2.1")), undefined);
});
