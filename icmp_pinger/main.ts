/**
 * `ping` command line: iputils-compatible text (or `--json`) over
 * {@linkcode ping} from `ping.ts`. Several hosts are pinged concurrently and
 * summarised per host, like fping.
 *
 * Usage: `deno run -A icmp_pinger/main.ts [options] HOST...`; see
 * `icmp_pinger/README.md` for the options, exit codes and JSON schema.
 *
 * @module
 */
import {
  CliError,
  formatHelp,
  type Options,
  type OptionSpec,
  parseArgs,
  runMain,
} from "../lib/cli.ts";
import { SocketError } from "../lib/rawsock/errno.ts";
import { ipFamily } from "../lib/sockaddr.ts";
import { MAX_SIZE, ping, type PingEvent, type PingSession, type PingSummary } from "./ping.ts";
import {
  exitCode,
  formatError,
  formatHeader,
  formatNoAnswer,
  formatPattern,
  formatPeer,
  formatReply,
  formatStatistics,
  formatStatus,
  formatTimestamp,
  usToMs,
} from "./format.ts";
// Every module of the start path, imported here as well: Deno then loads
// them all in one round instead of one round per level of the import graph
// (bench/startup_test.ts keeps the list whole).
import "../lib/rawsock/ffi.ts";
import "../lib/rawsock/constants.ts";
import "../lib/rawsock/netns.ts";
import { perror, privilegeFix } from "../lib/privilege.ts";
import "../lib/rawsock/socket.ts";
import "../lib/rawsock/clock.ts";
import "../lib/rawsock/echo.ts";
import "../lib/_checksum.ts";
import "../lib/icmp.ts";

/**
 * Ping's options: the parser reads them, `--help` lists them, and `-h`
 * prints them in iputils' layout. iputils' letters are iputils'; the long
 * names are ours (iputils has none).
 */
export const OPTIONS = {
  count: {
    type: "string",
    short: "c",
    arg: "<count>",
    default: "until interrupted",
    description: "stop after <count> replies",
  },
  timestamps: { type: "boolean", short: "D", description: "print timestamps" },
  flood: { type: "boolean", short: "f", description: "flood ping" },
  usage: { type: "boolean", short: "h", description: "print help and exit" },
  interface: {
    type: "string",
    short: "I",
    arg: "<interface>",
    default: "chosen by routing",
    description: "either interface name or address",
  },
  interval: {
    type: "string",
    short: "i",
    arg: "<interval>",
    default: "1, or 0 with -f",
    description: "seconds between sending each packet",
  },
  numeric: { type: "boolean", short: "n", description: "no dns name resolution" },
  outstanding: { type: "boolean", short: "O", description: "report outstanding replies" },
  pattern: {
    type: "string",
    short: "p",
    arg: "<pattern>",
    default: "bytes 0, 1, 2 …",
    description: "contents of padding byte",
  },
  quiet: { type: "boolean", short: "q", description: "quiet output" },
  size: {
    type: "string",
    short: "s",
    arg: "<size>",
    default: "56",
    description: "use <size> as number of data bytes to be sent",
  },
  ttl: {
    type: "string",
    short: "t",
    arg: "<ttl>",
    default: "the system's",
    description: "define time to live",
  },
  deadline: {
    type: "string",
    short: "w",
    arg: "<deadline>",
    default: "none",
    description: "reply wait <deadline> in seconds",
  },
  timeout: {
    type: "string",
    short: "W",
    arg: "<timeout>",
    default: "10",
    description: "time to wait for response",
  },
  ipv4: { type: "boolean", short: "4", description: "use IPv4" },
  ipv6: { type: "boolean", short: "6", description: "use IPv6" },
  json: { type: "boolean", description: "one JSON object per event, then a summary per host" },
  help: { type: "boolean", description: "print this list of options and exit" },
} as const satisfies Options;

/**
 * iputils' `-h` text, from the option table: stderr, exit 2, as iputils
 * (which also prints it after a bad option).
 */
