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
    arg: "@FILE.eml",
    default: "none",
    description: "send this ready message as it is",
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
    "the command runs in.",
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

async function main(args: string[]): Promise<number> {
  const parsed = parseOrHelp(normaliseAuthFlag(args), OPTIONS, HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new CliError(`unexpected argument: ${positionals[0]}`);

  const from = values.from;
  const to = list(values.to);
  const cc = list(values.cc);
  const bcc = list(values.bcc);
  if (from === undefined) throw new CliError("missing --from");

  // Build the message first: a refused header or an unreadable file fails before any traffic.
  let message: ComposedMessage;
  let envelope: { from: string; to: string[] };
  try {
    envelope = {
      from: parseMailbox(from).address,
      to: [...to, ...cc, ...bcc].map((a) => parseMailbox(a).address),
    };
    if (values.data !== undefined) {
      const typed = values.data.replace(/^@/, "");
      try {
        message = await messageFromFile(userPath(typed));
      } catch (err) {
        throw new CliError(
          `Cannot read --data file ${describePath(typed)}: ${
            err instanceof Error && err.cause instanceof Error ? err.cause.message : err
          }`,
          EXIT.message,
        );
      }
    } else {
      const headers: Array<[string, string]> = (values.header ?? []).map((h) => {
        const colon = h.indexOf(":");
        if (colon <= 0) {
          throw new CliError(`invalid argument for --header: "${h}" is not NAME: VALUE`);
        }
        return [h.slice(0, colon).trim(), h.slice(colon + 1).trimStart()];
      });
      const options: Parameters<typeof composeMessage>[0] = {
        from,
        to,
        cc,
        headers,
        attachments: (values.attach ?? []).map(parseAttach),
      };
      if (values.subject !== undefined) options.subject = values.subject;
      if (values.body !== undefined) options.text = await textOrFile("--body", values.body);
      if (values.html !== undefined) options.html = await textOrFile("--html", values.html);
      message = await composeMessage(options);
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    let text = err instanceof Error ? err.message : String(err);
    for (const [absolute, typed] of typedPaths) {
      text = text.replaceAll(`"${absolute}"`, describePath(typed));
    }
    throw new CliError(text, EXIT.message);
  }

  const dkim = await dkimOptions(values, envelope.from);
  if (dkim) {
    try {
      message = await dkimSign(message, dkim);
    } catch (err) {
      throw new CliError(err instanceof Error ? err.message : String(err), EXIT.message);
    }
  }

  if (values.dump) {
    await message.stream().pipeTo(Deno.stdout.writable, { preventClose: true });
    return 0;
  }
  if (to.length + cc.length + bcc.length === 0) throw new CliError("missing --to");

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
    if (password === undefined) {
      if (!Deno.stdin.isTerminal()) {
        throw new CliError("--auth needs a password: --auth-password, SMTP_PASSWORD or a TTY");
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

  const verbose = values.verbose ?? false;
  let session: SmtpSession | undefined;
  try {
    session = await SmtpSession.connect({
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
      ...(verbose
        ? { onTranscript: (dir: string, line: string) => console.log(`${dir} ${line}`) }
        : {}),
    });
    if (quitAfter === "CONNECT") return 0;
    await session.hello();
    if (quitAfter === "EHLO") return 0;
    if (!session.secure && tlsPolicy !== "none") {
      if (session.capabilities.has("STARTTLS")) await session.startTls();
      else if (tlsPolicy === "required") {
        throw new SmtpError("Cannot start TLS: the server does not offer STARTTLS", "tls");
      }
    }
    if (quitAfter === "TLS") return 0;
    if (credentials) await session.authenticate(credentials);
    if (quitAfter === "AUTH") return 0;
    const result: SendResult = await session.send(envelope, message, {
      pipelining: values.pipeline ?? false,
      dsn,
      ...(quitAfter === "MAIL" ? { stopAfter: "mail" as const } : {}),
      ...(quitAfter === "RCPT" ? { stopAfter: "rcpt" as const } : {}),
    });
    for (const { recipient, reply } of result.rejected) {
      console.error(
        `smtp: recipient <${recipient}> refused: ${reply.code} ${
          reply.enhanced ? `${reply.enhanced} ` : ""
        }${reply.lines.join(" ")}`,
      );
    }
    if (quitAfter === undefined && !verbose) {
      console.log(
        `sent to ${result.accepted.length} recipient(s): ${result.reply.code} ${
          result.reply.enhanced ? `${result.reply.enhanced} ` : ""
        }${result.reply.lines.join(" ")}`,
      );
    }
    return result.rejected.length > 0 ? EXIT.partial : 0;
  } catch (err) {
    if (err instanceof SmtpError && err.phase === "connect" && session === undefined) {
      await explainLookup(hostname);
    }
    if (err instanceof SmtpError && err.phase === "tls" && /certificate/i.test(err.message)) {
      throw new CliError(`${err.message}\n${TLS_HINT}`, EXIT.tls);
    }
    if (err instanceof SmtpError) throw new CliError(err.message, EXIT[err.phase]);
    if (err instanceof TypeError) throw new CliError(err.message, EXIT.message);
    throw err;
  } finally {
    await session?.quit();
  }
}

if (import.meta.main) {
  await runMain("smtp", () => main(Deno.args));
}
