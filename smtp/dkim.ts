/**
 * DKIM signing (RFC 6376) with `rsa-sha256` and `ed25519-sha256` (RFC 8463),
 * `simple` and `relaxed` canonicalizations.
 *
 * {@linkcode dkimSign} streams: the message is read once, in chunks, through
 * the body canonicalizer into an incremental SHA-256, so an attachment of any
 * size is signed in constant memory. The signature goes in front of the
 * message, so that pass runs before the message is sent; the message is then
 * streamed again behind the `DKIM-Signature` header.
 *
 * @module
 */
import { createHash, createPrivateKey, type KeyObject, sign } from "node:crypto";
import { type ComposedMessage, findHeaderEnd } from "./mime.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A canonicalization algorithm (RFC 6376 §3.4). */
export type Canonicalization = "simple" | "relaxed";

/**
 * The header fields signed by default, when present: those RFC 6376 §5.4.1
 * recommends, and the MIME ones, whose change would alter the body's meaning.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  "From",
  "Reply-To",
  "Subject",
  "Date",
  "To",
  "Cc",
  "Message-ID",
  "In-Reply-To",
  "References",
  "MIME-Version",
  "Content-Type",
  "Content-Transfer-Encoding",
];

/** Options of {@linkcode dkimSign}. */
export interface DkimOptions {
  /** The signing domain (`d=`). */
  domain: string;
  /** The selector (`s=`): the key's DNS record is `<selector>._domainkey.<domain>`. */
  selector: string;
  /**
   * The private key: PEM (PKCS#8, or PKCS#1 for RSA), or for Ed25519 also the
   * base64 of its 32-byte seed, as dkimpy's and OpenDKIM's key generators write it.
   */
  privateKey: string;
  /** Header fields to sign, when present (`From` always). @default DEFAULT_SIGNED_HEADERS */
  headers?: readonly string[];
  /** Header canonicalization. @default "relaxed" */
  headerCanonicalization?: Canonicalization;
  /** Body canonicalization. @default "relaxed" */
  bodyCanonicalization?: Canonicalization;
  /** The signature time (`t=`). @default now */
  time?: Date;
}

/**
 * Canonicalizes a message body in chunks (RFC 6376 §3.4.3, §3.4.4) and hashes
 * it. Line ends are normalised first, as `smtpData` does on the wire: bare CR
 * and bare LF become CRLF.
 */
class BodyHasher {
  readonly #relaxed: boolean;
  readonly #hash = createHash("sha256");
  #pendingCr = false;
  /** Line ends held back: they may be trailing empty lines, which are ignored. */
  #pendingLines = 0;
  #pendingSpace = false;
  #wroteContent = false;
  readonly #out = new Uint8Array(1 << 16);
  #o = 0;

  constructor(relaxed: boolean) {
    this.#relaxed = relaxed;
  }

  #emit(byte: number): void {
    if (this.#o === this.#out.length) this.#flushOut();
    this.#out[this.#o++] = byte;
  }

  #emitRun(bytes: Uint8Array): void {
    if (this.#o + bytes.length > this.#out.length) this.#flushOut();
    if (bytes.length > this.#out.length) this.#hash.update(bytes);
    else {
      this.#out.set(bytes, this.#o);
      this.#o += bytes.length;
    }
  }

  #flushOut(): void {
    this.#hash.update(this.#out.subarray(0, this.#o));
    this.#o = 0;
  }

  #lineEnd(): void {
    // Relaxed: whitespace at the end of a line is ignored.
    this.#pendingSpace = false;
    this.#pendingLines++;
  }

  update(chunk: Uint8Array): void {
    const relaxed = this.#relaxed;
    let i = 0;
    while (i < chunk.length) {
      const b = chunk[i]!;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        this.#lineEnd();
        if (b === 10) {
          i++;
          continue;
        }
      }
      if (b === 13) {
        this.#pendingCr = true;
        i++;
        continue;
      }
      if (b === 10) {
        this.#lineEnd();
        i++;
        continue;
      }
      if (relaxed && (b === 32 || b === 9)) {
        // Relaxed: a run of whitespace inside a line becomes one space.
        this.#pendingSpace = true;
        i++;
        continue;
      }
      for (; this.#pendingLines > 0; this.#pendingLines--) {
        this.#emit(13);
        this.#emit(10);
      }
      if (this.#pendingSpace) {
        this.#emit(32);
        this.#pendingSpace = false;
      }
      // Copy the run of ordinary octets at once (a base64 line is one run).
      let j = i + 1;
      while (j < chunk.length) {
        const c = chunk[j]!;
        if (c === 13 || c === 10 || (relaxed && (c === 32 || c === 9))) break;
        j++;
      }
      this.#emitRun(chunk.subarray(i, j));
      this.#wroteContent = true;
      i = j;
    }
  }

  /** The base64 body hash (`bh=`). */
  digest(): string {
    // Both: trailing empty lines are ignored, and a last line gets its CRLF. An
    // empty body is one CRLF under simple, nothing under relaxed.
    if (this.#wroteContent || !this.#relaxed) {
      this.#emit(13);
      this.#emit(10);
    }
    this.#flushOut();
    return this.#hash.digest("base64");
  }
}

