/**
 * `smtp`: send a message over SMTP from the command line, with options like
 * swaks'. See smtp/README.md for the options and the exit codes.
 *
 * @module
 */
import {
  CliError,
  describePath,
  type Options,
  type ParsedValues,
  parseNumber,
  parseOrHelp,
  runMain,
  userPath,
} from "../lib/cli.ts";
import {
  type Credentials,
  type DsnOptions,
  type Envelope,
  type SendResult,
  SmtpError,
  type SmtpPhase,
  SmtpSession,
} from "./client.ts";
import {
  type Attachment,
  type ComposedMessage,
  composeMessage,
  messageFromFile,
  parseMailbox,
} from "./mime.ts";
import {
  type Canonicalization,
  DEFAULT_SIGNED_HEADERS,
  type DkimOptions,
  dkimSign,
} from "./dkim.ts";
import { nodeTransport, parseFingerprint } from "./_tls.ts";
import {
  type Account,
  ConfigError,
  defaultConfigPath,
  evalPassword,
  loadAccount,
} from "./_config.ts";
import { parseSendmailArgs, readStdinMessage, splitAddresses, SYSEXITS } from "./_sendmail.ts";

/** Exit codes, one per failing phase; the numbers follow swaks where swaks has one. */
const EXIT: Record<SmtpPhase | "partial" | "message", number> = {
  partial: 1,
  message: 3,
  connect: 20,
  greeting: 21,
  ehlo: 22,
  mail: 23,
  rcpt: 24,
  data: 25,
  auth: 28,
  tls: 29,
  quit: 0,
};

/** The options `smtp` takes: the parser and `--help` both read this table. */
export const OPTIONS = {
  server: {
    type: "string",
    short: "s",
    arg: "HOST[:PORT]",
    default: "localhost",
    description: "server; port 25, or 465 with --tls-on-connect",
  },
  port: {
    type: "string",
    short: "p",
    arg: "PORT",
    default: "25, or 465 with --tls-on-connect",
    description: "port (overrides the one in --server)",
  },
  from: {
    type: "string",
    short: "f",
    arg: "ADDRESS",
    description: "sender (header From and envelope sender)",
  },
  to: {
    type: "string",
    short: "t",
    multiple: true,
    arg: "ADDRESS",
    description: "recipient, or comma-separated recipients",
  },
  cc: { type: "string", multiple: true, arg: "ADDRESS", description: "copy recipient" },
  bcc: {
    type: "string",
    multiple: true,
    arg: "ADDRESS",
    description: "blind copy recipient: envelope only",
  },
  subject: { type: "string", arg: "TEXT", default: "none", description: "subject" },
  body: { type: "string", arg: "TEXT|@FILE", default: "empty", description: "plain-text body" },
  html: {
    type: "string",
    arg: "TEXT|@FILE",
    default: "none",
    description: "HTML body (with --body: multipart/alternative)",
  },
  attach: {
    type: "string",
    multiple: true,
    arg: "@FILE[;type=TYPE][;name=NAME]",
    description: "attachment",
  },
  header: {
    type: "string",
    multiple: true,
    arg: "'NAME: VALUE'",
    description: "extra header, replaces a generated one",
  },
  data: {
    type: "string",
    multiple: true,
    arg: "@FILE.eml|MAILDIR",
    default: "none",
    description: "send ready messages as they are; repeatable; a Maildir or folder sends each one",
  },
  auth: {
    type: "string",
    arg: "[MECHANISM]",
    default: "best offered",
    description: "authenticate: PLAIN, LOGIN, CRAM-MD5, XOAUTH2",
  },
  "auth-user": { type: "string", arg: "USER", description: "user name (implies --auth)" },
  "auth-password": {
    type: "string",
    arg: "PASS",
    default: "$SMTP_PASSWORD, else a prompt on a TTY",
    description: "password or XOAUTH2 token",
  },
  tls: { type: "boolean", description: "require STARTTLS" },
  "tls-optional": { type: "boolean", description: "use STARTTLS when offered" },
  "tls-on-connect": { type: "boolean", description: "implicit TLS (port 465)" },
  "tls-ca": {
    type: "string",
    arg: "FILE",
    default: "the system's CAs only",
    description: "trust the certificates in this PEM file: CAs, or the server's own",
  },
  "tls-fingerprint": {
    type: "string",
    multiple: true,
    arg: "SHA256:HEX",
    description: "accept only the certificate with this SHA-256 fingerprint",
  },
  insecure: {
    type: "boolean",
    description: "do not verify the server's certificate at all (a warning on stderr)",
  },
  "password-eval": {
    type: "string",
    arg: "COMMAND",
    default: "none",
    description: "run this shell command and use the first line it prints as the password",
  },
  "allow-plaintext-auth": {
    type: "boolean",
    description: "send PLAIN/LOGIN/XOAUTH2 credentials without TLS to a remote host",
  },
  ehlo: {
    type: "string",
    arg: "NAME",
    default: "this host's name",
    description: "name to send in EHLO",
  },
  pipeline: { type: "boolean", description: "use PIPELINING when the server offers it" },
  "quit-after": {
    type: "string",
    arg: "PHASE",
    default: "none",
    description: "CONNECT, EHLO, TLS, AUTH, MAIL or RCPT",
  },
  "dsn-notify": {
    type: "string",
    arg: "LIST",
    default: "none",
    description: "DSN NOTIFY: NEVER or SUCCESS,FAILURE,DELAY",
  },
  "dsn-ret": { type: "string", arg: "FULL|HDRS", default: "none", description: "DSN RET" },
  "dsn-envid": { type: "string", arg: "ID", default: "none", description: "DSN ENVID" },
  timeout: {
    type: "string",
    arg: "SECONDS",
    default: "30",
    description: "time limit for each reply",
  },
  "dkim-key": {
    type: "string",
    arg: "FILE",
    default: "no signature",
    description: "sign with DKIM with this private key (PEM: RSA or Ed25519)",
  },
  "dkim-selector": { type: "string", arg: "SELECTOR", description: "DKIM selector (s=)" },
  "dkim-domain": {
    type: "string",
    arg: "DOMAIN",
    default: "the From address's domain",
    description: "DKIM signing domain (d=)",
  },
  "dkim-headers": {
    type: "string",
    arg: "LIST",
    default: DEFAULT_SIGNED_HEADERS.join(":"),
    description: "header fields to sign when present (colon- or comma-separated)",
  },
  "dkim-canonicalization": {
    type: "string",
    arg: "HEADER/BODY",
    default: "relaxed/relaxed",
    description: "simple or relaxed, for the header and the body",
  },
  config: {
    type: "string",
    arg: "FILE",
    default: "~/.config/netkit/smtp.toml when it exists",
    description: "configuration file with accounts",
  },
  account: {
    type: "string",
    arg: "NAME",
    default: "the file's default",
    description: "account of the configuration file to use",
  },
  queue: {
    type: "string",
    arg: "DIR",
    default: "none",
    description: "on a temporary failure (4xx, connection), keep the message in DIR",
  },
  "flush-queue": {
    type: "boolean",
    description: "send the messages kept in --queue DIR, over one connection",
  },
  dump: { type: "boolean", description: "print the message instead of sending it" },
  verbose: {
    type: "boolean",
    short: "v",
    description: "print the transcript (-> sent, <- received); AUTH secrets masked",
  },
  help: { type: "boolean", short: "h", description: "show this help" },
} as const satisfies Options;

