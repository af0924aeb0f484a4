/**
 * `udp_pinger/main.ts server|client [options]`: the UDP pinger's command
 * line. `deno task udp-server` runs the server and `deno task udp-ping` the
 * client; `deno task udp` takes the subcommand. The serving and pinging are
 * in `server.ts` and `client.ts`; this file parses options, prints and
 * exits with the documented codes.
 *
 * ```sh
 * deno run -A udp_pinger/main.ts server [-p 12000] [--loss 0.3] [--seed 1]
 * deno run -A udp_pinger/main.ts client [-c 10] [-i 1s] [--json] HOST[:PORT]
 * ```
 *
 * @module
 */
import {
  CliError,
  EXIT_CANNOT_START,
  EXIT_USAGE,
  type Options,
  parseNumber,
  parseOrHelp,
  runMain,
  SERVER_EXIT_CODES,
} from "../lib/cli.ts";
import type { UdpPingOptions, UdpPingSummary } from "./client.ts";
import { DEFAULT_PORT, MAX_PAYLOAD } from "./protocol.ts";
import type { ServeOptions, UdpPingServer } from "./server.ts";

const portOption = {
  type: "string",
  short: "p",
  arg: "N",
  default: String(DEFAULT_PORT),
} as const;

/** `--hmac` and `--hmac-file`, the same on both sides. */
const hmacOptions = {
  hmac: {
    type: "string",
    arg: "KEY",
    description: "sign and check every datagram with HMAC-SHA256 under KEY",
  },
  "hmac-file": {
    type: "string",
    arg: "FILE",
    description: "as --hmac, the key read from FILE (its bytes, a final newline dropped)",
  },
} as const;

/** The options of `udp-server` (`main.ts server`): the parser and `--help` read this table. */
export const SERVER_OPTIONS = {
  port: { ...portOption, description: "UDP port to listen on; 0 picks a free one" },
  host: {
    type: "string",
    arg: "ADDR",
    default: "0.0.0.0",
    description: 'address to bind; "::" for IPv6',
  },
  loss: { type: "string", arg: "P", default: "0", description: "drop pings with probability P" },
  delay: {
    type: "string",
    arg: "MS[,JITTER]",
    default: "0",
    description: "delay replies by MS ± JITTER milliseconds",
  },
  duplicate: {
    type: "string",
    arg: "P",
    default: "0",
    description: "send a reply twice with probability P",
  },
  seed: {
    type: "string",
    arg: "N",
    default: "random",
    description: "seed for loss, delay and duplication (same seed, same drops)",
  },
  "dead-after": {
    type: "string",
    arg: "N",
    default: "3",
    description: "log a heartbeat client as gone after N missed beats",
  },
  "session-timeout": {
    type: "string",
    arg: "SEC",
    default: "30",
    description: "forget a silent client after SEC seconds",
  },
  "max-clients": {
    type: "string",
    arg: "N",
    default: "10000",
    description: "clients tracked at once",
  },
  "max-rate": {
    type: "string",
    arg: "N",
    default: "no cap",
    description: "answer at most N pings per second per client (bursts of 5), drop the rest",
  },
  "max-duration": {
    type: "string",
    arg: "SEC",
    default: "no cap",
    description: "answer a client's pings for SEC seconds from its first, drop the rest",
  },
  ...hmacOptions,
  threads: {
    type: "string",
    arg: "N",
    default: "the number of cores",
    description: "receive loops, each on its own thread and SO_REUSEPORT socket",
  },
  realtime: {
    type: "string",
    arg: "PRIO",
    default: "1",
    description: "SCHED_FIFO priority of the loops while lightly loaded (needs root); 0: never",
  },
  quiet: { type: "boolean", short: "q", description: "no session log lines on stderr" },
  help: { type: "boolean", short: "h", description: "show this help" },
} as const satisfies Options;

/** The options of `udp-ping` (`main.ts client`): the parser and `--help` read this table. */
export const CLIENT_OPTIONS = {
  count: {
    type: "string",
    short: "c",
    arg: "N",
    default: "10; with --heartbeat, until interrupted",
    description: "pings to send",
  },
  interval: {
    type: "string",
    short: "i",
    arg: "DURATION",
    default: "1s",
    description: "interval between sends, e.g. 0.2, 10ms, 500us",
  },
  timeout: {
    type: "string",
    short: "W",
    arg: "DURATION",
    default: "1s",
    description: "time to wait for each reply",
  },
  size: {
    type: "string",
    short: "s",
    arg: "SIZE",
    default: "0: no padding",
    description: "datagram size in bytes, padded after the text",
  },
  port: {
    ...portOption,
    default: `${DEFAULT_PORT}, or PORT in HOST:PORT`,
    description: "server UDP port (overrides HOST:PORT's)",
  },
  ipv4: { type: "boolean", short: "4", description: "use IPv4 only" },
  ipv6: { type: "boolean", short: "6", description: "use IPv6 only" },
  json: { type: "boolean", description: "one JSON object per event, then a summary object" },
  heartbeat: {
    type: "boolean",
    description: 'send heartbeats ("Heartbeat <seq> <time> <interval>"), expect no replies',
  },
  "no-stats": { type: "boolean", description: "do not ask the server for its counters" },
  ...hmacOptions,
  "one-way": {
    type: "boolean",
    description: "ask for the server's times (pings of 96+ bytes): up/down/server delays",
  },
  help: { type: "boolean", short: "h", description: "show this help" },
} as const satisfies Options;

