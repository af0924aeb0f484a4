/**
 * The traceroute command: `deno run -A traceroute/main.ts [options] HOST [packetlen]`.
 * Butskoy traceroute 2.1's options and output, plus `--paris`, `--report -c N`
 * (mtr's report) and `--json`. See traceroute/README.md.
 *
 * Exit codes: 0 when the trace ran (reached or not, as Butskoy), 1 when the
 * method needs privileges the process lacks or a socket fails, 2 for bad
 * input (options, packet length, unknown host).
 *
 * @module
 */
import { SocketError } from "../lib/rawsock.ts";
import { CliError as UsageError, parseArgs, parseNumber } from "../lib/cli.ts";
import { formatHeader, formatHop, hopJson, summaryJson } from "./format.ts";
import { PRIVILEGE_MESSAGE } from "./probe.ts";
import { type Method, trace, type TraceOptions, type WaitTimes } from "./trace.ts";

const USAGE = `Usage: traceroute [-46ITn] [-f first_ttl] [-m max_ttl] [-q nqueries] [-N squeries]
                  [-w max[,here,near]] [-z sendwait] [-p port] [-s src_addr] [-i device] [--sport port]
                  [--paris] [--report [-c cycles] [--interval secs]] [--json] host [packet_len]`;

const OPTIONS = {
  ipv4: { short: "4", type: "boolean" },
  ipv6: { short: "6", type: "boolean" },
  icmp: { short: "I", type: "boolean" },
  tcp: { short: "T", type: "boolean" },
  numeric: { short: "n", type: "boolean" },
  first: { short: "f", type: "string" },
  "max-hops": { short: "m", type: "string" },
  queries: { short: "q", type: "string" },
  "sim-queries": { short: "N", type: "string" },
  wait: { short: "w", type: "string" },
  sendwait: { short: "z", type: "string" },
  port: { short: "p", type: "string" },
  source: { short: "s", type: "string" },
  interface: { short: "i", type: "string" },
  sport: { type: "string" },
  paris: { type: "boolean" },
  report: { short: "r", type: "boolean" },
  "report-cycles": { short: "c", type: "string" },
  interval: { type: "string" },
  json: { type: "boolean" },
  help: { short: "h", type: "boolean" },
} as const;

function parseWait(text: string): Partial<WaitTimes> {
  const parts = text.split(/[,/]/);
  if (parts.length > 3) throw new UsageError(`invalid argument for -w: '${text}'`);
  const [max, here, near] = parts.map((p) => parseNumber("-w", p, { min: 0 }));
  // Butskoy: HERE and NEAR are zero when only MAX is given (old behaviour).
  return { max: max!, here: here ?? 0, near: near ?? 0 };
}

function parseSendWait(text: string): number {
  const v = parseNumber("-z", text, { min: 0 });
  // Butskoy: above 10 the value is in milliseconds, else in seconds.
  return v > 10 ? v : v * 1000;
}

async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs(args, OPTIONS);
  const values: Partial<Record<string, string | boolean>> = v;
  const flag = (name: string) => values[name] === true;
  const text = (name: string) => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  if (flag("help")) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length < 1) throw new UsageError("missing host operand (see --help)");
  if (positionals.length > 2) throw new UsageError(`extra operand '${positionals[2]}'`);
  if (flag("icmp") && flag("tcp")) throw new UsageError("-I and -T cannot be used together");
  if (flag("ipv4") && flag("ipv6")) throw new UsageError("-4 and -6 cannot be used together");
  const host = positionals[0]!;
  const method: Method = flag("icmp") ? "icmp" : flag("tcp") ? "tcp" : "udp";
  const numeric = flag("numeric");
  const json = flag("json");
  const o: TraceOptions = { method, resolveNames: !numeric, paris: flag("paris") };
  if (flag("ipv4")) o.family = 4;
  if (flag("ipv6")) o.family = 6;
  const int = (name: string, letter: string, min: number, max?: number) => {
    const t = text(name);
    return t === undefined ? undefined : parseNumber(letter, t, {
      min,
      ...(max !== undefined ? { max } : {}),
      integer: true,
    });
  };
  const maxHops = int("max-hops", "-m", 1, 255);
  if (maxHops !== undefined) o.maxHops = maxHops;
  const first = int("first", "-f", 1, o.maxHops ?? 30);
  if (first !== undefined) o.firstHop = first;
  const queries = int("queries", "-q", 1, 10);
  if (queries !== undefined) o.queries = queries;
  const sim = int("sim-queries", "-N", 1);
  if (sim !== undefined) o.simultaneous = sim;
  const port = int("port", "-p", 0, 65535);
  if (port !== undefined) o.port = port;
  const sport = int("sport", "--sport", 1, 65535);
  if (sport !== undefined) o.sourcePort = sport;
  const wait = text("wait");
  if (wait !== undefined) o.wait = parseWait(wait);
  const sendwait = text("sendwait");
  if (sendwait !== undefined) o.sendWaitMs = parseSendWait(sendwait);
  const source = text("source");
  if (source !== undefined) o.source = source;
  const device = text("interface");
  if (device !== undefined) o.device = device;
  if (positionals[1] !== undefined) {
    o.packetLength = parseNumber("packet length", positionals[1], {
      min: 0,
      max: 65000,
      integer: true,
    });
  }
  const cycles = int("report-cycles", "-c", 1);
  if (cycles !== undefined && !flag("report")) throw new UsageError("-c needs --report");
  const interval = text("interval");
  const intervalMs = interval === undefined
    ? undefined
    : parseNumber("--interval", interval, { min: 0 }) * 1000;
  const enc = new TextEncoder();
  const out = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
  try {
    if (flag("report")) {
      // Loaded on demand: the report pulls in the resolver and statistics,
      // which a plain trace does not need at start-up.
      const { formatReport, report, reportJson } = await import("./report.ts");
      const r = await report(host, {
        ...o,
        cycles: cycles ?? 10,
        ...(intervalMs !== undefined ? { intervalMs } : {}),
      });
      if (json) out(JSON.stringify(reportJson(r)));
      else for (const line of formatReport(r)) out(line);
      return 0;
    }
    const t = trace(host, o);
    const target = await t.target();
    // Butskoy writes its header to stdout; with --json only JSON goes there.
    if (!json) out(formatHeader(target));
    for await (const hop of t) {
      out(json ? JSON.stringify(hopJson(hop)) : formatHop(hop, { numeric }));
    }
    if (json) out(JSON.stringify(summaryJson(target, t.summary())));
    return 0;
  } catch (err) {
    if (
      (err instanceof Error && err.name === "ResolveError") || err instanceof RangeError ||
      err instanceof TypeError
    ) {
      throw new UsageError(err.message, 2);
    }
    if (err instanceof Deno.errors.PermissionDenied && err.message === PRIVILEGE_MESSAGE) {
      const cause = err.cause instanceof SocketError ? err.cause.message : "permission denied";
      throw new UsageError(`${PRIVILEGE_MESSAGE}\n${cause}`, 1);
    }
    if (err instanceof SocketError) throw new UsageError(err.message, 1);
    throw err;
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    // One line (two for the privilege message, as Butskoy), no stack trace.
    code = err instanceof UsageError ? err.exitCode : 1;
    console.error(`traceroute: ${err instanceof Error ? err.message : String(err)}`);
  }
  Deno.exit(code);
}
