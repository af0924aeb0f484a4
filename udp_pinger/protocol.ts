/**
 * The UDP pinger's wire format: the course's `Ping <seq> <time>` text,
 * echoed upper-cased, plus compatible extensions.
 *
 * Every message is one ASCII line in one datagram, fields separated by single
 * spaces:
 *
 * | message | sender | format |
 * |---|---|---|
 * | ping | client | `Ping <seq> <time>[ <padding>]` |
 * | echo | server | the ping, ASCII upper-cased, byte for byte (same length) |
 * | stats request | client | `Stats <nonce> ` then spaces up to {@linkcode STATS_REQUEST_SIZE} |
 * | stats reply | server | `STATS <nonce> rx=N dup=N drop=N tx=N extra=N held=N` (lower-case keys) |
 * | heartbeat | client | `Heartbeat <seq> <time> <interval-ms>`; never answered |
 * | stamped ping | client | `Ping <seq> <time> stamps <padding>`, at least {@linkcode STAMPED_PING_SIZE} bytes |
 * | stamped echo | server | `PING <seq> <time> STAMPS rx=<s>.<ns> tx=<s>.<ns>` and spaces, the request's length |
 *
 * `<time>` is the sender's wall clock in seconds since the Unix epoch with a
 * fraction, as Python's `time.time()` prints it; the server only reads it
 * for heartbeats. Padding is lower-case letters, so the echo shows the
 * upper-casing and keeps the length.
 *
 * Why the extensions leave the original scripts unaffected: the original
 * server echoes a stats request upper-cased, keys and all, so a reply
 * without lower-case `rx=` means "no counters"; a heartbeat to it gets an
 * echo that the client ignores; the original client never sends either.
 * A stats reply is never longer than its request (it is dropped rather than
 * sent when it would be), so nothing here can amplify traffic.
 *
 * A stamped ping asks for the server's kernel receive time (`rx`) and its
 * send time (`tx`), CLOCK_REALTIME as seconds and nanoseconds, written over
 * the echo's padding: the echo keeps the request's length. The original
 * server echoes the request upper-cased, without lower-case `rx=`, which
 * tells a client that this server does not stamp.
 *
 * @example A ping, its echo, and the parse of both
 * ```ts
 * import { encodePing, parseMessage, toUpperAscii } from "./protocol.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const ping = encodePing(3, 1700000000.25, { size: 40 });
 * assertEquals(ping.length, 40);
 * const echo = toUpperAscii(ping);
 * const parsed = parseMessage(echo);
 * assert(parsed?.kind === "ping");
 * assertEquals(parsed.seq, 3);
 * ```
 *
 * @module
 */

import { ReusedHmac } from "./_hmac.ts";

/** The course's server port. */
export const DEFAULT_PORT = 12000;

/** Size the client pads a stats request to, so the reply fits without amplification. */
export const STATS_REQUEST_SIZE = 256;

/** The largest UDP payload over IPv4 (65535 − 8 − 20), the cap for `-s`. */
export const MAX_PAYLOAD = 65507;

/**
 * The least size of a stamped ping: the text of a ping with a 15-digit
 * sequence number, the marker and the two stamps fit.
 */
export const STAMPED_PING_SIZE = 96;

/** Bytes of one stamp as written in an echo: 10 digits of seconds, a dot, 9 of nanoseconds. */
const STAMP_DIGITS = 20;
/** `stamps` in a ping, ` rx=` and ` tx=` in its echo. */
const MARKER = " stamps";
const RX = " rx=";
const TX = " tx=";

/** Per-client counters the server keeps and reports in a stats reply. */
export interface ServerCounters {
  /** Distinct pings (by sequence number) received. */
  rx: number;
  /** Pings received again with a sequence number already seen. */
  dup: number;
  /** Distinct pings dropped on purpose (`--loss`). */
  drop: number;
  /** Distinct pings answered (replies handed to the socket). */
  tx: number;
  /** Extra replies sent on purpose (`--duplicate`). */
  extra: number;
  /** Replies still held back by `--delay` when the counters were read (not yet in `tx`). */
  held: number;
}

