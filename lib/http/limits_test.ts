import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import {
  type Admission,
  ConnectionLimits,
  type ConnectionLimitsOptions,
  defaultMaxConnections,
  openFileLimit,
} from "./limits.ts";

/** Every test here checks that it leaves no timer, socket or pending op behind. */
const sanitized = { sanitizeOps: true, sanitizeResources: true } as const;

type Op = ["admit", string, Admission] | ["release", string];

Deno.test(
  "ConnectionLimits.admit() and release() count connections against the global and per-address caps",
  sanitized,
  async (t) => {
    const table: { name: string; options: ConnectionLimitsOptions; ops: Op[]; open: number }[] = [
      {
        name: "per-address cap, then global cap; a release makes room",
        options: { maxConnections: 3, maxConnectionsPerIp: 2 },
        ops: [
          ["admit", "10.0.0.1", "ok"],
          ["admit", "10.0.0.1", "ok"],
          ["admit", "10.0.0.1", "per-ip"],
          ["admit", "10.0.0.2", "ok"],
          ["admit", "10.0.0.3", "global"],
          ["release", "10.0.0.1"],
          ["admit", "10.0.0.3", "ok"],
          // Full again: the global cap is checked first.
          ["admit", "10.0.0.1", "global"],
        ],
        open: 3,
      },
      {
        name: "a refusal leaves the counts as they were",
        options: { maxConnections: 10, maxConnectionsPerIp: 1 },
        ops: [
          ["admit", "10.0.0.1", "ok"],
          ["admit", "10.0.0.1", "per-ip"],
          ["admit", "10.0.0.1", "per-ip"],
          ["release", "10.0.0.1"],
          ["admit", "10.0.0.1", "ok"],
        ],
        open: 1,
      },
      {
        name: "maxConnections 0: only the per-address cap",
        options: { maxConnections: 0, maxConnectionsPerIp: 2 },
        ops: [
          ...Array.from({ length: 50 }, (_, i): Op => ["admit", `10.1.0.${i}`, "ok"]),
          ["admit", "10.1.0.7", "ok"],
          ["admit", "10.1.0.7", "per-ip"],
        ],
        open: 51,
      },
      {
        name: "maxConnectionsPerIp 0: only the global cap",
        options: { maxConnections: 2, maxConnectionsPerIp: 0 },
        ops: [
          ["admit", "10.0.0.1", "ok"],
          ["admit", "10.0.0.1", "ok"],
          ["admit", "10.0.0.2", "global"],
        ],
        open: 2,
      },
      {
        name: "both 0: no limit at all",
        options: { maxConnections: 0, maxConnectionsPerIp: 0 },
        ops: Array.from({ length: 2000 }, (): Op => ["admit", "10.0.0.1", "ok"]),
        open: 2000,
      },
      {
        name: "IPv4-mapped IPv6 counts as the IPv4 address",
        options: { maxConnections: 0, maxConnectionsPerIp: 1 },
        ops: [
          ["admit", "::ffff:10.0.0.1", "ok"],
          ["admit", "10.0.0.1", "per-ip"],
          ["release", "10.0.0.1"],
          ["admit", "10.0.0.1", "ok"],
          ["admit", "::ffff:10.0.0.1", "per-ip"],
        ],
        open: 1,
      },
      {
        name: "IPv6 addresses count apart",
        options: { maxConnections: 0, maxConnectionsPerIp: 1 },
        ops: [
          ["admit", "2001:db8::1", "ok"],
          ["admit", "2001:db8::2", "ok"],
          ["admit", "::1", "ok"],
          ["admit", "2001:db8::1", "per-ip"],
        ],
        open: 3,
      },
    ];
    for (const row of table) {
      await t.step(row.name, () => {
        const limits = new ConnectionLimits(row.options);
        row.ops.forEach((op, i) => {
          if (op[0] === "release") limits.release(op[1]);
          else assertEquals(limits.admit(op[1]), op[2], `op ${i}: admit ${op[1]}`);
        });
        assertEquals(limits.open, row.open);
      });
    }
  },
);

