// Byte classes and small scanners shared by the HTTP/1.1 parsers and encoders (RFC 9110 §5.6.2,
// RFC 9112 §5). Private to lib/http.

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;
export const SEMI = 59;
export const EQ = 61;
export const DQUOTE = 34;
export const BACKSLASH = 92;

/** tchar (RFC 9110 §5.6.2): 1 where the byte may appear in a token. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
/** Bytes allowed inside a field value (§5.5): HTAB, SP, VCHAR, obs-text. */
export const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[HTAB] = 1;
for (let c = 0x20; c < 0x100; c++) if (c !== 0x7f) FIELD_VALUE[c] = 1;
/** Bytes allowed in a request-target: visible ASCII (RFC 3986 chars are a subset). */
export const TARGET = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) TARGET[c] = 1;
/** Hex digit values, -1 where not a hex digit. */
export const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) HEX[65 + c] = HEX[97 + c] = 10 + c;

export const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Request heads are ASCII but for rare obs-text, and for ASCII UTF-8 is
// Latin-1: the UTF-8 TextDecoder is the fast path (about 0.17 µs for a
// 50-byte head). WHATWG's "latin1" decoder is windows-1252, which maps
// 0x80–0x9F elsewhere, and 3.5 times slower; node:buffer's latin1Slice is
// faster but costs about 1 MB of heap per event loop to load.
const UTF8 = new TextDecoder();

/**
 * Decodes bytes as ISO-8859-1, one char per byte, as field values are read
 * (RFC 9110 §5.5: obs-text is kept, not mapped as windows-1252 would).
 *
 * @param buf The bytes.
 * @param from The first byte.
 * @param to The end (exclusive).
 * @returns The string.
 *
 * @example A byte of 0x80 is U+0080, not the euro sign
 * ```ts
 * import { latin1 } from "./heads.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(latin1(new Uint8Array([0x61, 0x80, 0xe9]), 0, 3), "a\u0080\u00e9");
 * ```
 */
export function latin1(buf: Uint8Array, from: number, to: number): string {
  for (let i = from; i < to; i++) if (buf[i]! >= 0x80) return latin1Bytes(buf, from, to);
  return UTF8.decode(buf.subarray(from, to));
}

/** The exact decoder for bytes above 0x7F, in chunks that keep `apply`'s argument lists short. */
function latin1Bytes(buf: Uint8Array, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i += 4096) {
    const chunk = buf.subarray(i, Math.min(to, i + 4096)) as unknown as number[];
    out += String.fromCharCode.apply(null, chunk);
  }
  return out;
}

/** Index of the first LF in `buf[from..to)`, or -1. A plain loop: TypedArray#indexOf costs ~0.7 µs a call here. */
export function findLf(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (buf[i] === LF) return i;
  return -1;
}
