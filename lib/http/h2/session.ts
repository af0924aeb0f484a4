/**
 * The server side of one HTTP/2 connection (RFC 9113): frames, stream
 * states, flow control both ways, and the limits that bound what a peer
 * can make us do. Requests go to a handler as they complete; responses are
 * HPACK blocks from {@linkcode encodeFields} plus a body, sent by a
 * round-robin scheduler within the peer's windows.
 *
 * Defences, each bounded and closing with the RFC 9113 error code:
 * - **Rapid reset** (CVE-2023-44487): every stream the client resets spends
 *   a budget (200, refilled at 100 per second); past it,
 *   `GOAWAY ENHANCE_YOUR_CALM`.
 * - **CONTINUATION flood** (CVE-2024-27316): a field block is capped at
 *   `maxHeaderListSize` bytes and 32 CONTINUATION frames; past either,
 *   `GOAWAY ENHANCE_YOUR_CALM` without decoding it.
 * - **HPACK bomb**: decoding stops at `maxHeaderListSize` decoded bytes
 *   (RFC 9113 §6.5.2 counting) and the dynamic table is capped at 4 KiB:
 *   `GOAWAY COMPRESSION_ERROR`.
 * - **SETTINGS and PING floods**: each costs a budget (1,000, refilled at 100
 *   per second); past it, `GOAWAY ENHANCE_YOUR_CALM`.
 * - **Zero-window stall**: data waiting on a window the client keeps shut for
 *   `stallTimeout` gets `GOAWAY ENHANCE_YOUR_CALM` and a close; bodies are
 *   never copied while they wait.
 * - **Stream limit**: past `SETTINGS_MAX_CONCURRENT_STREAMS`, a new stream
 *   gets `RST_STREAM REFUSED_STREAM`.
 *
 * @module
 */
import { concat } from "../../bytes.ts";
import type { BufferedReader } from "../reader.ts";
import { HpackDecoder, HpackError } from "./hpack.ts";

/** Frame types (RFC 9113 §6). */
const DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PUSH_PROMISE = 5;
const PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9;
const END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY_FLAG = 0x20;

/** Error codes (RFC 9113 §7). */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

/** The connection preface a client sends first (RFC 9113 §3.4). */
export const H2_PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65535;
const OUR_FRAME_SIZE = 16384;
const MAX_CONTINUATIONS = 32;
/** Output batched per socket write before the scheduler waits for the write. */
const HIGH_WATER = 256 * 1024;
/** The reusable write buffer: a batch, and the frame that crossed the mark. */
const BATCH_MAX = HIGH_WATER + 64 * 1024;
/**
 * Output queued past which the session stops reading until it is written.
 * Frames a peer sends can each cost an answer (a RST_STREAM for a malformed
 * PRIORITY, a WINDOW_UPDATE for DATA) that no budget counts; a peer that
 * sends them and reads nothing otherwise had them queued without end. TCP
 * then holds the peer back, and the send deadline ends one that never reads.
 */
const READ_PAUSE = 2 * HIGH_WATER;
const PSEUDO = new Set([":method", ":path", ":authority", ":scheme"]);
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/** A request as it arrived on a stream. */
export interface H2Request {
  /** `:method`. */
  method: string;
  /** `:path` (the request-target in origin form). */
  path: string;
  /** `:authority`, or the Host field, or `""`. */
  authority: string;
  /** `:scheme`. */
  scheme: string;
  /** The regular fields, names in lower case, in order. */
  headers: [string, string][];
  /** The client's address, when the session was given it. */
  remoteAddr?: Deno.NetAddr;
}

/** Answers one request on its stream; see {@linkcode H2Stream.respond}. */
export type H2Handler = (request: H2Request, stream: H2Stream) => void | Promise<void>;

/** The socket side a session needs: writes, and the close. */
export interface H2Transport {
  /** Writes all of `data`. */
  write(data: Uint8Array): Promise<void>;
  /** Closes the connection (idempotent). */
  close(): void;
}

