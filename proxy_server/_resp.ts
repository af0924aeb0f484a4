/**
 * RESP2, the Redis protocol, as the shared tier speaks it: commands encoded
 * into one growing buffer (so that every command issued in one turn of the
 * event loop leaves in one write), replies parsed incrementally from the
 * bytes read (a bulk string is a view into them, not a copy), Redis
 * Cluster's key slots (CRC16 with hash tags), and one pipelined connection
 * over any `Deno.Conn`.
 *
 * @module
 */
import { concat, writeAll } from "../lib/bytes.ts";

/** A reply: bytes for bulk and simple strings, an integer, nil, an array, or an error reply. */
export type RespValue = Uint8Array | number | null | RespError | RespValue[];

/** An error reply (`-ERR …`, `-MOVED …`, `-NOSCRIPT …`), or a lost connection. */
export class RespError extends Error {
  /**
   * Makes the error.
   *
   * @param message The reply's text (`MOVED 3999 127.0.0.1:6381`).
   */
  constructor(message: string) {
    super(message);
    this.name = "RespError";
  }
}

/** What {@linkcode RespReader.read} returns while a reply has not fully arrived. */
export const INCOMPLETE: unique symbol = Symbol("incomplete");

const CR = 13;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Encodes commands (arrays of bulk strings) into one buffer until it is
 * taken; two buffers alternate, so one can be written while the next fills.
 *
 * @example
 * ```ts
 * import { RespWriter } from "./_resp.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const w = new RespWriter();
 * w.command(["GET", "k"]);
 * w.command(["SET", "k", new Uint8Array([104, 105])]);
 * assertEquals(
 *   new TextDecoder().decode(w.take()),
 *   "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nhi\r\n",
 * );
 * assertEquals(w.length, 0);
 * ```
 */
export class RespWriter {
  #buf = new Uint8Array(16384);
  #spare = new Uint8Array(16384);
  #len = 0;

  /** Bytes waiting to be taken. */
  get length(): number {
    return this.#len;
  }