/**
 * Canonicalizes a message body (RFC 6376 §3.4.3, §3.4.4) and returns its
 * SHA-256 in base64, the `bh=` value.
 *
 * @param body The body's octets, in any number of chunks.
 * @param canonicalization `simple` or `relaxed`.
 * @returns The body hash, base64.
 *
 * @example
 * ```ts
 * import { bodyHash } from "./dkim.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * // RFC 6376 §3.4.5: both bodies canonicalize to " C\r\nD E\r\n".
 * const a = await bodyHash([new TextEncoder().encode(" C \r\nD \t E\r\n\r\n\r\n")], "relaxed");
 * const b = await bodyHash([new TextEncoder().encode(" C\r\nD E\r\n")], "relaxed");
 * assertEquals(a, b);
 * ```
 */
export async function bodyHash(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  canonicalization: Canonicalization,
): Promise<string> {
  const hasher = new BodyHasher(canonicalization === "relaxed");
  for await (const chunk of body) hasher.update(chunk);
  return hasher.digest();
}

/** One header field as it appears: its name and its whole text, folding included, CRLF-ended. */
interface HeaderField {
  name: string;
  raw: string;
}

/** Splits a header block (CRLF, or bare LF, line ends) into fields. */
function parseHeaderBlock(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const line of block.replace(/\r?\n|\r/g, "\r\n").split(/(?<=\r\n)/)) {
    if (line === "" || line === "\r\n") continue;
    if ((line.startsWith(" ") || line.startsWith("\t")) && fields.length > 0) {
      fields[fields.length - 1]!.raw += line;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new TypeError(`Cannot sign: malformed header line "${line.trim()}"`);
    fields.push({ name: line.slice(0, colon), raw: line });
  }
  return fields;
}

/**
 * Canonicalizes one header field (RFC 6376 §3.4.1, §3.4.2), CRLF included.
 *
 * @param raw The field as it appears, folding and final CRLF included.
 * @param canonicalization `simple` or `relaxed`.
 * @returns The canonical form.
 *
 * @example
 * ```ts
 * import { canonicalizeHeader } from "./dkim.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(canonicalizeHeader("SubJect : a \r\n\t b  \r\n", "relaxed"), "subject:a b\r\n");
 * ```
 */
export function canonicalizeHeader(raw: string, canonicalization: Canonicalization): string {
  if (canonicalization === "simple") return raw;
  const colon = raw.indexOf(":");
  const name = raw.slice(0, colon).replace(/[ \t]+$/, "").toLowerCase();
  const value = raw.slice(colon + 1).replace(/\r\n/g, "").replace(/[ \t]+/g, " ").trim();
  return `${name}:${value}\r\n`;
}

/** Reads the private key; Ed25519 also from a bare base64 seed. */
function loadKey(text: string): { key: KeyObject; algorithm: "rsa-sha256" | "ed25519-sha256" } {
  let key: KeyObject;
  const trimmed = text.trim();
  try {
    if (/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) {
      // PKCS#8 for Ed25519 (RFC 8410) is a fixed prefix and the 32-byte seed.
      const der = new Uint8Array([
        ...Uint8Array.fromHex("302e020100300506032b657004220420"),
        ...Uint8Array.fromBase64(trimmed),
      ]);
      key = createPrivateKey({ key: der as unknown as Buffer, format: "der", type: "pkcs8" });
    } else key = createPrivateKey(trimmed);
  } catch (err) {
    throw new TypeError(
      `Cannot read the DKIM key: ${err instanceof Error ? err.message : err}` +
        " (expected a PEM private key, RSA or Ed25519)",
    );
  }
  if (key.asymmetricKeyType === "rsa") return { key, algorithm: "rsa-sha256" };
  if (key.asymmetricKeyType === "ed25519") return { key, algorithm: "ed25519-sha256" };
  throw new TypeError(
    `Cannot sign with a key of type "${key.asymmetricKeyType}": DKIM takes RSA (rsa-sha256) or Ed25519 (ed25519-sha256)`,
  );
}

/**
 * Splits a message stream into its header block (returned as text) and
 * feeds the body to `onBody`.
 */
