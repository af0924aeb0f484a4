/**
 * `smtp` as `sendmail`: the command line of sendmail (as msmtp takes it), the
 * message from stdin with its header block completed, and the exit codes of
 * `sysexits.h`.
 *
 * @module
 */
import { CliError, type Options } from "../lib/cli.ts";
import { findHeaderEnd, parseMailbox, rfc5322Date } from "./mime.ts";

/** `sysexits.h` codes, as sendmail and msmtp exit with them. */
export const SYSEXITS = {
  ok: 0,
  usage: 64,
  dataErr: 65,
  noInput: 66,
  noUser: 67,
  noHost: 68,
  unavailable: 69,
  software: 70,
  ioErr: 74,
  tempFail: 75,
  protocol: 76,
  noPerm: 77,
  config: 78,
} as const;

/** What a sendmail command line asks for. */
export interface SendmailRequest {
  /** Long options for the normal parser (connection options, `--config`, …). */
  options: string[];
  /** Recipients given as arguments. */
  recipients: string[];
  /** `-t`: recipients from the To, Cc and Bcc headers too; Bcc is removed. */
  fromHeaders: boolean;
  /** `-f` / `-r`: the envelope sender. */
  sender?: string;
  /** `-F`: the full name for a From header the message lacks. */
  fullName?: string;
}

/** sendmail flags (msmtp's) that stand for a long option of the normal mode. */
const AS_LONG_OPTION: Record<string, string> = {
  "-C": "--config",
  "-a": "--account",
  "-N": "--dsn-notify",
  "-R": "--dsn-ret",
  "-V": "--dsn-envid",
};

/** sendmail flags that change nothing here (input always ends at EOF, as in msmtp). */
const IGNORED = /^-(i|oi|oem|oee|oep|oeq|oew|om|odb|odi|odq|ods|U|G|em|ep|eq|bm|m|L.*|X.*|B.*)$/;

/**
 * Parses sendmail's command line: single-dash sendmail flags, then any long
 * option of `smtp` (with `options` telling which take a value), then
 * recipients.
 */
export function parseSendmailArgs(args: readonly string[], options: Options): SendmailRequest {
  const request: SendmailRequest = { options: [], recipients: [], fromHeaders: false };
  const value = (i: number, flag: string, attached: string): [string, number] => {
    if (attached !== "") return [attached, i];
    const next = args[i + 1];
    if (next === undefined) throw new CliError(`option ${flag} needs a value`, SYSEXITS.usage);
    return [next, i + 1];
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      request.recipients.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const name = arg.slice(2).split("=")[0]!;
      const spec = options[name];
      if (!spec) throw new CliError(`unknown option ${arg}`, SYSEXITS.usage);
      request.options.push(arg);
      if (spec.type === "string" && !arg.includes("=")) {
        const next = args[++i];
        if (next === undefined) throw new CliError(`option ${arg} needs a value`, SYSEXITS.usage);
        request.options.push(next);
      }
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      request.recipients.push(arg);
      continue;
    }
    if (IGNORED.test(arg)) continue;
    const flag = arg.slice(0, 2);
    const attached = arg.slice(2);
    const long = AS_LONG_OPTION[flag];
    if (long !== undefined) {
      let given: string;
      [given, i] = value(i, flag, attached);
      request.options.push(long, given);
      continue;
    }
    switch (flag) {
      case "-t":
        if (attached !== "") throw new CliError(`unknown option ${arg}`, SYSEXITS.usage);
        request.fromHeaders = true;
        break;
      case "-v":
        request.options.push("--verbose");
        break;
      case "-f":
      case "-r":
        [request.sender, i] = value(i, flag, attached);
        break;
      case "-F":
        [request.fullName, i] = value(i, flag, attached);
        break;
      default:
        throw new CliError(
          `unsupported sendmail option ${arg} (only sending a message from stdin is supported)`,
          SYSEXITS.usage,
        );
    }
  }
  return request;
}

