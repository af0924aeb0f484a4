/**
 * An SMTP client session (RFC 5321) with STARTTLS (RFC 3207), implicit TLS
 * (RFC 8314), AUTH PLAIN / LOGIN / CRAM-MD5 / XOAUTH2 (RFC 4954), PIPELINING
 * (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) and
 * DSN (RFC 3461). One session sends any number of messages.
 *
 * The network is reached through an {@linkcode SmtpTransport}, so tests can
 * inject a fake one; {@linkcode denoTransport} uses `Deno.connect`,
 * `Deno.connectTls` and `Deno.startTls`.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { Deadline } from "../lib/deadline.ts";
import { type ComposedMessage, smtpData } from "./mime.ts";
import { nodeTransport } from "./_tls.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The phases of a session, in order; an {@linkcode SmtpError} names the one that failed. */
export type SmtpPhase =
  | "connect"
  | "greeting"
  | "ehlo"
  | "tls"
  | "auth"
  | "mail"
  | "rcpt"
  | "data"
  | "quit";

/** A server reply: its code, its enhanced status code (RFC 3463) and its text lines. */
export interface SmtpReply {
  /** The three-digit reply code. */
  code: number;
  /** The enhanced status code such as `5.7.8`, when the server sent one. */
  enhanced?: string;
  /** The text of each line, without the code. */
  lines: string[];
}

/**
 * An SMTP session failure: which phase failed and, when the server refused,
 * its reply.
 *
 * @example
 * ```ts
 * import { SmtpError } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const err = new SmtpError("MAIL FROM refused", "mail", { code: 550, lines: ["no"] });
 * assertEquals(err.phase, "mail");
 * assertEquals(err.code, 550);
 * ```
 */
export class SmtpError extends Error {
  /** The phase that failed. */
  readonly phase: SmtpPhase;
  /** The server's reply, when the failure is a refusal. */
  readonly reply: SmtpReply | undefined;

  /**
   * Creates an error for a failed phase.
   *
   * @param message What failed, then why.
   * @param phase The phase that failed.
   * @param reply The server's reply, if any.
   * @param options The standard error options (`cause`).
   */
  constructor(message: string, phase: SmtpPhase, reply?: SmtpReply, options?: ErrorOptions) {
    super(message, options);
    this.name = "SmtpError";
    this.phase = phase;
    this.reply = reply;
  }

  /**
   * The reply code, or `undefined` when the failure was not a server reply.
   *
   * @returns The three-digit code.
   */
  get code(): number | undefined {
    return this.reply?.code;
  }
}

/** A byte stream to the server: what `Deno.Conn` offers, and what a fake must offer. */
export interface SmtpConn {
  /**
   * Reads into `p`.
   *
   * @param p The buffer.
   * @returns The number of bytes read, or `null` at the end of the stream.
   */
  read(p: Uint8Array): Promise<number | null>;
  /**
   * Writes from `p`.
   *
   * @param p The bytes.
   * @returns How many bytes were written.
   */
  write(p: Uint8Array): Promise<number>;
  /** Closes the stream. */
  close(): void;
}

/** TLS settings for a connection. */
export interface TlsOptions {
  /** The name the certificate must match. */
  hostname: string;
  /** Extra trusted CA certificates in PEM. @default [] */
  caCerts?: string[];
  /** Do not check the certificate's name against `hostname` (the chain is still verified). @default false */
  skipNameCheck?: boolean;
  /**
   * Accept only a certificate with one of these SHA-256 fingerprints
   * (`SHA256:` and hex or base64), whatever its issuer and names. @default []
   */
  fingerprints?: string[];
  /** Skip every check of the server's certificate (as `curl -k`). @default false */
  insecure?: boolean;
}

/** How a session reaches the server; inject a fake one to test without a network. */
export interface SmtpTransport {
  /**
   * Opens a connection, over TLS from the start when `tls` is given.
   *
   * @param hostname The host to connect to.
   * @param port The TCP port.
   * @param tls TLS settings for implicit TLS, or `undefined` for plain TCP.
   * @returns The connection.
   */
  connect(hostname: string, port: number, tls?: TlsOptions): Promise<SmtpConn>;
  /**
   * Upgrades a connection to TLS (after the server's 220 to STARTTLS).
   *
   * @param conn A connection that `connect` returned.
   * @param tls TLS settings.
   * @returns The TLS connection.
   */
  startTls(conn: SmtpConn, tls: TlsOptions): Promise<SmtpConn>;
}

