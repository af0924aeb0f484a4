import { assertEquals } from "../lib/testing/assert.ts";
import {
  addRtt,
  describeError,
  exitCode,
  formatError,
  formatG,
  formatHeader,
  formatLoss,
  formatNoAnswer,
  formatPattern,
  formatPeer,
  formatReply,
  formatRttValue,
  formatStatistics,
  formatStatus,
  formatTimestamp,
  newRttAccumulator,
  type RttAccumulator,
  rttFigures,
} from "./format.ts";

function acc(samples: number[]): RttAccumulator {
  const a = newRttAccumulator();
  for (const s of samples) addRtt(a, s);
  return a;
}

Deno.test("formatRttValue() uses iputils' 3/2/1/0 decimals by magnitude, rounding half up", () => {
  const table: [number, string][] = [
    [0, "0.000"],
    [42, "0.042"],
    [999, "0.999"],
    [1000, "1.00"],
    [1234, "1.23"],
    [1235, "1.24"],
    [9994, "9.99"],
    [9995, "10.0"],
    [12345, "12.3"],
    [99949, "99.9"],
    [99950, "100"],
    [123456, "123"],
    [1234567, "1235"],
  ];
  for (const [us, text] of table) assertEquals(formatRttValue(us), text, `${us} µs`);
});

Deno.test("rttFigures() reproduces iputils' integer min/avg/max/mdev", async (t) => {
  // Samples and the statistics line iputils 20221126 printed for them.
  const table: [number[], string][] = [
    [[89, 36, 36], "0.036/0.053/0.089/0.025"], // llsqrt(624) is 25 in iputils
    [[24, 37], "0.024/0.030/0.037/0.006"],
    [[96, 36], "0.036/0.066/0.096/0.030"],
    [[65, 76], "0.065/0.070/0.076/0.005"],
    [[129, 85, 99], "0.085/0.104/0.129/0.018"],
    [[23], "0.023/0.023/0.023/0.000"],
  ];
  for (const [samples, line] of table) {
    await t.step(`${samples.join(", ")} µs`, () => {
      const f = rttFigures(acc(samples))!;
      const ms = (us: number) => `${Math.trunc(us / 1000)}.${String(us % 1000).padStart(3, "0")}`;
      assertEquals([f.minUs, f.avgUs, f.maxUs, f.mdevUs].map(ms).join("/"), line);
    });
  }
  await t.step("no samples", () => assertEquals(rttFigures(newRttAccumulator()), undefined));
});

Deno.test("addRtt() keeps iputils' scaled moving average", () => {
  const a = acc([100, 200, 50]);
  // rtt = 8·t₀, then rtt += t − rtt/8 in integers.
  assertEquals(a.ewma8, 800 + 200 - 100 + 50 - 112);
});

Deno.test("formatG() and formatLoss() print like C's %g of a float", () => {
  const table: [number, string][] = [
    [0, "0"],
    [100, "100"],
    [20, "20"],
    [100 / 3, "33.3333"],
    [12.5, "12.5"],
    [0.00001, "1e-05"],
    [1234567, "1.23457e+06"],
  ];
  for (const [x, text] of table) assertEquals(formatG(x), text, String(x));
  assertEquals(formatLoss(6, 1), "83.3333");
  assertEquals(formatLoss(5, 3), "40");
  assertEquals(formatLoss(200, 161), "19.5");
  assertEquals(formatLoss(3, 2), "33.3333");
  assertEquals(formatLoss(0, 0), "0");
});

Deno.test("formatHeader() matches iputils for IPv4, IPv6 and -I", () => {
  const table: [Parameters<typeof formatHeader>[0], string][] = [
    [
      { host: "10.0.3.2", address: "10.0.3.2", family: 4, dataBytes: 56 },
      "PING 10.0.3.2 (10.0.3.2) 56(84) bytes of data.",
    ],
    [
      { host: "localhost", address: "127.0.0.1", family: 4, dataBytes: 0 },
      "PING localhost (127.0.0.1) 0(28) bytes of data.",
    ],
    [
      { host: "::1", address: "::1", family: 6, dataBytes: 56 },
      "PING ::1(::1) 56 data bytes",
    ],
    [
      {
        host: "10.0.3.2",
        address: "10.0.3.2",
        family: 4,
        dataBytes: 56,
        source: "10.0.0.1",
        device: "to-r1",
      },
      "PING 10.0.3.2 (10.0.3.2) from 10.0.0.1 to-r1: 56(84) bytes of data.",
    ],
    [
      { host: "fd00:0:3::2", address: "fd00:0:3::2", family: 6, dataBytes: 56, source: "fd00::1" },
      "PING fd00:0:3::2(fd00:0:3::2) from fd00::1 : 56 data bytes",
    ],
  ];
  for (const [info, line] of table) assertEquals(formatHeader(info), line);
});

Deno.test("formatReply() marks duplicates, bad checksums and truncation as iputils does", () => {
  const base = { bytes: 64, from: "10.0.3.2", seq: 3, ttl: 61, rttUs: 85 };
  assertEquals(formatReply(base), "64 bytes from 10.0.3.2: icmp_seq=3 ttl=61 time=0.085 ms");
  assertEquals(
    formatReply({ ...base, duplicate: true }),
    "64 bytes from 10.0.3.2: icmp_seq=3 ttl=61 time=0.085 ms (DUP!)",
  );
  assertEquals(
    formatReply({ ...base, badChecksum: true }),
    "64 bytes from 10.0.3.2: icmp_seq=3 ttl=61 time=0.085 ms (BAD CHECKSUM!)",
  );
  assertEquals(
    formatReply({ ...base, truncated: true }),
    "64 bytes from 10.0.3.2: icmp_seq=3 ttl=61 (truncated)",
  );
  assertEquals(
    formatReply({ bytes: 8, from: "127.0.0.1", seq: 1, ttl: 64 }),
    "8 bytes from 127.0.0.1: icmp_seq=1 ttl=64",
  );
  assertEquals(
    formatReply({ ...base, from: formatPeer("127.0.0.1", "localhost") }),
    "64 bytes from localhost (127.0.0.1): icmp_seq=3 ttl=61 time=0.085 ms",
  );
});