/** Splits an address list, leaving commas inside quotes or angle brackets alone. */
export function splitAddresses(text: string): string[] {
  return (text.match(/(?:"(?:[^"\\]|\\.)*"|<[^>]*>|\([^)]*\)|[^,])+/g) ?? [])
    // RFC 5322 §3.4 groups: "name: a, b;" — the group's name and its end are no addresses.
    .map((a) => a.replace(/^[^"<@]*:/, "").replace(/;\s*$/, "").trim())
    .filter((a) => a !== "");
}

/** What reading the message from stdin found. */
export interface StdinMessage {
  /** The temporary file holding the message, headers completed. */
  path: string;
  /** The addresses of the To, Cc and Bcc headers (collected for `-t`). */
  headerRecipients: string[];
  /** The address of the From header, if any. */
  fromAddress?: string;
}

const encoder = new TextEncoder();

/**
 * Copies the message from `input` into a temporary file: the header block is
 * read and completed (From, Date and Message-ID added when missing, Bcc
 * removed under `-t`), the body is copied in chunks.
 */
export async function readStdinMessage(
  input: ReadableStream<Uint8Array>,
  options: { removeBcc: boolean; sender: string; fullName?: string },
): Promise<StdinMessage> {
  const path = await Deno.makeTempFile({ prefix: "netkit_sendmail_", suffix: ".eml" });
  try {
    using file = await Deno.open(path, { write: true, truncate: true });
    const reader = input.getReader();
    let head = new Uint8Array(0);
    let rest: Uint8Array | undefined;
    while (rest === undefined) {
      const { done, value } = await reader.read();
      const joined = new Uint8Array(head.length + (value?.length ?? 0));
      joined.set(head);
      if (value) joined.set(value, head.length);
      const end = findHeaderEnd(joined);
      if (end) {
        head = joined.subarray(0, end.headEnd);
        rest = joined.subarray(end.bodyStart);
      } else if (done) {
        // No empty line: all header, or (a first line that is no header) all body.
        head = joined;
        rest = new Uint8Array(0);
      } else {
        if (joined.length > 1 << 20) {
          throw new CliError("Cannot read the message: its header is over 1 MiB", SYSEXITS.dataErr);
        }
        head = joined;
      }
    }
    const { text, bodyPrefix, headerRecipients, fromAddress } = completeHeader(
      new TextDecoder().decode(head),
      options,
    );
    await writeAll(file, encoder.encode(`${text}\r\n${bodyPrefix}`));
    await writeAll(file, rest);
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      await writeAll(file, value);
    }
    return { path, headerRecipients, ...(fromAddress ? { fromAddress } : {}) };
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

function completeHeader(
  head: string,
  options: { removeBcc: boolean; sender: string; fullName?: string },
): { text: string; bodyPrefix: string; headerRecipients: string[]; fromAddress?: string } {
  const fields: string[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (line === "") continue;
    if (/^[ \t]/.test(line) && fields.length > 0) fields[fields.length - 1] += `\r\n${line}`;
    else fields.push(line);
  }
  // A first line that is no header field means the message has no header: all is body.
  let bodyPrefix = "";
  if (fields.length > 0 && !/^[\x21-\x39\x3b-\x7e]+:/.test(fields[0]!)) {
    bodyPrefix = `${head}\r\n`;
    fields.length = 0;
  }
  const named = (name: string) =>
    fields.filter((f) => f.slice(0, f.indexOf(":")).trim().toLowerCase() === name);
  const valueOf = (field: string) => field.slice(field.indexOf(":") + 1).replace(/\r\n/g, "");
  const headerRecipients = ["to", "cc", "bcc"].flatMap((n) => named(n).map(valueOf))
    .flatMap(splitAddresses).map((a) => parseMailbox(a).address);
  const from = named("from")[0];
  const fromAddress = from
    ? splitAddresses(valueOf(from)).map((a) => parseMailbox(a).address)[0]
    : undefined;
  const out = options.removeBcc
    ? fields.filter((f) => f.slice(0, f.indexOf(":")).trim().toLowerCase() !== "bcc")
    : fields;
  const added: string[] = [];
  if (!from) {
    const name = options.fullName?.replace(/["\\]/g, "\\$&");
    added.push(`From: ${name ? `"${name}" <${options.sender}>` : options.sender}`);
  }
  if (named("date").length === 0) added.push(`Date: ${rfc5322Date(new Date())}`);
  if (named("message-id").length === 0) {
    const domain = options.sender.split("@")[1] || "localhost";
    added.push(`Message-ID: <${crypto.randomUUID()}@${domain}>`);
  }
  return {
    text: [...added, ...out].map((f) => `${f}\r\n`).join(""),
    bodyPrefix,
    headerRecipients,
    ...(fromAddress ? { fromAddress } : {}),
  };
}