const HELP = {
  usage: "Usage: deno task smtp [options]",
  summary: "Sends a message over SMTP, with options like swaks'. Relative paths\n" +
    "(--body @FILE, --html @FILE, --attach, --data, --tls-ca) are taken from the directory\n" +
    "the command runs in. Accounts are read from ~/.config/netkit/smtp.toml when it exists.\n" +
    "As sendmail: deno task sendmail [-t] [-i] [-f ADDR] [-F NAME] [RECIPIENT...]\n" +
    '(smtp/README.md, "sendmail mode").',
  footer: `Exit codes: 0 sent, 1 sent but some recipients refused, 2 usage, 3 message refused before
sending (header injection, unreadable file), 20 connect, 21 greeting, 22 EHLO, 23 MAIL, 24 RCPT,
25 DATA, 28 AUTH, 29 TLS.`,
};

/** What a refused certificate's message adds: the ways to trust it. */
const TLS_HINT =
  "smtp: to trust this server, pass its certificate or its CA with --tls-ca FILE, pin it with " +
  "--tls-fingerprint SHA256:..., or skip verification with --insecure";

const MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"] as const;
const QUIT_AFTER = ["CONNECT", "EHLO", "TLS", "AUTH", "MAIL", "RCPT"] as const;

/** `--auth` takes an optional value: give it "ANY" when no mechanism follows. */
function normaliseAuthFlag(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--auth") {
      const next = args[i + 1]?.toUpperCase();
      if (next !== undefined && (MECHANISMS as readonly string[]).includes(next)) {
        out.push(`--auth=${next}`);
        i++;
      } else out.push("--auth=ANY");
    } else out.push(arg);
  }
  return out;
}