const SERVER_HELP = {
  usage: "Usage: deno task udp-server [options]",
  summary:
    `Echoes the UDP pinger's "Ping <seq> <time>" upper-cased (the course's UDPPingerServer).`,
  footer: SERVER_EXIT_CODES,
};

const CLIENT_HELP = {
  usage: "Usage: deno task udp-ping [options] HOST[:PORT]",
  summary: "Pings a UDP ping server (the course's UDPPingerServer, or udp-server).",
  footer: `Exit codes: 0 if any reply came (heartbeat: once sent), 1 if none, ${EXIT_USAGE} on ` +
    "bad input.",
};

const USAGE = `Usage: deno task udp server|client [options]

  server   run the UDP ping server, as deno task udp-server (see: server --help)
  client   ping a UDP ping server, as deno task udp-ping (see: client --help)`;

/**
 * Parses a duration: a bare number is seconds (as ping's `-i` and `-W`), or
 * a number with `us`, `ms` or `s`.
 *
 * @param name The option, for the message.
 * @param text The text.
 * @returns Milliseconds.
 * @throws {CliError} If the text is not a positive duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./main.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseDuration("-i", "1ms"), 1);
 * assertEquals(parseDuration("-i", "0.2"), 200);
 * ```
 */
export function parseDuration(name: string, text: string): number {
  const m = /^(\d+(?:\.\d*)?|\.\d+)(us|µs|ms|s)?$/.exec(text.trim());
  const value = m ? Number(m[1]) : NaN;
  if (!m || !(value > 0)) throw new CliError(`invalid argument for ${name}: '${text}'`);
  const unit = m[2] ?? "s";
  return value * (unit === "s" ? 1000 : unit === "ms" ? 1 : 0.001);
}

/** The summary and events as JSON: the object as is, NaN as null. */
function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
  );
}

/** Buffers output lines and writes them at most every `delay` ms, synchronously. */
class LineWriter {
  #stream: { writeSync(p: Uint8Array): number };
  #delay: number;
  #lines: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(stream: { writeSync(p: Uint8Array): number }, delay: number) {
    this.#stream = stream;
    this.#delay = delay;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#timer ??= setTimeout(() => this.flush(), this.#delay);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    let data = new TextEncoder().encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    while (data.length > 0) data = data.subarray(this.#stream.writeSync(data));
  }
}

/** The key of `--hmac KEY` or `--hmac-file FILE`, or `undefined` without either. */
async function hmacKey(values: { hmac?: string; "hmac-file"?: string }) {
  if (values.hmac !== undefined && values["hmac-file"] !== undefined) {
    throw new CliError("--hmac and --hmac-file are mutually exclusive");
  }
  let key: Uint8Array;
  if (values["hmac-file"] !== undefined) {
    const path = values["hmac-file"];
    try {
      key = await Deno.readFile(path);
    } catch (err) {
      throw new CliError(`Cannot read the key file "${path}": ${(err as Error).message}`);
    }
    if (key.at(-1) === 0x0a) key = key.subarray(0, -1);
  } else if (values.hmac !== undefined) key = new TextEncoder().encode(values.hmac);
  else return undefined;
  if (key.length === 0) throw new CliError("invalid argument for --hmac: the key is empty");
  return key;
}

function parsePort(text: string, min: number): number {
  return parseNumber("--port", text, { min, max: 65535, integer: true });
}

