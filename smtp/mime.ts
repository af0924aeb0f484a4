/**
 * A streaming MIME message composer (RFC 5322, MIME RFC 2045–2047, RFC 2231).
 *
 * {@linkcode composeMessage} builds `multipart/mixed` ⊃ `multipart/alternative`
 * (text + HTML) + attachments. Attachments are read from disk in chunks and
 * base64-encoded on the fly, so a message's size in memory does not depend on
 * the attachments' sizes. Any CR or LF in a header value or an address is
 * refused: that is header injection, not a typo to repair.
 *
 * {@linkcode smtpData} turns a message stream into the bytes of an SMTP DATA
 * section: CRLF line ends, dot-stuffing (RFC 5321 §4.5.2) and the final
 * `.` line.
 *
 * @module
 */

const encoder = new TextEncoder();
const CRLF = "\r\n";
/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998. */
const FOLD_WIDTH = 78;
const MAX_LINE = 998;
/** RFC 2045 §6.8: base64 lines are at most 76 characters; 57 bytes make 76 characters. */
const B64_LINE_BYTES = 57;
/** Bytes read from an attachment at once: a whole number of base64 lines (about 64 KiB). */
const READ_CHUNK = B64_LINE_BYTES * 1150;

/** One attachment: a file on disk, sent as base64. */
export interface Attachment {
  /** The file to read. */
  path: string;
  /** The name shown to the recipient. @default the path's last component */
  filename?: string;
  /** The MIME type. @default guessed from the file name's extension */
  contentType?: string;
}

/** What {@linkcode composeMessage} builds a message from. */
export interface ComposeOptions {
  /** The author, `addr@host` or `Display Name <addr@host>`. */
  from: string;
  /** The `To` recipients. @default [] */
  to?: string[];
  /** The `Cc` recipients. @default [] */
  cc?: string[];
  /** The subject, any Unicode text. @default no Subject header */
  subject?: string;
  /** The plain-text body. @default "" when there is no HTML body */
  text?: string;
  /** The HTML body; with `text` it makes a `multipart/alternative`. @default none */
  html?: string;
  /** Files to attach, in order. @default [] */
  attachments?: Attachment[];
  /**
   * Extra headers as `[name, value]` pairs. A name that the composer also
   * generates (Subject, Date, Message-ID, ...) replaces the generated one.
   * @default []
   */
  headers?: Array<[string, string]>;
  /** The `Date` header's time. @default the current time */
  date?: Date;
  /** The domain used in the generated `Message-ID`. @default the sender's domain */
  messageIdDomain?: string;
}

/** A message ready to send: it can be streamed any number of times. */
export interface ComposedMessage {
  /** The exact size in octets of what {@linkcode ComposedMessage.stream} yields (before dot-stuffing). */
  readonly size: number;
  /** `true` when the message has octets above 127 in its body (needs `BODY=8BITMIME`). */
  readonly eightBit: boolean;
  /** `true` when a header holds raw UTF-8, e.g. a non-ASCII address (needs `SMTPUTF8`, RFC 6531). */
  readonly smtpUtf8: boolean;
  /**
   * Opens a new stream of the message's octets.
   *
   * @returns A stream of the whole message, headers and body.
   */
  stream(): ReadableStream<Uint8Array>;
}

/** A mailbox split into its display name and its address. */
export interface Mailbox {
  /** The display name, possibly empty. */
  name: string;
  /** The address `local@domain`. */
  address: string;
}

/**
 * Throws when a header value or an address holds CR or LF, which would let the
 * text start a new header or end the header block (header injection).
 *
 * @param what What the value is, for the message (e.g. `header "Subject"`).
 * @param value The value to check.
 * @returns Nothing; it throws a `TypeError` on CR or LF.
 *
 * @example
 * ```ts
 * import { assertNoLineBreak } from "./mime.ts";
 * import { assertThrows } from "../lib/testing/assert.ts";
 * assertNoLineBreak("header \"Subject\"", "hello");
 * assertThrows(() => assertNoLineBreak("header \"Subject\"", "hi\r\nBcc: x@example.com"), TypeError);
 * ```
 */
