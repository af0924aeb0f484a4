/**
 * End-to-end benchmark of the UDP pinger against irtt, on loopback, in one run:
 *
 * 1. RTT: 3 × 200 pings at 10 ms, `udp-ping` against `udp-server` and
 *    `irtt client` against `irtt server`, at the same time (see `rttRound()`);
 *    median and p99 of each,
 *    their differences, and the targets (within 15 µs and 50 µs). Each tool
 *    runs with its defaults: `udp-server`'s receive loops wait in
 *    `SCHED_FIFO` while lightly loaded (`--realtime 1`, taken as root),
 *    irtt's server has no such setting. A third client in each round,
 *    against `udp-server --realtime 0` (the normal class, as irtt's), shows
 *    what that setting is worth; it has no target.
 * 2. Client precision: `udp-ping -c 10000 -i 1ms` against our server, next to
 *    `irtt client -i 1ms -d 10s` against `irtt server`. Reported: packets sent
 *    out of the ticks scheduled (no self-inflicted loss), and the send-time
 *    error (actual minus scheduled send time): our client's own figures, and
 *    irtt's reported `timer_error` plus its 99th percentile rebuilt from the
 *    per-packet monotonic send times in its JSON output.
 * 3. Server throughput: `bench/udp_blaster.c` (compiled here with gcc), a
 *    closed-loop generator keeping 64 requests in flight over 8 sockets,
 *    against `udp-server --threads 2` and against `irtt server`, which it
 *    drives in irtt's own protocol (an open request captured from
 *    `irtt client`, then echo requests with the conn token), 3 alternating
 *    rounds each.
 *
 * `--precision [--rounds N] [--hog N]` runs only phase 2, ours and irtt's
 * alternating for N rounds (3), with N busy loops (one per core) at the
 * tools' own priority for the whole time, as other work on the machine:
 * one JSON line per run.
 *
 * Run: `deno run -A --unstable-net bench/udp.ts [--json] [--nice | --fifo] [--rtt-only]`. Needs gcc,
 * irtt and /usr/bin/time (Debian `time`, for the generator's CPU time). On a
 * shared machine `--nice` runs every measured process (ours and irtt's alike)
 * under `nice -n -19`, to keep other load from dominating; when even that
 * leaves stalls of hundreds of milliseconds (seen with the load average at 10
 * on 2 cores), `--fifo` runs the RTT phase under `chrt -f 10` (SCHED_FIFO;
 * the kernel's RT throttling still leaves 5% to the rest) and the others
 * under `nice -n -19`.
 * Run it on a quiet machine: every figure here is a latency under the OS
 * scheduler.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("udp_pinger/main.ts", ROOT).pathname;
const SERVER = [MAIN, "server"];
const CLIENT = [MAIN, "client"];
const BLASTER_C = new URL("bench/udp_blaster.c", ROOT).pathname;
const FIFO = Deno.args.includes("--fifo");
const NICE = FIFO || Deno.args.includes("--nice") ? ["nice", "-n", "-19"] : [];
/**
 * What the measured processes run under now: `--fifo` gives the RTT phase
 * SCHED_FIFO and the others `nice -n -19`, because irtt's client at
 * `-i 1ms` under SCHED_FIFO spun and never finished (its threads wait for
 * each other at one real-time priority on 2 cores, and none yields).
 */
let prio: string[] = NICE;
function deno(): string[] {
  return [...prio, Deno.execPath(), "run", "-A", "--unstable-net"];
}
function irtt(): string[] {
  return [...prio, "irtt"];
}

async function output(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

function start(cmd: string[]): Deno.ChildProcess {
  return new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await child.status;
}

function freePort(): number {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (conn.addr as Deno.NetAddr).port;
  conn.close();
  return port;
}

/**
 * Starts `udp-server` on a free loopback port and waits until it says it
 * listens, which it does once every receive loop has primed itself (under
 * load that can take longer than any fixed wait).
 */
async function ourServer(extra: string[] = []) {
  const port = freePort();
  const cmd = [...deno(), ...SERVER, "--host", "127.0.0.1", "-p", String(port), ...extra];
  return { port, server: await startReady(cmd, { stream: "stderr", ready: "listening on" }) };
}

/**
 * Starts `cmd` and resolves once its `stream` has shown the `ready` text;
 * the rest of that stream is read and dropped (Go exits on a write to a
 * closed pipe).
 */
async function startReady(
  cmd: string[],
  options: { stream: "stdout" | "stderr"; ready: string },
): Promise<Deno.ChildProcess> {
  const { stream, ready } = options;
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: "null",
    stdout: stream === "stdout" ? "piped" : "null",
    stderr: stream === "stderr" ? "piped" : "null",
  }).spawn();
  const lines = child[stream].pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(ready)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`${cmd.join(" ")} did not start: ${text}`);
    text += value;
  }
  void (async () => {
    while (!(await lines.read().catch(() => ({ done: true }))).done);
  })();
  return child;
}

