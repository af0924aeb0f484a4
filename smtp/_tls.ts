/**
 * The SMTP transport on `node:net` and `node:tls`, for trust that Deno's own
 * TLS cannot express: a certificate given as trusted is accepted as the
 * server's own certificate too (a self-signed `CA:TRUE` leaf, as `openssl req
 * -x509` makes it, which rustls under `Deno.startTls` refuses as
 * `CaUsedAsEndEntity`), a certificate pinned by its SHA-256 fingerprint, and
 * no verification at all (`--insecure`, as `curl -k`).
 *
 * The handshake runs without rejecting; the certificate is then judged here,
 * so a refusal can say why and show the fingerprint to pin.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { createHash } from "node:crypto";
import type { SmtpConn, SmtpTransport, TlsOptions } from "./client.ts";

/** Incoming bytes buffered before the socket is paused. */
const HIGH_WATER = 1 << 20;

/** A `node:net` or `node:tls` socket as an {@linkcode SmtpConn}. */
class NodeConn implements SmtpConn {
  readonly socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #listeners: Array<[string, (value?: unknown) => void]>;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.#listeners = [
      ["data", (value) => {
        const chunk = value as Uint8Array;
        this.#chunks.push(chunk);
        this.#queued += chunk.length;
        if (this.#queued > HIGH_WATER) socket.pause();
        this.#notify();
      }],
      ["end", () => {
        this.#ended = true;
        this.#notify();
      }],
      ["close", () => {
        this.#ended = true;
        this.#notify();
      }],
      ["error", (err) => {
        this.#error = err as Error;
        this.#notify();
      }],
    ];
    for (const [event, listener] of this.#listeners) socket.on(event, listener);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const chunk = this.#chunks[0]!;
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#chunks[0] = chunk.subarray(n);
    else this.#chunks.shift();
    this.#queued -= n;
    if (this.#queued <= HIGH_WATER / 2 && this.socket.isPaused()) this.socket.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    // The caller reuses its buffer once the promise settles: wait until the
    // socket has taken the bytes.
    return new Promise((resolve, reject) => {
      this.socket.write(p, (err) => err ? reject(err) : resolve(p.length));
    });
  }

  /** Stops listening and hands the socket over (to STARTTLS). */
  detach(): net.Socket {
    for (const [event, listener] of this.#listeners) this.socket.off(event, listener);
    return this.socket;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Parses a certificate fingerprint: `SHA256:` then 64 hex digits (colons
 * allowed, as openssl prints them) or 43 base64 characters (as OpenSSH prints
 * them).
 *
 * @param text The fingerprint as the user gave it.
 * @returns The 32 bytes, hex, lower case.
 */
export function parseFingerprint(text: string): string {
  const value = text.trim().replace(/^sha-?256:/i, "");
  const hex = value.replaceAll(":", "");
  if (/^[0-9a-f]{64}$/i.test(hex)) return hex.toLowerCase();
  try {
    const bytes = Uint8Array.fromBase64(value.replace(/=+$/, ""), { alphabet: "base64" });
    if (bytes.length === 32) return bytes.toHex();
  } catch {
    // Not base64 either: reported below.
  }
  throw new TypeError(
    `Cannot use fingerprint "${text}": expected SHA256: and 64 hex digits (openssl x509 -fingerprint -sha256)`,
  );
}

/**
 * Formats a SHA-256 fingerprint as openssl prints it, after `SHA256:`.
 *
 * @param hex The digest in hex.
 * @returns e.g. `SHA256:AB:CD:…`.
 */
export function formatFingerprint(hex: string): string {
  return `SHA256:${hex.toUpperCase().match(/../g)!.join(":")}`;
}

const REASONS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: "it is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "its chain ends in an unknown self-signed CA",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its issuer is unknown",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its issuer is unknown",
  CERT_HAS_EXPIRED: "it has expired",
  CERT_NOT_YET_VALID: "it is not valid yet",
};

/** Throws unless the peer's certificate passes `options`' trust rules. */
function verify(socket: tls.TLSSocket, options: TlsOptions): void {
  if (options.insecure) return;
  const cert = socket.getPeerCertificate(false);
  if (!cert?.raw) throw new Error("Cannot verify the server: it sent no certificate");
  const fingerprint = createHash("sha256").update(cert.raw).digest("hex");
  const pins = (options.fingerprints ?? []).map(parseFingerprint);
  if (pins.length > 0) {
    // A pin replaces every other check, as msmtp's tls_fingerprint does.
    if (pins.includes(fingerprint)) return;
    throw new Error(
      `the server's certificate ${
        formatFingerprint(fingerprint)
      } does not match the pinned fingerprint`,
    );
  }
  if (socket.authorized) return;
  const code = String(socket.authorizationError ?? "unknown error");
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    if (options.skipNameCheck) return;
    throw new Error(
      `the server's certificate is not valid for the name "${options.hostname}" (it names ${
        cert.subjectaltname || cert.subject?.CN || "nothing"
      }; ${formatFingerprint(fingerprint)})`,
    );
  }
  throw new Error(
    `the server's certificate is not trusted: ${REASONS[code] ?? code} (${
      formatFingerprint(fingerprint)
    })`,
  );
}

function tlsConnectOptions(host: string, options: TlsOptions): tls.ConnectionOptions {
  const isIp = net.isIP(options.hostname) !== 0;
  return {
    rejectUnauthorized: false,
    // The name checked is `servername` when given, else `host`.
    host: isIp ? options.hostname : host,
    // SNI carries DNS names only (RFC 6066 §3).
    ...(isIp ? {} : { servername: options.hostname }),
    ...(options.caCerts?.length ? { ca: options.caCerts } : {}),
  };
}

/** Waits for the handshake of `socket`, then applies the trust rules. */
async function handshake(socket: tls.TLSSocket, options: TlsOptions): Promise<NodeConn> {
  const conn = new NodeConn(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve();
    });
    socket.once("error", reject);
  }).catch((err) => {
    socket.destroy();
    throw err;
  });
  try {
    verify(socket, options);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return conn;
}

/**
 * The transport on `node:net` and `node:tls`, with the trust rules of
 * {@linkcode TlsOptions}: `caCerts` are trusted as CAs and as the server's
 * own certificate, `fingerprints` pin, `insecure` skips verification.
 */
export const nodeTransport: SmtpTransport = {
  async connect(hostname, port, options) {
    if (options) {
      return await handshake(
        tls.connect({ ...tlsConnectOptions(hostname, options), port }),
        options,
      );
    }
    const socket = net.connect({ host: hostname, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve();
      });
      socket.once("error", reject);
    });
    return new NodeConn(socket);
  },
  async startTls(conn, options) {
    if (!(conn instanceof NodeConn)) {
      throw new TypeError("Cannot start TLS: the connection was not opened by nodeTransport");
    }
    const socket = conn.detach();
    return await handshake(
      tls.connect({ ...tlsConnectOptions(options.hostname, options), socket }),
      options,
    );
  },
};