export function assertNoLineBreak(what: string, value: string): void {
  if (/[\r\n]/.test(value)) {
    throw new TypeError(
      `Cannot use ${what}: it contains a CR or LF character (header injection refused)`,
    );
  }
}

/**
 * Parses `addr@host` or `Display Name <addr@host>` into a {@linkcode Mailbox}.
 *
 * @param text The mailbox text.
 * @returns The display name and the address.
 *
 * @example
 * ```ts
 * import { parseMailbox } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const box = parseMailbox('"Doe, Jane" <jane@example.com>');
 * assertEquals(box.name, "Doe, Jane");
 * assertEquals(box.address, "jane@example.com");
 * ```
 */
export function parseMailbox(text: string): Mailbox {
  assertNoLineBreak(`address "${text.replace(/[\r\n]/g, "\\n")}"`, text);
  const match = /^\s*(.*?)\s*<([^<>]*)>\s*$/.exec(text);
  let name = "";
  let address = text.trim();
  if (match) {
    name = match[1] ?? "";
    address = (match[2] ?? "").trim();
    if (name.length >= 2 && name.startsWith('"') && name.endsWith('"')) {
      name = name.slice(1, -1).replace(/\\(.)/g, "$1");
    }
  }
  if (/[\s<>]/.test(address) || (address !== "" && !address.includes("@"))) {
    throw new TypeError(`Cannot use address "${text}": it is not of the form local@domain`);
  }
  return { name, address };
}

function isAscii(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(text);
}

/** RFC 2047 §5 rule (3): encoded-words of at most 75 characters, never splitting a character. */
function encodedWords(text: string, firstBudget: number): string[] {
  const words: string[] = [];
  const overhead = "=?UTF-8?B??=".length;
  let budget = firstBudget;
  let chunk: number[] = [];
  const flush = () => {
    if (chunk.length > 0) {
      words.push(`=?UTF-8?B?${new Uint8Array(chunk).toBase64()}?=`);
      chunk = [];
    }
  };
  for (const char of text) {
    const bytes = encoder.encode(char);
    const max = Math.max(3, Math.floor((Math.min(budget, 75) - overhead) / 4) * 3);
    if (chunk.length > 0 && chunk.length + bytes.length > max) {
      flush();
      budget = 75;
    }
    chunk.push(...bytes);
  }
  flush();
  return words;
}

/** Text that an RFC 2047 decoder might misread, or that cannot go raw in a header. */
function needsEncoding(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return !isAscii(text) || /=\?|[\x00-\x08\x0b-\x1f\x7f]/.test(text);
}

/**
 * Folds header tokens (already safe to send) into lines of at most 78
 * characters where possible, breaking only before whitespace (RFC 5322 §2.2.3).
 */
function fold(name: string, tokens: string[]): string {
  let out = `${name}:`;
  let lineLength = out.length;
  for (const token of tokens) {
    if (lineLength + 1 + token.length > FOLD_WIDTH && lineLength > name.length + 1) {
      out += `${CRLF} ${token}`;
      lineLength = 1 + token.length;
    } else {
      out += ` ${token}`;
      lineLength += 1 + token.length;
    }
  }
  return out + CRLF;
}

/**
 * Encodes one unstructured header field (e.g. `Subject`): non-ASCII text
 * becomes RFC 2047 encoded-words, and the field is folded at 78 columns.
 *
 * @param name The header name.
 * @param value The header value, any Unicode text without CR or LF.
 * @returns The header line(s), ending with CRLF.
 *
 * @example
 * ```ts
 * import { encodeHeader } from "./mime.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(encodeHeader("Subject", "Hello"), "Subject: Hello\r\n");
 * assert(encodeHeader("Subject", "Grüße").startsWith("Subject: =?UTF-8?B?"));
 * ```
 */
export function encodeHeader(name: string, value: string): string {
  assertHeaderName(name);
  assertNoLineBreak(`header "${name}"`, value);
  // A word too long to fold would break the 998-octet line limit: encode it instead.
  if (!needsEncoding(value) && !value.split(/\s+/).some((w) => w.length > 900)) {
    // Split at single spaces so that runs of spaces survive unfolding as they were.
    return fold(name, value.split(" "));
  }
  return fold(name, encodedWords(value, FOLD_WIDTH - name.length - 2));
}