Deno.test("describeError() words ICMP errors as iputils", () => {
  const table: [4 | 6, number, number, number, string][] = [
    [4, 11, 0, 0, "Time to live exceeded"],
    [4, 11, 1, 0, "Frag reassembly time exceeded"],
    [4, 3, 0, 0, "Destination Net Unreachable"],
    [4, 3, 1, 0, "Destination Host Unreachable"],
    [4, 3, 2, 0, "Destination Protocol Unreachable"],
    [4, 3, 3, 0, "Destination Port Unreachable"],
    [4, 3, 4, 1280, "Frag needed and DF set (mtu = 1280)"],
    [4, 3, 9, 0, "Destination Net Prohibited"],
    [4, 3, 10, 0, "Destination Host Prohibited"],
    [4, 3, 13, 0, "Packet filtered"],
    [4, 3, 99, 0, "Dest Unreachable, Bad Code: 99"],
    [4, 42, 0, 0, "Bad ICMP type: 42"],
    [6, 3, 0, 0, "Time exceeded: Hop limit"],
    [6, 1, 0, 0, "Destination unreachable: No route"],
    [6, 1, 1, 0, "Destination unreachable: Administratively prohibited"],
    [6, 1, 3, 0, "Destination unreachable: Address unreachable"],
    [6, 1, 4, 0, "Destination unreachable: Port unreachable"],
    [6, 2, 0, 1280, "Packet too big: mtu=1280"],
  ];
  for (const [family, type, code, info, text] of table) {
    assertEquals(describeError({ family, type, code, info }), text, `${family}/${type}/${code}`);
  }
  assertEquals(
    formatError("10.0.1.2", 1, { family: 4, type: 11, code: 0 }),
    "From 10.0.1.2 icmp_seq=1 Time to live exceeded",
  );
});

Deno.test("formatStatistics() prints iputils' block", async (t) => {
  const base = {
    host: "10.0.3.2",
    transmitted: 3,
    received: 3,
    duplicates: 0,
    corrupted: 0,
    errors: 0,
    timeMs: 410,
    rtt: acc([129, 85, 99]),
    timing: true,
    pipe: 1,
    showIpg: false,
  };
  await t.step("all answered", () => {
    assertEquals(
      formatStatistics(base),
      "\n--- 10.0.3.2 ping statistics ---\n" +
        "3 packets transmitted, 3 received, 0% packet loss, time 410ms\n" +
        "rtt min/avg/max/mdev = 0.085/0.104/0.129/0.018 ms\n",
    );
  });
  await t.step("errors and no reply: an empty last line", () => {
    assertEquals(
      formatStatistics({
        ...base,
        transmitted: 2,
        received: 0,
        errors: 2,
        timeMs: 203,
        rtt: newRttAccumulator(),
      }),
      "\n--- 10.0.3.2 ping statistics ---\n" +
        "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 203ms\n\n",
    );
  });
  await t.step("duplicates, pipe and ipg/ewma", () => {
    const text = formatStatistics({
      ...base,
      transmitted: 3,
      received: 3,
      duplicates: 2,
      timeMs: 0,
      elapsedUs: 140,
      rtt: acc([45, 6, 5]),
      pipe: 2,
      showIpg: true,
    });
    assertEquals(
      text.split("\n")[2],
      "3 packets transmitted, 3 received, +2 duplicates, 0% packet loss, time 0ms",
    );
    assertEquals(
      text.split("\n")[3],
      "rtt min/avg/max/mdev = 0.005/0.018/0.045/0.018 ms, pipe 2, ipg/ewma 0.070/0.035 ms",
    );
  });
  await t.step("no timing (-s below 16)", () => {
    assertEquals(
      formatStatistics({ ...base, transmitted: 1, received: 1, timeMs: 0, timing: false }),
      "\n--- 10.0.3.2 ping statistics ---\n" +
        "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n\n",
    );
  });
});

Deno.test("the small lines: status, no answer, pattern, timestamp, exit code", () => {
  assertEquals(
    formatStatus({ transmitted: 3, received: 3, rtt: acc([63, 81, 66]), timing: true }),
    "\r3/3 packets, 0% loss, min/avg/ewma/max = 0.063/0.070/0.065/0.081 ms\n",
  );
  assertEquals(formatNoAnswer(2), "no answer yet for icmp_seq=2");
  assertEquals(
    formatPattern(new Uint8Array([0xab, 0xcd, 0xef, 0x01, 0x02])),
    "PATTERN: 0xabcdef0102",
  );
  assertEquals(formatTimestamp(1795633250_858320_123n), "[1795633250.858320] ");
  const codes: [number, number | undefined, boolean, number][] = [
    [5, 5, false, 0],
    [0, 5, false, 1],
    [3, 5, true, 1],
    [5, 5, true, 0],
    [1, undefined, true, 0],
  ];
  for (const [received, count, deadline, code] of codes) {
    assertEquals(exitCode(received, count, deadline), code);
  }
});
