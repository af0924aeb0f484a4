/**
 * HPACK (RFC 7541), the field compression of HTTP/2: a decoder with a
 * bounded dynamic table and a bounded decoded size (the defence against an
 * HPACK bomb: a large entry referenced many times), and a stateless encoder
 * (static-table indices and literals never indexed), whose output can be
 * cached and replayed on any connection.
 *
 * @module
 */
import { latin1 } from "../_chars.ts";

/** A decoding failure: the connection must be closed with `COMPRESSION_ERROR`. */
export class HpackError extends Error {
  /** Whether the failure is the decoded size limit (an HPACK bomb), not a malformed block. */
  readonly tooLarge: boolean;

  /**
   * Makes the error.
   *
   * @param message What was wrong.
   * @param tooLarge Whether the decoded size limit was crossed.
   */
  constructor(message: string, tooLarge = false) {
    super(message);
    this.name = "HpackError";
    this.tooLarge = tooLarge;
  }
}

// RFC 7541 Appendix A.
const STATIC: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];
const STATIC_NAME = new Map<string, number>();
for (let i = STATIC.length - 1; i >= 0; i--) STATIC_NAME.set(STATIC[i]![0], i + 1);
const STATIC_STATUS = new Map([[200, 8], [204, 9], [206, 10], [304, 11], [400, 12], [404, 13], [
  500,
  14,
]]);

// RFC 7541 Appendix B, code lengths of symbols 0..256 (256 is EOS). The code
// is canonical (codes of one length are consecutive, in symbol order), so the
// lengths alone define it.
const HUFFMAN_LENGTHS = [
  13,
  23,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  24,
  30,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  6,
  10,
  10,
  12,
  13,
  6,
  8,
  11,
  10,
  10,
  8,
  11,
  8,
  6,
  6,
  6,
  5,
  5,
  5,
  6,
  6,
  6,
  6,
  6,
  6,
  6,
  7,
  8,
  15,
  6,
  12,
  10,
  13,
  6,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  8,
  7,
  8,
  13,
  19,
  13,
  14,
  6,
  15,
  5,
  6,
  5,
  6,
  5,
  6,
  6,
  6,
  5,
  7,
  7,
  6,
  6,
  6,
  5,
  6,
  7,
  6,
  5,
  5,
  6,
  7,
  7,
  7,
  7,
  7,
  15,
  11,
  14,
  13,
  28,
  20,
  22,
  20,
  20,
  22,
  22,
  22,
  23,
  22,
  23,
  23,
  23,
  23,
  23,
  24,
  23,
  24,
  24,
  22,
  23,
  24,
  23,
  23,
  23,
  23,
  21,
  22,
  23,
  22,
  23,
  23,
  24,
  22,
  21,
  20,
  22,
  22,
  23,
  23,
  21,
  23,
  22,
  22,
  24,
  21,
  22,
  23,
  23,
  21,
  21,
  22,
  21,
  23,
  22,
  23,
  23,
  20,
  22,
  22,
  22,
  23,
  22,
  22,
  23,
  26,
  26,
  20,
  19,
  22,
  23,
  22,
  25,
  26,
  26,
  26,
  27,
  27,
  26,
  24,
  25,
  19,
  21,
  26,
  27,
  27,
  26,
  27,
  24,
  21,
  21,
  26,
  26,
  28,
  27,
  27,
  27,
  20,
  24,
  20,
  21,
  22,
  21,
  21,
  23,
  22,
  22,
  25,
  25,
  24,
  24,
  26,
  23,
  26,
  27,
  26,
  26,
  27,
  27,
  27,
  27,
  27,
  28,
  27,
  27,
  27,
  27,
  27,
  26,
  30,
];