function assertHeaderName(name: string): void {
  // RFC 5322 §2.2: printable US-ASCII except colon.
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) {
    throw new TypeError(`Cannot use header name "${name}": it must be printable ASCII without ":"`);
  }
}

/** The tokens of one mailbox in a header: display name (quoted or encoded) then `<address>`. */
function mailboxTokens(box: Mailbox): string[] {
  const angle = `<${box.address}>`;
  if (box.name === "") return [box.address];
  if (needsEncoding(box.name)) return [...encodedWords(box.name, 60), angle];
  // RFC 5322 §3.2.3: a phrase of atext words needs no quoting; anything else is a quoted-string.
  const atext = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/.test(box.name);
  const phrase = atext ? box.name : `"${box.name.replace(/(["\\])/g, "\\$1")}"`;
  return [...phrase.split(" ").filter((w) => w !== ""), angle];
}

/**
 * Encodes an address-list header (`From`, `To`, `Cc`): display names are
 * quoted or RFC 2047-encoded, and the list folds after its commas.
 *
 * @param name The header name.
 * @param mailboxes The mailboxes, as `addr@host` or `Name <addr@host>`.
 * @returns The header line(s), ending with CRLF.
 *
 * @example
 * ```ts
 * import { encodeAddressHeader } from "./mime.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const line = encodeAddressHeader("To", ["a@example.com", "Bé <b@example.com>"]);
 * assert(line.startsWith("To: a@example.com, =?UTF-8?B?"));
 * ```
 */
export function encodeAddressHeader(name: string, mailboxes: string[]): string {
  const tokens: string[] = [];
  mailboxes.forEach((text, i) => {
    const boxTokens = mailboxTokens(parseMailbox(text));
    if (i < mailboxes.length - 1) boxTokens[boxTokens.length - 1] += ",";
    tokens.push(...boxTokens);
  });
  return fold(name, tokens);
}

const MIME_TYPES: Record<string, string> = {
  txt: "text/plain",
  text: "text/plain",
  csv: "text/csv",
  html: "text/html",
  htm: "text/html",
  css: "text/css",
  xml: "application/xml",
  json: "application/json",
  js: "text/javascript",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  ics: "text/calendar",
  eml: "message/rfc822",
  mp3: "audio/mpeg",
  mp4: "video/mp4",
  doc: "application/msword",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  odt: "application/vnd.oasis.opendocument.text",
};

/**
 * Guesses a MIME type from a file name's extension.
 *
 * @param filename The file name.
 * @returns The MIME type, `application/octet-stream` when unknown.
 *
 * @example
 * ```ts
 * import { contentTypeFor } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(contentTypeFor("report.PDF"), "application/pdf");
 * ```
 */
export function contentTypeFor(filename: string): string {
  const ext = /\.([^./\\]+)$/.exec(filename)?.[1]?.toLowerCase() ?? "";
  return MIME_TYPES[ext] ?? "application/octet-stream";
}

/** RFC 2045 §5.1 token characters; anything else in a parameter value needs quoting. */
function isToken(value: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value);
}

/**
 * Formats a `filename` parameter: a token or quoted-string when it is ASCII,
 * else RFC 2231 `filename*0*=UTF-8''...` continuations of at most ~60 characters.
 */
function filenameParam(param: string, filename: string): string[] {
  // deno-lint-ignore no-control-regex
  if (isAscii(filename) && !/[\x00-\x1f\x7f]/.test(filename) && filename.length <= 60) {
    return [
      `${param}=${isToken(filename) ? filename : `"${filename.replace(/(["\\])/g, "\\$1")}"`}`,
    ];
  }
  // RFC 2231 §4: attribute-char excludes "*", "'", "%" and tspecials; percent-encode the rest.
  const encoded = [...encoder.encode(filename)].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9!#$&+\-.^_`|~]/.test(c)
      ? c
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  });
  const sections: string[] = [];
  let current = "UTF-8''";
  for (const piece of encoded) {
    if (current.length + piece.length > 60) {
      sections.push(current);
      current = "";
    }
    current += piece;
  }
  sections.push(current);
  return sections.map((s, i) => `${param}*${i}*=${s}`);
}