async function splitMessage(
  stream: ReadableStream<Uint8Array>,
  onBody: (chunk: Uint8Array) => void,
): Promise<string> {
  let head = new Uint8Array(0);
  let inHead = true;
  for await (const chunk of stream) {
    if (!inHead) {
      onBody(chunk);
      continue;
    }
    const joined = new Uint8Array(head.length + chunk.length);
    joined.set(head);
    joined.set(chunk, head.length);
    const end = findHeaderEnd(joined);
    if (end === undefined) {
      if (joined.length > 1 << 20) throw new TypeError("Cannot sign: the header is over 1 MiB");
      head = joined;
      continue;
    }
    inHead = false;
    onBody(joined.subarray(end.bodyStart));
    head = joined.subarray(0, end.headEnd);
  }
  // A message without an empty line is all header (RFC 5322 §3.5).
  return decoder.decode(head);
}

/**
 * Signs a message with DKIM: returns the same message with a
 * `DKIM-Signature` header in front. The message is streamed once to hash its
 * body (constant memory), then again whenever the result is streamed.
 *
 * @param message The message, e.g. from `composeMessage` or `messageFromFile`.
 * @param options Domain, selector, key, signed headers and canonicalization.
 * @returns The signed message.
 *
 * @example
 * ```ts
 * import { dkimSign } from "./dkim.ts";
 * import { composeMessage } from "./mime.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * import { generateKeyPairSync } from "node:crypto";
 * const { privateKey } = generateKeyPairSync("ed25519");
 * const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
 * const signed = await dkimSign(message, {
 *   domain: "example.com",
 *   selector: "mail",
 *   privateKey: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
 * });
 * const text = await new Response(signed.stream()).text();
 * assert(text.startsWith("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com;"));
 * ```
 */
export async function dkimSign(
  message: ComposedMessage,
  options: DkimOptions,
): Promise<ComposedMessage> {
  const { key, algorithm } = loadKey(options.privateKey);
  for (const [what, value] of [["domain", options.domain], ["selector", options.selector]]) {
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(value!)) {
      throw new TypeError(`Cannot sign: the DKIM ${what} "${value}" is not a domain name`);
    }
  }
  const headerCanon = options.headerCanonicalization ?? "relaxed";
  const bodyCanon = options.bodyCanonicalization ?? "relaxed";
  const hasher = new BodyHasher(bodyCanon === "relaxed");
  const fields = parseHeaderBlock(await splitMessage(message.stream(), (c) => hasher.update(c)));
  const bh = hasher.digest();

  // RFC 6376 §5.4.2: of several fields with a name, sign from the bottom up.
  const wanted = [
    ...new Set([
      "from",
      ...(options.headers ?? DEFAULT_SIGNED_HEADERS)
        .map((h) => h.trim().toLowerCase()).filter((h) => h !== ""),
    ]),
  ];
  for (const name of wanted) {
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) {
      throw new TypeError(`Cannot sign header "${name}": not a header field name`);
    }
  }
  const signedNames: string[] = [];
  const signedText: string[] = [];
  for (const name of wanted) {
    const instances = fields.filter((f) => f.name.trim().toLowerCase() === name).reverse();
    for (const field of instances) {
      signedNames.push(name);
      signedText.push(canonicalizeHeader(field.raw, headerCanon));
    }
  }
  if (!signedNames.includes("from")) throw new TypeError("Cannot sign: the message has no From");

  const time = Math.floor((options.time ?? new Date()).getTime() / 1000);
  const unsigned = `DKIM-Signature: v=1; a=${algorithm}; c=${headerCanon}/${bodyCanon}; ` +
    `d=${options.domain}; s=${options.selector};\r\n\tt=${time}; h=${signedNames.join(":")};\r\n` +
    `\tbh=${bh};\r\n\tb=`;
  // §3.7: the signature header itself is hashed last, without its final CRLF.
  const data = encoder.encode(
    signedText.join("") + canonicalizeHeader(`${unsigned}\r\n`, headerCanon).replace(/\r\n$/, ""),
  );
  const signature = algorithm === "rsa-sha256"
    ? sign("sha256", data, key)
    // RFC 8463 §3: Ed25519 signs the SHA-256 digest of the data (PureEdDSA over the hash).
    : sign(null, createHash("sha256").update(data).digest(), key);
  const header = encoder.encode(`${unsigned}${signature.toString("base64")}\r\n`);
  return {
    size: header.length + message.size,
    eightBit: message.eightBit,
    smtpUtf8: message.smtpUtf8,
    stream: () => prepend(header, message.stream()),
  };
}

function prepend(head: Uint8Array, rest: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = rest.getReader();
  let sentHead = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sentHead) {
        sentHead = true;
        controller.enqueue(head);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
