/**
 * Partial responses (206) kept until they add up to a whole (RFC 9111 §3.4):
 * parts of one representation combine only when they share a strong
 * validator, and the whole then goes to the store as a 200.
 *
 * @module
 */
import { parseHttpDate } from "../lib/http/dates.ts";
import { updateStoredFields } from "./cache.ts";

/** One 206 as it arrived: which bytes, of what, with which fields. */
export interface Part {
  /** The absolute URI. */
  url: string;
  /** The first byte's offset. */
  start: number;
  /** The part's bytes (copied: the store keeps them). */
  bytes: Uint8Array;
  /** The complete length from `Content-Range`. */
  size: number;
  /** The response fields, lower-case names, without `Content-Range` and `Content-Length`. */
  fields: Array<[string, string]>;
  /** When the request was sent (ms). */
  requestTime: number;
  /** When the response head arrived (ms). */
  responseTime: number;
}

/** A representation put together from parts: its fields and body pieces, in order. */
export interface Whole {
  /** The fields of the latest part, merged over the earlier ones (RFC 9111 §3.2). */
  fields: Array<[string, string]>;
  /** Body pieces in order, without overlap, covering every byte. */
  pieces: Uint8Array[];
  /** The complete length. */
  size: number;
  /** When the latest part's request was sent (ms). */
  requestTime: number;
  /** When the latest part's head arrived (ms). */
  responseTime: number;
}

interface Assembly {
  validator: string;
  size: number;
  fields: Array<[string, string]>;
  /** Sorted by start, without overlap. */
  pieces: Array<{ start: number; bytes: Uint8Array }>;
  bytes: number;
  /** What it costs beside its bytes: URI, validator, fields, bookkeeping. */
  overhead: number;
}

/** Bytes an assembly costs beside its URI, validator, fields and pieces: objects and map slots. */
const ASSEMBLY_OVERHEAD = 256;

function overheadOf(url: string, validator: string, fields: Array<[string, string]>): number {
  let n = ASSEMBLY_OVERHEAD + url.length + validator.length;
  for (const [name, value] of fields) n += name.length + value.length + 32;
  return n;
}

/**
 * The strong validator of a response's fields (RFC 9110 §8.8.1), as one
 * string: a strong `ETag`, or without an `ETag`, a `Last-Modified` at least
 * 60 s before `Date` (§8.8.2.2); `undefined` when it has neither.
 *
 * @param get Reads a field by lower-case name.
 * @returns The validator, or `undefined`.
 *
 * @example
 * ```ts
 * import { strongValidator } from "./_parts.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const h = new Headers({ etag: 'W/"x"' });
 * assertEquals(strongValidator((n) => h.get(n)), undefined);
 * ```
 */
export function strongValidator(get: (name: string) => string | null): string | undefined {
  const etag = get("etag")?.trim();
  if (etag !== undefined) return etag.startsWith("W/") ? undefined : `etag ${etag}`;
  const lm = parseHttpDate(get("last-modified"));
  const date = parseHttpDate(get("date"));
  if (lm === undefined || date === undefined || date - lm < 60_000) return undefined;
  return `last-modified ${lm}`;
}

/**
 * Parses a single-range `Content-Range` with a known complete length
 * (`bytes 0-99/1000`).
 *
 * @param value The field value.
 * @returns The range and the complete length, or `undefined`.
 *
 * @example
 * ```ts
 * import { parseContentRange } from "./_parts.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseContentRange("bytes 0-99/1000"), { start: 0, end: 99, size: 1000 });
 * ```
 */