/** Joins `value; p1; p2` as a folded header, one parameter per line when long. */
function paramHeader(name: string, value: string, params: string[]): string {
  const items = [value, ...params];
  return fold(name, items.map((item, i) => (i < items.length - 1 ? `${item};` : item)));
}

/** How a text body is sent: as it is (7bit), or quoted-printable. */
function chooseTextEncoding(text: string): "7bit" | "quoted-printable" {
  if (!isAscii(text)) return "quoted-printable";
  // deno-lint-ignore no-control-regex
  if (/[\x00\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)/.test(text)) return "quoted-printable";
  for (const line of text.split(/\r?\n/)) {
    if (line.length > MAX_LINE) return "quoted-printable";
  }
  return "7bit";
}

/**
 * Encodes text as quoted-printable (RFC 2045 §6.7) in UTF-8: line breaks stay
 * hard breaks (CRLF), lines are soft-broken at 76 characters, trailing
 * whitespace and non-printable octets are encoded.
 *
 * @param text The text to encode.
 * @returns The encoded text, lines ending with CRLF.
 *
 * @example
 * ```ts
 * import { quotedPrintable } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(quotedPrintable("café = 1\n"), "caf=C3=A9 =3D 1\r\n");
 * ```
 */
export function quotedPrintable(text: string): string {
  const lines = text.split(/\r\n|\n|\r/);
  const out: string[] = [];
  lines.forEach((line, index) => {
    const bytes = encoder.encode(line);
    let current = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const last = i === bytes.length - 1;
      let piece: string;
      if ((b === 0x20 || b === 0x09) && !last) piece = String.fromCharCode(b);
      else if (b >= 0x21 && b <= 0x7e && b !== 0x3d) piece = String.fromCharCode(b);
      // Encode a leading "." too, so the line survives relays that strip dots badly.
      else piece = `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
      if (current.length === 0 && piece === ".") piece = "=2E";
      // Soft break: "=" at the end of a line makes it at most 76 characters.
      if (current.length + piece.length > 75) {
        out.push(`${current}=${CRLF}`);
        current = "";
      }
      current += piece;
    }
    const isFinalEmpty = index === lines.length - 1 && line === "";
    if (!isFinalEmpty) out.push(current + (index < lines.length - 1 ? CRLF : ""));
  });
  return out.join("");
}

/** Normalises line ends of 7bit text to CRLF. */
function crlf(text: string): string {
  return text.replace(/\r\n|\n|\r/g, CRLF);
}

function randomBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  // "=_" cannot occur in quoted-printable or base64 output (RFC 2045 §5.1 note).
  return `=_netkit_${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A part of the message: fixed text, or a file that is base64-encoded while streaming. */
type Piece = { kind: "text"; bytes: Uint8Array } | { kind: "file"; path: string; size: number };

function base64Size(size: number): number {
  const chars = Math.ceil(size / 3) * 4;
  return chars + Math.ceil(chars / 76) * 2;
}

/**
 * A text part with its headers. Inside a multipart the CRLF before the next
 * boundary belongs to the boundary (RFC 2046 §5.1.1), so one is always added;
 * a single-part message only needs to end with a line break.
 */
function textPart(contentType: string, text: string, inMultipart: boolean): string {
  const encoding = chooseTextEncoding(text);
  const charset = encoding === "7bit" ? "us-ascii" : "utf-8";
  let body = encoding === "7bit" ? crlf(text) : quotedPrintable(text);
  if (inMultipart || !body.endsWith(CRLF)) body += CRLF;
  return `Content-Type: ${contentType}; charset=${charset}${CRLF}` +
    `Content-Transfer-Encoding: ${encoding}${CRLF}${CRLF}${body}`;
}

/**
 * Composes a message from its parts. Files are only looked at (for their
 * sizes) here; they are read, in chunks, when the message is streamed.
 *
 * @param options The message's addresses, subject, bodies, attachments and extra headers.
 * @returns A {@linkcode ComposedMessage} that streams the message.
 *
 * @example
 * ```ts
 * import { composeMessage } from "./mime.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const message = await composeMessage({
 *   from: "Alice <alice@example.com>",
 *   to: ["bob@example.com"],
 *   subject: "Hi",
 *   text: "Hello, Bob.\n",
 * });
 * const text = await new Response(message.stream()).text();
 * assert(text.includes("Subject: Hi\r\n"));
 * assertEquals(new TextEncoder().encode(text).length, message.size);
 * ```
 */
export async function composeMessage(options: ComposeOptions): Promise<ComposedMessage> {
  const from = parseMailbox(options.from);
  const to = options.to ?? [];
  const cc = options.cc ?? [];
  const recipients = [...to, ...cc].map(parseMailbox);
  const extra = options.headers ?? [];
  for (const [name, value] of extra) {
    assertHeaderName(name);
    assertNoLineBreak(`header "${name}"`, value);
  }
  const smtpUtf8 = [from, ...recipients].some((box) => !isAscii(box.address));

  const headers: Array<[string, string]> = [];
  const overridden = new Set(extra.map(([name]) => name.toLowerCase()));
  const add = (name: string, line: string) => {
    if (!overridden.has(name.toLowerCase())) headers.push([name, line]);
  };
  add("Date", `Date: ${rfc5322Date(options.date ?? new Date())}${CRLF}`);
  add("From", encodeAddressHeader("From", [options.from]));
  if (to.length > 0) add("To", encodeAddressHeader("To", to));
  if (cc.length > 0) add("Cc", encodeAddressHeader("Cc", cc));
  if (options.subject !== undefined) add("Subject", encodeHeader("Subject", options.subject));
  const domain = options.messageIdDomain ?? (from.address.split("@")[1] || "localhost");
  add("Message-ID", `Message-ID: <${crypto.randomUUID()}@${domain}>${CRLF}`);
  add("MIME-Version", `MIME-Version: 1.0${CRLF}`);
  for (const [name, value] of extra) headers.push([name, encodeHeader(name, value)]);
  const head = headers.map(([, line]) => line).join("");

  const pieces: Piece[] = [];
  const text = (s: string) => pieces.push({ kind: "text", bytes: encoder.encode(s) });

  const bodyPart = (inMultipart: boolean): string => {
    if (options.html !== undefined && options.text !== undefined) {
      const boundary = randomBoundary();
      return `Content-Type: multipart/alternative; boundary="${boundary}"${CRLF}${CRLF}` +
        `--${boundary}${CRLF}${textPart("text/plain", options.text, true)}` +
        `--${boundary}${CRLF}${textPart("text/html", options.html, true)}` +
        `--${boundary}--${CRLF}`;
    }
    if (options.html !== undefined) return textPart("text/html", options.html, inMultipart);
    return textPart("text/plain", options.text ?? "", inMultipart);
  };

  const attachments = options.attachments ?? [];
  if (attachments.length === 0) {
    text(head + bodyPart(false));
  } else {
    const boundary = randomBoundary();
    text(
      head + `Content-Type: multipart/mixed; boundary="${boundary}"${CRLF}${CRLF}` +
        `This is a multi-part message in MIME format.${CRLF}` +
        `--${boundary}${CRLF}${bodyPart(true)}`,
    );
    for (const attachment of attachments) {
      // Check names and types first: a refused header must fail before any file access.
      const filename = attachment.filename ?? attachment.path.split(/[\\/]/).pop() ?? "file";
      assertNoLineBreak(`attachment name "${filename}"`, filename);
      const type = attachment.contentType ?? contentTypeFor(filename);
      assertNoLineBreak(`attachment type "${type}"`, type);
      if (!/^[\w.+-]+\/[\w.+-]+$/.test(type)) {
        throw new TypeError(`Cannot use attachment type "${type}": it is not type/subtype`);
      }
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(attachment.path);
      } catch (err) {
        throw new Error(
          `Cannot attach "${attachment.path}": ${err instanceof Error ? err.message : err}`,
          { cause: err },
        );
      }
      if (!info.isFile) throw new TypeError(`Cannot attach "${attachment.path}": not a file`);
      text(
        `--${boundary}${CRLF}` +
          paramHeader("Content-Type", type, filenameParam("name", filename)) +
          `Content-Transfer-Encoding: base64${CRLF}` +
          paramHeader("Content-Disposition", "attachment", filenameParam("filename", filename)) +
          CRLF,
      );
      // An empty file still needs the line break that the delimiter after it takes (RFC 2046 §5.1.1).
      if (info.size === 0) text(CRLF);
      else pieces.push({ kind: "file", path: attachment.path, size: info.size });
    }
    text(`--${boundary}--${CRLF}`);
  }

  const size = pieces.reduce(
    (sum, p) => sum + (p.kind === "text" ? p.bytes.length : base64Size(p.size)),
    0,
  );
  return {
    size,
    eightBit: false,
    smtpUtf8,
    stream: () => piecesStream(pieces),
  };
}

function piecesStream(pieces: Piece[]): ReadableStream<Uint8Array> {
  const iterator = generatePieces(pieces);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await iterator.return(undefined);
    },
  }, { highWaterMark: 0 });
}

