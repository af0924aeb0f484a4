// Unit tests of the pure parts: Butskoy's line format, annotations, the
// option parser, mtr's report layout and the JSON objects.
import { assertEquals } from "../lib/testing/assert.ts";
import { formatHeader, formatHop, hopJson, summaryJson } from "./format.ts";
import { classifyIcmp } from "./probe.ts";
import { formatReport, reportJson, type ReportRow } from "./report.ts";
import type { Hop, Probe } from "./trace.ts";

function reply(address: string, rttMs: number, annotation = "", name?: string): Probe {
  return { address, rttMs, annotation, final: annotation !== "", ...(name ? { name } : {}) };
}
const STAR: Probe = { annotation: "", final: false };

Deno.test("formatHop() prints hop lines as Butskoy traceroute 2.1 does", async (t) => {
  const cases: [string, Hop, boolean, string][] = [
    [
      "three answers from one router",
      {
        ttl: 1,
        probes: [reply("10.0.0.2", 0.107), reply("10.0.0.2", 0.01), reply("10.0.0.2", 0.008)],
      },
      true,
      " 1  10.0.0.2  0.107 ms  0.010 ms  0.008 ms",
    ],
    ["a silent hop", { ttl: 2, probes: [STAR, STAR, STAR] }, true, " 2  * * *"],
    [
      "a star between answers repeats the address",
      {
        ttl: 12,
        probes: [reply("10.0.0.2", 1), STAR, reply("10.0.0.2", 2)],
      },
      true,
      "12  10.0.0.2  1.000 ms *  2.000 ms",
    ],
    [
      "a different router in the middle",
      {
        ttl: 3,
        probes: [reply("10.0.1.2", 1), reply("10.0.9.2", 1), reply("10.0.9.2", 1)],
      },
      true,
      " 3  10.0.1.2  1.000 ms 10.0.9.2  1.000 ms  1.000 ms",
    ],
    [
      "annotations",
      {
        ttl: 3,
        probes: [reply("10.0.1.2", 0.011, "!X"), reply("10.0.1.2", 0.011, "!X"), STAR],
      },
      true,
      " 3  10.0.1.2  0.011 ms !X  0.011 ms !X *",
    ],
    [
      "names, and an address without one",
      {
        ttl: 4,
        probes: [reply("10.0.3.2", 0.5, "", "gw.example"), reply("10.0.3.3", 0.5)],
      },
      false,
      " 4  gw.example (10.0.3.2)  0.500 ms 10.0.3.3 (10.0.3.3)  0.500 ms",
    ],
  ];
  for (const [what, hop, numeric, line] of cases) {
    await t.step(what, () => assertEquals(formatHop(hop, { numeric }), line));
  }
});

Deno.test("formatHeader() prints Butskoy's header", () => {
  assertEquals(
    formatHeader({
      host: "fd00:0:3::2",
      address: "fd00:0:3::2",
      family: 6,
      method: "icmp",
      maxHops: 30,
      packetLength: 80,
    }),
    "traceroute to fd00:0:3::2 (fd00:0:3::2), 30 hops max, 80 byte packets",
  );
});

Deno.test("classifyIcmp() maps ICMP errors to Butskoy's annotations", async (t) => {
  const cases: [4 | 6, number, number, number, string | null][] = [
    [4, 11, 0, 0, null],
    [4, 3, 3, 0, ""],
    [4, 3, 0, 0, "!N"],
    [4, 3, 1, 0, "!H"],
    [4, 3, 2, 0, "!P"],
    [4, 3, 4, 1400, "!F-1400"],
    [4, 3, 5, 0, "!S"],
    [4, 3, 13, 0, "!X"],
    [4, 3, 10, 0, "!X"],
    [4, 3, 14, 0, "!V"],
    [4, 3, 15, 0, "!C"],
    [4, 3, 99, 0, "!<99>"],
    [4, 11, 1, 0, "!<11-1>"],
    [6, 3, 0, 0, null],
    [6, 1, 4, 0, ""],
    [6, 1, 0, 0, "!N"],
    [6, 1, 1, 0, "!X"],
    [6, 1, 3, 0, "!H"],
    [6, 2, 0, 1280, "!F-1280"],
    [6, 1, 7, 0, "!<7>"],
  ];
  for (const [family, type, code, mtu, want] of cases) {
    await t.step(`IPv${family} type ${type} code ${code}`, () => {
      assertEquals(classifyIcmp(family, type, code, mtu), want);
    });
  }
});

Deno.test("formatReport() lays out rows as mtr 0.95's --report", () => {
  const row = (ttl: number, hosts: string[], sent: number, received: number): ReportRow => ({
    ttl,
    hosts,
    names: hosts.map(() => undefined),
    sent,
    received,
    lossPercent: (sent - received) * 100 / sent,
    last: received ? 0.083 : NaN,
    avg: received ? 0.075 : NaN,
    best: received ? 0.068 : NaN,
    worst: received ? 12.345 : NaN,
    stdev: received > 1 ? 0.049 : 0,
  });
  const lines = formatReport({
    target: {
      host: "t",
      address: "10.0.3.2",
      family: 4,
      method: "udp",
      maxHops: 30,
      packetLength: 60,
    },
    cycles: 10,
    start: new Date(Date.UTC(2026, 10, 25, 19, 0, 29)),
    rows: [
      row(1, ["10.0.0.2"], 10, 10),
      row(2, [], 10, 0),
      row(3, ["fd00:0:1::2", "fd00:0:9::2"], 10, 7),
    ],
  }, "vm");
  assertEquals(lines.slice(1), [
    "HOST: vm                          Loss%   Snt   Last   Avg  Best  Wrst StDev",
    "  1.|-- 10.0.0.2                   0.0%    10    0.1   0.1   0.1  12.3   0.0",
    "  2.|-- ???                       100.0    10    0.0   0.0   0.0   0.0   0.0",
    "  3.|-- fd00:0:1::2               30.0%    10    0.1   0.1   0.1  12.3   0.0",
    "    |  `|-- fd00:0:9::2",
  ]);
});

Deno.test("hopJson(), summaryJson() and reportJson() give the documented objects", () => {
  assertEquals(hopJson({ ttl: 2, probes: [reply("10.0.1.2", 0.0123, "!H"), STAR] }), {
    type: "hop",
    ttl: 2,
    probes: [
      { address: "10.0.1.2", name: null, rtt: 0.012, annotation: "!H" },
      { address: null, name: null, rtt: null, annotation: null },
    ],
  });
  const target = {
    host: "t",
    address: "10.0.3.2",
    family: 4 as const,
    method: "tcp" as const,
    maxHops: 30,
    packetLength: 60,
  };
  assertEquals(summaryJson(target, { reached: true, hops: 4, probesSent: 16 }), {
    type: "summary",
    host: "t",
    address: "10.0.3.2",
    family: 4,
    method: "tcp",
    maxHops: 30,
    packetLength: 60,
    reached: true,
    hops: 4,
    probesSent: 16,
    flow: null,
  });
  const rep = reportJson({ target, cycles: 1, start: new Date(0), rows: [] });
  assertEquals(rep.start, "1970-01-01T00:00:00.000Z");
});