/** One access-log record of a stream. */
export interface H2LogEntry {
  /** When the request was complete. */
  time: number;
  /** The request. */
  request: H2Request;
  /** The response status (0 when none was sent). */
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

/** Options of {@linkcode H2Session}. */
export interface H2SessionOptions {
  /**
   * `SETTINGS_MAX_CONCURRENT_STREAMS`.
   * @default {100}
   */
  maxConcurrentStreams?: number;
  /**
   * `SETTINGS_MAX_HEADER_LIST_SIZE`: the largest field block, encoded and decoded.
   * @default {65536}
   */
  maxHeaderListSize?: number;
  /**
   * Milliseconds a connection without streams stays open.
   * @default {30000}
   */
  idleTimeout?: number;
  /**
   * Milliseconds a field block (and the preface) may take to arrive.
   * @default {10000}
   */
  headerTimeout?: number;
  /**
   * Milliseconds data may wait on a window the peer keeps shut.
   * @default {60000}
   */
  stallTimeout?: number;
  /** Called when a stream ends, for the access log. */
  onLog?: (entry: H2LogEntry) => void;
  /** The client's address, passed on with each request. */
  remoteAddr?: Deno.NetAddr;
}

/** A token bucket: `burst` tokens, refilled at `rate` per second. */
class Budget {
  #tokens: number;
  #at = Date.now();
  constructor(readonly burst: number, readonly rate: number) {
    this.#tokens = burst;
  }
  /** Spends one token; false when none is left. */
  spend(): boolean {
    const now = Date.now();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.rate / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

function frameHead(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  id: number,
): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out[at + 5] = (id >>> 24) & 0x7f;
  out[at + 6] = (id >>> 16) & 0xff;
  out[at + 7] = (id >>> 8) & 0xff;
  out[at + 8] = id & 0xff;
}

function frame(type: number, flags: number, id: number, payload?: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + (payload?.length ?? 0));
  frameHead(out, 0, payload?.length ?? 0, type, flags, id);
  if (payload !== undefined) out.set(payload, 9);
  return out;
}

function u32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value);
  return b;
}

/**
 * One stream as the handler sees it: the response goes out through
 * {@linkcode respond}; {@linkcode aborted} turns true when the client
 * resets it or the connection ends.
 */
export class H2Stream {
  /** The stream identifier. */
  readonly id: number;
  /** The response status, for the access log. */
  status = 0;
  /** Body bytes sent, for the access log. */
  bytes = 0;
  /** @internal The peer's window for this stream. */
  window: number;
  /** @internal END_STREAM received. */
  remoteClosed = false;
  /** @internal Response complete (END_STREAM queued) or reset. */
  done = false;
  /** @internal Data waiting for a window. */
  pending: Uint8Array | null = null;
  /** @internal Whether `pending` ends the stream. */
  pendingEnd = false;
  /** @internal Resolves when `pending` is all framed. */
  drained: (() => void) | null = null;
  /** @internal The request, for the log. */
  request: H2Request | null = null;
  /** @internal When the request was complete. */
  time = 0;
  #session: H2Session;
  #aborted = false;

  /** @internal Made by {@linkcode H2Session}. */
  constructor(session: H2Session, id: number, window: number) {
    this.#session = session;
    this.id = id;
    this.window = window;
  }

  /** Whether the client reset the stream or the connection is gone. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** @internal Marks the stream aborted. */
  abort(): void {
    this.#aborted = true;
    this.done = true;
    this.pending = null;
    const d = this.drained;
    this.drained = null;
    d?.();
  }