Deno.test(
  "ConnectionLimits never lets an address past its cap among 2,000 others, and rarely stops one short",
  sanitized,
  () => {
    const cap = 3;
    const limits = new ConnectionLimits({ maxConnections: 0, maxConnectionsPerIp: cap });
    const addresses = Array.from(
      { length: 2000 },
      (_, i) =>
        i % 2 ? `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` : `2001:db8::${i.toString(16)}`,
    );
    const admitted = new Map<string, number>();
    for (let round = 0; round < cap + 2; round++) {
      for (const address of addresses) {
        if (limits.admit(address) === "ok") admitted.set(address, (admitted.get(address) ?? 0) + 1);
      }
    }
    const counts = [...admitted.values()];
    assertEquals(Math.max(...counts), cap);
    assertEquals(admitted.size, addresses.length, "an address got no connection at all");
    // A count-min sketch overcounts when both of an address's slots are shared.
    const full = counts.filter((n) => n === cap).length;
    assert(full >= 0.98 * addresses.length, `only ${full} of 2000 addresses reached the cap`);
    for (const [address, n] of admitted) for (let i = 0; i < n; i++) limits.release(address);
    assertEquals(limits.open, 0);
    for (const address of addresses.slice(0, 50)) {
      for (let i = 0; i < cap; i++) assertEquals(limits.admit(address), "ok");
      assertEquals(limits.admit(address), "per-ip");
    }
  },
);

Deno.test(
  "Two ConnectionLimits sharing one buffer enforce one total and one per-address count",
  sanitized,
  () => {
    const a = new ConnectionLimits({ maxConnections: 3, maxConnectionsPerIp: 2 });
    const b = new ConnectionLimits({ maxConnections: 3, maxConnectionsPerIp: 2, buffer: a.buffer });
    assert(b.buffer === a.buffer);
    assertEquals(a.admit("10.0.0.1"), "ok");
    assertEquals(b.admit("10.0.0.1"), "ok");
    assertEquals(b.admit("10.0.0.1"), "per-ip");
    assertEquals(a.admit("10.0.0.2"), "ok");
    assertEquals(b.admit("10.0.0.3"), "global");
    assertEquals([a.open, b.open], [3, 3]);
    b.release("10.0.0.1");
    assertEquals(a.open, 2);
    assertEquals(a.admit("10.0.0.1"), "ok");
    // An unshared instance counts on its own.
    assertEquals(new ConnectionLimits({ maxConnections: 3 }).open, 0);
  },
);

Deno.test(
  "ConnectionLimits refuses a shared buffer of the wrong size with RangeError",
  sanitized,
  async (t) => {
    const size = new ConnectionLimits({ maxConnections: 1 }).buffer.byteLength;
    for (const bytes of [0, 16, size - 4, size + 4]) {
      await t.step(`${bytes} bytes (right: ${size})`, () => {
        assertThrows(
          () => new ConnectionLimits({ buffer: new SharedArrayBuffer(bytes) }),
          RangeError,
        );
      });
    }
    await t.step(`${size} bytes is accepted`, () => {
      new ConnectionLimits({ buffer: new SharedArrayBuffer(size) });
    });
  },
);

Deno.test(
  "ConnectionLimits refuses caps that are not whole numbers ≥ 0 with RangeError",
  sanitized,
  async (t) => {
    const table: ConnectionLimitsOptions[] = [
      { maxConnections: -1 },
      { maxConnections: 1.5 },
      { maxConnections: NaN },
      { maxConnections: Infinity },
      { maxConnections: 10, maxConnectionsPerIp: -1 },
      { maxConnections: 10, maxConnectionsPerIp: 0.5 },
      { maxConnections: 10, maxConnectionsPerIp: NaN },
    ];
    for (const options of table) {
      await t.step(
        JSON.stringify(options, (_k, v) => typeof v === "number" ? String(v) : v),
        () => {
          assertThrows(() => new ConnectionLimits(options), RangeError);
        },
      );
    }
  },
);