/**
 * The command line of `udp-ping --json --no-stats -c COUNT -i INTERVAL`
 * against our server on `port`.
 */
function pingCommand(
  port: number,
  options: { count: number; interval: string; extra?: string[] },
): string[] {
  const { count, interval, extra = [] } = options;
  return [
    ...deno(),
    ...CLIENT,
    "--json",
    "--no-stats",
    "-c",
    String(count),
    "-i",
    interval,
    ...extra,
    `127.0.0.1:${port}`,
  ];
}

/**
 * {@linkcode pingCommand}, run to its end: every line, parsed (the events,
 * then the summary).
 */
async function ourPings(
  port: number,
  options: { count: number; interval: string; extra?: string[] },
  // deno-lint-ignore no-explicit-any
): Promise<any[]> {
  const r = await output(pingCommand(port, options));
  return r.stdout.trim().split("\n").map((l) => JSON.parse(l));
}

interface Precision {
  scheduled: number;
  sent: number;
  received: number;
  errorMedianUs: number;
  errorP99Us: number;
  errorMaxUs: number;
  errorMeanUs?: number;
  /**
   * Schedule slots skipped after a stall: ours moves its later pings on by
   * whole intervals (no sequence number skipped), irtt skips the ticks as
   * timer misses (their pings are never sent). Ours also counts any send
   * made late in a catch-up burst (none since the sender skips slots).
   */
  catchUpOrMissed: number;
  /** p99 excluding those: comparable with irtt's timer error. */
  errorP99OnTimeUs: number;
}

async function ourPrecision(): Promise<Precision> {
  const { port, server } = await ourServer();
  try {
    const s = (await ourPings(port, { count: 10000, interval: "1ms", extra: ["-W", "1"] })).at(-1);
    return {
      scheduled: 10000 + (s.sendError.skipped ?? 0),
      sent: s.sent,
      received: s.received,
      errorMedianUs: s.sendError.median * 1000,
      errorP99Us: s.sendError.p99 * 1000,
      errorMaxUs: s.sendError.max * 1000,
      errorMeanUs: s.sendError.mean * 1000,
      catchUpOrMissed: s.sendError.catchUp + (s.sendError.skipped ?? 0),
      errorP99OnTimeUs: s.sendError.p99OnTime * 1000,
    };
  } finally {
    await stop(server);
  }
}

/**
 * Starts `irtt server` on a free loopback port, with no minimum interval,
 * and waits until it says it listens (a fixed wait of 0.5 s was too short
 * at a load average of 15: its client was refused).
 */
async function irttServer() {
  const port = freePort();
  const cmd = [...irtt(), "server", "-b", `127.0.0.1:${port}`, "-i", "0"];
  return {
    port,
    server: await startReady(cmd, { stream: "stdout", ready: "starting IPv4 listener" }),
  };
}

/**
 * `irtt client -i INTERVAL -d DURATION` against the `irtt server` on `port`
 * (loopback): its JSON output, parsed.
 */