/** A parsed message; see the module documentation for the formats. */
export type Message =
  | { kind: "ping"; seq: number; time: number | undefined }
  | { kind: "stats"; nonce: string }
  | { kind: "stats-reply"; nonce: string; counters: ServerCounters }
  | { kind: "heartbeat"; seq: number; time: number; interval: number };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PADDING = "abcdefghijklmnopqrstuvwxyz";
// Sequence numbers are decimal and at most 15 digits, so they stay exact in a double.
const SEQ = /^\d{1,15}$/;
const COUNTER_KEYS = ["rx", "dup", "drop", "tx", "extra", "held"] as const;

/**
 * Upper-cases the ASCII letters of a datagram and leaves every other byte
 * alone, as Python's `bytes.upper()` does, so the echo has the request's
 * exact length even for non-ASCII bytes.
 *
 * @param data The request.
 * @returns A new array of the same length.
 *
 * @example
 * ```ts
 * import { toUpperAscii } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const out = toUpperAscii(new TextEncoder().encode("Ping 1 é"));
 * assertEquals(new TextDecoder().decode(out), "PING 1 é");
 * ```
 */
export function toUpperAscii(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    out[i] = b >= 0x61 && b <= 0x7a ? b - 0x20 : b;
  }
  return out;
}

/**
 * Encodes a ping, padded with lower-case letters after the text up to
 * `size` bytes. The text is never shortened, so a datagram is at least as
 * long as `Ping <seq> <time>`.
 *
 * @param seq The sequence number (a non-negative integer).
 * @param epochSeconds The send time in seconds since the Unix epoch.
 * @param options The padded size.
 * @returns The datagram.
 * @throws {RangeError} If `seq` is not a non-negative safe integer or `size` exceeds {@linkcode MAX_PAYLOAD}.
 *
 * @example
 * ```ts
 * import { encodePing } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const text = new TextDecoder().decode(encodePing(1, 1.5));
 * assertEquals(text, "Ping 1 1.500000");
 * ```
 */
export function encodePing(
  seq: number,
  epochSeconds: number,
  options: {
    /**
     * Total datagram size in bytes; 0 or less than the text means no padding.
     * @default {0}
     */
    size?: number;
    /**
     * Ask for the server's receive and send times (a stamped ping), padded
     * to at least {@linkcode STAMPED_PING_SIZE} bytes.
     * @default {false}
     */
    stamps?: boolean;
    /**
     * Leave room for the authentication tail ({@linkcode AUTH_BYTES}) at the
     * end, to be written by {@linkcode signDatagram}.
     * @default {false}
     */
    auth?: boolean;
  } = {},
): Uint8Array {
  checkSeq(seq);
  const stamps = options.stamps ?? false;
  const tail = options.auth ? AUTH_BYTES : 0;
  let size = Math.max(options.size ?? 0, stamps ? STAMPED_PING_SIZE + tail : 0);
  if (!(size >= 0 && size <= MAX_PAYLOAD)) {
    throw new RangeError(`Cannot encode a ping of ${size} bytes: the limit is ${MAX_PAYLOAD}`);
  }
  const text = `Ping ${seq} ${epochSeconds.toFixed(6)}${stamps ? MARKER : ""}`;
  if (tail > 0) size = Math.max(size, text.length + 1 + tail);
  if (size <= text.length + 1) return encoder.encode(text);
  const out = new Uint8Array(size);
  encoder.encodeInto(text, out);
  out[text.length] = 0x20;
  for (let i = text.length + 1; i < size; i++) {
    out[i] = PADDING.charCodeAt((i - text.length - 1) % PADDING.length);
  }
  return out;
}

/**
 * Encodes a stats request, padded with spaces to {@linkcode STATS_REQUEST_SIZE}
 * bytes so that the server's reply fits in the same size.
 *
 * @param nonce A token (letters and digits) the reply repeats, to match it.
 * @returns The datagram.
 * @throws {RangeError} If the nonce is not 1 to 32 letters and digits.
 *
 * @example
 * ```ts
 * import { encodeStatsRequest, parseMessage } from "./protocol.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const req = parseMessage(encodeStatsRequest("ab12"));
 * assert(req?.kind === "stats");
 * assertEquals(req.nonce, "ab12");
 * ```
 */
