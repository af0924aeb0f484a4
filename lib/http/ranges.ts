/**
 * Byte ranges (RFC 9110 §14): parsing `Range`, evaluating `If-Range`, and the
 * part heads of a `multipart/byteranges` body, shared by the web server
 * (files) and the proxy (stored responses).
 *
 * @module
 */
import { parseHttpDate } from "./dates.ts";
import { compareETags } from "./etag.ts";
import { splitList } from "./fields.ts";

/** An inclusive byte range. */
export interface ByteRange {
  /** The first byte's offset. */
  start: number;
  /** The last byte's offset (inclusive). */
  end: number;
}

/** More ranges than this in one request are refused (416), a guard against amplification. */
const MAX_RANGES = 64;

/**
 * Parses a `Range` header against a size: `undefined` when the header is to be
 * ignored (a unit other than bytes, RFC 9110 §14.2), `[]` when no range is
 * satisfiable or the set is malformed (416: §15.5.17 allows it for invalid
 * ranges, and nginx answers so), else the satisfiable ranges.
 *
 * @param header The `Range` header value.
 * @param size The representation's size in bytes.
 * @returns The ranges, clipped to the size, or `undefined` to ignore the header.
 *
 * @example
 * ```ts
 * import { parseRange } from "./ranges.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(parseRange("bytes=-2", 10), [{ start: 8, end: 9 }]);
 * assertEquals(parseRange("bytes=20-", 10), []);
 * ```
 */
export function parseRange(header: string, size: number): ByteRange[] | undefined {
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (match === null) return undefined;
  // Empty list elements are allowed (RFC 9110 §5.6.1).
  const specs = splitList(match[1]!);
  if (specs.length === 0 || specs.length > MAX_RANGES) return [];
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const m = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (m === null || (m[1] === "" && m[2] === "")) return [];
    if (m[1] === "") {
      const suffix = Number(m[2]);
      if (suffix === 0 || size === 0) continue; // An empty suffix selects nothing.
      ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    if (m[2] !== "" && Number(m[2]) < start) return []; // Invalid (§14.1.1).
    if (start >= size) continue;
    const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    ranges.push({ start, end });
  }
  return ranges;
}

/**
 * Decides which ranges of a representation answer a request (RFC 9110
 * §14.2, §13.1.5): none (send it whole) when there is no `Range`, its unit
 * is unknown, `If-Range` does not match the current validator, or the
 * representation is empty; like nginx, ranges adding up to more than the
 * whole are also sent whole, which defuses overlapping-range amplification.
 *
 * @param request The request's fields (`Range`, `If-Range`).
 * @param representation Its size and validators (`lastModified` in ms, whole seconds).
 * @returns `undefined` to send the whole, `[]` for 416, else the ranges in request order.
 *
 * @example
 * ```ts
 * import { rangesToServe } from "./ranges.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const req = new Headers({ range: "bytes=0-1", "if-range": '"v1"' });
 * assertEquals(rangesToServe(req, { size: 10, etag: '"v1"' }), [{ start: 0, end: 1 }]);
 * assertEquals(rangesToServe(req, { size: 10, etag: '"v2"' }), undefined);
 * ```
 */
export function rangesToServe(
  request: { get(name: string): string | null },
  representation: {
    /** The size in bytes. */
    size: number;
    /** The current entity tag, if any. */
    etag?: string | null;
    /** The current Last-Modified time in ms, if any. */
    lastModified?: number | undefined;
  },
): ByteRange[] | undefined {
  const header = request.get("range");
  const { size } = representation;
  // An empty representation has no byte to select: it is sent whole (200), as nginx does.
  if (header === null || size === 0) return undefined;
  const ranges = parseRange(header, size);
  if (ranges === undefined) return undefined;
  const ifRange = request.get("if-range");
  if (ifRange !== null) {
    // If-Range holds one entity tag or one date (§13.1.5), never a list or `*`.
    const date = ifRange.startsWith('"') || ifRange.startsWith("W/")
      ? undefined
      : parseHttpDate(ifRange);
    const etag = representation.etag ?? null;
    const current = date === undefined
      ? etag !== null && compareETags(ifRange.trim(), etag)
      : representation.lastModified === date;
    if (!current) return undefined; // §13.1.5: a changed representation is sent whole.
  }
  if (ranges.reduce((n, r) => n + r.end - r.start + 1, 0) > size) return undefined;
  return ranges;
}

/**
 * Builds the framing of a `multipart/byteranges` body (RFC 9110 §14.6): the
 * head before each part (boundary, `Content-Type`, `Content-Range`) and the
 * closing delimiter, to interleave with the parts' bytes.
 *
 * @param ranges The ranges, in the order they are sent.
 * @param options The representation's size and type, and the boundary.
 * @returns One head per range, then the closing delimiter; and the whole body's length.
 *
 * @example
 * ```ts
 * import { byterangesFraming } from "./ranges.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const f = byterangesFraming([{ start: 0, end: 0 }, { start: 2, end: 3 }], {
 *   size: 4, type: "text/plain", boundary: "b",
 * });
 * assertEquals(f.parts.length, 3);
 * assertEquals(f.length, f.parts.reduce((n, p) => n + p.length, 0) + 3);
 * ```
 */
export function byterangesFraming(
  ranges: readonly ByteRange[],
  options: {
    /** The representation's size in bytes. */
    size: number;
    /** Its media type, repeated in each part. */
    type: string;
    /** The multipart boundary. */
    boundary: string;
  },
): { parts: Uint8Array<ArrayBuffer>[]; length: number } {
  const { size, type, boundary } = options;
  const enc = new TextEncoder();
  const parts = ranges.map((r) =>
    enc.encode(
      `\r\n--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
    )
  );
  parts.push(enc.encode(`\r\n--${boundary}--\r\n`));
  const length = parts.reduce((n, p) => n + p.length, 0) +
    ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
  return { parts, length };
}