// deno-lint-ignore no-explicit-any
async function irttClient(port: number, interval: string, duration: string): Promise<any> {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const r = await output([
      ...irtt(),
      "client",
      "-Q",
      "-i",
      interval,
      "-d",
      duration,
      "-o",
      file,
      `127.0.0.1:${port}`,
    ]);
    if (r.code !== 0) throw new Error(`irtt client failed: ${r.stderr}`);
    return JSON.parse(await Deno.readTextFile(file));
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** {@linkcode irttClient} against a fresh `irtt server`. */
// deno-lint-ignore no-explicit-any
async function irttRun(interval: string, duration: string): Promise<any> {
  const { port, server } = await irttServer();
  try {
    return await irttClient(port, interval, duration);
  } finally {
    await stop(server);
  }
}

async function irttPrecision(): Promise<Precision> {
  const d = await irttRun("1ms", "10s");
  const interval = d.config.params.interval as number; // ns
  const stats = d.stats;
  // irtt's JSON has no per-packet timer error, only its mean, stddev and
  // max (its timer re-bases on each wake-up, so the error cannot be rebuilt
  // from the send times). The 99th percentile is estimated as
  // mean + 2.326·stddev, the normal approximation.
  const e = stats.timer_error;
  return {
    scheduled: Math.round(stats.duration / interval),
    sent: stats.packets_sent,
    received: stats.packets_received,
    errorMedianUs: NaN,
    errorP99Us: (e.mean + 2.326 * e.stddev) / 1000,
    errorMaxUs: e.max / 1000,
    errorMeanUs: e.mean / 1000,
    catchUpOrMissed: stats.timer_misses,
    errorP99OnTimeUs: (e.mean + 2.326 * e.stddev) / 1000,
  };
}

/** Round trips of one client against its own server, in microseconds. */
interface RttSample {
  /** Each reply's RTT. */
  rtts: number[];
  /** Where the receive times came from, as the client reports it. */
  source: string;
}

/**
 * {@linkcode pingCommand} against our server on `port`, running until
 * stopped: `firstReply` resolves on its first reply (and rejects if the
 * client ends without one), `replies` holds the RTT (µs) and timestamp
 * source of each reply so far, and `stop()` ends it.
 */
function pingStream(port: number, intervalMs: number) {
  const [cmd, ...args] = pingCommand(port, { count: 1_000_000, interval: `${intervalMs}ms` });
  const child = new Deno.Command(cmd!, { args, stdin: "null", stdout: "piped", stderr: "null" })
    .spawn();
  const replies: { rttUs: number; stamp: string }[] = [];
  const { promise: firstReply, resolve, reject } = Promise.withResolvers<void>();
  const reading = (async () => {
    let rest = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const e = JSON.parse(line);
        if (e.type !== "reply" || e.duplicate || e.late) continue;
        replies.push({ rttUs: e.rttMs * 1000, stamp: e.stamp });
        resolve();
      }
    }
    reject(new Error(`udp-ping against port ${port} ended without a reply`));
  })();
  return {
    firstReply,
    replies,
    async stop() {
      await stop(child);
      await reading;
    },
  };
}

/** `irtt client` against `irtt server` on `port`: the RTT (µs) of each round trip. */
async function irttRtts(port: number, count: number, intervalMs: number): Promise<number[]> {
  const d = await irttClient(port, `${intervalMs}ms`, `${count * intervalMs}ms`);
  // irtt 0.9 (Go) stamps in user space at both ends.
  return (d.round_trips as { lost: string; delay: { rtt?: number } }[])
    .filter((t) => t.lost === "false" && t.delay.rtt !== undefined)
    .map((t) => t.delay.rtt! / 1000);
}

/**
 * One round of the RTT comparison, the three clients pinging at the same
 * time, each against its own server: `udp-ping` against `udp-server`, the
 * same against `udp-server --realtime 0`, and `irtt client` against
 * `irtt server`. Ours start first (a Deno process takes longer to start);
 * once both have a reply, irtt's runs `count` pings, and the replies ours
 * received meanwhile are kept. At the same moment on the same machine,
 * a stall of the machine (on this VM, a core that was idle can take
 * milliseconds to resume now and then) falls on every tool alike; run one
 * after the other, the tool that happened to run during a bad second
 * lost, and the p99 of a few hundred pings, set by its few slowest,
 * measured the machine's second rather than the tool. The clients' phases
 * are whatever their start-up left, so their pings rarely coincide.
 */
async function rttRound(count: number, intervalMs: number) {
  // Whatever started is stopped, the newest first, even when a later start fails.
  const started: (() => Promise<void>)[] = [];
  try {
    const ours = await ourServer();
    started.push(() => stop(ours.server));
    const normal = await ourServer(["--realtime", "0"]);
    started.push(() => stop(normal.server));
    const theirs = await irttServer();
    started.push(() => stop(theirs.server));
    const a = pingStream(ours.port, intervalMs);
    started.push(a.stop);
    const b = pingStream(normal.port, intervalMs);
    started.push(b.stop);
    await Promise.all([a.firstReply, b.firstReply]);
    const fromA = a.replies.length, fromB = b.replies.length;
    const irtt = await irttRtts(theirs.port, count, intervalMs);
    const kept = (s: typeof a, from: number): RttSample => {
      const replies = s.replies.slice(from, from + count);
      const stamps = new Set(replies.map((r) => r.stamp));
      return { rtts: replies.map((r) => r.rttUs), source: `receive ${[...stamps].join("+")}` };
    };
    return { ours: kept(a, fromA), normal: kept(b, fromB), irtt };
  } finally {
    for (const end of started.reverse()) await end();
  }
}