/**
 * The transport on Deno's own TCP and TLS (`Deno.connect`, `Deno.connectTls`, `Deno.startTls`).
 *
 * @example
 * ```ts
 * import { denoTransport } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const conn = await denoTransport.connect("127.0.0.1", listener.addr.port);
 * using server = await accepted;
 * await server.write(new TextEncoder().encode("220 ready\r\n"));
 * const buf = new Uint8Array(64);
 * const n = await conn.read(buf);
 * assertEquals(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "220 ready\r\n");
 * conn.close();
 * ```
 */
export const denoTransport: SmtpTransport = {
  async connect(hostname, port, tls) {
    if (!tls) {
      const conn = await Deno.connect({ hostname, port });
      // Commands are small and answered one by one (or one group, RFC 2920): don't let
      // Nagle's algorithm hold them back.
      conn.setNoDelay(true);
      return conn;
    }
    return Deno.connectTls({
      hostname,
      port,
      caCerts: tls.caCerts ?? [],
      unsafelyDisableHostnameVerification: tls.skipNameCheck ?? false,
    });
  },
  startTls(conn, tls) {
    return Deno.startTls(conn as Deno.TcpConn, {
      hostname: tls.hostname,
      caCerts: tls.caCerts ?? [],
      unsafelyDisableHostnameVerification: tls.skipNameCheck ?? false,
    });
  },
};

/** A line of the transcript: `->` sent, `<-` received, `**` a note from the client. */
export type TranscriptDirection = "->" | "<-" | "**";

/** Time limits in milliseconds per phase (RFC 5321 §4.5.3.2 gives the server-side minimums). */
export interface SmtpTimeouts {
  /** TCP connect and TLS handshake. @default 30000 */
  connect?: number;
  /** Waiting for each reply to a command, and for the greeting. @default 300000 */
  command?: number;
  /** Writing the message and waiting for the reply after the final dot. @default 600000 */
  data?: number;
}

/** Options of {@linkcode SmtpSession.connect}. */
export interface ConnectOptions {
  /** The server's host name or IP address. */
  hostname: string;
  /** The TCP port. @default 465 with `implicitTls`, else 25 */
  port?: number;
  /** Connect with TLS from the start (RFC 8314, port 465). @default false */
  implicitTls?: boolean;
  /** Extra CA certificates in PEM, trusted for this server. @default [] */
  caCerts?: string[];
  /** Skip the certificate's name check (the chain is still verified). @default false */
  skipNameCheck?: boolean;
  /**
   * Accept only a certificate with one of these SHA-256 fingerprints
   * (`SHA256:` and hex or base64), whatever its issuer and names. @default []
   */
  fingerprints?: string[];
  /** Skip every check of the server's certificate (as `curl -k`). @default false */
  insecure?: boolean;
  /** Name to check the certificate against. @default hostname */
  tlsName?: string;
  /** The name sent in EHLO / HELO. @default the local host name */
  ehloName?: string;
  /** Time limits. @default see {@linkcode SmtpTimeouts} */
  timeouts?: SmtpTimeouts;
  /**
   * The transport. @default `node:net` and `node:tls` with `implicitTls`,
   * `caCerts`, `fingerprints`, `insecure` or `skipNameCheck` (and in
   * `openSession` unless `startTls` is `"none"`), else `denoTransport`: Deno's
   * own TLS refuses a trusted certificate used as the server's own
   * (`CaUsedAsEndEntity`), cannot pin or skip verification, and cannot show
   * the fingerprint of a refused certificate.
   */
  transport?: SmtpTransport;
  /** Receives each transcript line; AUTH secrets are masked. @default none */
  onTranscript?: (direction: TranscriptDirection, line: string) => void;
  /**
   * Send PLAIN, LOGIN or XOAUTH2 credentials over an unencrypted connection
   * to a host other than the loopback one. Off, they are refused before any
   * byte of them is sent, as msmtp refuses them. @default false
   */
  allowPlaintextAuth?: boolean;
}

/** Credentials for {@linkcode SmtpSession.authenticate}. */
export interface Credentials {
  /** The user name. */
  user: string;
  /** The password, or for XOAUTH2 the OAuth 2.0 access token. */
  password: string;
  /**
   * The SASL mechanism. Without it, the best the server offers:
   * CRAM-MD5, then PLAIN, then LOGIN (XOAUTH2 only when asked for).
   * @default the best offered
   */
  mechanism?: "PLAIN" | "LOGIN" | "CRAM-MD5" | "XOAUTH2";
}

