// Unit tests of probe.ts's packet helpers (pure: no sockets).
import { assertEquals, assertMatch, assertThrows } from "../lib/testing/assert.ts";
import { rawPayload } from "./probe.ts";

function datagram(data: number[], from = "127.0.0.1") {
  const family = from.includes(":") ? 6 : 4;
  return {
    type: "data",
    data: new Uint8Array(data),
    from: { family, address: from, port: 0 },
    truncated: false,
  } as const;
}

/** An IPv4 header of `words` 32-bit words from 10.0.1.2, then the payload. */
function ipv4(words: number, payload: number[]): number[] {
  const header = new Array(words * 4).fill(0);
  header[0] = 0x40 | words;
  header.splice(12, 4, 10, 0, 1, 2);
  return [...header, ...payload];
}

Deno.test("rawPayload() takes the sender from the IPv4 header and skips it, options included", async (t) => {
  const cases: [string, number[], string, number[]][] = [
    ["a plain 20-byte header", ipv4(5, [11, 0, 1, 2]), "10.0.1.2", [11, 0, 1, 2]],
    ["a header with options", ipv4(7, [3, 3]), "10.0.1.2", [3, 3]],
    ["a header with nothing after it", ipv4(5, []), "10.0.1.2", []],
  ];
  for (const [name, data, from, payload] of cases) {
    await t.step(name, () => {
      // The socket address of a raw IPv4 packet is not where the reply came
      // from: the IP header is.
      const got = rawPayload(datagram(data, "10.9.9.9"), 4);
      assertEquals(got.from, from);
      assertEquals([...got.bytes], payload);
    });
  }
});

Deno.test("rawPayload() passes IPv6 packets through (raw IPv6 sockets strip the header)", () => {
  const got = rawPayload(datagram([129, 0, 0, 0], "2001:db8::1"), 6);
  assertEquals(got.from, "2001:db8::1");
  assertEquals([...got.bytes], [129, 0, 0, 0]);
});

Deno.test("rawPayload() rejects what is not a whole IPv4 header", async (t) => {
  const cases: [string, number[]][] = [
    ["empty", []],
    ["shorter than 20 bytes", ipv4(5, []).slice(0, 19)],
    ["version 6", [0x65, ...ipv4(5, []).slice(1)]],
    ["IHL below 5", [0x44, ...ipv4(5, []).slice(1)]],
    ["options cut short", ipv4(7, []).slice(0, 24)],
  ];
  for (const [name, data] of cases) {
    await t.step(name, () => {
      const e = assertThrows(() => rawPayload(datagram(data), 4), RangeError);
      assertMatch(e.message, /^Cannot parse IPv4 header: /);
    });
  }
});