function splitServer(text: string): { hostname: string; port?: number } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    return bracket[2]
      ? { hostname: bracket[1]!, port: parseNumber("--server", bracket[2], portRange) }
      : { hostname: bracket[1]! };
  }
  const colons = text.split(":").length - 1;
  if (colons === 1) {
    const [host = "", port = ""] = text.split(":");
    return { hostname: host, port: parseNumber("--server", port, portRange) };
  }
  return { hostname: text };
}

const portRange = { min: 1, max: 65535, integer: true };

async function textOrFile(option: string, value: string): Promise<string> {
  if (!value.startsWith("@")) return value;
  try {
    return await Deno.readTextFile(userPath(value.slice(1)));
  } catch (err) {
    throw new CliError(
      `Cannot read ${option} file ${describePath(value.slice(1))}: ${
        err instanceof Error ? err.message : err
      }`,
      EXIT.message,
    );
  }
}

/** Attachments' absolute paths to the paths as typed, for messages. */
const typedPaths = new Map<string, string>();

function parseAttach(spec: string): Attachment {
  const [path = "", ...params] = spec.replace(/^@/, "").split(";");
  const attachment: Attachment = { path: userPath(path) };
  for (const param of params) {
    const [key = "", ...rest] = param.split("=");
    const value = rest.join("=").trim();
    if (key.trim().toLowerCase() === "type") attachment.contentType = value;
    else if (key.trim().toLowerCase() === "name") attachment.filename = value;
    else throw new CliError(`invalid argument for --attach: unknown parameter "${key}"`);
  }
  if (path === "") throw new CliError("invalid argument for --attach: no file");
  typedPaths.set(attachment.path, path);
  return attachment;
}

/** Splits comma-separated addresses, leaving commas inside quotes or angle brackets alone. */
function list(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.match(/(?:"(?:[^"\\]|\\.)*"|<[^>]*>|[^,])+/g) ?? [])
    .map((v) => v.trim()).filter((v) => v !== "");
}

/**
 * After a failed connect, throws the resolver's own message when the name
 * does not resolve, so an unknown host reads the same in every tool.
 */
async function explainLookup(hostname: string): Promise<void> {
  // Loaded only here: a run that connects never pays for the resolver.
  const { resolveHost, ResolveError } = await import("../lib/resolve.ts");
  try {
    await resolveHost(hostname);
  } catch (err) {
    if (err instanceof ResolveError) throw new CliError(err.message, EXIT.connect);
  }
}