export function encodeStatsRequest(nonce: string): Uint8Array {
  checkNonce(nonce);
  const out = new Uint8Array(STATS_REQUEST_SIZE).fill(0x20);
  encoder.encodeInto(`Stats ${nonce}`, out);
  return out;
}

/**
 * Encodes the server's stats reply, or returns `undefined` when it would be
 * longer than the request it answers (the server then stays silent rather
 * than amplify).
 *
 * @param nonce The request's nonce.
 * @param counters The client's counters.
 * @param options The request's size.
 * @returns The datagram, or `undefined` if it does not fit.
 *
 * @example
 * ```ts
 * import { encodeStatsReply, parseMessage } from "./protocol.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const counters = { rx: 9, dup: 0, drop: 2, tx: 7, extra: 0, held: 0 };
 * const reply = encodeStatsReply("n1", counters, { maxSize: 256 })!;
 * const parsed = parseMessage(reply);
 * assert(parsed?.kind === "stats-reply");
 * assertEquals(parsed.counters.drop, 2);
 * ```
 */
export function encodeStatsReply(
  nonce: string,
  counters: ServerCounters,
  options: {
    /**
     * The largest reply allowed: the request's length.
     * @default {STATS_REQUEST_SIZE}
     */
    maxSize?: number;
  } = {},
): Uint8Array | undefined {
  const maxSize = options.maxSize ?? STATS_REQUEST_SIZE;
  const fields = COUNTER_KEYS.map((k) => `${k}=${counters[k]}`).join(" ");
  const out = encoder.encode(`STATS ${nonce.toUpperCase()} ${fields}`);
  return out.length <= maxSize ? out : undefined;
}

/**
 * Encodes a heartbeat: sequence number, send time and the sender's interval,
 * from which the server tells a lost beat from a client that is gone.
 *
 * @param seq The beat's sequence number.
 * @param epochSeconds The send time in seconds since the Unix epoch.
 * @param intervalMs The interval between beats in milliseconds.
 * @returns The datagram.
 * @throws {RangeError} If `seq` is not a non-negative safe integer.
 *
 * @example
 * ```ts
 * import { encodeHeartbeat, parseMessage } from "./protocol.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const beat = parseMessage(encodeHeartbeat(4, 1700000000, 1000));
 * assert(beat?.kind === "heartbeat");
 * assertEquals(beat.interval, 1000);
 * ```
 */
export function encodeHeartbeat(seq: number, epochSeconds: number, intervalMs: number): Uint8Array {
  checkSeq(seq);
  return encoder.encode(`Heartbeat ${seq} ${epochSeconds.toFixed(6)} ${intervalMs}`);
}

/**
 * Parses any message of the protocol, in either case (a ping and its echo
 * parse alike). Anything else, including a datagram that is not ASCII text,
 * gives `undefined`: the server ignores it.
 *
 * A ping needs only `Ping <seq>`; its time field is optional and free-form
 * (students' clients send `time.time()`, `time.ctime()` and more), and is
 * read as a number when it is one.
 *
 * @param data The datagram.
 * @returns The message, or `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import { parseMessage } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const text = new TextEncoder();
 * assertEquals(parseMessage(text.encode("PING 7 1700000000.5"))?.kind, "ping");
 * assertEquals(parseMessage(text.encode("hello")), undefined);
 * ```
 */
export function parseMessage(data: Uint8Array): Message | undefined {
  const ping = parsePingBytes(data);
  if (ping !== null) return ping;
  // Only the head matters; reading at most 200 bytes keeps a large padded
  // ping from costing a large decode.
  const head = decoder.decode(data.subarray(0, 200));
  const parts = head.split(" ", 8);
  const verb = parts[0]?.toLowerCase();
  const a = parts[1] ?? "";
  switch (verb) {
    // "ping " was handled by parsePingBytes.
    case "stats": {
      if (!/^[A-Za-z0-9]{1,32}$/.test(a)) return undefined;
      const rest = parts.slice(2).filter((p) => p !== "");
      if (rest.length === 0 || !rest[0]!.includes("=")) return { kind: "stats", nonce: a };
      const counters: Partial<ServerCounters> = {};
      for (const field of rest) {
        const m = /^([a-z]+)=(\d{1,15})$/.exec(field);
        if (m && (COUNTER_KEYS as readonly string[]).includes(m[1]!)) {
          counters[m[1] as keyof ServerCounters] = Number(m[2]);
        }
      }
      if (COUNTER_KEYS.some((k) => counters[k] === undefined)) return undefined;
      return { kind: "stats-reply", nonce: a, counters: counters as ServerCounters };
    }
    case "heartbeat": {
      const time = Number(parts[2]), interval = Number(parts[3]);
      if (!SEQ.test(a) || !Number.isFinite(time) || !(interval > 0)) return undefined;
      return { kind: "heartbeat", seq: Number(a), time, interval };
    }
    default:
      return undefined;
  }
}

