import { assert, assertEquals } from "../lib/testing/assert.ts";
import { labTest } from "../lib/testing/lab.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const SERVER = [MAIN, "server"];
const CLIENT = [MAIN, "client"];
const DENO = [Deno.execPath(), "run", "-A", "--unstable-net"];

labTest(
  "udp-ping splits loss into upstream and downstream exactly as nftables dropped it",
  async (t, lab) => {
    for (const family of [4, 6] as const) {
      await t.step(`IPv${family}`, async () => {
        const port = 12000 + family;
        const server = lab.spawn("target", [
          ...DENO,
          ...SERVER,
          "--host",
          family === 4 ? "0.0.0.0" : "::",
          "--port",
          String(port),
        ], { stdin: "null" });
        const reader = server.stderr.getReader();
        try {
          const text = new TextDecoder();
          let head = "";
          while (!head.includes("listening on")) {
            const r = await reader.read();
            if (r.done) throw new Error(`udp-server did not start: ${head}`);
            head += text.decode(r.value);
          }
          // Pings are padded to 100 bytes (UDP length 108), so the rules
          // count pings and their echoes, not the stats request (256 bytes)
          // nor its reply.
          const up = await lab.drop("r1", {
            percent: 20,
            match: `iifname "to-client" udp dport ${port} udp length 108`,
          });
          const down = await lab.drop("r2", {
            percent: 20,
            match: `iifname "to-r3" udp sport ${port} udp length 108`,
          });
          const target = family === 4 ? lab.host("target").v4 : lab.host("target").v6;
          const r = await lab.exec("client", [
            ...DENO,
            ...CLIENT,
            "--json",
            "-c",
            "300",
            "-i",
            "5ms",
            "-W",
            "1",
            "-s",
            "100",
            `-${family}`,
            family === 4 ? `${target}:${port}` : `[${target}]:${port}`,
          ]);
          assertEquals(r.code, 0, r.stderr);
          const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
          const dropsUp = (await up.counters()).packets;
          const dropsDown = (await down.counters()).packets;
          assert(dropsUp > 0 && dropsDown > 0, `nftables dropped ${dropsUp} up, ${dropsDown} down`);
          assertEquals(summary.sent, 300);
          assertEquals(summary.upstreamLoss, dropsUp);
          assertEquals(summary.downstreamLoss, dropsDown);
          assertEquals(summary.server.rx, 300 - dropsUp);
          assertEquals(summary.received + summary.late, 300 - dropsUp - dropsDown);
          await up.delete();
          await down.delete();
        } finally {
          server.kill("SIGTERM");
          await server.status;
          await reader.cancel().catch(() => {});
          await server.stdout.cancel().catch(() => {});
        }
      });
    }
  },
);
