import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { assertHelpLists, taskCommand, taskViaConfig } from "../lib/testing/tasks.ts";
import { CLIENT_OPTIONS, parseDuration, SERVER_OPTIONS } from "./main.ts";
import { serve } from "./server.ts";

const decoder = new TextDecoder();

/** Runs task `udp-ping` or `udp-server` as `deno task` does, to completion. */
async function udp(
  task: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = taskCommand(task, args);
  const out = await new Deno.Command(cmd!, { args: rest, stdin: "null" }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("the client CLI prints ping-like lines, JSON, and exit codes", async (t) => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const target = `127.0.0.1:${server.addr.port}`;
  await t.step("text output", async () => {
    const r = await udp("udp-ping", ["-c", "3", "-i", "10ms", "-s", "100", target]);
    assertEquals(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assertEquals(lines[0], `UDP PING 127.0.0.1 (127.0.0.1) port ${server.addr.port}`);
    assertMatch(lines[1]!, /^100 bytes from 127\.0\.0\.1: seq=1 time=\d+\.\d+ ms$/);
    assertEquals(lines[5], "--- 127.0.0.1 udp ping statistics ---");
    assertMatch(
      lines[6]!,
      /^3 packets transmitted, 3 received, 0% packet loss, 0 duplicates, 0 late, 0 reordered, time \d+ms$/,
    );
    assertMatch(
      lines[7]!,
      /^rtt min\/avg\/median\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms$/,
    );
    assertMatch(r.stdout, /\ntimestamps: send user space, receive kernel\n/);
    assertMatch(
      r.stdout,
      /server: 3 received, 0 dropped by server, 3 replied, 0 duplicate requests; loss upstream 0, downstream 0/,
    );
  });
  await t.step("--json: one object per line, then a summary", async () => {
    const r = await udp("udp-ping", ["--json", "-c", "3", "-i", "0.01", target]);
    assertEquals(r.code, 0, r.stderr);
    const objects = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(objects.map((o) => o.type), ["start", "reply", "reply", "reply", "summary"]);
    const summary = objects.at(-1);
    assertEquals([summary.sent, summary.received, summary.server.tx], [3, 3, 3]);
    assert(typeof summary.rtt.median === "number" && typeof summary.rtt.jitter === "number");
    assertEquals(objects[1].seq, 1);
    assertEquals(objects.slice(1, 4).map((o) => o.stamp), ["kernel", "kernel", "kernel"]);
    assertEquals(summary.timestamps, {
      send: "user space",
      receive: "kernel",
      kernel: 3,
      userSpace: 0,
    });
  });
  await t.step("exit 1 when nothing answers", async () => {
    const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (silent.addr as Deno.NetAddr).port;
    try {
      const r = await udp("udp-ping", [
        "-c",
        "2",
        "-i",
        "0.05",
        "-W",
        "0.1",
        "--no-stats",
        `127.0.0.1:${port}`,
      ]);
      assertEquals(r.code, 1, r.stderr);
      assertMatch(r.stdout, /Request timed out \(seq=1\)\nRequest timed out \(seq=2\)/);
      assertMatch(r.stdout, /2 packets transmitted, 0 received, 100% packet loss/);
    } finally {
      silent.close();
    }
  });
  for (
    const args of [["-c", "0", target], ["-i", "abc", target], [], ["--bogus", target], [
      "-s",
      "70000",
      target,
    ], [
      "-4",
      "::1",
    ]]
  ) {
    await t.step(`exit 2 on bad input: ${args.join(" ")}`, async () => {
      const r = await udp("udp-ping", args);
      assertEquals(r.code, 2, r.stdout);
      assertMatch(r.stderr, /^udp-ping: /);
    });
  }
});

Deno.test("the server CLI rejects bad options with exit 2", async (t) => {
  for (const args of [["--loss", "1.5"], ["--delay", "x"], ["--port", "70000"], ["--nope"]]) {
    await t.step(args.join(" "), async () => {
      const r = await udp("udp-server", args);
      assertEquals(r.code, 2);
      assertMatch(r.stderr, /^udp-server: /);
    });
  }
});

Deno.test("udp-server and udp-ping --help list every option with its default, on stdout", async () => {
  const server = await assertHelpLists("udp-server", SERVER_OPTIONS);
  assertMatch(server, /Exit codes: 0 after SIGINT\/SIGTERM, 1 when the server cannot start/);
  await assertHelpLists("udp-ping", CLIENT_OPTIONS);
  await assertHelpLists("udp-ping", CLIENT_OPTIONS, ["-h"]);
});

Deno.test("udp-ping -p and udp-server -p take the port, as every other tool", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const port = String(server.addr.port);
  for (const args of [["-p", port, "127.0.0.1"], ["--port", port, "127.0.0.1:1"]]) {
    const r = await udp("udp-ping", ["-c", "1", "--no-stats", ...args]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(
      r.stdout,
      new RegExp(`^UDP PING 127\\.0\\.0\\.1 \\(127\\.0\\.0\\.1\\) port ${port}\n`),
    );
  }
  // The server takes -p 0 (a free port) and says where it listens.
  const [cmd, ...args] = taskCommand("udp-server", ["-p", "0", "--host", "127.0.0.1"]);
  const child = new Deno.Command(cmd!, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assertMatch(value ?? "", /^udp-server: listening on 127\.0\.0\.1:\d+\n/);
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0);
  await reader.cancel();
});

Deno.test("udp-server that cannot bind exits 1, the code of every server that cannot start", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const r = await udp("udp-server", ["--host", "127.0.0.1", "-p", String(server.addr.port)]);
  assertEquals(r.code, 1, r.stderr);
  assertMatch(r.stderr, /^udp-server: Cannot listen on 127\.0\.0\.1 port \d+: /);
});

Deno.test("udp task: subcommands, and usage errors without one", async (t) => {
  const run = async (args: string[]) => {
    const [cmd, ...rest] = taskViaConfig("udp", args);
    const out = await new Deno.Command(cmd!, { args: rest, stdin: "null" }).output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  };
  await t.step("--help names both subcommands", async () => {
    const r = await run(["--help"]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /server .*\n.*client /);
  });
  await t.step("client --help is udp-ping's", async () => {
    const r = await run(["client", "--help"]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, /^Usage: deno task udp-ping /);
  });
  for (const args of [[], ["serve"]]) {
    await t.step(`exit 2 on '${args.join(" ")}'`, async () => {
      const r = await run(args);
      assertEquals(r.code, 2, r.stdout);
      assertMatch(r.stderr, /^udp: .*subcommand/);
    });
  }
});

Deno.test("parseDuration() reads bare seconds and us, ms, s", () => {
  const table: [string, number][] = [["1", 1000], ["0.2", 200], ["1ms", 1], ["1s", 1000], [
    "500us",
    0.5,
  ]];
  for (const [input, want] of table) assertEquals(parseDuration("-i", input), want);
});

Deno.test("a client stopped mid-run sends every ping after it, in the slots still ahead, not in a burst", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0, quiet: true });
  await server.ready;
  const count = 500;
  const [cmd, ...rest] = taskCommand("udp-ping", [
    "--json",
    "--no-stats",
    "-c",
    String(count),
    "-i",
    "2ms",
    "-W",
    "2s",
    `127.0.0.1:${server.addr.port}`,
  ]);
  const child = new Deno.Command(cmd!, { args: rest, stdin: "null", stdout: "piped" }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let stopped = false;
  for (;;) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
    // Stopped for 100 ms once the 20th reply is printed: 50 slots of 2 ms
    // pass while no thread of it runs.
    if (!stopped && /"seq":20,/.test(text)) {
      stopped = true;
      child.kill("SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, 100));
      child.kill("SIGCONT");
    }
  }
  const { code } = await child.status;
  const summary = JSON.parse(text.trim().split("\n").at(-1)!);
  const context = JSON.stringify(summary.sendError);
  assertEquals(code, 0);
  assert(stopped, "the client ended before its 20th reply");
  assertEquals(summary.sent, count);
  assertEquals(summary.received + summary.late, count, context);
  // The slots the stop took are skipped, the pings are not; none went in a
  // catch-up burst, and the run lasted as long as all the slots used.
  assert(summary.sendError.skipped >= 45, context);
  assertEquals(summary.sendError.catchUp, 0, context);
  assert(summary.elapsedMs >= (count + summary.sendError.skipped - 1) * 2, context);
  assert(summary.sendError.max >= 50, context);
});
