/**
 * HTTP dates (RFC 9110 §5.6.7).
 *
 * @module
 */

let dateSecond = -1;
let dateString = "";

/**
 * Formats a time as an IMF-fixdate (RFC 9110 §5.6.7), e.g. for `Date`. The
 * string for the current second is cached, so servers may call this per
 * response.
 *
 * @param time Milliseconds since the epoch.
 * @returns E.g. `"Sun, 06 Nov 1994 08:49:37 GMT"`.
 *
 * @example
 * ```ts
 * import { httpDate } from "./mod.ts";
 * console.assert(httpDate(784111777000) === "Sun, 06 Nov 1994 08:49:37 GMT");
 * ```
 */
export function httpDate(time: number = Date.now()): string {
  const second = Math.floor(time / 1000);
  if (second === dateSecond) return dateString;
  const s = new Date(second * 1000).toUTCString();
  dateSecond = second;
  dateString = s;
  return s;
}