  /**
   * Sends the response: the field block, then the body within the peer's
   * windows. Resolves when the last byte is framed (or the stream is gone).
   *
   * @param status The status, for the log.
   * @param block The field block, from {@linkcode encodeFields}.
   * @param body The body: bytes, a stream, or `null` for none.
   * @returns Resolves when done.
   */
  async respond(
    status: number,
    block: Uint8Array,
    body: Uint8Array | ReadableStream<Uint8Array> | null,
  ): Promise<void> {
    if (this.#aborted) {
      if (body instanceof ReadableStream) await body.cancel().catch(() => {});
      return;
    }
    this.status = status;
    const s = this.#session;
    const empty = body === null || (body instanceof Uint8Array && body.length === 0);
    s.sendHeaders(this, block, empty);
    if (empty) return;
    if (body instanceof Uint8Array) {
      await s.sendData(this, body, true);
      return;
    }
    const reader = body!.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (this.#aborted) break;
        if (done) {
          await s.sendData(this, new Uint8Array(0), true);
          break;
        }
        if (value.length > 0) await s.sendData(this, value, false);
      }
    } catch {
      // The body failed midway: the client must not take it as complete.
      s.reset(this, H2_ERROR.INTERNAL_ERROR);
    } finally {
      if (this.#aborted) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
}

/**
 * The server side of one HTTP/2 connection; {@linkcode run} serves it
 * until it closes.
 *
 * @example A session over an in-memory transport
 * ```ts
 * import { H2Session } from "./session.ts";
 * import { BufferedReader } from "../reader.ts";
 * import { assertEquals } from "../../testing/assert.ts";
 * const input = new ReadableStream<Uint8Array>({ start: (c) => c.close() }).getReader();
 * const sent: Uint8Array[] = [];
 * const session = new H2Session(
 *   { write: async (b) => void sent.push(b), close() {} },
 *   new BufferedReader(input),
 *   () => {},
 * );
 * await session.run();
 * assertEquals(sent.length > 0, true); // our SETTINGS went out first
 * ```
 */
export class H2Session {
  #transport: H2Transport;
  #reader: BufferedReader;
  #handler: H2Handler;
  #decoder: HpackDecoder;
  #streams = new Map<number, H2Stream>();
  #sendable = new Set<H2Stream>();
  #lastStream = 0;
  #active = 0;
  #maxStreams: number;
  #maxList: number;
  #idleTimeout: number;
  #headerTimeout: number;
  #stallTimeout: number;
  #onLog: ((entry: H2LogEntry) => void) | undefined;
  #remoteAddr: Deno.NetAddr | undefined;
  // The peer's settings and our send windows.
  #peerWindow = DEFAULT_WINDOW;
  #peerFrameSize = 16384;
  #connWindow = DEFAULT_WINDOW;
  // Our receive window, replenished as DATA is discarded.
  #recvWindow = DEFAULT_WINDOW;
  // A field block being assembled.
  #blockStream = 0;
  #blockParts: Uint8Array[] = [];
  #blockBytes = 0;
  #blockFrames = 0;
  #blockFlags = 0;
  #blockSince = 0;
  // Output.
  #out: Uint8Array[] = [];
  #batch: Uint8Array | undefined;
  #outBytes = 0;
  #writing = false;
  #flushed: (() => void)[] = [];
  #resets = new Budget(200, 100);
  #control = new Budget(1000, 100);
  #goaway = false;
  #closed = false;
  #idleSince = Date.now();
  #stalledSince = 0;
  /** Why the session closed with an error, if it did (for tests and logs). */
  error: string | null = null;

  /**
   * Makes a session; nothing is sent until {@linkcode run}.
   *
   * @param transport Writes and closes the connection.
   * @param reader Reads it (the preface may already be buffered).
   * @param handler Answers each request.
   * @param options Limits and timeouts.
   */
  constructor(
    transport: H2Transport,
    reader: BufferedReader,
    handler: H2Handler,
    options: H2SessionOptions = {},
  ) {
    this.#transport = transport;
    this.#reader = reader;
    this.#handler = handler;
    this.#maxStreams = options.maxConcurrentStreams ?? 100;
    this.#maxList = options.maxHeaderListSize ?? 65536;
    this.#idleTimeout = options.idleTimeout ?? 30_000;
    this.#headerTimeout = options.headerTimeout ?? 10_000;
    this.#stallTimeout = options.stallTimeout ?? 60_000;
    this.#onLog = options.onLog;
    this.#remoteAddr = options.remoteAddr;
    this.#decoder = new HpackDecoder({ tableSize: 4096, maxListSize: this.#maxList });
  }

  /** Streams open now. */
  get streams(): number {
    return this.#active;
  }

  /**
   * Serves the connection: sends our SETTINGS, reads frames until the peer
   * closes, a connection error, or the end of a graceful shutdown.
   *
   * @returns Resolves when the connection is closed.
   */
  async run(): Promise<void> {
    const settings = new Uint8Array(18);
    const view = new DataView(settings.buffer);
    view.setUint16(0, 3); // MAX_CONCURRENT_STREAMS
    view.setUint32(2, this.#maxStreams);
    view.setUint16(6, 6); // MAX_HEADER_LIST_SIZE
    view.setUint32(8, this.#maxList);
    view.setUint16(12, 2); // ENABLE_PUSH: we never push
    view.setUint32(14, 0);
    this.#queue(frame(SETTINGS, 0, 0, settings));
    this.#blockSince = Date.now();
    try {
      await this.#readPreface();
      this.#blockSince = 0;
      await this.#readLoop();
    } catch (err) {
      if (err instanceof ConnectionError) await this.#fail(err.code, err.message);
    } finally {
      this.#shutdownStreams();
      await this.#drainOutput();
      this.close();
    }
  }

  /** Starts a graceful shutdown: GOAWAY, finish the streams in flight, close. */
  goaway(): void {
    if (this.#goaway || this.#closed) return;
    this.#goaway = true;
    this.#sendGoaway(H2_ERROR.NO_ERROR);
    if (this.#active === 0) void this.#drainOutput().then(() => this.close());
  }

  /** Closes the connection now. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shutdownStreams();
    this.#transport.close();
    this.#settle();
  }

  #settle(): void {
    const waiting = this.#flushed;
    this.#flushed = [];
    for (const w of waiting) w();
  }

  /**
   * Enforces the timeouts; the server's sweeper calls it.
   *
   * @param now The time.
   */
  sweep(now: number): void {
    if (this.#closed) return;
    if (this.#blockSince !== 0 && now - this.#blockSince > this.#headerTimeout) {
      void this.#fail(H2_ERROR.NO_ERROR, "Field block timed out");
    } else if (this.#stalledSince !== 0 && now - this.#stalledSince > this.#stallTimeout) {
      void this.#fail(H2_ERROR.ENHANCE_YOUR_CALM, "Flow-control window kept shut");
    } else if (this.#active === 0 && now - this.#idleSince > this.#idleTimeout) {
      this.goaway();
    }
  }

  async #readPreface(): Promise<void> {
    const r = this.#reader;
    while (r.buffered < H2_PREFACE.length) {
      if ((await r.fill()) === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "No preface");
    }
    const got = r.peek().subarray(0, H2_PREFACE.length);
    if (!got.every((b, i) => b === H2_PREFACE[i])) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "Bad preface");
    }
    r.consume(H2_PREFACE.length);
  }

  async #readLoop(): Promise<void> {
    const r = this.#reader;
    for (;;) {
      while (r.buffered >= 9) {
        const buf = r.peek();
        const length = (buf[0]! << 16) | (buf[1]! << 8) | buf[2]!;
        if (length > OUR_FRAME_SIZE) {
          throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `Frame of ${length} bytes`);
        }
        if (buf.length < 9 + length) break;
        const type = buf[3]!;
        const flags = buf[4]!;
        const id = ((buf[5]! & 0x7f) << 24) | (buf[6]! << 16) | (buf[7]! << 8) | buf[8]!;
        const payload = buf.subarray(9, 9 + length);
        this.#frame(type, flags, id, payload);
        r.consume(9 + length);
        if (this.#closed) return;
      }
      this.#flush();
      if (this.#goaway && this.#active === 0) return;
      if (this.#outBytes >= READ_PAUSE) {
        await this.#drainOutput();
        if (this.#closed) return;
      }
      if ((await r.fill()) === 0) return;
    }
  }

  #frame(type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.#blockStream !== 0 && type !== CONTINUATION) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "Expected CONTINUATION");
    }
    switch (type) {
      case DATA:
        return this.#onData(flags, id, payload);
      case HEADERS:
        return this.#onHeaders(flags, id, payload);
      case PRIORITY:
        if (id === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PRIORITY on stream 0");
        if (payload.length !== 5) this.#resetId(id, H2_ERROR.FRAME_SIZE_ERROR);
        return;
      case RST_STREAM:
        return this.#onReset(id, payload);
      case SETTINGS:
        return this.#onSettings(flags, id, payload);
      case PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
      case PING:
        if (id !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PING size");
        if (flags & ACK) return;
        if (!this.#control.spend()) {
          throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "PING flood");
        }
        this.#queue(frame(PING, ACK, 0, payload.slice()));
        return;
      case GOAWAY:
        if (id !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "GOAWAY on a stream");
        this.#goaway = true;
        return;
      case WINDOW_UPDATE:
        return this.#onWindowUpdate(id, payload);
      case CONTINUATION:
        return this.#onContinuation(flags, id, payload);
      default:
        // Unknown frame types are ignored (§4.1), outside a field block.
        return;
    }
  }

  #onData(flags: number, id: number, payload: Uint8Array): void {
    if (id === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on stream 0");
    if (payload.length > this.#recvWindow) {
      throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "DATA past the window");
    }
    // Request bodies are not read: give the connection window back at once.
    if (payload.length > 0) this.#queue(frame(WINDOW_UPDATE, 0, 0, u32(payload.length)));
    const s = this.#streams.get(id);
    if (s === undefined) {
      if (id > this.#lastStream) {
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on an idle stream");
      }
      return;
    }
    if (s.remoteClosed) {
      this.#reset(s, H2_ERROR.STREAM_CLOSED);
      return;
    }
    if (flags & END_STREAM) {
      s.remoteClosed = true;
      this.#maybeEnd(s);
    }
  }

  #onHeaders(flags: number, id: number, payload: Uint8Array): void {
    if (id === 0 || id % 2 === 0) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `HEADERS on stream ${id}`);
    }
    let start = 0;
    let end = payload.length;
    if (flags & PADDED) {
      const pad = payload[0] ?? 0;
      start = 1;
      end -= pad;
    }
    if (flags & PRIORITY_FLAG) start += 5;
    if (start > end) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "Bad padding");
    this.#blockStream = id;
    this.#blockFlags = flags;
    this.#blockParts = [];
    this.#blockBytes = 0;
    this.#blockFrames = 0;
    this.#blockSince = Date.now();
    this.#addBlock(payload.subarray(start, end), flags);
  }

  #onContinuation(flags: number, id: number, payload: Uint8Array): void {
    if (this.#blockStream === 0 || id !== this.#blockStream) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "Unexpected CONTINUATION");
    }
    if (++this.#blockFrames > MAX_CONTINUATIONS) {
      throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "CONTINUATION flood");
    }
    this.#addBlock(payload, flags);
  }

  #addBlock(part: Uint8Array, flags: number): void {
    this.#blockBytes += part.length;
    if (this.#blockBytes > this.#maxList) {
      throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "Field block too large");
    }
    if ((flags & END_HEADERS) === 0) {
      // Frames are views of the read buffer: keep a copy until the block ends.
      this.#blockParts.push(part.slice());
      return;
    }
    const block = this.#blockParts.length === 0 ? part : concat([...this.#blockParts, part]);
    const id = this.#blockStream;
    const endStream = (this.#blockFlags & END_STREAM) !== 0;
    this.#blockStream = 0;
    this.#blockParts = [];
    this.#blockSince = 0;
    let fields: [string, string][];
    try {
      fields = this.#decoder.decode(block);
    } catch (err) {
      if (err instanceof HpackError) {
        throw new ConnectionError(H2_ERROR.COMPRESSION_ERROR, err.message);
      }
      throw err;
    }
    this.#onFields(id, fields, endStream);
  }

  #onFields(id: number, fields: [string, string][], endStream: boolean): void {
    const existing = this.#streams.get(id);
    if (existing !== undefined) {
      // Trailers: they must end the stream (§8.1).
      if (!endStream || existing.remoteClosed) this.#reset(existing, H2_ERROR.PROTOCOL_ERROR);
      else {
        existing.remoteClosed = true;
        this.#maybeEnd(existing);
      }
      return;
    }
    if (id <= this.#lastStream) {
      // A stream we already closed; the block was decoded to keep HPACK in step.
      return;
    }
    this.#lastStream = id;
    if (this.#goaway) return;
    if (this.#active >= this.#maxStreams) {
      this.#queue(frame(RST_STREAM, 0, id, u32(H2_ERROR.REFUSED_STREAM)));
      return;
    }
    const request = parseRequest(fields);
    if (request !== null && this.#remoteAddr !== undefined) request.remoteAddr = this.#remoteAddr;
    if (request === null) {
      this.#queue(frame(RST_STREAM, 0, id, u32(H2_ERROR.PROTOCOL_ERROR)));
      return;
    }
    const s = new H2Stream(this, id, this.#peerWindow);
    s.remoteClosed = endStream;
    s.request = request;
    s.time = Date.now();
    this.#streams.set(id, s);
    this.#active++;
    void this.#dispatch(s, request);
  }

  async #dispatch(s: H2Stream, request: H2Request): Promise<void> {
    try {
      await this.#handler(request, s);
    } catch {
      // A handler that failed is reset below, as one that returned unfinished.
    }
    if (!s.done) this.#reset(s, H2_ERROR.INTERNAL_ERROR);
  }

  #onReset(id: number, payload: Uint8Array): void {
    if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "RST size");
    if (id === 0 || id > this.#lastStream) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    }
    // Every reset spends the budget, even of a stream already answered: a
    // cheap answer written in the same turn must not hide a rapid reset.
    if (!this.#resets.spend()) {
      throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "Rapid reset");
    }
    const s = this.#streams.get(id);
    if (s !== undefined) this.#remove(s);
  }

  #onSettings(flags: number, id: number, payload: Uint8Array): void {
    if (id !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "ACK size");
      return;
    }
    if (payload.length % 6 !== 0) {
      throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS size");
    }
    if (!this.#control.spend()) {
      throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "SETTINGS flood");
    }
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    for (let at = 0; at < payload.length; at += 6) {
      const key = view.getUint16(at);
      const value = view.getUint32(at + 2);
      if (key === 2 && value > 1) {
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1");
      } else if (key === 4) {
        if (value > MAX_WINDOW) {
          throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
        }
        const delta = value - this.#peerWindow;
        this.#peerWindow = value;
        for (const s of this.#streams.values()) {
          s.window += delta;
          if (s.window > MAX_WINDOW) {
            throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "Window overflow");
          }
        }
      } else if (key === 5) {
        if (value < 16384 || value > 16777215) {
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
        }
        this.#peerFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our encoder never uses the dynamic table.
    }
    this.#queue(frame(SETTINGS, ACK, 0));
    this.#pump();
  }

  #onWindowUpdate(id: number, payload: Uint8Array): void {
    if (payload.length !== 4) {
      throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "WINDOW_UPDATE size");
    }
    const increment = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0) &
      0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "Increment 0");
      this.#connWindow += increment;
      if (this.#connWindow > MAX_WINDOW) {
        throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "Window overflow");
      }
    } else {
      const s = this.#streams.get(id);
      if (s === undefined) {
        if (id > this.#lastStream) {
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        }
        return;
      }
      if (increment === 0) return this.#reset(s, H2_ERROR.PROTOCOL_ERROR);
      s.window += increment;
      if (s.window > MAX_WINDOW) return this.#reset(s, H2_ERROR.FLOW_CONTROL_ERROR);
    }
    this.#pump();
  }

  /** @internal Queues the response's field block (split into CONTINUATIONs when large). */
  sendHeaders(s: H2Stream, block: Uint8Array, endStream: boolean): void {
    if (s.done) return;
    const max = this.#peerFrameSize;
    let flags = endStream ? END_STREAM : 0;
    if (block.length <= max) {
      this.#queue(frame(HEADERS, flags | END_HEADERS, s.id, block));
    } else {
      let type = HEADERS;
      for (let at = 0; at < block.length; at += max) {
        const last = at + max >= block.length;
        this.#queue(
          frame(type, flags | (last ? END_HEADERS : 0), s.id, block.subarray(at, at + max)),
        );
        type = CONTINUATION;
        flags = 0;
      }
    }
    if (endStream) {
      s.done = true;
      this.#maybeEnd(s);
    }
    this.#flushSoon();
  }

  /** @internal Queues body bytes; resolves when they are all framed. */
  sendData(s: H2Stream, data: Uint8Array, end: boolean): Promise<void> {
    if (s.done) return Promise.resolve();
    s.pending = data;
    s.pendingEnd = end;
    const { promise, resolve } = Promise.withResolvers<void>();
    s.drained = resolve;
    this.#sendable.add(s);
    this.#pump();
    return promise;
  }

  /** @internal Resets a stream from our side. */
  reset(s: H2Stream, code: number): void {
    this.#reset(s, code);
  }

  /** Frames pending data round-robin within the windows, up to the high-water mark. */
  #pump(): void {
    if (this.#sendable.size === 0) {
      this.#stalledSince = 0;
      return;
    }
    let progressed = false;
    while (this.#sendable.size > 0 && this.#connWindow > 0 && this.#outBytes < HIGH_WATER) {
      let any = false;
      for (const s of this.#sendable) {
        const data = s.pending;
        if (data === null || s.done) {
          this.#sendable.delete(s);
          continue;
        }
        const n = Math.min(data.length, s.window, this.#connWindow, this.#peerFrameSize);
        if (n <= 0 && data.length > 0) continue;
        const last = n === data.length;
        const endFlag = last && s.pendingEnd ? END_STREAM : 0;
        const head = new Uint8Array(9);
        frameHead(head, 0, n, DATA, endFlag, s.id);
        this.#queue(head);
        // A view, not a copy: the batch is joined once, when it is written.
        if (n > 0) this.#queue(n === data.length ? data : data.subarray(0, n));
        s.window -= n;
        this.#connWindow -= n;
        s.bytes += n;
        any = progressed = true;
        if (last) {
          s.pending = null;
          this.#sendable.delete(s);
          if (s.pendingEnd) {
            s.done = true;
            this.#maybeEnd(s);
          }
          const d = s.drained;
          s.drained = null;
          d?.();
        } else {
          s.pending = data.subarray(n);
        }
        if (this.#outBytes >= HIGH_WATER || this.#connWindow <= 0) break;
      }
      if (!any) break;
    }
    if (progressed) this.#flushSoon();
    // Data left and no window to send it in: the stall clock runs.
    const blocked = this.#sendable.size > 0 && this.#outBytes < HIGH_WATER;
    if (!blocked) this.#stalledSince = 0;
    else if (this.#stalledSince === 0 || progressed) this.#stalledSince = Date.now();
  }

  #maybeEnd(s: H2Stream): void {
    if (!s.done) return;
    if (!s.remoteClosed) {
      // We answered before the request ended (a body we do not read): stop it (§8.1).
      this.#queue(frame(RST_STREAM, 0, s.id, u32(H2_ERROR.NO_ERROR)));
    }
    this.#remove(s);
  }

  #reset(s: H2Stream, code: number): void {
    if (!this.#streams.has(s.id)) return;
    this.#queue(frame(RST_STREAM, 0, s.id, u32(code)));
    this.#flushSoon();
    this.#remove(s);
  }

  #resetId(id: number, code: number): void {
    const s = this.#streams.get(id);
    if (s !== undefined) this.#reset(s, code);
    else this.#queue(frame(RST_STREAM, 0, id, u32(code)));
  }

  #remove(s: H2Stream): void {
    if (!this.#streams.delete(s.id)) return;
    this.#active--;
    this.#sendable.delete(s);
    const complete = s.done && !s.aborted;
    if (!complete) s.abort();
    if (this.#onLog !== undefined && s.request !== null) {
      this.#onLog({ time: s.time, request: s.request, status: s.status, bytes: s.bytes });
    }
    if (this.#active === 0) {
      this.#idleSince = Date.now();
      if (this.#goaway) void this.#drainOutput().then(() => this.close());
    }
  }

  #shutdownStreams(): void {
    for (const s of [...this.#streams.values()]) this.#remove(s);
  }

  #sendGoaway(code: number): void {
    const payload = new Uint8Array(8);
    const view = new DataView(payload.buffer);
    view.setUint32(0, this.#lastStream);
    view.setUint32(4, code);
    this.#queue(frame(GOAWAY, 0, 0, payload));
    this.#flushSoon();
  }

  async #fail(code: number, message: string): Promise<void> {
    if (this.#closed) return;
    if (code !== H2_ERROR.NO_ERROR) this.error = message;
    this.#goaway = true;
    // GOAWAY first: ending the last stream starts the close once the output is drained.
    this.#sendGoaway(code);
    this.#shutdownStreams();
    await this.#drainOutput();
    this.close();
  }

  #queue(bytes: Uint8Array): void {
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
  }

  #flushSoon(): void {
    if (this.#writing || this.#out.length === 0) return;
    // Let the other streams answered in this turn join the same write.
    this.#writing = true;
    queueMicrotask(() => {
      this.#writing = false;
      this.#flush();
    });
  }

  /** Writes what is queued, one socket write per batch. */
  #flush(): void {
    if (this.#writing || this.#out.length === 0 || this.#closed) return;
    this.#writing = true;
    void (async () => {
      try {
        while (this.#out.length > 0 && !this.#closed) {
          const parts = this.#out;
          const size = this.#outBytes;
          this.#out = [];
          this.#outBytes = 0;
          await this.#transport.write(parts.length === 1 ? parts[0]! : this.#join(parts, size));
          this.#pump();
        }
      } catch {
        this.close();
      } finally {
        this.#writing = false;
        this.#settle();
      }
    })();
  }

  /**
   * Joins a batch into the session's write buffer, reused from write to
   * write (a write is awaited before the next batch): no allocation per batch.
   */
  #join(parts: Uint8Array[], size: number): Uint8Array {
    if (size > BATCH_MAX) return concat(parts);
    // Grown to the largest batch seen, so a connection of small answers keeps a small buffer.
    if (this.#batch === undefined || this.#batch.length < size) {
      this.#batch = new Uint8Array(Math.min(BATCH_MAX, Math.ceil(size / 16384) * 16384));
    }
    let at = 0;
    for (const p of parts) {
      this.#batch.set(p, at);
      at += p.length;
    }
    return this.#batch.subarray(0, at);
  }

  /** Resolves when everything queued has been written (or the connection is gone). */
  #drainOutput(): Promise<void> {
    if (this.#closed || (this.#out.length === 0 && !this.#writing)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#flushed.push(resolve);
    this.#flush();
    return promise.then(() => this.#out.length > 0 ? this.#drainOutput() : undefined);
  }
}

