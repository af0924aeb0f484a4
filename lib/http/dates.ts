/**
 * HTTP dates (RFC 9110 §5.6.7): the one formatter and the one parser.
 *
 * @module
 */

let dateSecond = -1;
let dateString = "";

/**
 * Formats a time as an IMF-fixdate (RFC 9110 §5.6.7), e.g. for `Date` or
 * `Last-Modified`. The string for the latest second formatted so far is
 * cached, so servers may call this for `Date` per response; formatting an
 * older time (a file's mtime) does not evict it.
 *
 * @param time Milliseconds since the epoch; fractions of a second are dropped.
 * @returns E.g. `"Sun, 06 Nov 1994 08:49:37 GMT"`.
 *
 * @example
 * ```ts
 * import { formatHttpDate } from "./dates.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(formatHttpDate(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");
 * ```
 */
export function formatHttpDate(time: number = Date.now()): string {
  const second = Math.floor(time / 1000);
  if (second === dateSecond) return dateString;
  const s = new Date(second * 1000).toUTCString();
  if (second > dateSecond) {
    dateSecond = second;
    dateString = s;
  }
  return s;
}

const ASCTIME_RE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;
const RFC850_YEAR_RE = /^[A-Za-z]+, \d\d-[A-Za-z]{3}-(\d\d) /;

/**
 * Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850 or
 * asctime; RFC 9110 §5.6.7). Other date texts count as invalid, so that `0`
 * or `-1` in `Expires` means "already expired" (RFC 9111 §5.3) and a
 * malformed `If-Modified-Since` is ignored (RFC 9110 §13.1.3).
 *
 * @param value The field value, or `null` when the field is absent.
 * @returns Milliseconds since the epoch, or `undefined` when invalid or absent.
 *
 * @example
 * ```ts
 * import { parseHttpDate } from "./dates.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777000);
 * assertEquals(parseHttpDate("Sun Nov  6 08:49:37 1994"), 784111777000);
 * assertEquals(parseHttpDate("-1"), undefined);
 * ```
 */
export function parseHttpDate(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  // Date.parse also accepts many non-HTTP forms: require a GMT zone or the
  // asctime shape (which has no zone and means GMT).
  const gmt = v.endsWith("GMT");
  if (!gmt && !ASCTIME_RE.test(v)) return undefined;
  const t = Date.parse(gmt ? v : `${v} GMT`);
  if (Number.isNaN(t)) return undefined;
  // RFC 850 dates have two-digit years: one that would be more than 50 years in
  // the future is the most recent past year with those digits (RFC 9110 §5.6.7).
  const rfc850 = RFC850_YEAR_RE.exec(v);
  if (rfc850) {
    const d = new Date(t);
    const nowYear = new Date().getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + Number(rfc850[1]);
    if (year > nowYear + 50) year -= 100;
    d.setUTCFullYear(year);
    return d.getTime();
  }
  return t;
}
