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
import { SocketError } from "../lib/rawsock/errno.ts";
import { CliError, formatHelp, type Options, parseArgs, parseNumber, runMain } from "../lib/cli.ts";
import { formatHeader, formatHop, hopJson, summaryJson } from "./format.ts";
import { PRIVILEGE_MESSAGE } from "./probe.ts";
import { type Method, trace, type TraceOptions, type WaitTimes } from "./trace.ts";
// Every module of the start path, imported here as well: Deno then loads
// them all in one round instead of one round per level of the import graph
// (bench/startup_test.ts keeps the list whole). A plain trace also needs
// the UDP method and the resolver (names are printed): trace.ts imports
// them when a trace starts, which as a second round of loading cost more
// than loading them here (0.9 ms against 0.5, in-process marks).
import "../lib/rawsock/ffi.ts";
import "../lib/rawsock/constants.ts";
import "../lib/rawsock/netns.ts";
import { perror, privilegeFix } from "../lib/privilege.ts";
import "../lib/rawsock/socket.ts";
import "../lib/rawsock/clock.ts";
import "../lib/sockaddr.ts";
import "./udp.ts";
import { gaiMessage, ResolveError } from "../lib/resolve.ts";
import "../lib/rawsock/lookup.ts";

/** Traceroute's options: the parser reads them and `--help` lists them. */
export const OPTIONS = {
  ipv4: { short: "4", type: "boolean", description: "use IPv4" },
  ipv6: { short: "6", type: "boolean", description: "use IPv6" },
  icmp: { short: "I", type: "boolean", description: "use ICMP ECHO for tracerouting" },
  tcp: {
    short: "T",
    type: "boolean",
    description: "use TCP SYN for tracerouting (needs raw sockets)",
  },
  numeric: {
    short: "n",
    type: "boolean",
    description: "do not resolve IP addresses to their domain names",
  },
  first: {
    short: "f",
    type: "string",
    arg: "first_ttl",
    default: "1",
    description: "start from the first_ttl hop",
  },
  "max-hops": {
    short: "m",
    type: "string",
    arg: "max_ttl",
    default: "30",
    description: "the largest TTL probed",
  },
  queries: {
    short: "q",
    type: "string",
    arg: "nqueries",
    default: "3",
    description: "the number of probes per hop, 1 to 10",
  },
  "sim-queries": {
    short: "N",
    type: "string",
    arg: "squeries",
    default: "16",
    description: "the number of probes in flight at once",
  },
  wait: {
    short: "w",
    type: "string",
    arg: "MAX,HERE,NEAR",
    default: "5,3,10",
    description: "wait MAX seconds, or HERE times a reply from the same hop, or NEAR times one " +
      "from a later hop",
  },
  sendwait: {
    short: "z",
    type: "string",
    arg: "sendwait",
    default: "0",
    description: "least time between probes: seconds, or milliseconds above 10",
  },
  port: {
    short: "p",
    type: "string",
    arg: "port",
    default: "33434 for UDP, 1 for ICMP, 80 for TCP",
    description: "destination port, rising by one per probe for UDP (ICMP: first sequence number)",
  },
  source: {
    short: "s",
    type: "string",
    arg: "src_addr",
    default: "chosen by routing",
    description: "source address of the probes",
  },
  interface: {
    short: "i",
    type: "string",
    arg: "device",
    default: "chosen by routing",
    description: "the interface to send through",
  },
  sport: {
    type: "string",
    arg: "num",
    default: "chosen by the system",
    description: "source port, for UDP and TCP",
  },
  paris: { type: "boolean", description: "Paris traceroute: one flow for every probe of a trace" },
  "dont-fragment": { short: "F", type: "boolean", description: "do not fragment packets" },
  mtu: {
    type: "boolean",
    description: "discover the MTU along the path, printed as F=NUM where it changes; " +
      "implies -F -N 1",
  },
  report: {
    short: "r",
    type: "boolean",
    description: "probe the path several times and print mtr's report",
  },
  "report-cycles": {
    short: "c",
    type: "string",
    arg: "cycles",
    default: "10",
    description: "with --report: how many times to probe the path",
  },
  interval: {
    type: "string",
    arg: "secs",
    default: "0.1",
    description: "with --report: pause between cycles",
  },
  live: {
    type: "boolean",
    description: "mtr's live full-screen view (keys: q quit and report, p pause, r reset, " +
      "n names, d history, j jitter)",
  },
  flows: {
    type: "string",
    arg: "N",
    description: "trace N Paris flows at once (source ports for UDP and TCP, identifiers for " +
      "ICMP) and print each hop's addresses with the flows that reached them",
  },
  dot: { type: "boolean", description: "with --flows: print the graph in Graphviz's DOT language" },
  json: { type: "boolean", description: "one JSON object per hop, then a summary" },
  help: { short: "h", type: "boolean", description: "print this list of options and exit" },
} as const satisfies Options;

const HELP = {
  usage: "Usage: deno task traceroute [options] host [packet_len]",
  summary: "Prints the routers on the path to host, as Butskoy traceroute 2.1 does. " +
    "packet_len is the whole probe's size (default: 60 for IPv4, 80 for IPv6).",
  footer: "Exit codes: 0 when the trace ran (reached or not), 1 when the method needs privileges " +
    "the process lacks or a socket call failed, 2 for bad input or an unknown host.",
};

