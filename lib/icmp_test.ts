import {
  buildEcho,
  buildIcmp,
  checksum,
  Icmp6Type,
  IcmpType,
  IpProtocol,
  onesComplementSum,
  parseIcmp,
  pseudoHeaderSum,
  UnreachableCode,
  verifyChecksum,
} from "./icmp.ts";
import { parseIpv4Header } from "./icmp_error.ts";
import { assert, assertEquals, assertThrows } from "./testing/assert.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((b) => parseInt(b, 16)));
}

/** The obvious RFC 1071 algorithm, to check the fast one against. */
function referenceSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

Deno.test("checksum() matches known vectors", async (t) => {
  const vectors = [
    { name: "RFC 1071 §3 example", bytes: "0001 f203 f4f5 f6f7", sum: 0xddf2, check: 0x220d },
    {
      name: "an IPv4 header (checksum field zeroed)",
      bytes: "4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7",
      sum: 0x479e,
      check: 0xb861,
    },
    { name: "empty input", bytes: "", sum: 0, check: 0xffff },
    { name: "one odd byte is padded with zero", bytes: "ab", sum: 0xab00, check: 0x54ff },
    { name: "three bytes", bytes: "0102 03", sum: 0x0402, check: 0xfbfd },
    { name: "carries fold around", bytes: "ffff ffff 0001", sum: 0x0001, check: 0xfffe },
    { name: "all ones stays all ones", bytes: "ffff", sum: 0xffff, check: 0x0000 },
  ];
  for (const v of vectors) {
    await t.step(v.name, () => {
      const bytes = v.bytes === "" ? new Uint8Array(0) : hex(v.bytes);
      assertEquals(onesComplementSum(bytes), v.sum);
      assertEquals(checksum(bytes), v.check);
    });
  }
});

Deno.test("checksum() agrees with the byte-wise algorithm at every length and alignment", () => {
  const data = crypto.getRandomValues(new Uint8Array(1600));
  const backing = new Uint8Array(1608);
  for (let offset = 0; offset < 4; offset++) {
    backing.set(data, offset);
    for (
      const length of [
        0,
        1,
        2,
        3,
        4,
        5,
        7,
        8,
        9,
        31,
        63,
        64,
        65,
        511,
        512,
        513,
        514,
        515,
        1499,
        1500,
        1600,
      ]
    ) {
      const view = backing.subarray(offset, offset + length);
      assertEquals(
        onesComplementSum(view, 0x1234),
        referenceSum(view, 0x1234),
        `length ${length} offset ${offset}`,
      );
    }
  }
});

Deno.test("checksum() of inputs longer than one accumulation chunk", () => {
  // 32767 words are summed between folds; cross that boundary, aligned and not.
  const data = new Uint8Array(300_001);
  for (let i = 0; i < data.length; i += 65536) {
    crypto.getRandomValues(data.subarray(i, i + 65536));
  }
  for (
    const view of [data, data.subarray(1), data.subarray(4, 131_072), data.subarray(0, 131_068)]
  ) {
    assertEquals(onesComplementSum(view), referenceSum(view), `length ${view.length}`);
  }
  const ones = new Uint8Array(1 << 20).fill(0xff);
  assertEquals(onesComplementSum(ones), 0xffff);
});

Deno.test("verifyChecksum() accepts a checksummed message and rejects a corrupted one", () => {
  const msg = buildEcho({ id: 0x1234, seq: 1, payload: new TextEncoder().encode("hello") });
  assert(verifyChecksum(msg));
  for (let i = 0; i < msg.length; i++) {
    const bad = msg.slice();
    bad[i]! ^= 0x10;
    assert(!verifyChecksum(bad), `a flipped bit in byte ${i} goes unnoticed`);
  }
});

Deno.test("pseudoHeaderSum() covers addresses, protocol and length", async (t) => {
  await t.step("IPv4 (RFC 768): src, dst, zero, protocol, length", () => {
    const expected = referenceSum(hex("0a000001 0a000302 0011 0010"));
    assertEquals(pseudoHeaderSum("10.0.0.1", "10.0.3.2", IpProtocol.UDP, 16), expected);
    assertEquals(
      pseudoHeaderSum(new Uint8Array([10, 0, 0, 1]), new Uint8Array([10, 0, 3, 2]), 17, 16),
      expected,
    );
  });
  await t.step("IPv6 (RFC 8200 §8.1): src, dst, 32-bit length, next header", () => {
    const src = hex("fd000000000000000000000000000001");
    const dst = hex("fd000000000300000000000000000002");
    const expected = referenceSum(
      new Uint8Array([...src, ...dst, 0, 1, 0, 8, 0, 0, 0, 58]),
    );
    assertEquals(pseudoHeaderSum("fd00::1", "fd00:0:3::2", IpProtocol.ICMPV6, 0x10008), expected);
  });
  await t.step("bad addresses are TypeErrors, bad lengths RangeErrors", () => {
    assertThrows(() => pseudoHeaderSum("10.0.0.1", "::1", 17, 8), TypeError);
    assertThrows(() => pseudoHeaderSum("10.0.0.300", "10.0.0.1", 17, 8), TypeError);
    assertThrows(() => pseudoHeaderSum(new Uint8Array(5), new Uint8Array(5), 17, 8), RangeError);
    assertThrows(() => pseudoHeaderSum("::1", "::1", 58, -1), RangeError);
  });
});