/** Delivery Status Notification requests (RFC 3461), sent only when the server offers DSN. */
export interface DsnOptions {
  /** When to notify, per recipient. @default server's choice */
  notify?: Array<"NEVER" | "SUCCESS" | "FAILURE" | "DELAY">;
  /** Return the full message or the headers only. @default server's choice */
  ret?: "FULL" | "HDRS";
  /** The envelope identifier. @default none */
  envid?: string;
  /** Send each recipient as ORCPT too. @default false */
  orcpt?: boolean;
}

/** Options of {@linkcode SmtpSession.send}. */
export interface SendOptions {
  /** Write MAIL, RCPT and DATA at once when the server offers PIPELINING. @default true */
  pipelining?: boolean;
  /** DSN parameters. @default none */
  dsn?: DsnOptions;
  /** Stop after this phase, for tests of a server (`--quit-after`). @default none */
  stopAfter?: "mail" | "rcpt";
}

/** A recipient the server refused, with its reply. */
export interface RejectedRecipient {
  /** The address. */
  recipient: string;
  /** The server's reply to RCPT TO. */
  reply: SmtpReply;
}

/** What {@linkcode SmtpSession.send} reports. */
export interface SendResult {
  /** The recipients the server accepted. */
  accepted: string[];
  /** The recipients the server refused. */
  rejected: RejectedRecipient[];
  /** The reply after the final dot, or to the last command run (with `stopAfter`). */
  reply: SmtpReply;
}

/** The envelope of one message (RFC 5321 §2.3.1). */
export interface Envelope {
  /** The reverse-path: the sender address, `""` for a null sender. */
  from: string;
  /** The forward-paths: one or more recipient addresses. */
  to: string[];
}

function localHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

function replyText(reply: SmtpReply): string {
  return `${reply.code} ${reply.enhanced ? `${reply.enhanced} ` : ""}${reply.lines.join(" ")}`
    .trim();
}

/** RFC 3461 §4: xtext encoding of `+`, `=` and non-printables. */
function xtext(value: string): string {
  return [...encoder.encode(value)].map((b) =>
    b < 33 || b > 126 || b === 0x2b || b === 0x3d
      ? `+${b.toString(16).toUpperCase().padStart(2, "0")}`
      : String.fromCharCode(b)
  ).join("");
}

function assertAddress(address: string): void {
  // An address goes inside "<...>" on a command line: CR, LF and angle brackets would let it
  // smuggle another command (SMTP command injection).
  if (/[\r\n<>]/.test(address)) {
    throw new TypeError(
      `Cannot use address "${address.replace(/[\r\n]/g, "\\n")}": ` +
        "it contains CR, LF or angle brackets (command injection refused)",
    );
  }
}

/**
 * An SMTP session. Open it with {@linkcode SmtpSession.connect} (or
 * {@linkcode openSession} for connect + EHLO + STARTTLS + AUTH), then
 * {@linkcode SmtpSession.send} messages, then `await using` ends it with QUIT.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./client.ts";
 * import { composeMessage } from "./mime.ts";
 * await using session = await openSession({ hostname: "127.0.0.1", port: 2525 });
 * const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
 * await session.send({ from: "a@example.com", to: ["b@example.com"] }, message);
 * ```
 */
export class SmtpSession implements AsyncDisposable {
  #conn: SmtpConn;
  #buffer = new Uint8Array(0);
  #options: ConnectOptions;
  #capabilities = new Map<string, string>();
  #tls: boolean;
  #closed = false;
  #needsReset = false;
  #greeting: SmtpReply = { code: 0, lines: [] };

  private constructor(conn: SmtpConn, options: ConnectOptions, tls: boolean) {
    this.#conn = conn;
    this.#options = options;
    this.#tls = tls;
  }