function usage(): string {
  const lines = [
    "",
    "Usage",
    "  ping [options] <destination>...",
    "",
    "Options:",
    "  <destination>      dns name or ip address (several: pinged concurrently)",
  ];
  for (const [name, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    if (name === "help") continue;
    const flag = `${spec.short ? `-${spec.short}` : `--${name}`}${spec.arg ? ` ${spec.arg}` : ""}`;
    lines.push(`  ${flag.padEnd(18)} ${spec.description}`);
  }
  return `${lines.join("\n")}\n`;
}

const LONG_MAX = "9223372036854775807";

/**
 * Whether `t` is decimal digits with an optional sign, as iputils'
 * strtol() checks accept. A loop, not a regular expression: V8 compiles
 * each one on its first use, about 70 µs of start-up (measured).
 */
function isDecimal(t: string): boolean {
  let i = t[0] === "+" || t[0] === "-" ? 1 : 0;
  if (i === t.length) return false;
  for (; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function integerArg(text: string, min: number, max: number, maxText = String(max)): number {
  const t = text.trim();
  if (!isDecimal(t)) throw new CliError(`invalid argument: '${text}'`);
  const v = Number(t);
  if (v < min || v > max) {
    throw new CliError(`invalid argument: '${text}': out of range: ${min} <= value <= ${maxText}`);
  }
  return v;
}

function secondsArg(text: string, what: string): number {
  const t = text.trim();
  const v = t === "" ? NaN : Number(t);
  if (!Number.isFinite(v) || v < 0 || v > 2147483) throw new CliError(`${what}: ${text}`);
  return v;
}

function patternArg(text: string): Uint8Array {
  const bad = text.search(/[^0-9a-fA-F]/);
  if (bad >= 0) {
    throw new CliError(`patterns must be specified as hex digits: ${text.slice(bad)}`);
  }
  // As sscanf("%2x" × 16): pairs of digits, at most 16 bytes.
  const bytes: number[] = [];
  for (let k = 0; k < text.length && bytes.length < 16; k += 2) {
    bytes.push(parseInt(text.slice(k, k + 2), 16));
  }
  return new Uint8Array(bytes);
}

/** Buffers stdout; flood mode flushes its dots in batches (the bytes are iputils'). */
class Output {
  #parts: string[] = [];
  #size = 0;
  #last = performance.now();
  #encoder = new TextEncoder();
  #batch: boolean;

  constructor(batch: boolean) {
    this.#batch = batch;
  }

  write(text: string): void {
    this.#parts.push(text);
    this.#size += text.length;
    if (!this.#batch || this.#size > 8192 || performance.now() - this.#last > 100) this.flush();
  }

  flush(): void {
    if (this.#parts.length === 0) return;
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    this.#last = performance.now();
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}

function writeErr(text: string): void {
  writeAll(Deno.stderr, text);
}

function writeOut(text: string): void {
  writeAll(Deno.stdout, text);
}

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += stream.writeSync(bytes.subarray(off));
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(args, OPTIONS);
  } catch (err) {
    // iputils follows a bad option with its usage.
    if (err instanceof CliError) throw new CliError(`${err.message}\n${usage()}`, err.exitCode);
    throw err;
  }
  const { values: v, positionals: hosts } = parsed;
  if (v.help) {
    writeOut(formatHelp(OPTIONS, {
      usage: "Usage: deno task ping [options] <destination>...",
      summary: "Sends ICMP echo requests and prints the replies as iputils ping does; " +
        "several destinations are pinged concurrently and summarised like fping.",
      footer: "Exit codes: 0 when a reply arrived (several hosts: every host answered), " +
        "1 when none did (with -w and -c: fewer than the count), " +
        "2 for bad input, an unknown host, no permission or a setup error.",
    }));
    return 0;
  }
  if (v.usage) {
    writeErr(usage());
    return 2;
  }
  if (v.ipv4 && v.ipv6) throw new CliError("only one -4 or -6 option may be specified");
  const family = v.ipv4 ? 4 : v.ipv6 ? 6 : undefined;
  const count = v.count !== undefined
    ? integerArg(v.count, 1, Number.MAX_SAFE_INTEGER, LONG_MAX)
    : undefined;
  // The largest size depends on the family: IPv4's header takes 20 bytes of the 65535.
  const sizeFamily = family ?? (hosts.length > 0 && hosts.every((h) => ipFamily(h) === 6) ? 6 : 4);
  const size = v.size !== undefined ? integerArg(v.size, 0, MAX_SIZE[sizeFamily]) : 56;
  const ttl = v.ttl !== undefined ? integerArg(v.ttl, 0, 255) : undefined;
  if (ttl === 0) throw new CliError("cannot set unicast time-to-live: Invalid argument");
  const deadline = v.deadline !== undefined ? integerArg(v.deadline, 0, 2147483647) : undefined;
  const linger = v.timeout !== undefined ? secondsArg(v.timeout, "bad linger time") : undefined;
  const interval = v.interval !== undefined
    ? secondsArg(v.interval, "bad timing interval")
    : undefined;
  const pattern = v.pattern !== undefined ? patternArg(v.pattern) : undefined;
  if (hosts.length === 0) throw new CliError("usage error: Destination address required");
  const quiet = v.quiet ?? false;
  const flood = v.flood ?? false;
  const json = v.json ?? false;
  const multi = hosts.length > 1;
  const out = new Output(flood && !json);

  // Resolve and open everything first: a bad host ends the run before any
  // request goes out, as iputils does.
  const sessions: PingSession[] = [];
  // Stopping each session directly: an AbortController would cost start-up.
  const onInt = () => {
    for (const s of sessions) s.stop();
  };
  const onQuit = () => {
    for (const s of sessions) writeErr(formatStatus(s.status()));
  };
  // Installed before anything is sent when more than one request will go
  // out, as iputils installs its handlers first, so a Ctrl-C at any point
  // prints the statistics. A single request installs them only when it first
  // lets the event loop run (the only time a listener can run): one answered
  // at once (loopback) skips their cost, 0.5-0.9 ms (measured).
  let listening = false;
  const listen = () => {
    if (listening) return;
    listening = true;
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGQUIT", onQuit);
  };
  if (count !== 1 || hosts.length > 1) listen();
  try {
    for (const host of hosts) {
      sessions.push(
        await ping(host, {
          ...(count !== undefined ? { count } : {}),
          ...(interval !== undefined ? { intervalMs: interval * 1000 } : {}),
          ...(linger !== undefined ? { timeoutMs: linger * 1000 } : {}),
          ...(deadline ? { deadlineMs: deadline * 1000 } : {}),
          size,
          ...(ttl !== undefined ? { ttl } : {}),
          flood,
          ...(pattern ? { pattern } : {}),
          ...(v.interface !== undefined ? { interface: v.interface } : {}),
          ...(family ? { family } : {}),
          spin: !multi,
          reportSends: flood && !quiet && !json,
          // With -q (and without --json) replies print nothing: skip their events.
          reportReplies: !quiet || json,
          onFirstYield: listen,
        }),
      );
    }
  } catch (err) {
    for (const s of sessions) await s[Symbol.asyncDispose]();
    throw await cliError(err, v.interface);
  }

  if (pattern && !quiet && !json) out.write(`${formatPattern(pattern)}\n`);
  for (const s of sessions) {
    if (json) {
      out.write(
        JSON.stringify({
          type: "start",
          host: s.host,
          address: s.address,
          family: s.family,
          dataBytes: s.dataBytes,
          socket: s.socketKind,
        }) + "\n",
      );
    } else {
      const header = {
        host: s.host,
        address: s.address,
        family: s.family,
        dataBytes: s.dataBytes,
      };
      out.write(
        formatHeader(
          s.source !== undefined ? { ...header, source: s.source, device: s.device ?? "" } : header,
        ) + "\n",
      );
    }
  }
  // The header goes out at once, as iputils' does, even when a flood
  // batches what follows.
  out.flush();
  // iputils refuses intervals under 2 ms to users, after its header line.
  const effectiveInterval = interval ?? (flood ? 0 : 1);
  if (effectiveInterval < 0.002 && Deno.uid() !== 0) {
    for (const s of sessions) await s[Symbol.asyncDispose]();
    throw new CliError("cannot flood; minimal interval allowed for user is 2ms");
  }

  // Nothing on the start-up path may call setTimeout(): its first use costs
  // about 8 ms in Deno 2.9 (measured), a fifth of the start-up budget.
  // Reverse lookups (lib/resolve.ts) only when names are printed. Named by
  // URL (here and below): Deno reads every module that a literal import()
  // names, and its imports, before a program starts.
  const wantNames = !v.numeric && !json && sessions.some((s) => !s.numeric);
  const names = wantNames
    ? new (await (import(new URL("../lib/resolve.ts", import.meta.url).href) as Promise<
      typeof import("../lib/resolve.ts")
    >)).ReverseCache()
    : undefined;
  const timestamps = v.timestamps ?? false;
  try {
    const results = await Promise.all(sessions.map(async (s) => {
      // iputils prints names only for a target given by name, and not with -n.
      const lookup = !s.numeric ? names : undefined;
      const o = { quiet, flood, timestamps, outstanding: v.outstanding ?? false };
      for await (const e of s) {
        if (json) {
          if (e.type !== "sent") out.write(JSON.stringify(jsonEvent(e)) + "\n");
          continue;
        }
        // Only a line that names a peer waits, and only for a target given by name.
        const printsPeer = !quiet && !flood && (e.type === "reply" || e.type === "error");
        const from = printsPeer && lookup
          ? formatPeer(e.from, await lookup.get(e.from))
          : undefined;
        const text = textEvent(e, o, from);
        if (text) out.write(text);
      }
      return await s.summary;
    }));
    out.flush();
    let code = 0;
    for (const summary of results) {
      const c = exitCode(summary.received, count, deadline !== undefined && deadline > 0);
      code = Math.max(code, c);
      if (json) out.write(JSON.stringify(jsonSummary(summary, c)) + "\n");
      else out.write(statistics(summary));
    }
    if (multi && !json) {
      out.write("\n");
      for (const s of results) out.write(fpingLine(s) + "\n");
    }
    out.flush();
    return code;
  } finally {
    if (listening) {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGQUIT", onQuit);
    }
  }
}

interface TextOptions {
  quiet: boolean;
  flood: boolean;
  timestamps: boolean;
  outstanding: boolean;
}

/** iputils' text for one event; `from` is the peer as named by a reverse lookup. */
function textEvent(e: PingEvent, o: TextOptions, from?: string): string {
  const ts = o.timestamps ? formatTimestamp(BigInt(Math.round(e.timestamp * 1000)) * 1000n) : "";
  switch (e.type) {
    case "sent":
      return o.flood && !o.quiet ? "." : "";
    case "reply":
      if (o.quiet) return "";
      if (o.flood) return e.badChecksum ? "\bC" : "\b \b";
      return ts + formatReply({ ...e, from: from ?? e.from }) + "\n";
    case "error":
      if (o.quiet) return "";
      if (o.flood) return "\bE";
      return ts +
        formatError(from ?? e.from, e.seq, {
          family: e.family,
          type: e.icmpType,
          code: e.icmpCode,
          info: e.info,
        }) + "\n";
    case "local-error":
      if (o.quiet) return "";
      if (o.flood) return "E";
      writeErr(`ping: ${e.message}\n`);
      return "";
    case "timeout":
      return o.outstanding ? ts + formatNoAnswer(e.seq) + "\n" : "";
  }
}

function statistics(s: PingSummary): string {
  return formatStatistics({
    host: s.host,
    transmitted: s.transmitted,
    received: s.received,
    duplicates: s.duplicates,
    corrupted: s.corrupted,
    errors: s.errors,
    timeMs: s.timeMs,
    elapsedUs: s.elapsedUs,
    rtt: s.rttAccumulator,
    timing: s.timing,
    pipe: s.pipe,
    showIpg: s.showIpg,
  });
}

/** fping's per-host summary: `host : xmt/rcv/%loss = 3/3/0%, min/avg/max = …`. */
function fpingLine(s: PingSummary): string {
  const loss = s.transmitted ? Math.round(s.lossPercent) : 0;
  let line = `${s.host} : xmt/rcv/%loss = ${s.transmitted}/${s.received}/${loss}%`;
  if (s.rtt) {
    const f = s.rttAccumulator;
    const avg = Math.trunc(f.sumUs / f.count);
    line += `, min/avg/max = ${usToMs(f.minUs)}/${usToMs(avg)}/${usToMs(f.maxUs)}`;
  }
  return line;
}

function jsonEvent(e: Exclude<PingEvent, { type: "sent" }>): Record<string, unknown> {
  switch (e.type) {
    case "reply":
      return {
        type: "reply",
        host: e.host,
        seq: e.seq,
        bytes: e.bytes,
        from: e.from,
        ttl: e.ttl ?? null,
        rttMs: e.rttUs !== undefined ? e.rttUs / 1000 : null,
        duplicate: e.duplicate,
        badChecksum: e.badChecksum,
        truncated: e.truncated,
        timestamp: e.timestamp,
      };
    case "error":
      return {
        type: "error",
        host: e.host,
        seq: e.seq,
        from: e.from,
        icmpType: e.icmpType,
        icmpCode: e.icmpCode,
        info: e.info,
        message: e.message,
        timestamp: e.timestamp,
      };
    case "local-error":
      return {
        type: "local-error",
        host: e.host,
        message: e.message,
        code: e.code,
        timestamp: e.timestamp,
      };
    case "timeout":
      return { type: "timeout", host: e.host, seq: e.seq, timestamp: e.timestamp };
  }
}

function jsonSummary(s: PingSummary, code: number): Record<string, unknown> {
  return {
    type: "summary",
    host: s.host,
    address: s.address,
    family: s.family,
    transmitted: s.transmitted,
    received: s.received,
    duplicates: s.duplicates,
    corrupted: s.corrupted,
    errors: s.errors,
    lossPercent: s.lossPercent,
    timeMs: s.timeMs,
    rtt: s.rtt ?? null,
    pipe: s.pipe,
    exitCode: code,
  };
}

async function cliError(err: unknown, iface: string | undefined): Promise<unknown> {
  if (err instanceof Error && err.name === "ResolveError") {
    const { gaiMessage, ResolveError } =
      await (import(new URL("../lib/resolve.ts", import.meta.url).href) as Promise<
        typeof import("../lib/resolve.ts")
      >);
    if (err instanceof ResolveError) return new CliError(gaiMessage(err));
  }
  if (err instanceof SocketError) {
    if (err.syscall === "socket" && (err.code === "EPERM" || err.code === "EACCES")) {
      // iputils' three lines, then how to fix it.
      return new CliError(
        [
          "socktype: SOCK_RAW",
          `ping: ${perror(err)}`,
          "ping: => missing cap_net_raw+p capability or setuid?",
          `ping: ${privilegeFix("icmp")}`,
        ].join("\n"),
      );
    }
    const syscall = err.syscall.startsWith("SO_BINDTODEVICE")
      ? `SO_BINDTODEVICE ${iface}`
      : err.syscall;
    return new CliError(perror({ syscall, reason: err.reason }));
  }
  if (err instanceof RangeError) return new CliError(err.message);
  return err;
}

if (import.meta.main) await runMain("ping", () => main(Deno.args));
