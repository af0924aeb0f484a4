/**
 * A read buffer over a connection or a stream reader, from which the HTTP/1.1
 * parsers read heads and bodies without a per-byte await.
 *
 * @module
 */

/** Anything with `Deno.Conn`'s `read`: fills `p`, resolves to the count or `null` at EOF. */
export interface ByteReader {
  /** Reads into `p`; resolves to the number of bytes read, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** A source the {@linkcode BufferedReader} can wrap. */
export type ByteSource = ByteReader | ReadableStreamDefaultReader<Uint8Array>;

/** Options of {@linkcode BufferedReader}. */
export interface BufferedReaderOptions {
  /**
   * Initial buffer size in bytes. It grows when a head is larger, up to the
   * head limit the parser enforces.
   * @default {16384}
   */
  bufferSize?: number;
}

/**
 * A read buffer over a connection or a stream reader. Heads are parsed from
 * the buffer without per-byte awaits; bytes after a message stay buffered
 * for the next one (keep-alive, pipelining) and can be taken out with
 * {@linkcode BufferedReader.takeBuffered} (for a CONNECT tunnel).
 *
 * The reader itself implements {@linkcode ByteReader}, so it can be wrapped
 * again or handed to code that expects a `Deno.Conn`-like reader.
 *
 * @example
 * ```ts
 * import { BufferedReader } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const src = ReadableStream.from([new Uint8Array([1, 2, 3])]).getReader();
 * const r = new BufferedReader(src);
 * await r.fill();
 * assertEquals(r.buffered, 3);
 * ```
 */
export class BufferedReader implements ByteReader {
  #conn: ByteReader | null = null;
  #stream: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  /**
   * Wraps a source.
   *
   * @param source A `Deno.Conn` (or anything with `read(p)`), or a `ReadableStreamDefaultReader`.
   * @param options Buffer size.
   */
  constructor(source: ByteSource, options: BufferedReaderOptions = {}) {
    if (typeof (source as ReadableStreamDefaultReader<Uint8Array>).releaseLock === "function") {
      this.#stream = source as ReadableStreamDefaultReader<Uint8Array>;
    } else {
      this.#conn = source as ByteReader;
    }
    this.#buf = new Uint8Array(options.bufferSize ?? 16384);
  }

  /** The number of bytes read from the source and not consumed yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether the source has reported end of stream (buffered bytes may remain). */
  get eof(): boolean {
    return this.#eof;
  }

  /** The underlying buffer; valid bytes are `buffer[start..end)`. Changes after {@linkcode fill}. */
  get buffer(): Uint8Array {
    return this.#buf;
  }

  /** Offset of the first unconsumed byte in {@linkcode buffer}. */
  get start(): number {
    return this.#start;
  }

  /** Offset just past the last buffered byte in {@linkcode buffer}. */
  get end(): number {
    return this.#end;
  }

  /**
   * Returns a view of the unconsumed bytes (valid until the next fill).
   *
   * @returns The buffered, unconsumed bytes.
   */
  peek(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /**
   * Marks `n` buffered bytes as consumed.
   *
   * @param n How many bytes; at most {@linkcode buffered}.
   */
  consume(n: number): void {
    if (n < 0 || n > this.#end - this.#start) {
      throw new RangeError(`Cannot consume ${n} bytes: only ${this.#end - this.#start} buffered`);
    }
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /**
   * Removes and returns every buffered byte (a copy), e.g. to forward the
   * bytes that followed a CONNECT request into the tunnel.
   *
   * @returns The bytes that were buffered.
   */
  takeBuffered(): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    return out;
  }

  /**
   * Reads more bytes from the source into the buffer, compacting or growing
   * it as needed.
   *
   * @returns The number of bytes added; 0 at end of stream.
   */
  async fill(): Promise<number> {
    if (this.#eof) return 0;
    if (this.#stream !== null) {
      for (;;) {
        const { value, done } = await this.#stream.read();
        if (done) {
          this.#eof = true;
          return 0;
        }
        if (value.length === 0) continue;
        this.#reserve(value.length);
        this.#buf.set(value, this.#end);
        this.#end += value.length;
        return value.length;
      }
    }
    return this.added(await this.#conn!.read(this.room()));
  }

  /**
   * The free space after the buffered bytes, for a caller that reads from
   * the source itself (the server core's loop, which so keeps an async
   * frame of the reader's off each request); report the read with
   * {@linkcode added}. When nothing is buffered this is the whole buffer,
   * so a keep-alive loop allocates no view per read.
   *
   * @returns Where the next bytes go; at least 2048 bytes long.
   */
  room(): Uint8Array {
    // Keep a useful amount of room so a slow trickle is not read byte by byte.
    this.#reserve(2048);
    return this.#end === 0 ? this.#buf : this.#buf.subarray(this.#end);
  }

  /**
   * Accounts for a read into {@linkcode room}.
   *
   * @param n What the source's read returned: a count, or `null` at end of stream.
   * @returns The number of bytes added; 0 at end of stream.
   */
  added(n: number | null): number {
    if (n === null) {
      this.#eof = true;
      return 0;
    }
    this.#end += n;
    return n;
  }

  /**
   * Reads into `p`: buffered bytes first, otherwise straight from the source
   * (no copy through the buffer).
   *
   * @param p The destination.
   * @returns The number of bytes read, or `null` at end of stream.
   */
  async read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return 0;
    if (this.#end === this.#start) {
      if (this.#eof) return null;
      if (this.#conn !== null) {
        const n = await this.#conn.read(p);
        if (n === null) this.#eof = true;
        return n;
      }
      // Stream mode: copy the next chunk straight into `p`; only a remainder
      // that does not fit is buffered, so big chunks do not grow the buffer.
      for (;;) {
        const { value, done } = await this.#stream!.read();
        if (done) {
          this.#eof = true;
          return null;
        }
        if (value.length === 0) continue;
        const n = Math.min(p.length, value.length);
        p.set(n === value.length ? value : value.subarray(0, n));
        if (n < value.length) {
          this.#reserve(value.length - n);
          this.#buf.set(value.subarray(n), this.#end);
          this.#end += value.length - n;
        }
        return n;
      }
    }
    const n = Math.min(p.length, this.#end - this.#start);
    p.set(this.#buf.subarray(this.#start, this.#start + n));
    this.consume(n);
    return n;
  }

  /** Makes room for `n` more bytes after `end`. */
  #reserve(n: number): void {
    if (this.#buf.length - this.#end >= n) return;
    const used = this.#end - this.#start;
    if (this.#start > 0 && this.#buf.length - used >= n && used <= this.#buf.length / 2) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      let size = this.#buf.length * 2;
      while (size - used < n) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = used;
  }
}