async function* generatePieces(pieces: Piece[]): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) {
    if (piece.kind === "text") {
      yield piece.bytes;
      continue;
    }
    using file = await Deno.open(piece.path);
    const buffer = new Uint8Array(READ_CHUNK);
    let filled = 0;
    let total = 0;
    while (true) {
      const n = await file.read(buffer.subarray(filled));
      if (n !== null) {
        filled += n;
        total += n;
      }
      // Encode only whole 57-byte lines until the end of the file.
      if (n === null || filled === buffer.length) {
        const whole = n === null ? filled : filled - (filled % B64_LINE_BYTES);
        if (whole > 0) yield base64Lines(buffer.subarray(0, whole));
        buffer.copyWithin(0, whole, filled);
        filled -= whole;
        if (n === null) break;
      }
    }
    if (total !== piece.size) {
      throw new Error(`Cannot attach "${piece.path}": the file changed size while being sent`);
    }
  }
}

/** Reused by {@linkcode base64Lines}: fewer short-lived buffers keep the peak memory down. */
let base64Scratch = new Uint8Array(0);

/** Base64 of `bytes` (whole 57-byte lines, except perhaps the last) in 76-column CRLF lines. */
function base64Lines(bytes: Uint8Array): Uint8Array {
  // One encoding call for the whole chunk, then the lines are cut from it: a call per
  // 57-byte line costs more than the encoding itself.
  const text = bytes.toBase64();
  if (base64Scratch.length < text.length) base64Scratch = new Uint8Array(text.length);
  const length = encoder.encodeInto(text, base64Scratch).written;
  const flat = base64Scratch.subarray(0, length);
  const out = new Uint8Array(base64Size(bytes.length));
  let o = 0;
  for (let i = 0; i < flat.length; i += 76) {
    const line = flat.subarray(i, Math.min(i + 76, flat.length));
    out.set(line, o);
    o += line.length;
    out[o++] = 13;
    out[o++] = 10;
  }
  return out;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * Formats a date as RFC 5322 §3.3 `date-time`, in UTC.
 *
 * @param date The time.
 * @returns e.g. `Mon, 02 Jan 2006 15:04:05 +0000`.
 *
 * @example
 * ```ts
 * import { rfc5322Date } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(rfc5322Date(new Date(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
 * ```
 */
export function rfc5322Date(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[date.getUTCDay()]}, ${p(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ` +
    `${date.getUTCFullYear()} ${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:` +
    `${p(date.getUTCSeconds())} +0000`;
}

/**
 * Finds where a message's header block ends: at its first empty line
 * (RFC 5322 §2.1), with CRLF or bare LF line ends.
 *
 * @param bytes The start of a message.
 * @returns Where the header block ends (its last line end included) and
 *   where the body starts, or `undefined` when no empty line is in `bytes`.
 *
 * @example
 * ```ts
 * import { findHeaderEnd } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const bytes = new TextEncoder().encode("Subject: x\r\n\r\nbody");
 * assertEquals(findHeaderEnd(bytes), { headEnd: 12, bodyStart: 14 });
 * ```
 */
export function findHeaderEnd(
  bytes: Uint8Array,
): { headEnd: number; bodyStart: number } | undefined {
  // A message that starts with an empty line has no header.
  if (bytes[0] === 10) return { headEnd: 0, bodyStart: 1 };
  if (bytes[0] === 13 && bytes[1] === 10) return { headEnd: 0, bodyStart: 2 };
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 10) continue;
    if (bytes[i + 1] === 10) return { headEnd: i + 1, bodyStart: i + 2 };
    if (bytes[i + 1] === 13 && bytes[i + 2] === 10) return { headEnd: i + 1, bodyStart: i + 3 };
  }
  return undefined;
}

/**
 * Wraps a ready message file (e.g. a `.eml`) as a {@linkcode ComposedMessage},
 * sent as it is. The file is scanned once for 8-bit octets, in chunks.
 *
 * @param path The message file.
 * @returns The message, streamed from the file each time.
 *
 * @example
 * ```ts
 * import { messageFromFile } from "./mime.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "Subject: x\r\n\r\nhi\r\n");
 * const message = await messageFromFile(path);
 * assertEquals(message.size, 18);
 * assert(!message.eightBit);
 * await Deno.remove(path);
 * ```
 */
export async function messageFromFile(path: string): Promise<ComposedMessage> {
  let size = 0;
  let eightBit = false;
  let headerUtf8 = false;
  let inHeader = true;
  let previous = 0;
  try {
    using file = await Deno.open(path);
    const buffer = new Uint8Array(1 << 16);
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      for (let i = 0; i < n; i++) {
        const b = buffer[i]!;
        if (b >= 0x80) {
          eightBit = true;
          if (inHeader) headerUtf8 = true;
        }
        // The header block ends at the first empty line.
        if (b === 10 && (previous === 10 || (previous === 13 && buffer[i - 2] === 10))) {
          inHeader = false;
        }
        previous = b;
      }
      size += n;
    }
  } catch (err) {
    throw new Error(`Cannot read message "${path}": ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }
  return {
    size,
    eightBit,
    smtpUtf8: headerUtf8,
    stream: () => fileStream(path),
  };
}

function fileStream(path: string): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      file ??= await Deno.open(path);
      const buffer = new Uint8Array(1 << 16);
      const n = await file.read(buffer);
      if (n === null) {
        file.close();
        controller.close();
      } else {
        controller.enqueue(buffer.subarray(0, n));
      }
    },
    cancel() {
      file?.close();
    },
  }, { highWaterMark: 0 });
}