  #ensure(more: number): void {
    if (this.#len + more <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + more));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }

  /** Writes `prefix`, the decimal `n` and CRLF. */
  #header(prefix: number, n: number): void {
    this.#ensure(24);
    const buf = this.#buf;
    buf[this.#len++] = prefix;
    if (n < 10) {
      buf[this.#len++] = 48 + n;
    } else {
      const digits = String(n);
      for (let i = 0; i < digits.length; i++) buf[this.#len++] = digits.charCodeAt(i);
    }
    buf[this.#len++] = CR;
    buf[this.#len++] = 10;
  }

  /**
   * Appends one command.
   *
   * @param args The command name and its arguments.
   */
  command(args: ReadonlyArray<string | Uint8Array>): void {
    this.#header(42, args.length);
    for (const arg of args) {
      if (typeof arg === "string" && arg.length <= 64 && this.#ascii(arg)) {
        // Short and ASCII (a command, a key, a field): no call into the encoder.
        const n = arg.length;
        this.#header(36, n);
        this.#ensure(n + 2);
        const buf = this.#buf;
        let at = this.#len;
        for (let i = 0; i < n; i++) buf[at++] = arg.charCodeAt(i);
        this.#len = at;
      } else if (typeof arg === "string") {
        // Encode past room for the longest header, then move it behind the real one.
        const room = 16;
        this.#ensure(room + arg.length * 3 + 2);
        const at = this.#len + room;
        const { written } = encoder.encodeInto(arg, this.#buf.subarray(at));
        this.#header(36, written);
        this.#buf.copyWithin(this.#len, at, at + written);
        this.#len += written;
      } else {
        this.#header(36, arg.length);
        this.#ensure(arg.length + 2);
        this.#buf.set(arg, this.#len);
        this.#len += arg.length;
      }
      this.#buf[this.#len++] = CR;
      this.#buf[this.#len++] = 10;
    }
  }

  #ascii(text: string): boolean {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 127) return false;
    return true;
  }

  /**
   * Takes what was encoded so far. The bytes stay valid until the call after
   * next (the two buffers alternate).
   *
   * @returns The encoded commands.
   */
  take(): Uint8Array {
    const out = this.#buf.subarray(0, this.#len);
    // A buffer grown for one huge command is not kept.
    this.#buf = this.#spare.length <= 1 << 20 ? this.#spare : new Uint8Array(16384);
    this.#spare = out.buffer.byteLength <= 1 << 20
      ? new Uint8Array(out.buffer)
      : new Uint8Array(16384);
    this.#len = 0;
    return out;
  }
}

/**
 * Parses replies from the bytes a connection reads, in any split. A reply
 * that is still arriving costs nothing until enough bytes are there for it:
 * a large bulk string is joined once, not at every read.
 *
 * @example
 * ```ts
 * import { INCOMPLETE, RespReader } from "./_resp.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const r = new RespReader();
 * const bytes = (s: string) => new TextEncoder().encode(s);
 * r.feed(bytes("*2\r\n$5\r\nhel"));
 * assertEquals(r.read(), INCOMPLETE);
 * r.feed(bytes("lo\r\n:42\r\n+OK\r\n"));
 * assertEquals(r.read(), [bytes("hello"), 42]);
 * assertEquals(r.read(), bytes("OK"));
 * assertEquals(r.read(), INCOMPLETE);
 * ```
 */
export class RespReader {
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** Bytes from `#pos` the reply being parsed needs at least. */
  #need = 0;
  #start = 0;

  /**
   * Adds bytes read from the connection. The reader keeps views into them:
   * the caller must not reuse the array.
   *
   * @param chunk The bytes.
   */
  feed(chunk: Uint8Array): void {
    if (this.#pendingBytes === 0 && this.#pos >= this.#buf.length) {
      this.#buf = chunk;
      this.#pos = 0;
      return;
    }
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
  }

  /** Bytes that have arrived but are not yet part of a parsed reply. */
  get buffered(): number {
    return this.#buf.length - this.#pos + this.#pendingBytes;
  }

  /** Bytes still missing of the reply being parsed, as far as is known yet. */
  get missing(): number {
    return Math.max(0, this.#need - this.buffered);
  }

  /**
   * Parses the next whole reply.
   *
   * @returns The reply, or {@linkcode INCOMPLETE} when more bytes are needed.
   * @throws {TypeError} When the bytes are not RESP.
   */
  read(): RespValue | typeof INCOMPLETE {
    const have = this.buffered;
    if (have === 0 || have < this.#need) return INCOMPLETE;
    if (this.#pendingBytes > 0) {
      this.#buf = concat([this.#buf.subarray(this.#pos), ...this.#pending]);
      this.#pos = 0;
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    this.#start = this.#pos;
    const value = this.#parse();
    if (value === INCOMPLETE) {
      this.#pos = this.#start;
      return INCOMPLETE;
    }
    this.#need = 0;
    return value;
  }

  #short(end: number): typeof INCOMPLETE {
    this.#need = end - this.#start;
    return INCOMPLETE;
  }

  #parse(): RespValue | typeof INCOMPLETE {
    const buf = this.#buf;
    const at = this.#pos;
    const eol = buf.indexOf(CR, at + 1);
    if (eol < 0 || eol + 1 >= buf.length) return this.#short(buf.length + 1);
    const type = buf[at];
    const next = eol + 2;
    switch (type) {
      case 43: // +simple
        this.#pos = next;
        return buf.subarray(at + 1, eol);
      case 45: // -error
        this.#pos = next;
        return new RespError(decoder.decode(buf.subarray(at + 1, eol)));
      case 58: // :integer
        this.#pos = next;
        return integer(buf, at + 1, eol);
      case 36: { // $bulk
        const n = integer(buf, at + 1, eol);
        if (n < 0) {
          this.#pos = next;
          return null;
        }
        const end = next + n + 2;
        if (end > buf.length) return this.#short(end);
        this.#pos = end;
        return buf.subarray(next, next + n);
      }
      case 42: { // *array
        const n = integer(buf, at + 1, eol);
        this.#pos = next;
        if (n < 0) return null;
        const out: RespValue[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const v = this.#parse();
          if (v === INCOMPLETE) return v;
          out[i] = v;
        }
        return out;
      }
      default:
        throw new TypeError(`Cannot read a Redis reply: unexpected byte ${type} in the stream`);
    }
  }
}

function integer(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  const negative = buf[i] === 45;
  if (negative) i++;
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) throw new TypeError("Cannot read a Redis reply: a malformed integer");
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    table[i] = c & 0xffff;
  }
  return table;
})();

/**
 * The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its
 * hash tag (the text between the first `{` and the next `}`, when not
 * empty), modulo 16384.
 *
 * @param key The key.
 * @returns The slot, 0 to 16383.
 *
 * @example
 * ```ts
 * import { keySlot } from "./_resp.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(keySlot("123456789"), 12739);
 * assertEquals(keySlot("{user1000}.following"), keySlot("user1000"));
 * ```
 */
export function keySlot(key: string): number {
  let bytes = encoder.encode(key);
  const open = bytes.indexOf(123);
  if (open >= 0) {
    const close = bytes.indexOf(125, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xff00) ^ CRC16[((crc >> 8) ^ b) & 0xff]!;
  return crc & 16383;
}

/** Options of {@linkcode RespConnection}. */
export interface RespConnectionOptions {
  /**
   * Receives the pub/sub messages (`message`, channel, payload) that arrive
   * on a subscribed connection, instead of the replies' queue.
   * @default {undefined}
   */
  onPush?: (channel: string, message: string) => void;
  /**
   * Called once when the connection is lost or closed, with the reason.
   * @default {() => {}}
   */
  onClose?: (reason: Error) => void;
}

/** The blocks that replies are read into, and the least free room a read is given in one. */
const READ_BLOCK = 131072;
const READ_MIN = 16384;

/** Takes the reply to one command. */
type Waiter = (v: RespValue) => void;

/**
 * One pipelined RESP connection: commands issued in one turn of the event
 * loop (and all those issued while a write is in flight) leave in one write,
 * and replies are matched to them in order. When the connection is lost,
 * every command waiting and every later one gets a {@linkcode RespError}.
 *
 * @example With a fake transport that answers every command with +PONG
 * ```ts
 * import { RespConnection } from "./_resp.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * let answer: ((n: number | null) => void) | undefined;
 * let reply = new Uint8Array(0);
 * const conn = {
 *   write(p: Uint8Array) {
 *     reply = new TextEncoder().encode("+PONG\r\n".repeat(p.filter((b) => b === 42).length));
 *     answer?.(0);
 *     return Promise.resolve(p.length);
 *   },
 *   read(p: Uint8Array) {
 *     return new Promise<number | null>((resolve) => {
 *       answer = () => {
 *         p.set(reply);
 *         resolve(reply.length);
 *       };
 *     });
 *   },
 *   close() {},
 * };
 * const c = new RespConnection(conn);
 * const [a, b] = await Promise.all([c.send(["PING"]), c.send(["PING"])]);
 * assertEquals(new TextDecoder().decode(a as Uint8Array), "PONG");
 * assertEquals(new TextDecoder().decode(b as Uint8Array), "PONG");
 * c.close();
 * ```
 */
export class RespConnection {
  #conn: Pick<Deno.Conn, "read" | "write" | "close">;
  #writer = new RespWriter();
  #reader = new RespReader();
  #waiting: Waiter[] = [];
  #head = 0;
  #writing = false;
  #scheduled = false;
  #lost: RespError | undefined;
  #options: RespConnectionOptions;
  #flush = () => void this.#write();
  /** Called once when the connection is lost or closed (replaces the option's). */
  onClose: ((reason: RespError) => void) | undefined;

  /**
   * Starts reading replies from `conn`.
   *
   * @param conn The connection (TCP or TLS), already connected.
   * @param options Where pub/sub messages and the loss of the connection go.
   */
  constructor(
    conn: Pick<Deno.Conn, "read" | "write" | "close">,
    options: RespConnectionOptions = {},
  ) {
    this.#conn = conn;
    this.#options = options;
    this.onClose = options.onClose;
    void this.#readLoop();
  }

  /** Whether the connection is lost or closed. */
  get closed(): boolean {
    return this.#lost !== undefined;
  }

  /**
   * Sends one command.
   *
   * @param args The command and its arguments.
   * @returns Its reply (an error reply as a {@linkcode RespError} value, not a rejection).
   */
  send(args: ReadonlyArray<string | Uint8Array>): Promise<RespValue> {
    if (this.#lost !== undefined) return Promise.resolve(this.#lost);
    return new Promise((resolve) => this.call(args, resolve));
  }

  /**
   * Sends one command, its reply going to a callback rather than a promise
   * (one allocation less on a path that every cache hit takes).
   *
   * @param args The command and its arguments.
   * @param onReply Receives its reply (an error reply as a {@linkcode RespError} value),
   *   at once when the connection is lost already.
   */
  call(args: ReadonlyArray<string | Uint8Array>, onReply: (reply: RespValue) => void): void {
    if (this.#lost !== undefined) return onReply(this.#lost);
    this.#writer.command(args);
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
    this.#waiting.push(onReply);
  }

  async #write(): Promise<void> {
    this.#scheduled = false;
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (this.#writer.length > 0 && this.#lost === undefined) {
        await writeAll(this.#conn, this.#writer.take());
      }
    } catch (err) {
      this.#lose(err);
    } finally {
      this.#writing = false;
    }
  }

  async #readLoop(): Promise<void> {
    let block = new Uint8Array(READ_BLOCK);
    let used = 0;
    let reason: unknown;
    try {
      for (;;) {
        // The rest of a large reply is read straight into a buffer of its
        // own; anything else into the free end of a block that successive
        // reads fill, so that the replies are views into the bytes as read,
        // never copied (a block is dropped once no reply holds a view into it).
        const missing = this.#reader.missing;
        let into: Uint8Array;
        if (missing > READ_BLOCK / 2) {
          into = new Uint8Array(missing);
        } else {
          if (READ_BLOCK - used < READ_MIN) {
            block = new Uint8Array(READ_BLOCK);
            used = 0;
          }
          into = block.subarray(used);
        }
        const n = await this.#conn.read(into);
        if (n === null) break;
        if (into.buffer === block.buffer) used += n;
        this.#reader.feed(into.subarray(0, n));
        for (let v = this.#reader.read(); v !== INCOMPLETE; v = this.#reader.read()) {
          this.#deliver(v);
        }
      }
    } catch (err) {
      reason = err;
    }
    this.#lose(reason);
  }

  #deliver(v: RespValue): void {
    const push = this.#options.onPush;
    if (
      push !== undefined && Array.isArray(v) && v.length === 3 && v[0] instanceof Uint8Array &&
      v[0].length === 7 && decoder.decode(v[0]) === "message"
    ) {
      push(decoder.decode(v[1] as Uint8Array), decoder.decode(v[2] as Uint8Array));
      return;
    }
    const w = this.#waiting[this.#head];
    if (w === undefined) return;
    this.#waiting[this.#head++] = undefined as never;
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    w(v);
  }

  #lose(reason?: unknown): void {
    if (this.#lost !== undefined) return;
    const why = reason instanceof Error ? reason.message : "connection closed";
    this.#lost = new RespError(why);
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    const waiting = this.#waiting.slice(this.#head);
    this.#waiting = [];
    this.#head = 0;
    for (const w of waiting) w(this.#lost);
    this.onClose?.(this.#lost);
  }

  /** Closes the connection; commands still waiting get an error. */
  close(): void {
    this.#lose(new Error("closed"));
  }
}