Deno.test("buildEcho() and parseIcmp() round-trip", async (t) => {
  const payloads = [
    new Uint8Array(0),
    new Uint8Array([1]),
    crypto.getRandomValues(new Uint8Array(56)),
  ];
  const cases = [
    { family: 4, type: "request", wire: IcmpType.ECHO_REQUEST },
    { family: 4, type: "reply", wire: IcmpType.ECHO_REPLY },
    { family: 6, type: "request", wire: Icmp6Type.ECHO_REQUEST },
    { family: 6, type: "reply", wire: Icmp6Type.ECHO_REPLY },
  ] as const;
  for (const c of cases) {
    for (const payload of payloads) {
      await t.step(`IPv${c.family} ${c.type}, ${payload.length}-byte payload`, () => {
        const id = 0xbeef;
        const seq = 65535;
        const bytes = buildEcho({ type: c.type, id, seq, payload, family: c.family });
        assertEquals(bytes.length, 8 + payload.length);
        assertEquals(bytes[0], c.wire);
        const msg = parseIcmp(bytes, c.family);
        assert(msg.kind === "echo");
        assertEquals(
          [msg.request, msg.id, msg.seq, [...msg.payload]],
          [c.type === "request", id, seq, [...payload]],
        );
        if (c.family === 4) assert(verifyChecksum(bytes));
        else assertEquals(msg.checksum, 0, "ICMPv6 checksum is left to the kernel");
      });
    }
  }
  await t.step("ICMPv6 with addresses gets the pseudo-header checksum", () => {
    const bytes = buildEcho({ id: 1, seq: 2, family: 6, src: "fd00::1", dst: "fd00:0:3::2" });
    assert(verifyChecksum(bytes, pseudoHeaderSum("fd00::1", "fd00:0:3::2", 58, bytes.length)));
    assert(!verifyChecksum(bytes, pseudoHeaderSum("fd00::1", "fd00:0:3::3", 58, bytes.length)));
  });
  await t.step("identifiers and sequences outside 16 bits are RangeErrors", () => {
    for (const bad of [-1, 65536, 1.5, NaN]) {
      assertThrows(() => buildEcho({ id: bad, seq: 0 }), RangeError);
      assertThrows(() => buildEcho({ id: 0, seq: bad }), RangeError);
    }
  });
});