/** Median and 99th percentile (nearest rank) of `values`. */
function quantiles(values: number[]): { median: number; p99: number; count: number } {
  const sorted = values.toSorted((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  return { median: at(50), p99: at(99), count: sorted.length };
}

/**
 * RTT accuracy on loopback: 200 pings at 10 ms, ours against our server and
 * irtt against its own, at the same time (see {@linkcode rttRound}), over
 * `rounds` rounds; samples are pooled.
 */
async function rttComparison(rounds: number) {
  const ours: number[] = [], normal: number[] = [], irtt: number[] = [];
  let source = "";
  for (let round = 0; round < rounds; round++) {
    const r = await rttRound(200, 10);
    ours.push(...r.ours.rtts);
    normal.push(...r.normal.rtts);
    irtt.push(...r.irtt);
    source = r.ours.source;
  }
  const o = quantiles(ours), i = quantiles(irtt);
  return {
    ours: { ...o, source },
    oursNormalClass: quantiles(normal),
    irtt: i,
    medianDiffUs: o.median - i.median,
    p99DiffUs: o.p99 - i.p99,
    medianTargetMet: o.median - i.median <= 15,
    p99TargetMet: o.p99 - i.p99 <= 50,
  };
}

async function buildBlaster(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "udp-blaster-" });
  const exe = `${dir}/udp_blaster`;
  const r = await output(["gcc", "-O2", "-o", exe, BLASTER_C]);
  if (r.code !== 0) throw new Error(`Cannot build the load generator: ${r.stderr}`);
  return exe;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the parenthesised command name: utime is 14th, stime 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
async function machineJiffies(): Promise<{ busy: number; total: number }> {
  const cpu = (await Deno.readTextFile("/proc/stat")).split("\n")[0]!.trim().split(/\s+/)
    .slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - (cpu[4] ?? 0), total };
}

interface Throughput {
  rps: number;
  /** Cores the server used during the run (1 = one core fully busy). */
  serverCores: number;
  /** Cores the load generator used, user + system (its send and receive syscalls). */
  blasterCores: number;
  /** Cores the whole machine used: the rest is other load. */
  machineCores: number;
}

/** The load generator's settings, the same for both servers: requests in flight, size (irtt's default packet length), client sockets. */
const LOAD = { window: "64", size: "60", sockets: "8" };

/** The generator's command line against `port` on loopback. */
function load(blaster: string, at: { port: number; seconds: number }): string[] {
  const { port, seconds } = at;
  return [
    ...prio,
    blaster,
    "127.0.0.1",
    String(port),
    String(seconds),
    LOAD.window,
    LOAD.size,
    LOAD.sockets,
  ];
}

async function ourThroughput(blaster: string, seconds: number): Promise<Throughput> {
  const { port, server } = await ourServer(["--threads", "2"]);
  try {
    const cpu0 = await cpuSeconds(server.pid);
    const m0 = await machineJiffies();
    const t0 = performance.now();
    // /usr/bin/time reports the generator's own CPU time on stderr.
    const r = await output([
      "/usr/bin/time",
      "-f",
      "%U %S",
      ...load(blaster, { port, seconds }),
    ]);
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = await cpuSeconds(server.pid);
    const m1 = await machineJiffies();
    const [user = NaN, sys = NaN] = r.stderr.trim().split("\n").at(-1)!.split(" ").map(Number);
    return {
      rps: JSON.parse(r.stdout).rps,
      serverCores: (cpu1 - cpu0) / wall,
      blasterCores: (user + sys) / wall,
      machineCores: ((m1.busy - m0.busy) / (m1.total - m0.total)) * navigator.hardwareConcurrency,
    };
  } finally {
    await stop(server);
  }
}

/**
 * The open request `irtt client` sends (with its default packet length,
 * 60 bytes, and both timestamps and received stats), captured on a socket
 * that never answers, as hex for the generator's irtt mode.
 */
async function captureIrttOpen(): Promise<string> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (conn.addr as Deno.NetAddr).port;
  const client = start([...irtt(), "client", "-Q", "-i", "10ms", "-d", "60s", `127.0.0.1:${port}`]);
  try {
    const [data] = await conn.receive();
    return [...data].map((b) => b.toString(16).padStart(2, "0")).join("");
  } finally {
    conn.close();
    await stop(client);
  }
}