/**
 * Where the server writes its stamps in the echo of a stamped ping: the
 * offset right after its `stamps` marker (which must follow the time), or
 * -1 when the ping asks for none or has no room for them.
 *
 * @param data A ping (as {@linkcode parseMessage} accepts it).
 * @param reserve Bytes at the end the stamps must leave alone (an authentication tail).
 * @returns The offset, or -1.
 *
 * @example
 * ```ts
 * import { encodePing, stampOffset } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(stampOffset(encodePing(1, 1.5, { stamps: true })), 22);
 * assertEquals(stampOffset(encodePing(1, 1.5, { size: 96 })), -1);
 * ```
 */
export function stampOffset(data: Uint8Array, reserve = 0): number {
  // "ping <seq> <time> stamps": the third space ends the time.
  let spaces = 0, i = 0;
  for (; i < data.length && i < 64 && spaces < 3; i++) if (data[i] === 0x20) spaces++;
  if (spaces < 3) return -1;
  for (let k = 1; k < MARKER.length; k++) {
    if ((data[i + k - 1]! | 0x20) !== MARKER.charCodeAt(k)) return -1;
  }
  const at = i + MARKER.length - 1;
  if (at < data.length && data[at] !== 0x20) return -1;
  return data.length - reserve - at >= 2 * (RX.length + STAMP_DIGITS) ? at : -1;
}

/**
 * Writes the server's stamps into an echo at `at` (from
 * {@linkcode stampOffset}): ` rx=` and the receive time, ` tx=` and a
 * placeholder, then spaces to the end. Fill the send time in with
 * {@linkcode writeStamp} at the returned offset right before sending.
 *
 * @param echo The echo, written in place.
 * @param at Where the stamps go.
 * @param rxSeconds The receive time's whole seconds.
 * @param rxNanoseconds Its nanoseconds.
 * @returns The offset of the send time's digits.
 *
 * @example
 * ```ts
 * import { encodePing, stampOffset, writeStamps, writeStamp, toUpperAscii, parseStamps } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const echo = toUpperAscii(encodePing(1, 1.5, { stamps: true }));
 * const tx = writeStamps(echo, stampOffset(echo), 1700000000, 5);
 * writeStamp(echo, tx, 1700000000, 2500);
 * assertEquals(parseStamps(echo), { rxSeconds: 1700000000, rxNanoseconds: 5, txSeconds: 1700000000, txNanoseconds: 2500 });
 * ```
 */
export function writeStamps(
  echo: Uint8Array,
  at: number,
  rxSeconds: number,
  rxNanoseconds: number,
): number {
  let i = at;
  for (let k = 0; k < RX.length; k++) echo[i++] = RX.charCodeAt(k);
  writeStamp(echo, i, rxSeconds, rxNanoseconds);
  i += STAMP_DIGITS;
  for (let k = 0; k < TX.length; k++) echo[i++] = TX.charCodeAt(k);
  const tx = i;
  writeStamp(echo, tx, 0, 0);
  echo.fill(0x20, tx + STAMP_DIGITS);
  return tx;
}

/**
 * Writes one stamp (`<10 digits>.<9 digits>`, allocating nothing) at `at`.
 *
 * @param echo The echo, written in place.
 * @param at The offset, e.g. from {@linkcode writeStamps}.
 * @param seconds Whole seconds since the epoch (below 10^10).
 * @param nanoseconds The nanoseconds, below 10^9.
 *
 * @example
 * ```ts
 * import { writeStamp } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const out = new Uint8Array(20);
 * writeStamp(out, 0, 1700000000, 42);
 * assertEquals(new TextDecoder().decode(out), "1700000000.000000042");
 * ```
 */