/** Reads a password from the terminal without echoing it. */
async function promptPassword(): Promise<string> {
  // Raw mode first: a password typed as soon as the prompt shows must not be echoed.
  Deno.stdin.setRaw(true);
  await Deno.stderr.write(new TextEncoder().encode("Password: "));
  const bytes: number[] = [];
  try {
    const buf = new Uint8Array(1);
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null || buf[0] === 13 || buf[0] === 10) break;
      if (buf[0] === 3) throw new CliError("interrupted", 130);
      if (buf[0] === 127 || buf[0] === 8) bytes.pop();
      else bytes.push(buf[0]!);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(new TextEncoder().encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The DKIM settings from the command line, or `undefined` without `--dkim-key`. */
async function dkimOptions(
  values: ParsedValues<typeof OPTIONS>,
  sender: string,
): Promise<DkimOptions | undefined> {
  const keyFile = values["dkim-key"];
  if (keyFile === undefined) {
    for (const name of ["dkim-selector", "dkim-domain", "dkim-headers", "dkim-canonicalization"]) {
      if (values[name as keyof typeof values] !== undefined) {
        throw new CliError(`--${name} needs --dkim-key`);
      }
    }
    return undefined;
  }
  const selector = values["dkim-selector"];
  if (selector === undefined) throw new CliError("--dkim-key needs --dkim-selector");
  const domain = values["dkim-domain"] ?? sender.split("@").pop() ?? "";
  let privateKey: string;
  try {
    privateKey = await Deno.readTextFile(userPath(keyFile));
  } catch (err) {
    throw new CliError(
      `Cannot read --dkim-key file ${describePath(keyFile)}: ${
        err instanceof Error ? err.message : err
      }`,
    );
  }
  const options: DkimOptions = { domain, selector, privateKey };
  if (values["dkim-headers"] !== undefined) {
    options.headers = values["dkim-headers"].split(/[:,]/).map((h) => h.trim());
  }
  if (values["dkim-canonicalization"] !== undefined) {
    const text = values["dkim-canonicalization"].toLowerCase();
    const [header = "", body = "simple"] = text.split("/");
    const valid = ["simple", "relaxed"];
    if (!valid.includes(header) || !valid.includes(body)) {
      throw new CliError(
        `invalid argument for --dkim-canonicalization: '${values["dkim-canonicalization"]}'`,
      );
    }
    options.headerCanonicalization = header as Canonicalization;
    options.bodyCanonicalization = body as Canonicalization;
  }
  return options;
}

/**
 * A CLI error that also knows its `sysexits.h` code, for sendmail mode: the
 * same failure exits with the swaks-style code normally, and with the
 * sendmail one there.
 */
class SmtpCliError extends CliError {
  readonly sysexit: number;
  constructor(message: string, exitCode: number, sysexit: number) {
    super(message, exitCode);
    this.sysexit = sysexit;
  }
}

/** sysexits.h code for each normal exit code, when no finer one is known. */
const SYSEXIT_OF: Record<number, number> = {
  1: SYSEXITS.noUser,
  2: SYSEXITS.usage,
  3: SYSEXITS.dataErr,
  20: SYSEXITS.tempFail,
  21: SYSEXITS.tempFail,
  22: SYSEXITS.tempFail,
  23: SYSEXITS.tempFail,
  24: SYSEXITS.noUser,
  25: SYSEXITS.tempFail,
  28: SYSEXITS.noPerm,
  29: SYSEXITS.protocol,
};

function sysexitOf(err: CliError): number {
  if (err instanceof SmtpCliError) return err.sysexit;
  const code = err.exitCode;
  // Codes 64 to 78 are sysexits.h codes already (sendmail's own usage errors).
  return SYSEXIT_OF[code] ??
    (code >= SYSEXITS.usage && code <= SYSEXITS.config ? code : SYSEXITS.software);
}

/**
 * Whether a failure may pass if tried later (RFC 5321 §4.2.1: a 4yz reply; or
 * the connection failing), so the message may be queued.
 */
function isTemporary(err: CliError): boolean {
  return err instanceof SmtpCliError && err.sysexit === SYSEXITS.tempFail;
}

/** Turns a session failure into the CLI's message and exit codes. */
async function cliErrorOf(err: unknown, hostname: string, connected: boolean): Promise<CliError> {
  if (err instanceof CliError) return err;
  if (err instanceof SmtpError) {
    if (err.phase === "connect" && !connected) {
      try {
        await explainLookup(hostname);
      } catch (lookup) {
        if (lookup instanceof CliError) {
          return new SmtpCliError(lookup.message, lookup.exitCode, SYSEXITS.noHost);
        }
      }
    }
    const code = EXIT[err.phase];
    const reply = err.reply?.code;
    if (err.phase === "tls" && /certificate/i.test(err.message)) {
      return new SmtpCliError(`${err.message}\n${TLS_HINT}`, code, SYSEXITS.noPerm);
    }
    let sysexit: number;
    if (reply !== undefined && reply >= 400 && reply < 500) sysexit = SYSEXITS.tempFail;
    else if (err.phase === "auth") sysexit = SYSEXITS.noPerm;
    else if (err.phase === "tls") sysexit = SYSEXITS.protocol;
    else if (reply !== undefined) {
      sysexit = err.phase === "rcpt" ? SYSEXITS.noUser : SYSEXITS.unavailable;
    } // No reply: a timeout or a lost connection, worth another try.
    else sysexit = SYSEXITS.tempFail;
    return new SmtpCliError(err.message, code, sysexit);
  }
  if (err instanceof TypeError) return new CliError(err.message, EXIT.message);
  if (err instanceof ConfigError) {
    return new SmtpCliError(err.message, EXIT_USAGE_CONFIG, SYSEXITS.config);
  }
  throw err;
}

/** A configuration file problem is a usage error (exit 2), or EX_CONFIG in sendmail mode. */
const EXIT_USAGE_CONFIG = 2;

type Values = ParsedValues<typeof OPTIONS>;

/**
 * Fills the options the command line left out from the configuration file's
 * account: the command line wins, key by key. The TLS mode and the server's
 * port go together: a mode or a server on the command line drops the
 * account's.
 */
async function withAccount(values: Values): Promise<Values> {
  const path = values.config !== undefined ? userPath(values.config) : defaultConfigPath();
  if (path === undefined) return values;
  let account: Account | undefined;
  try {
    account = await loadAccount(path, {
      ...(values.account !== undefined ? { name: values.account } : {}),
      required: values.config !== undefined || values.account !== undefined,
    });
  } catch (err) {
    throw await cliErrorOf(err, "", false);
  }
  if (!account) return values;
  const merged: Record<string, unknown> = { ...values };
  const tlsModes = ["tls", "tls-optional", "tls-on-connect"];
  const cliTls = tlsModes.some((k) => merged[k] !== undefined);
  for (const [key, value] of account) {
    if (cliTls && tlsModes.includes(key)) continue;
    if (key === "port" && values.server !== undefined) continue;
    merged[key] ??= value;
  }
  return merged as Values;
}

/** One message to send, and what it is called in messages. */
interface Job {
  label: string;
  message: ComposedMessage;
  envelope: Envelope;
  /** The queue files of a message being flushed. */
  queued?: string;
}

/** The files a `--data` value stands for: the file, or a Maildir's messages. */
async function dataFiles(typed: string): Promise<string[]> {
  const path = userPath(typed);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new CliError(
      `Cannot read --data file ${describePath(typed)}: ${err instanceof Error ? err.message : err}`,
      EXIT.message,
    );
  }
  if (!info.isDirectory) return [path];
  // A Maildir keeps messages in new/ and cur/ (tmp/ is for deliveries under way); any
  // other folder: the files in it.
  const folders = [`${path}/new`, `${path}/cur`];
  const isMaildir = (await Promise.all(folders.map((f) => Deno.stat(f).catch(() => undefined))))
    .some((f) => f?.isDirectory);
  const files: string[] = [];
  for (const folder of isMaildir ? folders : [path]) {
    try {
      for await (const entry of Deno.readDir(folder)) {
        if (entry.isFile && !entry.name.startsWith(".")) files.push(`${folder}/${entry.name}`);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  // By name, which for a Maildir is delivery order (the names start with the time).
  const name = (path: string) => path.slice(path.lastIndexOf("/") + 1);
  return files.sort((a, b) => name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0);
}

/** Builds the messages: one composed from the options, or one per `--data` file. */
async function buildJobs(values: Values, envelope: Envelope): Promise<Job[]> {
  if (values.data !== undefined) {
    const jobs: Job[] = [];
    for (const value of values.data) {
      const typed = value.replace(/^@/, "");
      for (const path of await dataFiles(typed)) {
        try {
          jobs.push({ label: path, message: await messageFromFile(path), envelope });
        } catch (err) {
          throw new CliError(
            `Cannot read --data file ${describePath(path === userPath(typed) ? typed : path)}: ${
              err instanceof Error && err.cause instanceof Error ? err.cause.message : err
            }`,
            EXIT.message,
          );
        }
      }
    }
    if (jobs.length === 0) throw new CliError("--data: no message found", EXIT.message);
    return jobs;
  }
  const headers: Array<[string, string]> = (values.header ?? []).map((h) => {
    const colon = h.indexOf(":");
    if (colon <= 0) {
      throw new CliError(`invalid argument for --header: "${h}" is not NAME: VALUE`);
    }
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trimStart()];
  });
  const options: Parameters<typeof composeMessage>[0] = {
    from: values.from!,
    to: list(values.to),
    cc: list(values.cc),
    headers,
    attachments: (values.attach ?? []).map(parseAttach),
  };
  if (values.subject !== undefined) options.subject = values.subject;
  if (values.body !== undefined) options.text = await textOrFile("--body", values.body);
  if (values.html !== undefined) options.html = await textOrFile("--html", values.html);
  return [{ label: "message", message: await composeMessage(options), envelope }];
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "--sendmail") return await sendmailMain(args.slice(1));
  const parsed = parseOrHelp(normaliseAuthFlag(args), OPTIONS, HELP);
  if (parsed === undefined) return 0;
  const { positionals } = parsed;
  if (positionals.length > 0) throw new CliError(`unexpected argument: ${positionals[0]}`);
  return await run(await withAccount(parsed.values));
}

/**
 * sendmail mode: sendmail's command line, the message on stdin, the
 * connection options and the configuration file as in the normal mode, the
 * exit codes of sysexits.h.
 */
async function sendmailMain(args: string[]): Promise<number> {
  let tmp: string | undefined;
  try {
    const request = parseSendmailArgs(args, OPTIONS);
    const parsed = parseOrHelp(normaliseAuthFlag(request.options), OPTIONS, HELP);
    if (parsed === undefined) return 0;
    const values = await withAccount(parsed.values);
    const configured = request.sender ?? values.from;
    let fallback = configured;
    if (fallback === undefined) {
      const user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME") ?? "root";
      fallback = `${user}@${Deno.hostname()}`;
    }
    const stdin = await readStdinMessage(Deno.stdin.readable, {
      removeBcc: request.fromHeaders,
      sender: parseMailbox(fallback).address,
      ...(request.fullName !== undefined ? { fullName: request.fullName } : {}),
    });
    tmp = stdin.path;
    const recipients = [
      ...new Set([
        ...request.recipients.flatMap(splitAddresses).map((a) => parseMailbox(a).address),
        ...(request.fromHeaders ? stdin.headerRecipients : []),
      ]),
    ];
    if (recipients.length === 0) {
      throw new CliError(
        "no recipients: give them as arguments, or -t to take them from the header",
        SYSEXITS.usage,
      );
    }
    const code = await run({
      ...values,
      from: configured ?? stdin.fromAddress ?? fallback,
      to: recipients,
      cc: [],
      bcc: [],
      data: [tmp],
    });
    return code === 0 ? 0 : SYSEXIT_OF[code] ?? SYSEXITS.software;
  } catch (err) {
    if (err instanceof CliError) throw new CliError(err.message, sysexitOf(err));
    if (err instanceof TypeError) throw new CliError(err.message, SYSEXITS.dataErr);
    throw err;
  } finally {
    if (tmp !== undefined) await Deno.remove(tmp).catch(() => {});
  }
}

/** Sends (or dumps, or queues) what the options say; resolves to the exit code. */
async function run(values: Values): Promise<number> {
  const queueDir = values.queue !== undefined ? userPath(values.queue) : undefined;
  if (values["flush-queue"]) {
    if (queueDir === undefined) throw new CliError("--flush-queue needs --queue DIR");
    return await flushQueue(values, queueDir);
  }
  const from = values.from;
  if (from === undefined) throw new CliError("missing --from");
  const recipients = [...list(values.to), ...list(values.cc), ...list(values.bcc)];

  // Build the messages first: a refused header or an unreadable file fails before any traffic.
  let jobs: Job[];
  try {
    const envelope = {
      from: parseMailbox(from).address,
      to: recipients.map((a) => parseMailbox(a).address),
    };
    jobs = await buildJobs(values, envelope);
  } catch (err) {
    if (err instanceof CliError) throw err;
    let text = err instanceof Error ? err.message : String(err);
    for (const [absolute, typed] of typedPaths) {
      text = text.replaceAll(`"${absolute}"`, describePath(typed));
    }
    throw new CliError(text, EXIT.message);
  }

  const dkim = await dkimOptions(values, jobs[0]!.envelope.from);
  if (dkim) {
    for (const job of jobs) {
      try {
        job.message = await dkimSign(job.message, dkim);
      } catch (err) {
        throw new CliError(err instanceof Error ? err.message : String(err), EXIT.message);
      }
    }
  }

  if (values.dump) {
    for (const job of jobs) {
      await job.message.stream().pipeTo(Deno.stdout.writable, { preventClose: true });
    }
    return 0;
  }
  if (recipients.length === 0) throw new CliError("missing --to");
  return await deliver(jobs, values, queueDir);
}

/** Resends the queued messages over one session; sent ones leave the queue. */
async function flushQueue(values: Values, dir: string): Promise<number> {
  const jobs: Job[] = [];
  for (const entry of await queuedEntries(dir)) {
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/${entry}.json`));
    jobs.push({
      label: `${dir}/${entry}.eml`,
      message: await messageFromFile(`${dir}/${entry}.eml`),
      envelope: { from: meta.from, to: meta.to },
      queued: `${dir}/${entry}`,
    });
  }
  if (jobs.length === 0) {
    if (!values.verbose) console.log("the queue is empty");
    return 0;
  }
  return await deliver(jobs, values, dir);
}

async function queuedEntries(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name.slice(0, -5));
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return names.sort();
}

/** Writes a message and its envelope to the queue (msmtpq's way: a file pair per message). */
async function enqueue(dir: string, job: Job, reason: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  // Time first, so that name order is queue order.
  const id = `${new Date().toISOString().replace(/[:.]/g, "-")}-${crypto.randomUUID().slice(0, 8)}`;
  const base = `${dir}/${id}`;
  using file = await Deno.open(`${base}.eml`, { write: true, createNew: true, mode: 0o600 });
  for await (const chunk of job.message.stream()) {
    for (let done = 0; done < chunk.length;) done += await file.write(chunk.subarray(done));
  }
  // The envelope last: a message without one is not in the queue yet.
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify({ from: job.envelope.from, to: job.envelope.to, queued: new Date(), reason }),
    { mode: 0o600 },
  );
  return `${base}.eml`;
}

/** What a session needs from the options. */
interface SessionSettings {
  hostname: string;
  connect: Parameters<typeof SmtpSession.connect>[0];
  tlsPolicy: "required" | "opportunistic" | "none";
  credentials?: Credentials;
  quitAfter?: string;
  dsn: DsnOptions;
}

async function sessionSettings(values: Values): Promise<SessionSettings> {
  const { hostname, port: serverPort } = splitServer(values.server ?? "localhost");
  const port = values.port !== undefined
    ? parseNumber("--port", values.port, portRange)
    : serverPort;
  const timeout = values.timeout !== undefined
    ? parseNumber("--timeout", values.timeout, { min: 0.001 }) * 1000
    : 30_000;
  const quitAfter = values["quit-after"]?.toUpperCase();
  if (quitAfter !== undefined && !(QUIT_AFTER as readonly string[]).includes(quitAfter)) {
    throw new CliError(`invalid argument for --quit-after: '${values["quit-after"]}'`);
  }
  const implicitTls = values["tls-on-connect"] ?? false;
  const tlsPolicy = values.tls ? "required" : values["tls-optional"] ? "opportunistic" : "none";

  let credentials: Credentials | undefined;
  if (values.auth !== undefined || values["auth-user"] !== undefined) {
    const user = values["auth-user"];
    if (user === undefined) throw new CliError("--auth needs --auth-user");
    let password = values["auth-password"] ?? (Deno.env.get("SMTP_PASSWORD") || undefined);
    if (password === undefined && values["password-eval"] !== undefined) {
      try {
        password = await evalPassword(values["password-eval"]);
      } catch (err) {
        throw await cliErrorOf(err, hostname, false);
      }
    }
    if (password === undefined) {
      if (!Deno.stdin.isTerminal()) {
        throw new CliError(
          "--auth needs a password: --auth-password, SMTP_PASSWORD, password-eval or a TTY",
        );
      }
      password = await promptPassword();
    }
    credentials = { user, password };
    if (values.auth !== undefined && values.auth !== "ANY") {
      const mechanism = values.auth.toUpperCase();
      if (!(MECHANISMS as readonly string[]).includes(mechanism)) {
        throw new CliError(`invalid argument for --auth: '${values.auth}'`);
      }
      credentials.mechanism = mechanism as Credentials["mechanism"] & string;
    }
  }
  let caCerts: string[] = [];
  if (values["tls-ca"] !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(userPath(values["tls-ca"]))];
    } catch (err) {
      throw new CliError(
        `Cannot read --tls-ca file ${describePath(values["tls-ca"])}: ${
          err instanceof Error ? err.message : err
        }`,
      );
    }
  }
  const fingerprints = values["tls-fingerprint"] ?? [];
  for (const fingerprint of fingerprints) {
    try {
      parseFingerprint(fingerprint);
    } catch (err) {
      throw new CliError(`invalid argument for --tls-fingerprint: ${(err as Error).message}`);
    }
  }
  if (values.insecure) {
    console.error("smtp: warning: --insecure: the server's certificate is not verified");
  }
  const dsn: DsnOptions = {};
  if (values["dsn-notify"] !== undefined) {
    const notify = list([values["dsn-notify"].toUpperCase()]);
    const valid = ["NEVER", "SUCCESS", "FAILURE", "DELAY"];
    if (notify.some((n) => !valid.includes(n))) {
      throw new CliError(`invalid argument for --dsn-notify: '${values["dsn-notify"]}'`);
    }
    dsn.notify = notify as DsnOptions["notify"] & string[];
  }
  if (values["dsn-ret"] !== undefined) {
    const ret = values["dsn-ret"].toUpperCase();
    if (ret !== "FULL" && ret !== "HDRS") {
      throw new CliError(`invalid argument for --dsn-ret: '${values["dsn-ret"]}'`);
    }
    dsn.ret = ret;
  }
  if (values["dsn-envid"] !== undefined) dsn.envid = values["dsn-envid"];
  return {
    hostname,
    connect: {
      hostname,
      ...(port !== undefined ? { port } : {}),
      implicitTls,
      caCerts,
      fingerprints,
      // TLS goes through node:tls: it takes a trusted self-signed certificate as the
      // server's own, and shows the fingerprint of a refused one.
      ...(tlsPolicy !== "none" ? { transport: nodeTransport } : {}),
      insecure: values.insecure ?? false,
      allowPlaintextAuth: values["allow-plaintext-auth"] ?? false,
      ...(values.ehlo !== undefined ? { ehloName: values.ehlo } : {}),
      timeouts: { connect: timeout, command: timeout, data: Math.max(timeout, 600_000) },
      ...(values.verbose
        ? { onTranscript: (dir: string, line: string) => console.log(`${dir} ${line}`) }
        : {}),
    },
    tlsPolicy,
    ...(credentials ? { credentials } : {}),
    ...(quitAfter !== undefined ? { quitAfter } : {}),
    dsn,
  };
}

/**
 * Opens the session (connect, EHLO, STARTTLS, AUTH), stopping early for
 * `--quit-after`: then it resolves to `undefined`.
 */
async function openCliSession(
  settings: SessionSettings,
  opened: (session: SmtpSession) => void,
): Promise<SmtpSession | undefined> {
  const { quitAfter, tlsPolicy } = settings;
  const session = await SmtpSession.connect(settings.connect);
  opened(session);
  if (quitAfter === "CONNECT") return undefined;
  await session.hello();
  if (quitAfter === "EHLO") return undefined;
  if (!session.secure && tlsPolicy !== "none") {
    if (session.capabilities.has("STARTTLS")) await session.startTls();
    else if (tlsPolicy === "required") {
      throw new SmtpError("Cannot start TLS: the server does not offer STARTTLS", "tls");
    }
  }
  if (quitAfter === "TLS") return undefined;
  if (settings.credentials) await session.authenticate(settings.credentials);
  if (quitAfter === "AUTH") return undefined;
  return session;
}

function replyLine(reply: SendResult["reply"]): string {
  return `${reply.code} ${reply.enhanced ? `${reply.enhanced} ` : ""}${reply.lines.join(" ")}`;
}

/**
 * Sends the messages over one session, with RSET between them. A message
 * that fails for now (4xx, lost connection) goes to the queue when there is
 * one; a queued message being flushed stays there.
 */
async function deliver(jobs: Job[], values: Values, queueDir: string | undefined): Promise<number> {
  const settings = await sessionSettings(values);
  const verbose = values.verbose ?? false;
  const many = jobs.length > 1;
  let session: SmtpSession | undefined;
  let failure: CliError | undefined;
  let failures = 0;
  let partial = false;
  const fail = async (job: Job, err: CliError) => {
    if (queueDir !== undefined && isTemporary(err)) {
      if (job.queued) console.error(`smtp: ${job.label} stays queued: ${err.message}`);
      else {
        const path = await enqueue(queueDir, job, err.message);
        console.error(`smtp: ${many ? `${job.label}: ` : ""}queued as ${path}: ${err.message}`);
      }
      return;
    }
    if (job.queued) {
      // A permanent refusal: retrying cannot help; keep it apart for the user to see.
      await Deno.mkdir(`${queueDir}/failed`, { recursive: true });
      for (const ext of [".eml", ".json"]) {
        const name = job.queued.split("/").pop();
        await Deno.rename(`${job.queued}${ext}`, `${queueDir}/failed/${name}${ext}`);
      }
    }
    failures++;
    failure ??= err;
    if (many || job.queued) console.error(`smtp: ${job.label}: ${err.message}`);
  };
  try {
    try {
      session = await openCliSession(settings, (opened) => (session = opened));
    } catch (err) {
      const cliError = await cliErrorOf(err, settings.hostname, session !== undefined);
      if (queueDir === undefined || !isTemporary(cliError)) throw cliError;
      for (const job of jobs) await fail(job, cliError);
      return 0;
    }
    if (session === undefined) return 0;
    for (const [i, job] of jobs.entries()) {
      try {
        if (i > 0) await session.reset();
        const result = await session.send(job.envelope, job.message, {
          pipelining: values.pipeline ?? false,
          dsn: settings.dsn,
          ...(settings.quitAfter === "MAIL" ? { stopAfter: "mail" as const } : {}),
          ...(settings.quitAfter === "RCPT" ? { stopAfter: "rcpt" as const } : {}),
        });
        for (const { recipient, reply } of result.rejected) {
          console.error(`smtp: recipient <${recipient}> refused: ${replyLine(reply)}`);
        }
        partial ||= result.rejected.length > 0;
        if (settings.quitAfter === undefined && !verbose) {
          console.log(
            `${many ? `${job.label}: ` : ""}sent to ${result.accepted.length} recipient(s): ${
              replyLine(result.reply)
            }`,
          );
        }
        if (job.queued) {
          await Deno.remove(`${job.queued}.json`);
          await Deno.remove(`${job.queued}.eml`);
        }
      } catch (err) {
        const cliError = await cliErrorOf(err, settings.hostname, true);
        const queueing = job.queued !== undefined ||
          (queueDir !== undefined && isTemporary(cliError));
        if (!many && !queueing) throw cliError;
        await fail(job, cliError);
      }
    }
  } finally {
    await session?.quit();
  }
  const failed = failure as CliError | undefined;
  if (failed) {
    throw new SmtpCliError(
      `${failures} of ${jobs.length} messages not sent; the first: ${failed.message}`,
      failed.exitCode,
      sysexitOf(failed),
    );
  }
  return partial ? EXIT.partial : 0;
}

if (import.meta.main) {
  await runMain("smtp", () => main(Deno.args));
}
