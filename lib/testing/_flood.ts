/**
 * A connection flood, run as its own process (so it can be given more file
 * descriptors than the test runner has): opens `--count` connections to
 * `127.0.0.1:--port`, writes `--data` on each (a half-sent request head),
 * and watches how each one ends. Prints one JSON line when every connection
 * is open (`{"event":"connected",…}`), waits for a line on stdin (or
 * `--watch` seconds), then prints a summary and exits.
 *
 * The summary tells the refused connections (a `503` arrived, or a close
 * sooner after the connection was begun than the server's `--deadline`
 * seconds, so no deadline can have caused it) from the ones the server held
 * and then closed silently, with how long after their request bytes it closed
 * them, and how many are still open.
 *
 * @module
 */
import { parseArgs } from "../cli.ts";
import { writeAll } from "../bytes.ts";

const { values } = parseArgs(Deno.args, {
  port: { type: "string" },
  count: { type: "string" },
  data: { type: "string" },
  watch: { type: "string" },
  concurrency: { type: "string" },
  deadline: { type: "string" },
});
const port = Number(values.port);
const count = Number(values.count ?? "1000");
const data = new TextEncoder().encode(values.data ?? "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
const watchMs = Number(values.watch ?? "10") * 1000;
const concurrency = Number(values.concurrency ?? "256");
// 100 ms short of the deadline, for the server and this process reading the
// clock at different moments.
const deadlineMs = Number(values.deadline ?? "1") * 1000 - 100;

interface Probe {
  conn: Deno.Conn;
  // Read before connect(). The server's deadlines start at its accept(),
  // which cannot come earlier, so a close sooner than the deadline after this
  // was not a deadline's, however late this busy process saw its promises
  // settle (under load, writes settled up to 1.4 s late, and a deadline close
  // timed from them looked 1.6 s after the bytes).
  startedAt: number;
  writtenAt: number;
  closedAt: number;
  first: string;
}

const probes: Probe[] = [];
let failed = 0;
const decoder = new TextDecoder();

async function watch(p: Probe): Promise<void> {
  const buf = new Uint8Array(64);
  try {
    for (;;) {
      const n = await p.conn.read(buf);
      if (n === null) break;
      if (p.first.length < 12) p.first += decoder.decode(buf.subarray(0, n)).slice(0, 12);
    }
  } catch {
    // Reset or closed by us.
  }
  if (p.closedAt === 0) p.closedAt = Date.now();
}

async function open(): Promise<void> {
  let conn: Deno.Conn;
  const startedAt = Date.now();
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    failed++;
    return;
  }
  const p: Probe = { conn, startedAt, writtenAt: 0, closedAt: 0, first: "" };
  probes.push(p);
  try {
    await writeAll(conn, data);
  } catch {
    // Refused and reset already: the watcher records it.
  }
  p.writtenAt = Date.now();
  void watch(p);
}

let next = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      next++;
      await open();
    }
  }),
);
console.log(JSON.stringify({ event: "connected", ok: probes.length, failed }));

// Watch until told to stop (a line on stdin) or the watch time is over.
const stop = Promise.withResolvers<void>();
const timer = setTimeout(stop.resolve, watchMs);
void (async () => {
  const buf = new Uint8Array(16);
  const n = await Deno.stdin.read(buf).catch(() => null);
  if (n !== null) stop.resolve();
})();
await stop.promise;
clearTimeout(timer);

// Closed with no answer: before the deadline (a refusal without a 503), or
// later (held until a deadline).
let quick = 0;
const held: number[] = [];

let refused = 0;
let other = 0;
let stillOpen = 0;
for (const p of probes) {
  if (p.closedAt === 0) {
    stillOpen++;
    continue;
  }
  if (p.first.startsWith("HTTP/1.1 503")) refused++;
  else if (p.first !== "") other++;
  else if (p.closedAt - p.startedAt < deadlineMs) quick++;
  else held.push(Math.round(p.closedAt - p.writtenAt));
}
held.sort((a, b) => a - b);
console.log(JSON.stringify({
  event: "summary",
  refused,
  quickClosed: quick,
  other,
  stillOpen,
  held: held.length,
  // How long after their request bytes the held ones were closed, in ms.
  heldAfterMs: held.length === 0 ? null : {
    min: held[0],
    median: held[Math.floor(held.length / 2)],
    max: held[held.length - 1],
  },
}));
for (const p of probes) {
  try {
    p.conn.close();
  } catch {
    // Closed.
  }
}
Deno.exit(0);