export function writeStamp(echo: Uint8Array, at: number, seconds: number, nanoseconds: number) {
  let s = seconds, ns = nanoseconds;
  for (let k = at + 9; k >= at; k--) {
    echo[k] = 0x30 + (s % 10);
    s = Math.floor(s / 10);
  }
  echo[at + 10] = 0x2e;
  for (let k = at + STAMP_DIGITS - 1; k > at + 10; k--) {
    echo[k] = 0x30 + (ns % 10);
    ns = Math.floor(ns / 10);
  }
}

/** The server's stamps in an echo, from {@linkcode parseStamps}. */
export interface ServerStamps {
  /** The server's kernel receive time: whole seconds since the epoch. */
  rxSeconds: number;
  /** Its nanoseconds. */
  rxNanoseconds: number;
  /** The server's send time: whole seconds since the epoch. */
  txSeconds: number;
  /** Its nanoseconds. */
  txNanoseconds: number;
}

/**
 * Reads the server's stamps from the echo of a stamped ping.
 *
 * @param echo The echo.
 * @returns The stamps, or `undefined` when the server wrote none (the
 *   course's original server echoes the request upper-cased).
 *
 * @example
 * ```ts
 * import { encodePing, parseStamps, toUpperAscii } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseStamps(toUpperAscii(encodePing(1, 1.5, { stamps: true }))), undefined);
 * ```
 */
export function parseStamps(echo: Uint8Array): ServerStamps | undefined {
  const at = stampOffset(echo);
  if (at < 0) return undefined;
  const rx = readStamp(echo, at, RX);
  const tx = readStamp(echo, at + RX.length + STAMP_DIGITS, TX);
  if (rx === undefined || tx === undefined) return undefined;
  return { rxSeconds: rx[0], rxNanoseconds: rx[1], txSeconds: tx[0], txNanoseconds: tx[1] };
}

/** `key` then a stamp at `at`, as [seconds, nanoseconds]. */
function readStamp(echo: Uint8Array, at: number, key: string): [number, number] | undefined {
  for (let k = 0; k < key.length; k++) if (echo[at + k] !== key.charCodeAt(k)) return undefined;
  let seconds = 0, nanoseconds = 0;
  const start = at + key.length;
  for (let k = 0; k < STAMP_DIGITS; k++) {
    const c = echo[start + k]!;
    if (k === 10) {
      if (c !== 0x2e) return undefined;
      continue;
    }
    if (c < 0x30 || c > 0x39) return undefined;
    if (k < 10) seconds = seconds * 10 + c - 0x30;
    else nanoseconds = nanoseconds * 10 + c - 0x30;
  }
  return [seconds, nanoseconds];
}

/**
 * Bytes of the authentication tail that `--hmac` adds at the end of every
 * datagram: ` auth=`, the sender's session id (12 hex digits), a dot, and
 * HMAC-SHA256 of the whole datagram with the MAC's digits zeroed (64 hex
 * digits), as irtt zeroes its HMAC field.
 */
export const AUTH_BYTES = 83;
const AUTH = " auth=";
const MAC_AT = AUTH_BYTES - 64;

/**
 * Signs a datagram in place: writes the authentication tail (see
 * {@linkcode AUTH_BYTES}) over its last bytes.
 *
 * @param data The datagram, whose last {@linkcode AUTH_BYTES} bytes are
 *   overwritten (padding, or the peer's tail in an echo).
 * @param key The shared key.
 * @param sessionId The sender's session id: 12 hex digits.
 * @throws {RangeError} If the datagram is shorter than the tail or the id is not 12 hex digits.
 *
 * @example
 * ```ts
 * import { encodePing, signDatagram, verifyDatagram, AUTH_BYTES } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const key = new TextEncoder().encode("secret");
 * const ping = encodePing(1, 1.5, { size: 30 + AUTH_BYTES });
 * signDatagram(ping, key, "00112233aabb");
 * assertEquals(verifyDatagram(ping, key), "00112233aabb");
 * ping[0] = 0x70; // "ping": any change breaks it
 * assertEquals(verifyDatagram(ping, key), undefined);
 * ```
 */