/** Canonical decoding tables: per length, the first code, the count, and where its symbols start. */
const FIRST_CODE = new Array<number>(31).fill(0);
const COUNT = new Array<number>(31).fill(0);
const OFFSET = new Array<number>(31).fill(0);
const SYMBOLS: number[] = [];
{
  const order = HUFFMAN_LENGTHS.map((len, sym) => [len, sym] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let code = 0;
  let len = order[0]![0];
  for (const [l, sym] of order) {
    code <<= l - len;
    len = l;
    if (COUNT[l] === 0) {
      FIRST_CODE[l] = code;
      OFFSET[l] = SYMBOLS.length;
    }
    COUNT[l]!++;
    SYMBOLS.push(sym);
    code++;
  }
}

const EOS = 256;

/** Decodes a Huffman-coded string (RFC 7541 §5.2), rejecting bad padding and EOS. */
function huffmanDecode(src: Uint8Array, start: number, end: number, max: number): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const index = code - FIRST_CODE[len]!;
      if (COUNT[len]! > 0 && index >= 0 && index < COUNT[len]!) {
        const sym = SYMBOLS[OFFSET[len]! + index]!;
        if (sym === EOS) throw new HpackError("EOS in a Huffman-coded string");
        out.push(sym);
        if (out.length > max) throw new HpackError("Field too large", true);
        code = 0;
        len = 0;
      } else if (len >= 30) {
        throw new HpackError("Invalid Huffman code");
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (the EOS prefix), §5.2.
  if (len > 7 || code !== (1 << len) - 1) throw new HpackError("Invalid Huffman padding");
  return String.fromCharCode(...out);
}

/** Options of {@linkcode HpackDecoder}. */
export interface HpackDecoderOptions {
  /**
   * The dynamic table size we announce (`SETTINGS_HEADER_TABLE_SIZE`); a
   * size update above it is an error.
   * @default {4096}
   */
  tableSize?: number;
  /**
   * The largest decoded field section, counted as RFC 9113 §6.5.2 does
   * (name + value + 32 per field); past it decoding stops.
   * @default {65536}
   */
  maxListSize?: number;
}

/**
 * Decodes HPACK field blocks, keeping the dynamic table across blocks of
 * one connection.
 *
 * @example
 * ```ts
 * import { encodeFields, HpackDecoder } from "./hpack.ts";
 * import { assertEquals } from "../../testing/assert.ts";
 * const block = encodeFields([[":status", "200"], ["content-type", "text/plain"]]);
 * assertEquals(new HpackDecoder().decode(block), [[":status", "200"], ["content-type", "text/plain"]]);
 * ```
 */
export class HpackDecoder {
  #limit: number;
  #max: number;
  #maxList: number;
  #table: [string, string][] = [];
  #size = 0;

  /**
   * Makes a decoder.
   *
   * @param options Table size and decoded size limits.
   */
  constructor(options: HpackDecoderOptions = {}) {
    this.#limit = this.#max = options.tableSize ?? 4096;
    this.#maxList = options.maxListSize ?? 65536;
  }

  /**
   * Decodes one complete field block.
   *
   * @param block The block (HEADERS and CONTINUATION payloads joined).
   * @returns The fields in order.
   * @throws {HpackError} A malformed block, or one decoding past `maxListSize`.
   */
  decode(block: Uint8Array): [string, string][] {
    const fields: [string, string][] = [];
    let listSize = 0;
    let pos = 0;
    let seenField = false;
    const int = (prefix: number): number => {
      if (pos >= block.length) throw new HpackError("Truncated integer");
      const mask = (1 << prefix) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      let shift = 0;
      for (;;) {
        if (pos >= block.length) throw new HpackError("Truncated integer");
        const b = block[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if ((b & 0x80) === 0) break;
        if (shift > 28) throw new HpackError("Integer too large");
      }
      return value;
    };
    const str = (): string => {
      if (pos >= block.length) throw new HpackError("Truncated string");
      const huffman = (block[pos]! & 0x80) !== 0;
      const len = int(7);
      if (pos + len > block.length) throw new HpackError("Truncated string");
      const room = this.#maxList - listSize;
      const start = pos;
      pos += len;
      if (huffman) return huffmanDecode(block, start, pos, room);
      if (len > room) throw new HpackError("Field section too large", true);
      return latin1(block, start, pos);
    };
    while (pos < block.length) {
      const b = block[pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        [name, value] = this.#entry(int(7));
      } else if (b & 0x40) {
        const index = int(6);
        name = index === 0 ? str() : this.#entry(index)[0];
        value = str();
        this.#insert(name, value);
      } else if (b & 0x20) {
        // A size update must come first in a block (§4.2) and stay within our setting.
        if (seenField) throw new HpackError("Table size update after a field");
        const size = int(5);
        if (size > this.#limit) throw new HpackError(`Table size ${size} over ${this.#limit}`);
        this.#max = size;
        this.#evict(0);
        continue;
      } else {
        const index = int(4);
        name = index === 0 ? str() : this.#entry(index)[0];
        value = str();
      }
      seenField = true;
      listSize += name.length + value.length + 32;
      if (listSize > this.#maxList) throw new HpackError("Field section too large", true);
      fields.push([name, value]);
    }
    return fields;
  }

  #entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("Index 0");
    if (index <= STATIC.length) return STATIC[index - 1]!;
    const entry = this.#table[index - STATIC.length - 1];
    if (entry === undefined) throw new HpackError(`Index ${index} out of range`);
    return entry;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.#evict(size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size > this.#max) return;
    this.#table.unshift([name, value]);
    this.#size += size;
  }

  #evict(room: number): void {
    while (this.#size + room > this.#max && this.#table.length > 0) {
      const [n, v] = this.#table.pop()!;
      this.#size -= n.length + v.length + 32;
    }
  }
}

const encoder = new TextEncoder();

function pushInt(out: number[], value: number, prefix: number, flags: number): void {
  const mask = (1 << prefix) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  value -= mask;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function pushString(out: number[], s: string): void {
  const bytes = encoder.encode(s);
  pushInt(out, bytes.length, 7, 0);
  for (const b of bytes) out.push(b);
}

/**
 * Encodes fields as an HPACK block without touching any dynamic table:
 * static-table indices where they match, literals never indexed otherwise,
 * so a block can be cached and sent on any connection.
 *
 * @param fields Names in lower case; pseudo-fields first.
 * @returns The block.
 *
 * @example
 * ```ts
 * import { encodeFields } from "./hpack.ts";
 * import { assertEquals } from "../../testing/assert.ts";
 * assertEquals(encodeFields([[":status", "200"]]), new Uint8Array([0x88]));
 * ```
 */
export function encodeFields(fields: Iterable<readonly [string, string]>): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ":status") {
      const index = STATIC_STATUS.get(Number(value));
      if (index !== undefined) {
        out.push(0x80 | index);
        continue;
      }
    }
    const index = STATIC_NAME.get(name);
    // Literal without indexing (§6.2.2): no dynamic-table state to keep in step.
    if (index !== undefined) pushInt(out, index, 4, 0);
    else {
      out.push(0);
      pushString(out, name);
    }
    pushString(out, value);
  }
  return new Uint8Array(out);
}
