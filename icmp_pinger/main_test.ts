import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { assertHelpLists, type Lab, labTest, taskCommand } from "../lib/testing/mod.ts";
import { OPTIONS } from "./main.ts";
import { maskPingOutput as mask } from "./_compare.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], args: string[]): Promise<Run> {
  const out = await new Deno.Command(cmd[0]!, {
    args: [...cmd.slice(1), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Our ping. */
export function ours(args: string[]): Promise<Run> {
  return run([Deno.execPath(), "run", "-A", MAIN], args);
}

/** iputils ping. */
function iputils(args: string[]): Promise<Run> {
  return run(["ping"], args);
}

/** Reads a child's output into `text.value` until `done(text.value)` or the end. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  text: { value: string },
  done: (text: string) => boolean,
): Promise<void> {
  while (!done(text.value)) {
    const { value, done: ended } = await reader.read();
    if (ended) return;
    text.value += value;
  }
}

Deno.test("ping CLI rejects bad input with one iputils-like line and exit code 2", async (t) => {
  const table: [string[], string][] = [
    [
      ["-c", "0", "127.0.0.1"],
      "ping: invalid argument: '0': out of range: 1 <= value <= 9223372036854775807",
    ],
    [["-c", "abc", "127.0.0.1"], "ping: invalid argument: 'abc'"],
    [["-i", "abc", "127.0.0.1"], "ping: bad timing interval: abc"],
    [["-i", "-1", "127.0.0.1"], "ping: bad timing interval: -1"],
    [["-W", "-1", "127.0.0.1"], "ping: bad linger time: -1"],
    [["-w", "abc", "127.0.0.1"], "ping: invalid argument: 'abc'"],
    [
      ["-s", "70000", "127.0.0.1"],
      "ping: invalid argument: '70000': out of range: 0 <= value <= 65507",
    ],
    [["-s", "-1", "127.0.0.1"], "ping: invalid argument: '-1': out of range: 0 <= value <= 65507"],
    [["-t", "0", "127.0.0.1"], "ping: cannot set unicast time-to-live: Invalid argument"],
    [["-t", "256", "127.0.0.1"], "ping: invalid argument: '256': out of range: 0 <= value <= 255"],
    [["-p", "zz", "127.0.0.1"], "ping: patterns must be specified as hex digits: zz"],
    [["nowhere.invalid"], "ping: nowhere.invalid: Name or service not known"],
    [["-4", "::1"], "ping: ::1: Address family for hostname not supported"],
    [["-6", "127.0.0.1"], "ping: 127.0.0.1: Address family for hostname not supported"],
    [[], "ping: usage error: Destination address required"],
    [
      ["-I", "nosuchif0", "-c", "1", "127.0.0.1"],
      "ping: SO_BINDTODEVICE nosuchif0: No such device",
    ],
    [["-I", "192.0.2.77", "-c", "1", "127.0.0.1"], "ping: bind: Cannot assign requested address"],
  ];
  for (const [args, line] of table) {
    await t.step(`ping ${args.join(" ")}`, async () => {
      const r = await ours(args);
      assertEquals(r.code, 2);
      assertEquals(r.stderr, `${line}\n`);
      assertEquals(r.stdout, "");
    });
  }
  await t.step("the same words as iputils where iputils also refuses", async () => {
    for (
      const args of [
        ["-p", "zz", "127.0.0.1"],
        ["nowhere.invalid"],
        ["-4", "::1"],
        ["-W", "-1", "127.0.0.1"],
        ["-I", "nosuchif0", "-c", "1", "127.0.0.1"],
      ]
    ) {
      const [a, b] = await Promise.all([ours(args), iputils(args)]);
      // iputils names itself as it was invoked (e.g. /usr/bin/ping).
      const first = b.stderr.split("\n")[0]!.replace(/^\S*ping: /, "ping: ");
      assertEquals(a.stderr, `${first}\n`, args.join(" "));
      assertEquals(a.code, b.code, args.join(" "));
    }
  });
});

Deno.test("ping CLI follows a bad option with its usage, as iputils", async (t) => {
  for (const args of [["-X", "127.0.0.1"], ["127.0.0.1", "-c"], ["--bogus", "127.0.0.1"]]) {
    await t.step(`ping ${args.join(" ")}`, async () => {
      const [a, b] = await Promise.all([ours(args), iputils(args)]);
      assertEquals([a.code, a.stdout], [2, ""]);
      const [line, ...usage] = a.stderr.split("\n");
      // iputils has no long options: plain getopt words --bogus as option '-'.
      if (!args[0]!.startsWith("--")) {
        assertEquals(line, b.stderr.split("\n")[0]!.replace(/^\S*ping: /, "ping: "));
      } else assertEquals(line, "ping: unrecognized option '--bogus'");
      assertEquals(usage.slice(0, 2), b.stderr.split("\n").slice(1, 3));
      // Ours takes several destinations, where iputils takes one.
      assertEquals(usage[2], "  ping [options] <destination>...");
    });
  }
});

Deno.test("ping -h prints iputils' usage on stderr and exits 2; --help lists every option", async (t) => {
  await t.step("-h as iputils", async () => {
    const [a, b] = await Promise.all([ours(["-h"]), iputils(["-h"])]);
    assertEquals([a.code, a.stdout], [b.code, b.stdout]);
    assertEquals(a.stderr.split("\n").slice(0, 2), b.stderr.split("\n").slice(0, 2));
    for (const spec of Object.values(OPTIONS) as { short?: string }[]) {
      if (spec.short) assertMatch(a.stderr, new RegExp(`\\n  -${spec.short} `));
    }
  });
  await t.step("--help from the option table", async () => {
    const help = await assertHelpLists("ping", OPTIONS);
    assertMatch(help, /^Usage: deno task ping /);
  });
});

/**
 * iputils ping without its file capability, so that, as nobody, it meets
 * the same refusal as ours; dispose of it to delete the copy.
 */
function iputilsWithoutCapability(): { path: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "netkit_ping_" });
  Deno.chmodSync(dir, 0o755);
  const path = `${dir}/ping`;
  // A plain write keeps no security.capability attribute.
  Deno.writeFileSync(
    path,
    Deno.readFileSync(
      new TextDecoder().decode(
        new Deno.Command("sh", { args: ["-c", "command -v ping"] }).outputSync().stdout,
      ).trim(),
    ),
    { mode: 0o755 },
  );
  return { path, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

labTest(
  "ping as nobody without ping_group_range: iputils' lines, then how to fix it",
  async (t, lab: Lab) => {
    await lab.sysctl("client", "net.ipv4.ping_group_range", "1 0");
    using copy = iputilsWithoutCapability();
    for (const host of ["127.0.0.1", "::1"]) {
      await t.step(`ping ${host}`, async () => {
        const args = ["-c", "1", host];
        const a = await lab.exec("client", taskCommand("ping", args), { user: "nobody" });
        const b = await lab.exec("client", [copy.path, ...args], { user: "nobody" });
        assertEquals(b.stderr.split("\n").length, 4, b.stderr); // iputils' three lines
        const lines = a.stderr.trimEnd().split("\n");
        assertEquals(
          lines.slice(0, 3).join("\n"),
          b.stderr.trimEnd().replaceAll(copy.path, "ping"),
        );
        // Nobody's group is outside the closed range: widening it is the fix.
        assertEquals(
          lines.slice(3),
          [
            'ping: to fix, as root: sysctl -w net.ipv4.ping_group_range="0 2147483647" ' +
            '(admits group 65534; now "1 0")',
          ],
        );
        assertEquals([a.code, a.stdout], [b.code, b.stdout]);
        assertEquals(a.code, 2);
      });
    }
  },
  { routers: 0 },
);

Deno.test("ping CLI prints what iputils prints on loopback, times aside", async (t) => {
  const cases: string[][] = [
    ["-c", "2", "-i", "0.2", "127.0.0.1"],
    ["-c", "2", "-i", "0.2", "localhost"],
    ["-c", "2", "-i", "0.2", "-n", "localhost"],
    ["-c", "2", "-i", "0.2", "::1"],
    ["-c", "1", "-s", "0", "127.0.0.1"],
    ["-c", "1", "-s", "20", "-p", "abcdef0102", "127.0.0.1"],
    ["-q", "-c", "2", "-i", "0.2", "127.0.0.1"],
    ["-q", "-c", "1", "-p", "ab", "127.0.0.1"],
    ["-D", "-c", "2", "-i", "0.2", "127.0.0.1"],
    ["-c", "3", "-i", "0", "127.0.0.1"],
    ["-c", "2", "-i", "0.2", "-w", "5", "127.0.0.1"],
    ["-c", "1", "-s", "65507", "127.0.0.1"],
  ];
  for (const args of cases) {
    await t.step(`ping ${args.join(" ")}`, async () => {
      const a = await ours(args);
      const b = await iputils(args);
      assertEquals(mask(a.stdout), mask(b.stdout));
      assertEquals(a.code, b.code);
      assertEquals(a.stderr, "");
    });
  }
});

Deno.test("ping CLI --json prints one object per line, ending with a summary per host", async () => {
  const r = await ours(["--json", "-c", "3", "-i", "0.05", "127.0.0.1", "::1"]);
  assertEquals(r.code, 0);
  const objects = r.stdout.trim().split("\n").map((line) => JSON.parse(line));
  assertEquals(objects.filter((o) => o.type === "start").length, 2);
  const replies = objects.filter((o) => o.type === "reply");
  assertEquals(replies.length, 6);
  for (const o of replies) {
    assertEquals(o.bytes, 64);
    assert(typeof o.rttMs === "number" && o.rttMs >= 0, "rttMs is a number");
  }
  const summaries = objects.filter((o) => o.type === "summary");
  assertEquals(summaries.map((s) => [s.host, s.transmitted, s.received, s.lossPercent]), [
    ["127.0.0.1", 3, 3, 0],
    ["::1", 3, 3, 0],
  ]);
  for (const s of summaries) {
    assert(s.rtt.min <= s.rtt.avg && s.rtt.avg <= s.rtt.max, "min <= avg <= max");
    assertEquals(s.exitCode, 0);
  }
});

Deno.test("ping CLI pings several hosts concurrently and summarises each like fping", async () => {
  const r = await ours(["-c", "2", "-i", "0.05", "127.0.0.1", "::1"]);
  assertEquals(r.code, 0);
  assertMatch(
    r.stdout,
    /^PING 127\.0\.0\.1 \(127\.0\.0\.1\) 56\(84\) bytes of data\.\nPING ::1\(::1\) 56 data bytes\n/,
  );
  assertMatch(r.stdout, /--- 127\.0\.0\.1 ping statistics ---\n2 packets transmitted, 2 received/);
  assertMatch(r.stdout, /--- ::1 ping statistics ---\n2 packets transmitted, 2 received/);
  assertMatch(
    r.stdout,
    /\n127\.0\.0\.1 : xmt\/rcv\/%loss = 2\/2\/0%, min\/avg\/max = [\d.]+\/[\d.]+\/[\d.]+\n/,
  );
  assertMatch(
    r.stdout,
    /\n::1 : xmt\/rcv\/%loss = 2\/2\/0%, min\/avg\/max = [\d.]+\/[\d.]+\/[\d.]+\n$/,
  );
});

Deno.test("ping CLI prints statistics and exits on SIGINT, and the status line on SIGQUIT", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "-i", "0.05", "127.0.0.1"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const errReader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const out = { value: "" }, err = { value: "" };
  // A ping deaf to signals fails the test rather than hanging it.
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  // Replies printed mean the session has let the event loop run, so its
  // listeners (installed before that) are in.
  await readUntil(reader, out, (text) => (text.match(/bytes from/g) ?? []).length >= 3);
  child.kill("SIGQUIT");
  // SIGINT only once SIGQUIT has been answered, so both are seen in order.
  await readUntil(errReader, err, (text) => text.endsWith("\n"));
  child.kill("SIGINT");
  await readUntil(reader, out, () => false);
  await readUntil(errReader, err, () => false);
  const status = await child.status;
  clearTimeout(killer);
  assertEquals(status.code, 0);
  assertMatch(
    out.value,
    /\n--- 127\.0\.0\.1 ping statistics ---\n(\d+) packets transmitted, \d+ received/,
  );
  assertMatch(out.value, /rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms\n$/);
  assertMatch(
    err.value,
    /^\r\d+\/\d+ packets, \d+% loss, min\/avg\/ewma\/max = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms\n$/,
  );
});

Deno.test("ping CLI answers a SIGINT sent as soon as the header is out with its statistics", async () => {
  // iputils installs its handlers before it prints anything; so does ping when
  // more than one request will go out, so no Ctrl-C ends it without statistics.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "-i", "0.2", "127.0.0.1"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const out = { value: "" };
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  await readUntil(reader, out, (text) => text.includes("data.\n"));
  child.kill("SIGINT");
  await readUntil(reader, out, () => false);
  const status = await child.status;
  clearTimeout(killer);
  assertEquals(status.signal, null, "ended by the signal, not by its listener");
  assertMatch(out.value, /\n--- 127\.0\.0\.1 ping statistics ---\n\d+ packets transmitted/);
});

/**
 * Waits until process `pid` catches every signal in `signals`, from the
 * SigCgt mask in /proc: the sign that its listeners are in.
 */
async function waitForSignalHandlers(pid: number, signals: number[]): Promise<void> {
  const want = signals.reduce((mask, n) => mask | (1n << BigInt(n - 1)), 0n);
  for (;;) {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    if (/^State:\s+Z/m.test(status)) throw new Error(`process ${pid} ended before its listeners`);
    const caught = BigInt(`0x${/^SigCgt:\s+(\w+)/m.exec(status)![1]}`);
    if ((caught & want) === want) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

Deno.test("a flood whose replies are always in at once still stops on SIGINT", async () => {
  // On loopback every reply is queued by the time sendto() returns, so the
  // flood never has to wait: it must still let the signal in.
  for (const args of [["-f", "-q"], ["-q", "-i", "0.002"]]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args, "127.0.0.1"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const errReader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const out = { value: "" }, err = { value: "" };
    await readUntil(reader, out, (text) => text.includes("bytes of data."));
    // A flood deaf to signals fails the test rather than hanging it. Under
    // load (5 on 2 cores) the flood took up to 20 s to see its first signal
    // here, and 0.3 s for the next; 60 s is three times the worst seen.
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    // The listeners go in as the flood starts, after the header: a signal
    // before them ends the process. Then SIGINT only once a reply is in (the
    // SIGQUIT status line says), else ping rightly exits 1 for no reply.
    await waitForSignalHandlers(child.pid, [2, 3]);
    while (!/^\r[1-9]\d*\//m.test(err.value)) {
      child.kill("SIGQUIT");
      const lines = err.value.split("\n").length;
      await readUntil(errReader, err, (text) => text.split("\n").length > lines);
    }
    child.kill("SIGINT");
    const status = await child.status;
    clearTimeout(killer);
    await readUntil(reader, out, () => false);
    await readUntil(errReader, err, () => false);
    // Stopping is checked, not how fast (see the killer above); how fast
    // belongs in bench/.
    assertEquals(status.code, 0, `${args.join(" ")}: ${err.value}`);
    assertMatch(out.value, /\n(\d+) packets transmitted, \1 received, 0% packet loss/);
  }
});