export function signDatagram(data: Uint8Array, key: Uint8Array, sessionId: string): void {
  if (!/^[0-9a-f]{12}$/.test(sessionId)) {
    throw new RangeError(`Cannot sign with session id "${sessionId}": 12 hex digits expected`);
  }
  if (data.length < AUTH_BYTES) {
    throw new RangeError(`Cannot sign a ${data.length}-byte datagram: it needs ${AUTH_BYTES}`);
  }
  const at = data.length - AUTH_BYTES;
  encoder.encodeInto(`${AUTH}${sessionId}.`, data.subarray(at));
  data.fill(0x30, at + MAC_AT);
  const digest = mac(data, key);
  for (let i = 0; i < 32; i++) {
    data[at + MAC_AT + 2 * i] = HEX[digest[i]! >> 4]!;
    data[at + MAC_AT + 2 * i + 1] = HEX[digest[i]! & 15]!;
  }
}

/**
 * Checks a datagram's authentication tail.
 *
 * @param data The datagram (left as it was).
 * @param key The shared key.
 * @returns The sender's session id when the MAC is right, else `undefined`.
 */
export function verifyDatagram(data: Uint8Array, key: Uint8Array): string | undefined {
  if (data.length < AUTH_BYTES) return undefined;
  const at = data.length - AUTH_BYTES;
  // " auth=", 12 lower-case hex digits, ".", 64 of them: read in place.
  for (let i = 0; i < AUTH.length; i++) {
    if (data[at + i] !== AUTH.charCodeAt(i)) return undefined;
  }
  if (data[at + MAC_AT - 1] !== 0x2e) return undefined;
  for (let i = AUTH.length; i < AUTH_BYTES; i++) {
    if (i !== MAC_AT - 1 && hexValue(data[at + i]!) < 0) return undefined;
  }
  // The MAC covers the datagram with its digits zeroed: a copy, in a
  // buffer kept from call to call.
  if (checked.length !== data.length) {
    if (checkBuffer.length < data.length) checkBuffer = new Uint8Array(data.length);
    checked = checkBuffer.subarray(0, data.length);
  }
  checked.set(data);
  checked.fill(0x30, at + MAC_AT);
  const digest = mac(checked, key);
  // Every digit compared, whatever the first difference: constant time.
  let diff = 0;
  for (let i = 0; i < 32; i++) {
    diff |= (hexValue(data[at + MAC_AT + 2 * i]!) << 4 | hexValue(data[at + MAC_AT + 2 * i + 1]!)) ^
      digest[i]!;
  }
  if (diff !== 0) return undefined;
  // The same sender's id, as the same string: nothing allocated per datagram.
  const id = at + AUTH.length;
  let same = lastSession !== undefined;
  for (let i = 0; same && i < 12; i++) same = data[id + i] === lastSessionBytes[i];
  if (!same) {
    lastSessionBytes.set(data.subarray(id, id + 12));
    lastSession = decoder.decode(lastSessionBytes);
  }
  return lastSession;
}

/** Lower-case hex digits, as bytes. */
const HEX = new TextEncoder().encode("0123456789abcdef");
/** `verifyDatagram()`'s copy of the datagram, and its view of the datagram's length. */
let checkBuffer = new Uint8Array(2048);
let checked = checkBuffer.subarray(0, 0);
/** The session id `verifyDatagram()` last returned, and its digits. */
let lastSession: string | undefined;
const lastSessionBytes = new Uint8Array(12);
/** The last key's HMAC state: a run uses one key. */
let macKey: Uint8Array | undefined;
let macKeyCopy = new Uint8Array(0);
let macState: ReusedHmac | undefined;
const digestBuffer = new Uint8Array(32);

/** A lower-case hex digit's value, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** HMAC-SHA256 of `data` under `key`, in a buffer that the next call overwrites. */
function mac(data: Uint8Array, key: Uint8Array): Uint8Array {
  // The state is kept for the same key (the same bytes: a caller may
  // change a key's array in place).
  let same = key === macKey && key.length === macKeyCopy.length;
  for (let i = 0; same && i < key.length; i++) same = key[i] === macKeyCopy[i];
  if (!same) {
    macKey = key;
    macKeyCopy = key.slice();
    macState = new ReusedHmac(key);
  }
  macState!.sign(data, digestBuffer);
  return digestBuffer;
}