/** irtt's server under the same generator, speaking irtt's protocol (see udp_blaster.c). */
async function irttThroughput(blaster: string, seconds: number): Promise<number> {
  const open = await captureIrttOpen();
  const { port, server } = await irttServer();
  try {
    const r = await output([...load(blaster, { port, seconds }), open]);
    if (r.code !== 0) throw new Error(`udp_blaster against irtt failed: ${r.stderr}`);
    return JSON.parse(r.stdout).rps;
  } finally {
    await stop(server);
  }
}

/** The median of `values`. */
function middle(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}

/** The value after `name` in the arguments, as a number, or `fallback`. */
function numberArg(name: string, fallback: number): number {
  const at = Deno.args.indexOf(name);
  return at < 0 ? fallback : Number(Deno.args[at + 1]);
}

/**
 * Starts `n` busy loops (`sh -c 'while :; do :; done'`), each at nice 0 as
 * both tools run, to stand for other work on the machine.
 */
function hogs(n: number): Deno.ChildProcess[] {
  return Array.from({ length: n }, () => start(["sh", "-c", "while :; do :; done"]));
}

/**
 * `--precision`: only the client precision phase, ours and irtt's
 * alternating over `--rounds N` (3) rounds, with `--hog N` busy loops
 * (default: one per core) running the whole time; one JSON line per run.
 */
async function precisionRounds(): Promise<void> {
  const rounds = numberArg("--rounds", 3);
  const busy = hogs(numberArg("--hog", navigator.hardwareConcurrency));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [tool, run] of [["udp-ping", ourPrecision], ["irtt", irttPrecision]] as const) {
        const before = await loadavg();
        const p = await run();
        console.log(JSON.stringify({ round, tool, load: `${before} → ${await loadavg()}`, ...p }));
      }
    }
  } finally {
    for (const hog of busy) await stop(hog);
  }
}

