/**
 * Entity-tag comparison and the `If-Match` / `If-None-Match` list rules
 * (RFC 9110 §8.8.3, §13.1.1, §13.1.2), shared by the web server's
 * conditional requests and the proxy cache's.
 *
 * @module
 */
import { splitList } from "./fields.ts";

/** Options of {@linkcode compareETags} and {@linkcode matchETagList}. */
export interface ETagCompareOptions {
  /**
   * Use the weak comparison (equal opaque tags, either may be weak), as
   * `If-None-Match` does; otherwise the strong one (both strong and equal), as
   * `If-Match` and `If-Range` do.
   *
   * @default {false}
   */
  weak?: boolean;
}

/**
 * Compares two entity tags (RFC 9110 §8.8.3.2): strongly, both must be
 * strong and identical; weakly, their opaque tags (without `W/`) must be.
 *
 * @param a An entity tag, e.g. `'"v1"'` or `'W/"v1"'`.
 * @param b Another.
 * @param options Which comparison.
 * @returns Whether they match.
 *
 * @example
 * ```ts
 * import { compareETags } from "./etag.ts";
 * import { assert } from "../testing/assert.ts";
 * assert(compareETags('"v1"', '"v1"'));
 * assert(!compareETags('W/"v1"', '"v1"'));
 * assert(compareETags('W/"v1"', '"v1"', { weak: true }));
 * ```
 */
export function compareETags(a: string, b: string, options: ETagCompareOptions = {}): boolean {
  if (options.weak) return opaqueTag(a) === opaqueTag(b);
  return a === b && !a.startsWith("W/");
}

/**
 * Tells whether an `If-Match` or `If-None-Match` field value names the
 * current entity tag: `*` alone names any, otherwise one element of the list
 * must compare equal (commas inside a quoted tag do not split it).
 *
 * @param list The field value, e.g. `'"a", W/"b"'` or `"*"`.
 * @param etag The current representation's entity tag.
 * @param options Which comparison: strong for `If-Match`, weak for `If-None-Match`.
 * @returns Whether the list names the tag.
 *
 * @example If-None-Match compares weakly, If-Match strongly
 * ```ts
 * import { matchETagList } from "./etag.ts";
 * import { assert } from "../testing/assert.ts";
 * assert(matchETagList('"x", W/"y"', '"y"', { weak: true }));
 * assert(!matchETagList('"x", W/"y"', '"y"'));
 * assert(matchETagList(" * ", '"z"'));
 * ```
 */
export function matchETagList(
  list: string,
  etag: string,
  options: ETagCompareOptions = {},
): boolean {
  const elements = splitList(list);
  if (elements.length === 1 && elements[0] === "*") return true;
  return elements.some((tag) => compareETags(tag, etag, options));
}

function opaqueTag(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}
