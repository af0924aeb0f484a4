import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  encodeHeartbeat,
  encodePing,
  encodeStatsReply,
  encodeStatsRequest,
  parseMessage,
  STATS_REQUEST_SIZE,
  toUpperAscii,
} from "./protocol.ts";

const text = new TextEncoder();
const untext = new TextDecoder();

Deno.test("encodePing() pads after the text to the requested size, never shorter", async (t) => {
  const table: { size: number; want: number }[] = [
    { size: 0, want: "Ping 12 1700000000.500000".length },
    { size: 10, want: "Ping 12 1700000000.500000".length },
    { size: 64, want: 64 },
    { size: 1472, want: 1472 },
    { size: 65507, want: 65507 },
  ];
  for (const { size, want } of table) {
    await t.step(`size ${size}`, () => {
      const ping = encodePing(12, 1700000000.5, { size });
      assertEquals(ping.length, want);
      assert(untext.decode(ping).startsWith("Ping 12 1700000000.500000"));
      assertEquals(parseMessage(ping), { kind: "ping", seq: 12, time: 1700000000.5 });
    });
  }
});

Deno.test("toUpperAscii() echoes like Python's bytes.upper(): same length, ASCII only", async (t) => {
  const table: { input: Uint8Array; want: Uint8Array }[] = [
    { input: text.encode("Ping 1 abc"), want: text.encode("PING 1 ABC") },
    { input: text.encode("é ß z"), want: text.encode("é ß Z") },
    {
      input: new Uint8Array([0, 0x60, 0x61, 0x7a, 0x7b, 0xff]),
      want: new Uint8Array([0, 0x60, 0x41, 0x5a, 0x7b, 0xff]),
    },
  ];
  for (const { input, want } of table) {
    await t.step(JSON.stringify(untext.decode(input)), () => {
      const out = toUpperAscii(input);
      assertEquals(out, want);
      assertEquals(out.length, input.length);
    });
  }
});

Deno.test("parseMessage() reads pings and echoes in either case and rejects everything else", async (t) => {
  const good: { input: string; seq: number; time: number | undefined }[] = [
    { input: "Ping 1 1700000000.123", seq: 1, time: 1700000000.123 },
    { input: "PING 10 1700000000.123 ABCDEF", seq: 10, time: 1700000000.123 },
    { input: "ping 3", seq: 3, time: undefined },
    // A student client sending time.ctime(): the time is free-form.
    { input: "Ping 4 Wed Nov 25 18:00:00 2026", seq: 4, time: undefined },
  ];
  for (const { input, seq, time } of good) {
    await t.step(`accepts ${JSON.stringify(input)}`, () => {
      assertEquals(parseMessage(text.encode(input)), { kind: "ping", seq, time });
    });
  }
  const bad = [
    "",
    "hello",
    "Ping",
    "Ping x 1",
    "Ping -1 1",
    "Ping 1.5 1",
    "Ping 1234567890123456 1",
    "Pong 1 1",
    " Ping 1 1",
    "Stats",
    "Stats bad-nonce!",
    "Heartbeat 1 x 1000",
    "Heartbeat 1 1700000000 0",
    "\u0000\u0001\u0002",
  ];
  for (const input of bad) {
    await t.step(`rejects ${JSON.stringify(input)}`, () => {
      assertEquals(parseMessage(text.encode(input)), undefined);
    });
  }
  await t.step("rejects binary garbage", () => {
    assertEquals(parseMessage(new Uint8Array([0xff, 0xfe, 0x00, 0x50])), undefined);
  });
});

Deno.test("stats messages round-trip and an upper-cased echo carries no counters", async (t) => {
  const counters = { rx: 1000, dup: 2, drop: 300, tx: 700, extra: 5, held: 1 };
  await t.step("the request is padded so the reply fits", () => {
    const req = encodeStatsRequest("ab12");
    assertEquals(req.length, STATS_REQUEST_SIZE);
    assertEquals(parseMessage(req), { kind: "stats", nonce: "ab12" });
  });
  await t.step("the reply parses with every counter", () => {
    const reply = encodeStatsReply("ab12", counters)!;
    assert(reply.length <= STATS_REQUEST_SIZE);
    assertEquals(parseMessage(reply), { kind: "stats-reply", nonce: "AB12", counters });
  });
  await t.step("the original server's echo of a request is not a reply", () => {
    const echo = toUpperAscii(encodeStatsRequest("ab12"));
    assertEquals(parseMessage(echo)?.kind, "stats");
  });
  await t.step("a reply that would outgrow its request is not produced", () => {
    assertEquals(encodeStatsReply("ab12", counters, { maxSize: 20 }), undefined);
  });
});

Deno.test("encodeHeartbeat() carries sequence, time and interval", () => {
  assertEquals(parseMessage(encodeHeartbeat(7, 1700000000.25, 50)), {
    kind: "heartbeat",
    seq: 7,
    time: 1700000000.25,
    interval: 50,
  });
});