  /**
   * Connects to a server and reads its greeting.
   *
   * @param options Where and how to connect.
   * @returns The session, before EHLO.
   */
  static async connect(options: ConnectOptions): Promise<SmtpSession> {
    const transport = chooseTransport(options);
    const implicit = options.implicitTls ?? false;
    const port = options.port ?? (implicit ? 465 : 25);
    const tls = implicit ? tlsOptions(options) : undefined;
    let conn: SmtpConn;
    const limit = options.timeouts?.connect ?? 30_000;
    const attempt = transport.connect(options.hostname, port, tls);
    try {
      using deadline = new Deadline(limit);
      conn = await deadline.race(
        attempt,
        () => new Error(`no connection after ${limit / 1000} s`),
      );
    } catch (err) {
      attempt.then((c) => c.close(), () => {});
      const phase: SmtpPhase = implicit && isTlsError(err) ? "tls" : "connect";
      throw new SmtpError(
        phase === "tls"
          ? `Cannot start TLS with ${options.hostname}:${port}: ${reason(err)}`
          : `Cannot connect to ${options.hostname}:${port}${implicit ? " over TLS" : ""}: ${
            reason(err)
          }`,
        phase,
        undefined,
        { cause: err },
      );
    }
    options.onTranscript?.(
      "**",
      `connected to ${options.hostname}:${port}${implicit ? " (TLS)" : ""}`,
    );
    const session = new SmtpSession(conn, { ...options, transport }, implicit);
    try {
      session.#greeting = await session.#readReply("greeting");
      if (session.#greeting.code !== 220) {
        throw session.#refused("The server refused the session", "greeting", session.#greeting);
      }
    } catch (err) {
      session.close();
      // The handshake of implicit TLS happens on the first read.
      if (implicit && !(err instanceof SmtpError && err.reply) && isTlsError(err)) {
        throw new SmtpError(
          `Cannot start TLS with ${options.hostname}:${port}: ${reason(err)}`,
          "tls",
          undefined,
          { cause: err },
        );
      }
      throw err;
    }
    return session;
  }

  /** The server's greeting (RFC 5321 §4.3.1). */
  get greeting(): SmtpReply {
    return this.#greeting;
  }

  /** `true` once the connection is encrypted. */
  get secure(): boolean {
    return this.#tls;
  }

  /** The EHLO keywords (upper case) and their parameters, e.g. `SIZE` → `"10240000"`. */
  get capabilities(): ReadonlyMap<string, string> {
    return this.#capabilities;
  }