if (import.meta.main && Deno.args.includes("--precision")) {
  await precisionRounds();
  Deno.exit(0);
}

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const loadBefore = await loadavg();
  const blaster = await buildBlaster();
  if (FIFO) prio = ["chrt", "-f", "10"];
  const rtt = await rttComparison(3);
  prio = NICE;
  if (Deno.args.includes("--rtt-only")) {
    console.log(JSON.stringify(rtt));
    Deno.exit(0);
  }
  const ours = await ourPrecision();
  const irtt = await irttPrecision();
  // Alternating rounds, so that other load on the machine falls on both.
  const ourRounds: Throughput[] = [], irttRounds: number[] = [];
  for (let round = 0; round < 3; round++) {
    ourRounds.push(await ourThroughput(blaster, 3));
    irttRounds.push(await irttThroughput(blaster, 3));
  }
  const ourRps = ourRounds.find((r) => r.rps === middle(ourRounds.map((x) => x.rps)))!;
  const irttRps = middle(irttRounds);
  await Deno.remove(blaster.replace(/\/udp_blaster$/, ""), { recursive: true });
  const load = `${loadBefore} before, ${await loadavg()} after`;
  const result = {
    load,
    priority: {
      rtt: FIFO ? "chrt -f 10" : NICE.join(" ") || "normal",
      rest: NICE.join(" ") || "normal",
    },
    rtt,
    precision: { ours, irtt },
    throughput: {
      ours: ourRps.rps,
      irtt: irttRps,
      rounds: { ours: ourRounds.map((r) => r.rps), irtt: irttRounds },
      cpuCores: {
        server: ourRps.serverCores,
        blaster: ourRps.blasterCores,
        machine: ourRps.machineCores,
      },
    },
  };
  if (json) console.log(JSON.stringify(result));
  else {
    const f = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(0));
    const col = (v: string | number, w: number) => String(v).padEnd(w);
    console.log(
      `load average: ${load}${
        FIFO
          ? " (RTT under chrt -f 10, the rest under nice -n -19)"
          : NICE.length > 0
          ? " (run under nice -n -19)"
          : ""
      }`,
    );
    console.log(
      "RTT on loopback, 3 × 200 pings at 10 ms, the clients at the same time, each against its own server (µs):",
    );
    console.log("  tool      replies median p99    timestamps");
    console.log(
      `  ${col("udp-ping", 9)} ${col(rtt.ours.count, 7)} ${col(f(rtt.ours.median), 6)} ${
        col(f(rtt.ours.p99), 6)
      } send user space, ${rtt.ours.source}`,
    );
    const n = rtt.oursNormalClass;
    console.log(
      `  ${col("udp-ping", 9)} ${col(n.count, 7)} ${col(f(n.median), 6)} ${
        col(f(n.p99), 6)
      } the same, udp-server --realtime 0 (not a target)`,
    );
    console.log(
      `  ${col("irtt", 9)} ${col(rtt.irtt.count, 7)} ${col(f(rtt.irtt.median), 6)} ${
        col(f(rtt.irtt.p99), 6)
      } user space at both ends`,
    );
    console.log(
      `  udp-ping − irtt: median ${f(rtt.medianDiffUs)} µs (target ≤ 15: ${
        rtt.medianTargetMet ? "met" : "NOT met"
      }), p99 ${f(rtt.p99DiffUs)} µs (target ≤ 50: ${rtt.p99TargetMet ? "met" : "NOT met"})`,
    );
    console.log("client precision, -i 1ms for 10 s on loopback (send-time error in µs):");
    console.log(
      "  tool      slots     sent   received skipped/missed  median p99     max     mean  p99-on-time",
    );
    for (const [name, p] of [["udp-ping", ours], ["irtt", irtt]] as const) {
      console.log(
        `  ${col(name, 9)} ${col(p.scheduled, 9)} ${col(p.sent, 6)} ${col(p.received, 8)} ${
          col(p.catchUpOrMissed, 15)
        } ${col(f(p.errorMedianUs), 6)} ${col(f(p.errorP99Us), 7)} ${col(f(p.errorMaxUs), 7)} ${
          col(f(p.errorMeanUs), 5)
        } ${f(p.errorP99OnTimeUs)}`,
      );
    }
    console.log(
      "  irtt: p99 = its reported mean + 2.326·stddev (it reports no percentile); after a stall it",
    );
    console.log(
      "  skips the missed ticks and their pings, udp-ping skips the slots and sends every ping.",
    );
    console.log(
      `  udp-ping − irtt: send-time p99 ${
        f(ours.errorP99Us - irtt.errorP99Us)
      } µs overall (target < 0: ${ours.errorP99Us < irtt.errorP99Us ? "met" : "NOT met"}), ${
        f(ours.errorP99OnTimeUs - irtt.errorP99OnTimeUs)
      } µs on time; all 10000 sent: ${ours.sent === 10000 ? "yes" : "NO"}`,
    );
    console.log(
      `server throughput on loopback (replies/s), median of 3 rounds of 3 s, same generator ` +
        `(udp_blaster: ${LOAD.window} in flight, ${LOAD.size}-byte requests, ${LOAD.sockets} sockets):`,
    );
    console.log(
      `  udp-server --threads 2: ${ourRps.rps.toFixed(0)} ` +
        `(CPU: server ${ourRps.serverCores.toFixed(2)}, udp_blaster ${
          ourRps.blasterCores.toFixed(2)
        }, whole machine ${
          ourRps.machineCores.toFixed(2)
        } of ${navigator.hardwareConcurrency} cores)`,
    );
    console.log(`  irtt server:             ${irttRps.toFixed(0)}`);
    console.log(
      `  ratio udp-server/irtt: ${(ourRps.rps / irttRps).toFixed(2)} ` +
        `(rounds: ours ${ourRounds.map((r) => r.rps.toFixed(0)).join(" ")}, ` +
        `irtt ${irttRounds.map((r) => r.toFixed(0)).join(" ")})`,
    );
    console.log("the target figures, udp-ping vs irtt in this run (µs):");
    console.log("  figure            udp-ping irtt     difference target");
    const rows: [string, number, number, string, boolean][] = [
      ["median RTT", rtt.ours.median, rtt.irtt.median, "within 15", rtt.medianTargetMet],
      ["p99 RTT", rtt.ours.p99, rtt.irtt.p99, "within 50", rtt.p99TargetMet],
      [
        "send-time p99",
        ours.errorP99Us,
        irtt.errorP99Us,
        "below irtt",
        ours.errorP99Us < irtt.errorP99Us,
      ],
    ];
    for (const [name, a, b, target, met] of rows) {
      console.log(
        `  ${col(name, 17)} ${col(f(a), 8)} ${col(f(b), 8)} ${col(f(a - b), 10)} ${target}: ${
          met ? "met" : "NOT met"
        }`,
      );
    }
  }
}
