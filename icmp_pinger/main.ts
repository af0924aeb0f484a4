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
import { SocketError } from "../lib/rawsock.ts";
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

// This CLI parses its options itself, getopt-style as iputils does, instead
// of through lib/cli.ts's parseArgs: iputils' messages differ in details
// that the tests compare (glibc's "unrecognized option '--x'", and
// "invalid argument: '…': out of range: …" for numbers).

const USAGE = `
Usage
  ping [options] <destination>...

Options:
  <destination>      dns name or ip address (several: pinged concurrently)
  -c <count>         stop after <count> replies
  -D                 print timestamps
  -f                 flood ping
  -h                 print help and exit
  -I <interface>     either interface name or address
  -i <interval>      seconds between sending each packet
  -n                 no dns name resolution
  -O                 report outstanding replies
  -p <pattern>       contents of padding byte
  -q                 quiet output
  -s <size>          use <size> as number of data bytes to be sent
  -t <ttl>           define time to live
  -w <deadline>      reply wait <deadline> in seconds
  -W <timeout>       time to wait for response
  -4                 use IPv4
  -6                 use IPv6
  --json             one JSON object per event, then a summary per host
`;

/** A usage error: `ping: message` on stderr, then this exit code (2, as iputils' usage errors). */
class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

const VALUE_OPTIONS = new Set(["c", "i", "W", "w", "s", "t", "p", "I"]);
const FLAG_OPTIONS = new Set(["q", "f", "D", "O", "n", "4", "6", "h"]);
const LONG_OPTIONS = new Set(["json", "help"]);
const LONG_MAX = "9223372036854775807";

/**
 * Parses options as GNU getopt does for iputils' option string: grouped
 * flags (`-qn`), attached values (`-c3`), values that start with `-`
 * (`-i -1`), options after the host.
 */
function getopt(args: string[]): { opts: Map<string, string | true>; hosts: string[] } {
  const opts = new Map<string, string | true>();
  const hosts: string[] = [];
  for (let k = 0; k < args.length; k++) {
    const a = args[k]!;
    if (a === "--") {
      hosts.push(...args.slice(k + 1));
      break;
    }
    if (a.startsWith("--")) {
      const name = a.slice(2);
      if (!LONG_OPTIONS.has(name)) throw new CliError(`unrecognized option '${a}'`);
      opts.set(name, true);
    } else if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j]!;
        if (VALUE_OPTIONS.has(ch)) {
          const value = j + 1 < a.length ? a.slice(j + 1) : args[++k];
          if (value === undefined) throw new CliError(`option requires an argument -- '${ch}'`);
          opts.set(ch, value);
          break;
        }
        if (!FLAG_OPTIONS.has(ch)) throw new CliError(`invalid option -- '${ch}'`);
        opts.set(ch, true);
      }
    } else {
      hosts.push(a);
    }
  }
  return { opts, hosts };
}