/** Checks a request's fields (RFC 9113 §8.2, §8.3); `null` when malformed. */
function parseRequest(fields: [string, string][]): H2Request | null {
  const pseudo = new Map<string, string>();
  const headers: [string, string][] = [];
  let regular = false;
  let cookies: string[] | null = null;
  for (const [name, value] of fields) {
    if (name.startsWith(":")) {
      // Known, once each, and before every regular field (§8.3).
      if (regular || !PSEUDO.has(name) || pseudo.has(name)) return null;
      pseudo.set(name, value);
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase() || CONNECTION_SPECIFIC.has(name)) return null;
    if (name === "te" && value !== "trailers") return null;
    if (name === "cookie") {
      // Cookie crumbs are joined with "; " (§8.2.3), not with a comma.
      (cookies ??= []).push(value);
      continue;
    }
    headers.push([name, value]);
  }
  if (cookies !== null) headers.push(["cookie", cookies.join("; ")]);
  const method = pseudo.get(":method") ?? "";
  const path = pseudo.get(":path") ?? "";
  const scheme = pseudo.get(":scheme") ?? "";
  let authority = pseudo.get(":authority") ?? "";
  if (method === "") return null;
  if (method !== "CONNECT" && (path === "" || scheme === "")) return null;
  if (authority === "") {
    authority = h2Field({ headers }, "host") ?? "";
  }
  return { method, path, authority, scheme, headers };
}

/**
 * The value of a request field over HTTP/2 (names arrive in lower case).
 *
 * @param request The request, or just its fields.
 * @param name The field name, in lower case.
 * @returns The first value, or `null` when the field is absent.
 *
 * @example
 * ```ts
 * import { h2Field } from "./session.ts";
 * import { assertEquals } from "../../testing/assert.ts";
 * assertEquals(h2Field({ headers: [["accept", "text/html"]] }, "accept"), "text/html");
 * assertEquals(h2Field({ headers: [] }, "accept"), null);
 * ```
 */
export function h2Field(request: Pick<H2Request, "headers">, name: string): string | null {
  for (const [n, v] of request.headers) if (n === name) return v;
  return null;
}
