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

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY = "(?:mon|tue|wed|thu|fri|sat|sun)";
const DAY_L = "(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)";
const MONTH = `(${MONTHS.join("|")})`;
const TIME = "(\\d\\d):(\\d\\d):(\\d\\d)";
// The three grammars of RFC 9110 §5.6.7, exactly: one space between parts, a comma
// after the day name, two-digit hours. Names match in any case, as browsers and
// most caches accept "gmt" or "AUG" although the RFC spells them one way.
const IMF_FIXDATE_RE = new RegExp(`^${DAY}, (\\d\\d) ${MONTH} (\\d{4}) ${TIME} GMT$`, "i");
const RFC850_RE = new RegExp(`^${DAY_L}, (\\d\\d)-${MONTH}-(\\d\\d) ${TIME} GMT$`, "i");
const ASCTIME_RE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, "i");

/**
 * Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850 or
 * asctime; RFC 9110 §5.6.7). Other date texts count as invalid, so that `0`
 * or `-1` in `Expires` means "already expired" (RFC 9111 §5.3) and a
 * malformed `If-Modified-Since` is ignored (RFC 9110 §13.1.3). The grammar is
 * followed exactly (a missing comma, doubled spaces, dashes in an
 * IMF-fixdate or a one-digit hour make a date invalid), except that names
 * match in any case.
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
 * assertEquals(parseHttpDate("Sun 06 Nov 1994 08:49:37 GMT"), undefined);
 * assertEquals(parseHttpDate("-1"), undefined);
 * ```
 */
export function parseHttpDate(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  let m = IMF_FIXDATE_RE.exec(v);
  if (m !== null) return utc(Number(m[3]), m[2]!, m[1]!, m.slice(4, 7));
  m = ASCTIME_RE.exec(v);
  if (m !== null) return utc(Number(m[6]), m[1]!, m[2]!.trim(), m.slice(3, 6));
  m = RFC850_RE.exec(v);
  if (m === null) return undefined;
  // RFC 850 dates have two-digit years: one that would be more than 50 years in
  // the future is the most recent past year with those digits (RFC 9110 §5.6.7).
  const nowYear = new Date().getUTCFullYear();
  let year = Math.floor(nowYear / 100) * 100 + Number(m[3]);
  if (year > nowYear + 50) year -= 100;
  return utc(year, m[2]!, m[1]!, m.slice(4, 7));
}

/** The time of a parsed date, or `undefined` when a part is out of range (31 Feb, 24:00). */
function utc(year: number, monthName: string, dayText: string, hms: string[]): number | undefined {
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const day = Number(dayText);
  const [h, m, s] = hms.map(Number) as [number, number, number];
  // Second 60 is a leap second (RFC 5322 §3.3); it counts as the next second.
  if (month < 0 || h > 23 || m > 59 || s > 60 || day < 1) return undefined;
  const d = new Date(0);
  // Day 0 of the next month is this month's last day, leap years included.
  d.setUTCFullYear(year, month + 1, 0);
  if (day > d.getUTCDate()) return undefined;
  d.setUTCFullYear(year, month, day);
  d.setUTCHours(h, m, s, 0);
  return d.getTime();
}