  /** The SASL mechanisms the server offers. */
  get authMechanisms(): string[] {
    return (this.#capabilities.get("AUTH") ?? "").toUpperCase().split(/\s+/).filter(Boolean);
  }

  /**
   * Sends EHLO and records the capabilities; falls back to HELO when the
   * server does not know EHLO (RFC 5321 §3.2).
   *
   * @returns The reply to EHLO (or HELO).
   */
  async hello(): Promise<SmtpReply> {
    const name = this.#options.ehloName ?? localHostname();
    assertAddress(name);
    let reply = await this.#command(`EHLO ${name}`, "ehlo");
    this.#capabilities.clear();
    if (reply.code === 250) {
      for (const line of reply.lines.slice(1)) {
        const [keyword = "", ...rest] = line.trim().split(/\s+/);
        if (keyword !== "") this.#capabilities.set(keyword.toUpperCase(), rest.join(" "));
        // Some old servers write "AUTH=LOGIN PLAIN".
        if (keyword.toUpperCase().startsWith("AUTH=") && !this.#capabilities.has("AUTH")) {
          this.#capabilities.set("AUTH", [keyword.slice(5), ...rest].join(" "));
        }
      }
      return reply;
    }
    if (reply.code >= 500 && reply.code < 600) {
      reply = await this.#command(`HELO ${name}`, "ehlo");
      if (reply.code === 250) return reply;
    }
    throw this.#refused("The server refused EHLO", "ehlo", reply);
  }

  /**
   * Upgrades the session with STARTTLS (RFC 3207): verifies the certificate
   * and its name, then sends EHLO again, since the capabilities before TLS
   * cannot be trusted (§4.2).
   *
   * @returns The reply to the new EHLO.
   */
  async startTls(): Promise<SmtpReply> {
    if (this.#tls) throw new SmtpError("Cannot start TLS: the session is already encrypted", "tls");
    if (!this.#capabilities.has("STARTTLS")) {
      throw new SmtpError("Cannot start TLS: the server does not offer STARTTLS", "tls");
    }
    const reply = await this.#command("STARTTLS", "tls");
    if (reply.code !== 220) throw this.#refused("The server refused STARTTLS", "tls", reply);
    // RFC 3207 §6: anything received before the handshake may be injected; drop it.
    this.#buffer = new Uint8Array(0);
    const transport = this.#options.transport!;
    const limit = this.#options.timeouts?.connect ?? 30_000;
    try {
      this.#conn = await this.#timed(
        transport.startTls(this.#conn, tlsOptions(this.#options)),
        limit,
        "tls",
        "TLS handshake",
      );
      this.#tls = true;
      // Deno's TLS connection does its handshake lazily; complete it now, so that a
      // verification failure is reported here and not at the next reply.
      const handshake = (this.#conn as { handshake?: () => Promise<unknown> }).handshake;
      if (handshake) {
        await this.#timed(handshake.call(this.#conn), limit, "tls", "TLS handshake");
      }
    } catch (err) {
      this.close();
      if (err instanceof SmtpError) throw err;
      throw new SmtpError(
        `Cannot start TLS with ${this.#options.hostname}: ${reason(err)}`,
        "tls",
        undefined,
        { cause: err },
      );
    }
    this.#options.onTranscript?.("**", "TLS started");
    this.#capabilities.clear();
    return await this.hello();
  }

  /**
   * Authenticates with SASL (RFC 4954).
   *
   * @param credentials The user, the password (or token) and the mechanism.
   * @returns The server's 235 reply.
   */
  async authenticate(credentials: Credentials): Promise<SmtpReply> {
    const offered = this.authMechanisms;
    const mechanism = credentials.mechanism ??
      (["CRAM-MD5", "PLAIN", "LOGIN"] as const).find((m) => offered.includes(m));
    if (!mechanism) {
      throw new SmtpError(
        `Cannot authenticate: the server offers no supported mechanism (it offers: ${
          offered.join(" ") || "none"
        })`,
        "auth",
      );
    }
    if (!offered.includes(mechanism)) {
      throw new SmtpError(
        `Cannot authenticate with ${mechanism}: the server offers only ${
          offered.join(" ") || "no AUTH"
        }`,
        "auth",
      );
    }
    // Safe by default: a password in clear text on the network is refused
    // unless asked for. CRAM-MD5 never sends the password itself, and on the
    // loopback interface nothing leaves the machine.
    const hostname = this.#options.hostname;
    if (
      !this.#tls && mechanism !== "CRAM-MD5" && !this.#options.allowPlaintextAuth &&
      !isLoopbackHost(hostname)
    ) {
      throw new SmtpError(
        `Refusing to send ${mechanism} credentials to ${hostname} over an unencrypted connection: ` +
          "use --tls or --tls-on-connect, or --allow-plaintext-auth",
        "auth",
      );
    }
    const { user, password } = credentials;
    const b64 = (text: string) => encoder.encode(text).toBase64();
    let reply: SmtpReply;
    switch (mechanism) {
      case "PLAIN":
        // RFC 4616: authzid NUL authcid NUL passwd, as an initial response.
        reply = await this.#command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`, "auth", {
          mask: "AUTH PLAIN ****",
        });
        break;
      case "LOGIN":
        reply = await this.#command("AUTH LOGIN", "auth");
        if (reply.code === 334) reply = await this.#command(b64(user), "auth", { mask: "****" });
        if (reply.code === 334) {
          reply = await this.#command(b64(password), "auth", { mask: "****" });
        }
        break;
      case "CRAM-MD5": {
        // RFC 2195: the answer is "user HMAC-MD5(password, challenge)" in hex.
        reply = await this.#command("AUTH CRAM-MD5", "auth");
        if (reply.code === 334) {
          const challenge = Uint8Array.fromBase64(reply.lines[0]?.trim() ?? "");
          const digest = createHmac("md5", password).update(challenge).digest("hex");
          reply = await this.#command(b64(`${user} ${digest}`), "auth", { mask: "****" });
        }
        break;
      }
      case "XOAUTH2": {
        // Google's XOAUTH2: on failure the server sends a 334 with a JSON error,
        // and the client answers with an empty line to get the final reply.
        const token = `user=${user}\x01auth=Bearer ${password}\x01\x01`;
        reply = await this.#command(`AUTH XOAUTH2 ${b64(token)}`, "auth", {
          mask: "AUTH XOAUTH2 ****",
        });
        if (reply.code === 334) reply = await this.#command("", "auth");
        break;
      }
    }
    if (reply.code === 334) {
      // A challenge we do not expect: cancel the exchange (RFC 4954 §4).
      reply = await this.#command("*", "auth");
    }
    if (reply.code !== 235) {
      throw this.#refused(`Authentication as "${user}" with ${mechanism} failed`, "auth", reply);
    }
    return reply;
  }

  /**
   * Sends one message: MAIL FROM, RCPT TO for each recipient, DATA. A refused
   * recipient is reported in the result; the message still goes to the
   * others, unless none was accepted. After a failure, the next `send`
   * starts with RSET.
   *
   * @param envelope The sender and the recipients.
   * @param message The message (see `composeMessage` and `messageFromFile`).
   * @param options Pipelining, DSN and `stopAfter`.
   * @returns Accepted and rejected recipients, and the final reply.
   */
  async send(
    envelope: Envelope,
    message: ComposedMessage,
    options: SendOptions = {},
  ): Promise<SendResult> {
    assertAddress(envelope.from);
    envelope.to.forEach(assertAddress);
    if (envelope.to.length === 0) {
      throw new SmtpError("Cannot send: the message has no recipients", "rcpt");
    }
    const caps = this.#capabilities;
    const sizeLimit = Number(caps.get("SIZE") ?? "0");
    if (caps.has("SIZE") && sizeLimit > 0 && message.size > sizeLimit) {
      throw new SmtpError(
        `Cannot send a message of ${message.size} octets: the server accepts at most ${sizeLimit} (SIZE)`,
        "mail",
      );
    }
    const smtpUtf8 = message.smtpUtf8 ||
      [envelope.from, ...envelope.to].some((a) => !isAsciiText(a));
    if (smtpUtf8 && !caps.has("SMTPUTF8")) {
      throw new SmtpError(
        "Cannot send: the message needs SMTPUTF8 (non-ASCII addresses), which the server does not offer",
        "mail",
      );
    }
    if (message.eightBit && !caps.has("8BITMIME") && !smtpUtf8) {
      throw new SmtpError(
        "Cannot send: the message has 8-bit data and the server does not offer 8BITMIME",
        "mail",
      );
    }
    if (this.#needsReset) {
      const reset = await this.#command("RSET", "mail");
      if (reset.code !== 250) throw this.#refused("The server refused RSET", "mail", reset);
      this.#needsReset = false;
    }
    const dsn = caps.has("DSN") ? options.dsn : undefined;
    let mail = `MAIL FROM:<${envelope.from}>`;
    if (caps.has("SIZE")) mail += ` SIZE=${message.size}`;
    if (message.eightBit || smtpUtf8) mail += caps.has("8BITMIME") ? " BODY=8BITMIME" : "";
    if (smtpUtf8) mail += " SMTPUTF8";
    if (dsn?.ret) mail += ` RET=${dsn.ret}`;
    if (dsn?.envid) mail += ` ENVID=${xtext(dsn.envid)}`;
    const rcpts = envelope.to.map((to) => {
      let line = `RCPT TO:<${to}>`;
      if (dsn?.notify?.length) line += ` NOTIFY=${dsn.notify.join(",")}`;
      if (dsn?.orcpt) line += ` ORCPT=rfc822;${xtext(to)}`;
      return line;
    });

    this.#needsReset = true;
    const pipeline = (options.pipelining ?? true) && caps.has("PIPELINING") &&
      options.stopAfter === undefined;
    let mailReply: SmtpReply;
    const rcptReplies: SmtpReply[] = [];
    let dataReply: SmtpReply | undefined;
    if (pipeline) {
      // RFC 2920 §3.1: MAIL, RCPT and DATA may go in one group; replies come in order.
      await this.#writeLines([mail, ...rcpts, "DATA"]);
      mailReply = await this.#readReply("mail");
      for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await this.#readReply("rcpt"));
      dataReply = await this.#readReply("data");
    } else {
      mailReply = await this.#command(mail, "mail");
      if (mailReply.code === 250 && options.stopAfter !== "mail") {
        for (const line of rcpts) rcptReplies.push(await this.#command(line, "rcpt"));
      }
    }
    if (mailReply.code !== 250) {
      await this.#endUnwantedData(dataReply);
      throw this.#refused(`The server refused the sender <${envelope.from}>`, "mail", mailReply);
    }
    const accepted: string[] = [];
    const rejected: RejectedRecipient[] = [];
    rcptReplies.forEach((reply, i) => {
      const recipient = envelope.to[i]!;
      if (reply.code === 250 || reply.code === 251) accepted.push(recipient);
      else {
        rejected.push({ recipient, reply });
        this.#options.onTranscript?.("**", `recipient <${recipient}> refused: ${replyText(reply)}`);
      }
    });
    if (options.stopAfter === "mail") return { accepted, rejected, reply: mailReply };
    if (accepted.length === 0) {
      await this.#endUnwantedData(dataReply);
      const last = rejected[rejected.length - 1]!;
      throw this.#refused(
        `The server refused every recipient (${
          rejected.map((r) => `<${r.recipient}>: ${replyText(r.reply)}`).join("; ")
        })`,
        "rcpt",
        last.reply,
      );
    }
    if (options.stopAfter === "rcpt") {
      return { accepted, rejected, reply: rcptReplies[rcptReplies.length - 1]! };
    }
    dataReply ??= await this.#command("DATA", "data");
    if (dataReply.code !== 354) throw this.#refused("The server refused DATA", "data", dataReply);
    this.#options.onTranscript?.("->", `(message: ${message.size} octets)`);
    await this.#writeData(message.stream());
    const final = await this.#readReply("data", this.#options.timeouts?.data ?? 600_000);
    if (final.code !== 250) {
      throw this.#refused("The server refused the message after the data", "data", final);
    }
    this.#needsReset = false;
    return { accepted, rejected, reply: final };
  }

  /**
   * Sends RSET: forgets the current transaction (RFC 5321 §4.1.1.5).
   *
   * @returns The server's reply.
   */
  async reset(): Promise<SmtpReply> {
    const reply = await this.#command("RSET", "mail");
    this.#needsReset = reply.code !== 250;
    return reply;
  }

  /**
   * Ends the session with QUIT and closes the connection. Errors are ignored:
   * the session is over either way.
   *
   * @returns Nothing.
   */
  async quit(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#command("QUIT", "quit", { timeout: 5_000 });
    } catch {
      // The server may close first; the session is over either way.
    }
    this.close();
  }

  /** Closes the connection without QUIT. May be called twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or by a timeout.
    }
  }

  /**
   * Ends the session with QUIT (for `await using`).
   *
   * @returns Nothing.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }

  /**
   * RFC 2920 §3.1: a pipelined DATA may get 354 although the transaction failed; the
   * client then sends an empty message (a lone dot) to leave data mode.
   */
  async #endUnwantedData(dataReply: SmtpReply | undefined): Promise<void> {
    if (dataReply?.code !== 354) return;
    await this.#writeLines(["."]);
    await this.#readReply("data");
  }

  #refused(what: string, phase: SmtpPhase, reply: SmtpReply): SmtpError {
    return new SmtpError(`${what}: ${replyText(reply)}`, phase, reply);
  }

  async #command(
    line: string,
    phase: SmtpPhase,
    options: { mask?: string; timeout?: number } = {},
  ): Promise<SmtpReply> {
    await this.#writeLines([line], options.mask);
    return await this.#readReply(phase, options.timeout);
  }

  async #writeLines(lines: string[], mask?: string): Promise<void> {
    for (const line of lines) this.#options.onTranscript?.("->", mask ?? line);
    await this.#writeAll(encoder.encode(lines.map((l) => `${l}\r\n`).join("")), "mail");
  }

  async #writeAll(bytes: Uint8Array, phase: SmtpPhase): Promise<void> {
    const limit = this.#options.timeouts?.data ?? 600_000;
    let offset = 0;
    while (offset < bytes.length) {
      offset += await this.#timed(
        this.#conn.write(bytes.subarray(offset)),
        limit,
        phase,
        "writing",
      );
    }
  }

  async #writeData(message: ReadableStream<Uint8Array>): Promise<void> {
    const reader = smtpData(message).getReader();
    // Small pieces (headers, the final dot) are gathered into one write: separate small
    // writes meet Nagle's algorithm and the peer's delayed ACK, 40 ms per message.
    const batch = new Uint8Array(1 << 16);
    let filled = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        if (filled + value.length > batch.length && filled > 0) {
          await this.#writeAll(batch.subarray(0, filled), "data");
          filled = 0;
        }
        if (value.length >= batch.length) await this.#writeAll(value, "data");
        else {
          batch.set(value, filled);
          filled += value.length;
        }
      }
      if (filled > 0) await this.#writeAll(batch.subarray(0, filled), "data");
    } catch (err) {
      await reader.cancel().catch(() => {});
      // A half-sent message cannot be taken back: the connection is unusable.
      this.close();
      if (err instanceof SmtpError) throw err;
      throw new SmtpError(`Cannot send the message: ${reason(err)}`, "data", undefined, {
        cause: err,
      });
    }
  }

  /** Races `promise` against a deadline; on timeout the connection is closed. */
  async #timed<T>(promise: Promise<T>, ms: number, phase: SmtpPhase, what: string): Promise<T> {
    using deadline = new Deadline(ms);
    return await deadline.race(promise, () => {
      this.close();
      return new SmtpError(
        `Timed out ${what} in phase ${phase.toUpperCase()}: no progress after ${ms / 1000} s`,
        phase,
      );
    });
  }

  async #readLine(phase: SmtpPhase, ms: number): Promise<string> {
    while (true) {
      const lf = this.#buffer.indexOf(10);
      if (lf >= 0) {
        const end = lf > 0 && this.#buffer[lf - 1] === 13 ? lf - 1 : lf;
        const line = decoder.decode(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.slice(lf + 1);
        return line;
      }
      if (this.#buffer.length > 65536) {
        throw new SmtpError("The server sent a reply line longer than 64 KiB", phase);
      }
      const chunk = new Uint8Array(16384);
      let n: number | null;
      try {
        n = await this.#timed(this.#conn.read(chunk), ms, phase, "waiting for the server's reply");
      } catch (err) {
        if (err instanceof SmtpError) throw err;
        this.close();
        throw new SmtpError(
          `Cannot read the server's reply in phase ${phase.toUpperCase()}: ${reason(err)}`,
          phase,
          undefined,
          { cause: err },
        );
      }
      if (n === null) {
        this.close();
        throw new SmtpError(
          `The server closed the connection in phase ${phase.toUpperCase()}`,
          phase,
        );
      }
      const joined = new Uint8Array(this.#buffer.length + n);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = joined;
    }
  }

  /** Reads a possibly multi-line reply (RFC 5321 §4.2.1): "250-..." lines, then "250 ...". */
  async #readReply(phase: SmtpPhase, timeout?: number): Promise<SmtpReply> {
    const ms = timeout ?? this.#options.timeouts?.command ?? 300_000;
    const lines: string[] = [];
    let code = 0;
    while (true) {
      const line = await this.#readLine(phase, ms);
      this.#options.onTranscript?.("<-", line);
      const match = /^([2-5]\d\d)([ -]|$)(.*)$/.exec(line);
      if (!match) {
        this.close();
        throw new SmtpError(`The server sent a malformed reply: "${line.slice(0, 80)}"`, phase);
      }
      code = Number(match[1]);
      lines.push(match[3] ?? "");
      if (match[2] !== "-") break;
    }
    const reply: SmtpReply = { code, lines };
    // RFC 2034 §4: the enhanced code leads the text, with the reply's class digit.
    const enhanced = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/.exec(lines[0] ?? "");
    if (enhanced && enhanced[1] === String(code)[0]) {
      reply.enhanced = `${enhanced[1]}.${enhanced[2]}.${enhanced[3]}`;
      reply.lines = lines.map((l) => l.replace(/^[245]\.\d{1,3}\.\d{1,3}\s*/, ""));
    }
    return reply;
  }
}