Deno.test(
  "ConnectionLimits defaults the per-address cap to an eighth of the global one, between 16 and 1024",
  sanitized,
  async (t) => {
    const table: [ConnectionLimitsOptions, number][] = [
      [{ maxConnections: 0 }, 1024],
      [{ maxConnections: 80 }, 16],
      [{ maxConnections: 800 }, 100],
      [{ maxConnections: 100_000 }, 1024],
      [{ maxConnections: 800, maxConnectionsPerIp: 5 }, 5],
      [{ maxConnections: 800, maxConnectionsPerIp: 0 }, 0],
    ];
    for (const [options, perIp] of table) {
      await t.step(`${JSON.stringify(options)} → ${perIp}`, () => {
        const limits = new ConnectionLimits(options);
        assertEquals(limits.maxConnectionsPerIp, perIp);
        assertEquals(limits.maxConnections, options.maxConnections);
      });
    }
  },
);

/** Replaces `Date.now` until disposed; `at` sets the time in seconds. */
function fakeClock(seconds: number) {
  const real = Date.now;
  let now = seconds * 1000;
  Date.now = () => now;
  return {
    at(s: number) {
      now = s * 1000;
    },
    [Symbol.dispose]() {
      Date.now = real;
    },
  };
}

Deno.test(
  "ConnectionLimits.claimWarning() says yes once per quiet period, over every loop sharing the buffer",
  sanitized,
  () => {
    using clock = fakeClock(1_000_000);
    const a = new ConnectionLimits({ maxConnections: 10 });
    const b = new ConnectionLimits({ maxConnections: 10, buffer: a.buffer });
    const calls: [number, ConnectionLimits, boolean][] = [
      [1_000_000, a, true],
      [1_000_000, a, false],
      [1_000_000, b, false],
      // Each trouble within the quiet period extends it.
      [1_000_009, b, false],
      [1_000_018, a, false],
      [1_000_027, b, false],
      [1_000_037, b, true],
      [1_000_037, a, false],
    ];
    calls.forEach(([second, limits, expected], i) => {
      clock.at(second);
      assertEquals(limits.claimWarning(10), expected, `call ${i} at ${second} s`);
    });
    const fresh = new ConnectionLimits({ maxConnections: 10 });
    assertEquals(fresh.claimWarning(10), true, "an unshared buffer has its own period");
  },
);

Deno.test(
  "defaultMaxConnections() keeps max(96, limit/16) descriptors in reserve and halves the cap for a proxy",
  sanitized,
  async (t) => {
    await t.step("under this process's limit", async () => {
      const out = await new Deno.Command("sh", { args: ["-c", "ulimit -Sn"] }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assertEquals(openFileLimit(), text === "unlimited" ? Infinity : Number(text));
      assert(defaultMaxConnections(2) <= defaultMaxConnections(1));
      assert(defaultMaxConnections(1) >= 16);
    });

    const table = [
      { limit: 256, server: 160, proxy: 80 },
      { limit: 4096, server: 3840, proxy: 1920 },
      { limit: 100, server: 16, proxy: 16 },
    ];
    for (const row of table) {
      await t.step(`under \`ulimit -n ${row.limit}\`: ${row.server} and ${row.proxy}`, async () => {
        const code = `import { defaultMaxConnections as d, openFileLimit as o } from ${
          JSON.stringify(new URL("./limits.ts", import.meta.url).href)
        }; console.log(JSON.stringify([o(), d(1), d(2)]));`;
        const out = await new Deno.Command("sh", {
          args: ["-c", `ulimit -n ${row.limit} && exec "$0" eval "$1"`, Deno.execPath(), code],
        }).output();
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        assertEquals(JSON.parse(new TextDecoder().decode(out.stdout)), [
          row.limit,
          row.server,
          row.proxy,
        ]);
      });
    }
  },
);