function parseWait(text: string): Partial<WaitTimes> {
  const parts = text.split(/[,/]/);
  if (parts.length > 3) throw new CliError(`invalid argument for -w: '${text}'`);
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
    Deno.stdout.writeSync(new TextEncoder().encode(formatHelp(OPTIONS, HELP)));
    return 0;
  }
  if (positionals.length < 1) throw new CliError("missing host operand (see --help)");
  if (positionals.length > 2) throw new CliError(`extra operand '${positionals[2]}'`);
  if (flag("icmp") && flag("tcp")) throw new CliError("-I and -T cannot be used together");
  if (flag("ipv4") && flag("ipv6")) throw new CliError("-4 and -6 cannot be used together");
  const host = positionals[0]!;
  const method: Method = flag("icmp") ? "icmp" : flag("tcp") ? "tcp" : "udp";
  const numeric = flag("numeric");
  const json = flag("json");
  const o: TraceOptions = { method, resolveNames: !numeric, paris: flag("paris") };
  if (flag("dont-fragment")) o.dontFragment = true;
  if (flag("mtu")) o.mtu = true;
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
  if (cycles !== undefined && !flag("report")) throw new CliError("-c needs --report");
  const interval = text("interval");
  const intervalMs = interval === undefined
    ? undefined
    : parseNumber("--interval", interval, { min: 0 }) * 1000;
  const flows = int("flows", "--flows", 1, 64);
  if (flag("dot") && flows === undefined) throw new CliError("--dot needs --flows");
  if (flows !== undefined && (flag("report") || flag("mtu") || flag("paris"))) {
    throw new CliError("--flows cannot be used with --report, --mtu or --paris");
  }
  const enc = new TextEncoder();
  const out = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
  try {
    if (flag("report")) {
      // Loaded on demand: the report pulls in statistics, which a plain
      // trace does not need at start-up. Named by URL (here and below):
      // Deno reads every module that a literal import() names, and its
      // imports, before a program starts.
      const { formatReport, report, reportJson } =
        await (import(new URL("./report.ts", import.meta.url).href) as Promise<
          typeof import("./report.ts")
        >);
      const r = await report(host, {
        ...o,
        cycles: cycles ?? 10,
        ...(intervalMs !== undefined ? { intervalMs } : {}),
      });
      if (json) out(JSON.stringify(reportJson(r)));
      else for (const line of formatReport(r)) out(line);
      return 0;
    }
    if (flag("live")) {
      // Loaded on demand: the view is not part of a plain trace's start-up.
      const { liveOnTerminal } =
        await (import(new URL("./live.ts", import.meta.url).href) as Promise<
          typeof import("./live.ts")
        >);
      const { formatReport } =
        await (import(new URL("./report.ts", import.meta.url).href) as Promise<
          typeof import("./report.ts")
        >);
      const r = await liveOnTerminal(host, {
        ...o,
        ...(intervalMs !== undefined ? { intervalMs } : {}),
      });
      for (const line of formatReport(r)) out(line);
      return 0;
    }
    if (flows !== undefined) {
      // Loaded on demand, as the report: a plain trace does not need it.
      const { discoverFlows, flowsJson, formatDot, formatFlows } =
        await (import(new URL("./flows.ts", import.meta.url).href) as Promise<
          typeof import("./flows.ts")
        >);
      const g = await discoverFlows(host, { ...o, flows });
      if (flag("dot")) Deno.stdout.writeSync(enc.encode(formatDot(g)));
      else if (json) out(JSON.stringify(flowsJson(g)));
      else for (const line of formatFlows(g, { numeric })) out(line);
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
    throw cliError(err, { method, hostArg: args.indexOf(host) + 1 });
  }
}

/**
 * Turns what a trace throws into the message and exit code a user gets.
 * An unknown host and missing privilege print Butskoy's lines as they are;
 * missing privilege then says how to fix it.
 */
function cliError(
  err: unknown,
  at: { method: Method; hostArg: number },
): unknown {
  if (err instanceof ResolveError) {
    return new CliError(
      `${
        gaiMessage(err)
      }\nCannot handle "host" cmdline arg \`${err.host}' on position 1 (argc ${at.hostArg})`,
      2,
      { bare: true },
    );
  }
  if (err instanceof RangeError || err instanceof TypeError) return new CliError(err.message, 2);
  if (err instanceof Deno.errors.PermissionDenied && err.message === PRIVILEGE_MESSAGE) {
    const cause = err.cause instanceof SocketError
      ? perror(err.cause)
      : "socket: permission denied";
    const fix = privilegeFix(at.method === "icmp" ? "icmp" : "raw");
    return new CliError(`${PRIVILEGE_MESSAGE}\n${cause}\ntraceroute: ${fix}`, 1, { bare: true });
  }
  if (err instanceof SocketError) return new CliError(err.message, 1);
  return err;
}

if (import.meta.main) await runMain("traceroute", () => main(Deno.args));
