import { assert, assertEquals } from "../lib/testing/assert.ts";
import { createRandom } from "../lib/random.ts";
import { residentBytes } from "../lib/testing/memory.ts";
import { udpPing } from "./client.ts";
import { encodePing } from "./protocol.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/**
 * Waits until the UDP socket bound to `port` on 127.0.0.1 has nothing left
 * to read (`rx_queue` 0 in /proc/net/udp): the server has caught up with
 * the flood, however long a loaded machine made it take.
 */
async function drained(port: number): Promise<void> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (let tries = 0; tries < 1200; tries++) {
    const row = (await Deno.readTextFile("/proc/net/udp")).split("\n")
      .map((line) => line.trim().split(/\s+/))
      .find((fields) => fields[1] === local);
    if (row === undefined) throw new Error(`no UDP socket on 127.0.0.1:${port}`);
    if (parseInt(row[4]!.split(":")[1]!, 16) === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`udp-server had not read the flood within 60 s`);
}

/**
 * Floods a udp-server (one loop, 64 clients at most) from 128 senders and
 * checks that its resident set stays flat and a real client is answered
 * right. With `readLog` false nothing reads its stderr after the start-up
 * line: the pipe fills, and the main thread blocks writing session lines.
 */
async function floodServer(readLog: boolean): Promise<void> {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "server",
      "--host",
      "127.0.0.1",
      "-p",
      "0",
      "--threads",
      "1",
      "--max-clients",
      "64",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = server.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const senders: Deno.DatagramConn[] = [];
  try {
    let head = "";
    let match: RegExpExecArray | null = null;
    while (!(match = /listening on 127\.0\.0\.1:(\d+)/.exec(head))) {
      const r = await lines.read();
      if (r.done) throw new Error(`udp-server did not start: ${head}`);
      head += r.value;
    }
    // Its session log (evictions) is read on and dropped, or left unread.
    const draining = readLog
      ? (async () => {
        while (!(await lines.read()).done);
      })()
      : Promise.resolve();
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: Number(match[1]),
    };
    // 128 senders, twice --max-clients: half the flood is random bytes of
    // random length, half valid pings with random sequence numbers and
    // sizes, so that the server keeps (and evicts) sessions too.
    for (let i = 0; i < 128; i++) {
      senders.push(Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }));
    }
    const random = createRandom(7);
    const flood = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const conn = senders[Math.floor(random() * senders.length)]!;
        const data = random() < 0.5
          ? crypto.getRandomValues(new Uint8Array(Math.floor(random() * 1500)))
          : encodePing(Math.floor(random() * 1e9), 0, { size: Math.floor(random() * 1400) });
        await conn.send(data, target);
      }
    };
    // A real client must still be answered, every ping, with right counters,
    // once the server has read what the flood left queued (under load it
    // lags the senders; the client's pings would wait behind the flood).
    const check = async () => {
      await drained(target.port);
      const summary = await udpPing("127.0.0.1", { port: target.port, count: 20, interval: 5 });
      assertEquals([summary.sent, summary.received], [20, 20]);
      assertEquals(summary.server?.rx, 20);
    };
    // A warm-up flood first: the JIT and V8's heap grow to their working
    // size over about the first 300,000 (measured, resident set after each
    // 100,000: 93, 97, 116, then 121, 121, 122, 124 and 122 MB; with only
    // 100,000 first, the step between the second and third came inside the
    // measured rounds, and under load the round before it grew 8.5 MB too).
    await flood(300_000);
    await check();
    // Two more floods, the resident set read after each. A leak grows it
    // every time; V8 grows its heap in steps now and then (a step of 8.0 and
    // one of 8.4 MB were seen in about 10 runs), so the smaller of the two
    // growths is judged.
    const sizes = [await residentBytes(server.pid)];
    for (let round = 0; round < 2; round++) {
      await flood(100_000);
      await check();
      sizes.push(await residentBytes(server.pid));
    }
    // Flat: the state per client is fixed (a 1 KiB duplicate window and
    // counters) and at most --max-clients of them are kept, so 100,000 more
    // datagrams may move the resident set only by the heap's own
    // collection; keeping as little as 80 bytes per datagram would add 8 MB
    // in each round.
    const grew = Math.min(sizes[1]! - sizes[0]!, sizes[2]! - sizes[1]!);
    assert(
      grew < 8e6,
      `the server's RSS grew by ${(grew / 1e6).toFixed(1)} MB in each round: ${sizes}`,
    );
    // Blocked writing to a full pipe, the main thread would not see a SIGTERM.
    server.kill(readLog ? "SIGTERM" : "SIGKILL");
    await server.status;
    await draining;
  } finally {
    for (const conn of senders) conn.close();
    try {
      server.kill("SIGKILL");
    } catch {
      // Already stopped.
    }
    await server.status;
    await lines.cancel().catch(() => {});
  }
}

Deno.test("a flood of 100,000 random datagrams leaves udp-server's memory flat and its answers right", async () => {
  await floodServer(true);
});

// The loops post session lines to the main thread, which writes them. When
// it cannot (stderr a pipe nobody reads, or a machine too busy for it), the
// lines in flight are capped and the rest dropped and counted: uncapped, a
// flood that evicts a session every other datagram queued about 50 MB per
// 500,000 datagrams with two CPU hogs running, and kept it.
Deno.test("udp-server whose log nobody reads keeps its memory flat and answers right under a flood", async () => {
  await floodServer(false);
});