/**
 * Turns a message stream into an SMTP DATA section (RFC 5321 §4.5.2 and
 * §2.3.8): every line ends with CRLF (bare LF and bare CR become CRLF), a
 * line starting with "." gets another ".", and the `.` line ends the data.
 *
 * @param message The message octets.
 * @returns The octets to write after the server's 354 reply.
 *
 * @example
 * ```ts
 * import { smtpData } from "./mime.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const data = await new Response(smtpData(new Response(".a\nb").body!)).text();
 * assertEquals(data, "..a\r\nb\r\n.\r\n");
 * ```
 */
export function smtpData(message: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let atLineStart = true;
  let pendingCr = false;
  let scratch = new Uint8Array(0);
  return message.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        // Worst case every octet doubles ("\n" → "\r\n", "." → ".."). The worst-case buffer is
        // reused and each chunk leaves as an exact copy: half the short-lived memory.
        if (scratch.length < chunk.length * 2 + 2) scratch = new Uint8Array(chunk.length * 2 + 2);
        const out = scratch;
        let o = 0;
        for (let i = 0; i < chunk.length; i++) {
          const b = chunk[i]!;
          if (pendingCr) {
            pendingCr = false;
            out[o++] = 13;
            out[o++] = 10;
            atLineStart = true;
            if (b === 10) continue;
          }
          if (b === 13) {
            pendingCr = true;
            continue;
          }
          if (b === 10) {
            out[o++] = 13;
            out[o++] = 10;
            atLineStart = true;
            continue;
          }
          if (atLineStart && b === 0x2e) out[o++] = 0x2e;
          out[o++] = b;
          atLineStart = false;
        }
        if (o > 0) controller.enqueue(out.slice(0, o));
      },
      flush(controller) {
        const tail = pendingCr || !atLineStart ? "\r\n.\r\n" : ".\r\n";
        controller.enqueue(encoder.encode(tail));
      },
    }),
  );
}