export function parseContentRange(
  value: string | null,
): { start: number; end: number; size: number } | undefined {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(value ?? "");
  if (m === null) return undefined;
  const [start, end, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return start <= end && end < size ? { start, end, size } : undefined;
}

/**
 * Parts per URI, bounded in bytes (the oldest assembly goes first), each
 * counted with its URI, fields and bookkeeping as well as its bytes: a
 * 1-byte part of a URI with an 8 KB query string costs about 9 KB. A part
 * whose validator differs from the parts held replaces them: it belongs to
 * another representation (RFC 9111 §3.4 forbids combining those).
 *
 * @example
 * ```ts
 * import { PartStore } from "./_parts.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const parts = new PartStore(1 << 20);
 * const part = (start: number, text: string) => ({
 *   url: "http://a.test/", start, bytes: new TextEncoder().encode(text), size: 4,
 *   fields: [], requestTime: 0, responseTime: 0,
 * });
 * assertEquals(parts.add(part(0, "ab"), 'etag "v"'), undefined);
 * assertEquals(parts.add(part(2, "cd"), 'etag "v"')?.pieces.length, 2);
 * ```
 */
export class PartStore {
  #byUrl = new Map<string, Assembly>();
  #bytes = 0;
  #overhead = 0;
  #budget: number;

  /** @param budget Bytes the parts may hold in all. */
  constructor(budget: number) {
    this.#budget = budget;
  }

  /** Body bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** URIs with parts held. */
  get size(): number {
    return this.#byUrl.size;
  }

  /**
   * Adds a part.
   *
   * @param part The part.
   * @param validator Its strong validator ({@linkcode strongValidator}).
   * @returns The whole, when the parts now cover it (they are then forgotten).
   */
  add(part: Part, validator: string): Whole | undefined {
    if (part.size > this.#budget) return undefined;
    let a = this.#byUrl.get(part.url);
    if (a !== undefined && (a.validator !== validator || a.size !== part.size)) {
      this.delete(part.url);
      a = undefined;
    }
    if (a === undefined) {
      a = { validator, size: part.size, fields: part.fields, pieces: [], bytes: 0, overhead: 0 };
    } else {
      this.#byUrl.delete(part.url);
      // The newest fields win (RFC 9111 §3.4, as a 304 updates them, §3.2).
      a.fields = updateStoredFields(a.fields, part.fields);
    }
    const overhead = overheadOf(part.url, validator, a.fields);
    this.#overhead += overhead - a.overhead;
    a.overhead = overhead;
    this.#byUrl.set(part.url, a);
    this.#insert(a, part.start, part.bytes);
    if (covered(a)) {
      this.delete(part.url);
      return {
        fields: a.fields,
        pieces: a.pieces.map((p) => p.bytes),
        size: a.size,
        requestTime: part.requestTime,
        responseTime: part.responseTime,
      };
    }
    for (const [url] of this.#byUrl) {
      if (this.#bytes + this.#overhead <= this.#budget) break;
      this.delete(url);
    }
    return undefined;
  }

  /**
   * Forgets the parts of a URI.
   *
   * @param url The absolute URI.
   */
  delete(url: string): void {
    const a = this.#byUrl.get(url);
    if (a === undefined) return;
    this.#bytes -= a.bytes;
    this.#overhead -= a.overhead;
    this.#byUrl.delete(url);
  }

  /** Puts bytes at `start`, keeping only what no held piece covers yet. */
  #insert(a: Assembly, start: number, bytes: Uint8Array): void {
    let pos = start;
    const end = start + bytes.length;
    const out: Array<{ start: number; bytes: Uint8Array }> = [];
    for (const p of a.pieces) {
      const pEnd = p.start + p.bytes.length;
      if (pos < end && p.start > pos) {
        const to = Math.min(p.start, end);
        out.push({ start: pos, bytes: bytes.subarray(pos - start, to - start) });
        pos = to;
      }
      out.push(p);
      if (pEnd > pos) pos = pEnd;
    }
    if (pos < end) out.push({ start: pos, bytes: bytes.subarray(pos - start) });
    let total = 0;
    for (const p of out) total += p.bytes.length;
    this.#bytes += total - a.bytes;
    a.bytes = total;
    a.pieces = out;
  }
}

/** Whether the pieces run from 0 to the end without a gap. */
function covered(a: Assembly): boolean {
  let pos = 0;
  for (const p of a.pieces) {
    if (p.start !== pos) return false;
    pos += p.bytes.length;
  }
  return pos === a.size;
}