function tlsOptions(options: ConnectOptions): TlsOptions {
  return {
    hostname: options.tlsName ?? options.hostname,
    caCerts: options.caCerts ?? [],
    skipNameCheck: options.skipNameCheck ?? false,
    fingerprints: options.fingerprints ?? [],
    insecure: options.insecure ?? false,
  };
}

function chooseTransport(options: ConnectOptions): SmtpTransport {
  if (options.transport) return options.transport;
  const custom = (options.caCerts?.length ?? 0) > 0 || (options.fingerprints?.length ?? 0) > 0 ||
    options.insecure || options.skipNameCheck;
  return custom || options.implicitTls ? nodeTransport : denoTransport;
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function isTlsError(err: unknown): boolean {
  return /certificate|tls|handshake|CertNotValidForName|UnknownIssuer|InvalidCertificate/i.test(
    reason(err),
  );
}

/** Options of {@linkcode openSession}. */
export interface OpenSessionOptions extends ConnectOptions {
  /**
   * STARTTLS policy when not on implicit TLS: `"required"` fails if the
   * server does not offer it, `"opportunistic"` uses it when offered, `"none"` never.
   * @default "opportunistic"
   */
  startTls?: "required" | "opportunistic" | "none";
  /** Authenticate with these credentials after EHLO (and TLS). @default no AUTH */
  auth?: Credentials;
}

/**
 * Opens a session ready to send: connect, greeting, EHLO, STARTTLS per the
 * policy, then AUTH when credentials are given.
 *
 * @param options Server, TLS policy, credentials and timeouts.
 * @returns The session.
 *
 * @example
 * ```ts ignore
 * import { openSession } from "./client.ts";
 * await using session = await openSession({
 *   hostname: "mail.example.com",
 *   port: 587,
 *   startTls: "required",
 *   auth: { user: "alice", password: "secret" },
 * });
 * ```
 */
export async function openSession(options: OpenSessionOptions): Promise<SmtpSession> {
  const policy = options.startTls ?? "opportunistic";
  const session = await SmtpSession.connect(
    policy === "none" || options.transport ? options : { ...options, transport: nodeTransport },
  );
  try {
    await session.hello();
    if (!session.secure && policy !== "none") {
      if (session.capabilities.has("STARTTLS")) await session.startTls();
      else if (policy === "required") {
        throw new SmtpError("Cannot start TLS: the server does not offer STARTTLS", "tls");
      }
    }
    if (options.auth) await session.authenticate(options.auth);
  } catch (err) {
    await session.quit();
    throw err;
  }
  return session;
}

function isAsciiText(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