async function serverMain(args: string[]): Promise<number> {
  const parsed = parseOrHelp(args, SERVER_OPTIONS, SERVER_HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new CliError(`unexpected argument: ${positionals[0]}`);
  const [delayText = "0", jitterText = "0", ...extra] = (values.delay ?? "0").split(",");
  if (extra.length > 0) throw new CliError(`invalid argument for --delay: '${values.delay}'`);
  const options: ServeOptions = {
    hostname: values.host ?? "0.0.0.0",
    port: parsePort(values.port ?? String(DEFAULT_PORT), 0),
    loss: parseNumber("--loss", values.loss ?? "0", { min: 0, max: 1 }),
    delay: parseNumber("--delay", delayText, { min: 0, max: 60000 }),
    jitter: parseNumber("--delay jitter", jitterText, { min: 0, max: 60000 }),
    duplicate: parseNumber("--duplicate", values.duplicate ?? "0", { min: 0, max: 1 }),
    deadAfter: parseNumber("--dead-after", values["dead-after"] ?? "3", { min: 1, integer: true }),
    sessionTimeout: 1000 *
      parseNumber("--session-timeout", values["session-timeout"] ?? "30", { min: 0.001 }),
    maxClients: parseNumber("--max-clients", values["max-clients"] ?? "10000", {
      min: 1,
      integer: true,
    }),
    quiet: values.quiet ?? false,
    threads: values.threads === undefined
      ? navigator.hardwareConcurrency
      : parseNumber("--threads", values.threads, { min: 1, max: 1024, integer: true }),
    realtime: parseNumber("--realtime", values.realtime ?? "1", { min: 0, max: 99, integer: true }),
  };
  if (values.seed !== undefined) {
    options.seed = parseNumber("--seed", values.seed, { integer: true });
  }
  if (values["max-rate"] !== undefined) {
    options.maxRate = parseNumber("--max-rate", values["max-rate"], { min: 0.001 });
  }
  if (values["max-duration"] !== undefined) {
    options.maxDuration = 1000 *
      parseNumber("--max-duration", values["max-duration"], { min: 0.001 });
  }
  const key = await hmacKey(values);
  if (key) options.hmac = key;
  const { serve } = await import("./server.ts");
  // Listen for the signals before saying where it listens: whoever reads
  // that line may stop the server at once.
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", resolve);
  Deno.addSignalListener("SIGTERM", resolve);
  let server: UdpPingServer;
  try {
    server = serve(options);
  } catch (err) {
    throw new CliError(
      `Cannot listen on ${options.hostname} port ${options.port}: ${(err as Error).message}`,
      EXIT_CANNOT_START,
    );
  }
  await server.ready;
  if (!options.quiet) {
    const { hostname, port } = server.addr;
    const where = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
    console.error(`udp-server: listening on ${where}`);
  }
  await promise;
  await server.close();
  return 0;
}

async function clientMain(args: string[]): Promise<number> {
  const parsed = parseOrHelp(args, CLIENT_OPTIONS, CLIENT_HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    throw new CliError(
      positionals.length === 0 ? "missing HOST" : `unexpected argument: ${positionals[1]}`,
    );
  }
  if (values.ipv4 && values.ipv6) throw new CliError("-4 and -6 are mutually exclusive");
  const { formatEvent, formatSummary, splitHostPort, udpPing } = await import("./client.ts");
  let host: string, port: number;
  try {
    ({ host, port } = splitHostPort(positionals[0]!, DEFAULT_PORT));
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (values.port !== undefined) port = parsePort(values.port, 1);
  const heartbeat = values.heartbeat ?? false;
  const options: UdpPingOptions = {
    port,
    count: values.count === undefined
      ? (heartbeat ? Infinity : 10)
      : parseNumber("-c", values.count, { min: 1, integer: true }),
    interval: values.interval === undefined ? 1000 : parseDuration("-i", values.interval),
    timeout: values.timeout === undefined ? 1000 : parseDuration("-W", values.timeout),
    size: values.size === undefined
      ? 0
      : parseNumber("-s", values.size, { min: 0, max: MAX_PAYLOAD, integer: true }),
    heartbeat,
    serverStats: !values["no-stats"],
    oneWay: values["one-way"] ?? false,
  };
  const key = await hmacKey(values);
  if (key) options.hmac = key;
  if (values.ipv4) options.family = 4;
  if (values.ipv6) options.family = 6;
  const json = values.json ?? false;
  const controller = new AbortController();
  const abort = () => controller.abort();
  Deno.addSignalListener("SIGINT", abort);
  options.signal = controller.signal;
  // Lines are batched and written every 20 ms: at -i 1ms a write per line
  // would be a system call per ping on the thread that also sends them.
  const out = new LineWriter(Deno.stdout, 20);
  options.onEvent = (event) => {
    const line = json ? toJson(event) : formatEvent(event);
    if (line !== undefined) out.write(line);
  };
  let summary: UdpPingSummary;
  try {
    summary = await udpPing(host, options);
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new CliError(err.message);
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", abort);
    out.flush();
  }
  if (json) console.log(toJson({ type: "summary", ...summary }));
  else console.log(["", ...formatSummary(summary, { heartbeat })].join("\n"));
  if (heartbeat) return summary.sent > 0 ? 0 : 1;
  return summary.received + summary.late > 0 ? 0 : 1;
}

if (import.meta.main) {
  const [command, ...rest] = Deno.args;
  if (command === "server") await runMain("udp-server", () => serverMain(rest));
  else if (command === "client") await runMain("udp-ping", () => clientMain(rest));
  else {
    await runMain("udp", () => {
      if (command === "-h" || command === "--help") {
        console.log(USAGE);
        return 0;
      }
      throw new CliError(
        command === undefined
          ? "missing subcommand: server or client (try --help)"
          : `unknown subcommand '${command}': server or client (try --help)`,
      );
    });
  }
}