/** Bytes of "ping " with the ASCII case bit (0x20) set. */
const PING = [0x70, 0x69, 0x6e, 0x67];

/** A ping's fields, as {@linkcode readPing} fills them in. */
export interface PingFields {
  /** The sequence number. */
  seq: number;
  /** The send time in seconds since the epoch; NaN when absent or not a number. */
  time: number;
}

/**
 * Reads a ping straight from the bytes into `into`, without decoding text
 * or allocating: the server's per-datagram path. A datagram that does not
 * start with `ping ` (any case) is left to {@linkcode parseMessage}.
 *
 * @param data The datagram.
 * @param into Where the sequence number and time go (NaN for a time that
 *   is absent or not a decimal number, e.g. `time.ctime()` text).
 * @returns `true` for a ping, `false` for a malformed one, `null` when the
 *   datagram is not a ping at all.
 *
 * @example
 * ```ts
 * import { readPing } from "./protocol.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const fields = { seq: 0, time: NaN };
 * assertEquals(readPing(new TextEncoder().encode("Ping 7 1700000000.5"), fields), true);
 * assertEquals(fields, { seq: 7, time: 1700000000.5 });
 * assertEquals(readPing(new TextEncoder().encode("Ping x"), fields), false);
 * assertEquals(readPing(new TextEncoder().encode("Stats n"), fields), null);
 * ```
 */
export function readPing(data: Uint8Array, into: PingFields): boolean | null {
  if (data.length < 5 || data[4] !== 0x20) return null;
  for (let i = 0; i < 4; i++) if ((data[i]! | 0x20) !== PING[i]) return null;
  let i = 5, seq = 0;
  for (; i < data.length && i < 20; i++) {
    const d = data[i]! - 0x30;
    if (d < 0 || d > 9) break;
    seq = seq * 10 + d;
  }
  const digits = i - 5;
  if (digits === 0 || digits > 15 || (i < data.length && data[i] !== 0x20)) return false;
  into.seq = seq;
  into.time = i < data.length ? parseTimeBytes(data, i + 1) : NaN;
  return true;
}

/** {@linkcode readPing}'s fields for {@linkcode parseMessage}, which copies them out. */
const scratch: PingFields = { seq: 0, time: NaN };

/** A ping as a {@linkcode Message}: `null` when the datagram is no ping (see {@linkcode readPing}). */
function parsePingBytes(data: Uint8Array): Message | undefined | null {
  const ping = readPing(data, scratch);
  if (ping !== true) return ping === null ? null : undefined;
  const time = scratch.time;
  return { kind: "ping", seq: scratch.seq, time: Number.isNaN(time) ? undefined : time };
}

/**
 * Reads `<digits>[.<digits>]` at `start` up to a space or the end, without
 * decoding text; anything else (e.g. a `time.ctime()` string) is NaN.
 * `int + frac / 10^n` equals `Number(text)` for the 6-decimal times sent.
 */
function parseTimeBytes(data: Uint8Array, start: number): number {
  let int = 0, frac = 0, scale = 1, dot = false, digits = 0, i = start;
  for (; i < data.length && data[i] !== 0x20; i++) {
    const c = data[i]!;
    if (c === 0x2e && !dot) dot = true;
    else if (c >= 0x30 && c <= 0x39 && digits < 30) {
      digits++;
      if (dot) {
        frac = frac * 10 + (c - 0x30);
        scale *= 10;
      } else int = int * 10 + (c - 0x30);
    } else return NaN;
  }
  return digits === 0 ? NaN : int + frac / scale;
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > 999_999_999_999_999) {
    throw new RangeError(`Cannot encode sequence number ${seq}: it must be an integer >= 0`);
  }
}

function checkNonce(nonce: string): void {
  if (!/^[A-Za-z0-9]{1,32}$/.test(nonce)) {
    throw new RangeError(`Cannot use stats nonce "${nonce}": it must be 1 to 32 letters or digits`);
  }
}