Deno.test("parseIcmp() reads error fields and quotes", async (t) => {
  const quoted = new Uint8Array(28);
  const cases = [
    {
      name: "IPv4 fragmentation needed carries the next-hop MTU",
      family: 4,
      type: IcmpType.DEST_UNREACHABLE,
      code: UnreachableCode.FRAGMENTATION_NEEDED,
      rest: 1400,
      expect: { mtu: 1400 },
    },
    {
      name: "IPv4 port unreachable has no MTU",
      family: 4,
      type: IcmpType.DEST_UNREACHABLE,
      code: UnreachableCode.PORT,
      rest: 0,
      expect: {},
    },
    {
      name: "IPv4 parameter problem carries a pointer",
      family: 4,
      type: IcmpType.PARAMETER_PROBLEM,
      code: 0,
      rest: 0x0c000000,
      expect: { pointer: 12 },
    },
    {
      name: "IPv4 redirect carries a gateway",
      family: 4,
      type: IcmpType.REDIRECT,
      code: 1,
      rest: 0x0a000301,
      expect: { gateway: "10.0.3.1" },
    },
    {
      name: "IPv4 time exceeded",
      family: 4,
      type: IcmpType.TIME_EXCEEDED,
      code: 0,
      rest: 0,
      expect: {},
    },
    {
      name: "IPv4 source quench",
      family: 4,
      type: IcmpType.SOURCE_QUENCH,
      code: 0,
      rest: 0,
      expect: {},
    },
    {
      name: "ICMPv6 packet too big carries a 32-bit MTU",
      family: 6,
      type: Icmp6Type.PACKET_TOO_BIG,
      code: 0,
      rest: 1280,
      expect: { mtu: 1280 },
    },
    {
      name: "ICMPv6 parameter problem carries a 32-bit pointer",
      family: 6,
      type: Icmp6Type.PARAMETER_PROBLEM,
      code: 1,
      rest: 40,
      expect: { pointer: 40 },
    },
    {
      name: "ICMPv6 unknown error type below 128 is still an error",
      family: 6,
      type: 100,
      code: 0,
      rest: 0,
      expect: {},
    },
  ] as const;
  for (const c of cases) {
    await t.step(c.name, () => {
      const bytes = buildIcmp({
        family: c.family,
        type: c.type,
        code: c.code,
        rest: c.rest,
        body: quoted,
      });
      const msg = parseIcmp(bytes, c.family);
      assert(msg.kind === "error", `kind ${msg.kind}`);
      assertEquals(msg.quoted.length, 28);
      assertEquals(
        { mtu: msg.mtu, pointer: msg.pointer, gateway: msg.gateway },
        { mtu: undefined, pointer: undefined, gateway: undefined, ...c.expect },
      );
    });
  }
  await t.step("other messages keep their rest of header and body", () => {
    const msg = parseIcmp(
      buildIcmp({ type: IcmpType.TIMESTAMP, rest: 0x00010002, body: new Uint8Array(12) }),
      4,
    );
    assert(msg.kind === "other");
    assertEquals([...msg.rest], [0, 1, 0, 2]);
    assertEquals(msg.body.length, 12);
    assertEquals(parseIcmp(buildIcmp({ family: 6, type: 134 }), 6).kind, "other");
  });
});

Deno.test("parseIcmp() throws RangeError on truncated input, at every length", () => {
  const icmp = buildEcho({ id: 1, seq: 1 });
  for (let n = 0; n < 8; n++) assertThrows(() => parseIcmp(icmp.subarray(0, n), 4), RangeError);
});

// The kernel is the real peer: it answers an echo request only when its
// checksum is right, and its replies must verify with our code.
const PY_PING = `
import socket, sys, struct, select
family, hexmsg, ident = sys.argv[1], sys.argv[2], int(sys.argv[3])
if family == "4":
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); dst = ("127.0.0.1", 0)
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); dst = ("::1", 0)
s.sendto(bytes.fromhex(hexmsg), dst)
while True:
    r, _, _ = select.select([s], [], [], 2.0)
    if not r:
        sys.exit("no reply")
    data = s.recv(65535)
    icmp = data[(data[0] & 15) * 4:] if family == "4" else data
    if icmp[0] in (0, 129) and struct.unpack("!H", icmp[4:6])[0] == ident:
        print(data.hex()); break
`;

// Raw sockets need root (or CAP_NET_RAW); like the lab tests, this is
// ignored without it, except under CI=true where it must run.
const noRaw = Deno.uid() !== 0 && Deno.env.get("CI") !== "true";

Deno.test({
  name: "the kernel answers buildEcho() requests, and its replies verify",
  ignore: noRaw,
}, async (t) => {
  for (const family of [4, 6] as const) {
    await t.step(`IPv${family}`, async () => {
      const id = 0x4000 + Math.floor(Math.random() * 0x3fff);
      const payload = new TextEncoder().encode("netkit icmp codec test, odd length!");
      const request = buildEcho({
        id,
        seq: 5,
        payload,
        family,
        ...(family === 6 ? { src: "::1", dst: "::1" } : {}),
      });
      const hexText = [...request].map((b) => b.toString(16).padStart(2, "0")).join("");
      const out = await new Deno.Command("/usr/bin/python3", {
        args: ["-c", PY_PING, String(family), hexText, String(id)],
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, stderr);
      const reply = hex(new TextDecoder().decode(out.stdout).trim());
      let icmp = reply;
      if (family === 4) {
        const ip = parseIpv4Header(reply);
        assertEquals([ip.src, ip.dst, ip.protocol], ["127.0.0.1", "127.0.0.1", 1]);
        icmp = reply.subarray(ip.headerLength);
        assert(verifyChecksum(icmp));
      } else {
        assert(verifyChecksum(icmp, pseudoHeaderSum("::1", "::1", 58, icmp.length)));
      }
      const msg = parseIcmp(icmp, family);
      assert(msg.kind === "echo" && !msg.request);
      assertEquals([msg.id, msg.seq, [...msg.payload]], [id, 5, [...payload]]);
    });
  }
});