function integerArg(text: string, min: number, max: number, maxText = String(max)): number {
  const t = text.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new CliError(`invalid argument: '${text}'`);
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

/** Resolver error codes as getaddrinfo's gai_strerror() words them. */
function resolveMessage(err: { host: string; code: string }): string {
  const words: Record<string, string> = {
    ENOTFOUND: "Name or service not known",
    EAI_AGAIN: "Temporary failure in name resolution",
    ENODATA: "No address associated with hostname",
    EAI_ADDRFAMILY: "Address family for hostname not supported",
    EAI_FAMILY: "Address family for hostname not supported",
  };
  return `${err.host}: ${words[err.code] ?? err.code}`;
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
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

async function main(args: string[]): Promise<number> {
  const { opts, hosts } = getopt(args);
  const str = (k: string) => {
    const value = opts.get(k);
    return typeof value === "string" ? value : undefined;
  };
  const flag = (k: string) => opts.get(k) === true;
  if (flag("h") || flag("help")) {
    writeErr(USAGE.slice(1));
    return 2;
  }
  if (flag("4") && flag("6")) throw new CliError("only one -4 or -6 option may be specified");
  const family = flag("4") ? 4 : flag("6") ? 6 : undefined;
  const countText = str("c");
  const count = countText !== undefined
    ? integerArg(countText, 1, Number.MAX_SAFE_INTEGER, LONG_MAX)
    : undefined;
  const sizeText = str("s");
  // The largest size depends on the family: IPv4's header takes 20 bytes of the 65535.
  const sizeFamily = family ?? (hosts.length > 0 && hosts.every((h) => ipFamily(h) === 6) ? 6 : 4);
  const size = sizeText !== undefined ? integerArg(sizeText, 0, MAX_SIZE[sizeFamily]) : 56;
  const ttlText = str("t");
  const ttl = ttlText !== undefined ? integerArg(ttlText, 0, 255) : undefined;
  if (ttl === 0) throw new CliError("cannot set unicast time-to-live: Invalid argument");
  const deadlineText = str("w");
  const deadline = deadlineText !== undefined ? integerArg(deadlineText, 0, 2147483647) : undefined;
  const lingerText = str("W");
  const linger = lingerText !== undefined ? secondsArg(lingerText, "bad linger time") : undefined;
  const intervalText = str("i");
  const interval = intervalText !== undefined
    ? secondsArg(intervalText, "bad timing interval")
    : undefined;
  const patternText = str("p");
  const pattern = patternText !== undefined ? patternArg(patternText) : undefined;
  const iface = str("I");
  if (hosts.length === 0) throw new CliError("usage error: Destination address required");
  const v = {
    quiet: flag("q"),
    flood: flag("f"),
    timestamps: flag("D"),
    outstanding: flag("O"),
    numeric: flag("n"),
    json: flag("json"),
    interface: iface,
  };

  const quiet = v.quiet ?? false;
  const flood = v.flood ?? false;
  const json = v.json ?? false;
  const multi = hosts.length > 1;
  const out = new Output(flood && !json);

  // Resolve and open everything first: a bad host ends the run before any
  // request goes out, as iputils does.
  const sessions: PingSession[] = [];
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
          reportSends: flood && !v.quiet && !v.json,
          // With -q (and without --json) replies print nothing: skip their events.
          reportReplies: !v.quiet || v.json,
        }),
      );
    }
  } catch (err) {
    for (const s of sessions) await s[Symbol.asyncDispose]();
    throw cliError(err, v.interface);
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

  // Stopping each session directly: an AbortController would cost start-up.
  const onInt = () => {
    for (const s of sessions) s.stop();
  };
  const onQuit = () => {
    for (const s of sessions) writeErr(formatStatus(s.status()));
  };
  // Nothing on the start-up path may call setTimeout(): its first use costs
  // about 8 ms in Deno 2.9 (measured), a fifth of the start-up budget.
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGQUIT", onQuit);
  // Reverse lookups (lib/resolve.ts, and with it node:dns) only when names are printed.
  const wantNames = !v.numeric && !v.json && sessions.some((s) => !s.numeric);
  const names = wantNames ? new (await import("../lib/resolve.ts")).ReverseCache() : undefined;
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
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGQUIT", onQuit);
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

function cliError(err: unknown, iface: string | undefined): unknown {
  if (err instanceof Error && err.name === "ResolveError") {
    return new CliError(resolveMessage(err as Error & { host: string; code: string }));
  }
  if (err instanceof SocketError) {
    const why = err.message.replace(/^[^:]*: /, "").replace(/ \(E\w+\)(\. .*)?$/, "");
    if (err.syscall === "socket" && (err.code === "EPERM" || err.code === "EACCES")) {
      return new CliError(
        `socktype: SOCK_RAW\nping: socket: ${why}\nping: => missing cap_net_raw+p capability or setuid?`,
      );
    }
    if (err.syscall.startsWith("SO_BINDTODEVICE")) {
      return new CliError(`SO_BINDTODEVICE ${iface}: ${why}`);
    }
    return new CliError(`${err.syscall}: ${why}`);
  }
  if (err instanceof RangeError) return new CliError(err.message);
  return err;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    code = err instanceof CliError ? err.exitCode : 2;
    writeErr(`ping: ${err instanceof Error ? err.message : String(err)}\n`);
    if (Deno.env.get("NETKIT_DEBUG") && err instanceof Error) writeErr(`${err.stack}\n`);
  }
  Deno.exit(code);
}
