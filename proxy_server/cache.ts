/**
 * HTTP caching policy for a shared cache (RFC 9111), as pure functions over
 * request and response heads and times. Nothing here touches a socket or a
 * disk: the proxy asks these functions what to do and does it.
 *
 * Times are milliseconds since the epoch; lifetimes and ages are seconds,
 * as the RFC counts them.
 *
 * @module
 */
import { parseHttpDate } from "../lib/http/dates.ts";
import { matchETagList } from "../lib/http/etag.ts";
import { splitList } from "../lib/http/fields.ts";
import { parseDictionary } from "../lib/http/structured.ts";
import type { EntryMeta } from "./store.ts";

/** Anything that reads header fields by name, such as the Web `Headers` class. */
export interface FieldReader {
  /** Returns the combined field value, or `null` when the field is absent. */
  get(name: string): string | null;
}

/** Parsed Cache-Control directives: lower-case name → argument, or `true` without one. */
export type CacheControl = Map<string, string | true>;

/**
 * Parses a Cache-Control field value into its directives (RFC 9111 §5.2).
 * Names are case-insensitive; quoted arguments are unquoted; the first
 * occurrence of a repeated directive wins.
 *
 * @param value The field value, or `null` when absent.
 * @returns The directives.
 *
 * @example
 * ```ts
 * import { parseCacheControl } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const cc = parseCacheControl('max-age=60, no-cache="set-cookie", public');
 * assertEquals(cc.get("max-age"), "60");
 * assertEquals(cc.get("public"), true);
 * ```
 */
export function parseCacheControl(value: string | null): CacheControl {
  const out: CacheControl = new Map();
  if (value === null) return out;
  for (const element of splitList(value)) {
    const eq = element.indexOf("=");
    const name = (eq < 0 ? element : element.slice(0, eq)).trim().toLowerCase();
    let arg: string | true = true;
    if (eq >= 0) {
      const text = element.slice(eq + 1).trim();
      arg = text.startsWith('"') ? unquote(text) : text;
    }
    if (name !== "" && !out.has(name)) out.set(name, arg);
  }
  return out;
}

/** The content of a quoted-string (RFC 9110 §5.6.4), up to its closing quote. */
function unquote(text: string): string {
  let s = "";
  for (let i = 1; i < text.length && text[i] !== '"'; i++) {
    if (text[i] === "\\" && i + 1 < text.length) i++;
    s += text[i];
  }
  return s;
}

/**
 * Parses a delta-seconds argument (RFC 9111 §1.2.2): a non-negative integer,
 * saturating at 2^31 as the RFC asks.
 *
 * @param arg The directive argument.
 * @returns The seconds, or `undefined` when the argument is missing or invalid.
 *
 * @example
 * ```ts
 * import { deltaSeconds } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(deltaSeconds("60"), 60);
 * assertEquals(deltaSeconds("-1"), undefined);
 * ```
 */
export function deltaSeconds(arg: string | true | undefined): number | undefined {
  if (typeof arg !== "string" || !/^[0-9]+$/.test(arg)) return undefined;
  const n = Number(arg);
  return n > 2147483648 ? 2147483648 : n;
}

/** Status codes that are heuristically cacheable by default (RFC 9110 §15.1). */
export const HEURISTIC_STATUSES: ReadonlySet<number> = new Set([
  200,
  203,
  204,
  300,
  301,
  308,
  404,
  405,
  410,
  414,
  501,
]);

/** Status codes whose semantics this cache understands well enough to store. */
const UNDERSTOOD_STATUSES: ReadonlySet<number> = new Set([
  200,
  203,
  204,
  300,
  301,
  302,
  303,
  307,
  308,
  400,
  403,
  404,
  405,
  410,
  414,
  500,
  501,
  502,
  503,
  504,
]);

/** The verdict of {@linkcode storability}. */
export interface Storability {
  /** Whether the response may be stored. */
  storable: boolean;
  /** A short token that says why not (for Cache-Status `detail`), or `"ok"`. */
  reason: string;
}

/**
 * Decides whether a shared cache may store a response (RFC 9111 §3, §3.5).
 *
 * @param request The request method and header fields.
 * @param response The response status and header fields.
 * @returns Whether it is storable, and why not.
 *
 * @example
 * ```ts
 * import { storability } from "./cache.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const v = storability(
 *   { method: "GET", headers: new Headers() },
 *   { status: 200, headers: new Headers({ "cache-control": "max-age=60" }) },
 * );
 * assert(v.storable);
 * ```
 */
export function storability(
  request: { method: string; headers: FieldReader },
  response: { status: number; headers: FieldReader },
): Storability {
  // §3: only GET is stored here; HEAD is answered from a stored GET (§4.3.5 does not
  // apply: we never store HEAD responses, which have no body to serve later).
  if (request.method !== "GET") return { storable: false, reason: "method" };
  const status = response.status;
  const cc = parseCacheControl(response.headers.get("cache-control"));
  // §3: any final status may be stored, except that 206 and 304 (which this
  // cache does not combine or store) and, with must-understand (§5.2.2.3),
  // any status the cache does not understand, are not.
  if (status < 200 || status === 206 || status === 304) {
    return { storable: false, reason: "status" };
  }
  const mustUnderstand = cc.has("must-understand");
  if (mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) {
    return { storable: false, reason: "status" };
  }
  const reqCc = parseCacheControl(request.headers.get("cache-control"));
  if (reqCc.has("no-store")) return { storable: false, reason: "request-no-store" };
  // §5.2.2.3: a cache that understands the status ignores no-store under must-understand.
  if (cc.has("no-store") && !mustUnderstand) return { storable: false, reason: "no-store" };
  // §5.2.2.7: an unqualified private forbids a shared cache from storing.
  if (cc.get("private") === true) return { storable: false, reason: "private" };
  const vary = response.headers.get("vary");
  if (vary !== null && splitList(vary).includes("*")) {
    // §4.1: "Vary: *" never matches, so storing it would only waste space.
    return { storable: false, reason: "vary-star" };
  }
  // §3.5: a shared cache stores answers to authenticated requests only when told to.
  if (
    request.headers.get("authorization") !== null &&
    !cc.has("must-revalidate") && !cc.has("public") && !cc.has("s-maxage")
  ) {
    return { storable: false, reason: "authorization" };
  }
  // §3: something must make it cacheable: explicit freshness, public, or a heuristic status.
  if (
    cc.has("public") || cc.has("max-age") || cc.has("s-maxage") ||
    response.headers.get("expires") !== null || HEURISTIC_STATUSES.has(status)
  ) {
    return { storable: true, reason: "ok" };
  }
  return { storable: false, reason: "no-freshness" };
}

/** A stored response's timing facts, from which ages are computed. */
export interface ResponseTiming {
  /** When the request that produced the response was sent (ms). */
  requestTime: number;
  /** When the response head was received (ms). */
  responseTime: number;
}

/** The freshness lifetime of a response and where it came from. */
export interface Freshness {
  /** Freshness lifetime in seconds. */
  lifetime: number;
  /** Whether the lifetime is heuristic (§4.2.2) rather than explicit. */
  heuristic: boolean;
}

/**
 * Computes a response's freshness lifetime for a shared cache (RFC 9111 §4.2.1):
 * `s-maxage`, then `max-age`, then `Expires` − `Date`, then the heuristic
 * 10% of the time since `Last-Modified` (§4.2.2) for heuristically cacheable
 * statuses or `public` responses.
 *
 * @param status The response status.
 * @param headers The response header fields.
 * @param options When the response was received (used when `Date` is absent).
 * @returns The lifetime in seconds and whether it is heuristic.
 *
 * @example
 * ```ts
 * import { freshnessLifetime } from "./cache.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * const f = freshnessLifetime(200, new Headers({ "cache-control": "s-maxage=5, max-age=60" }));
 * assertEquals(f.lifetime, 5);
 * assert(!f.heuristic);
 * ```
 */
export function freshnessLifetime(
  status: number,
  headers: FieldReader,
  options: {
    /**
     * When the response was received, in ms.
     * @default {Date.now()}
     */
    responseTime?: number;
  } = {},
): Freshness {
  const cc = parseCacheControl(headers.get("cache-control"));
  if (cc.has("s-maxage")) {
    return { lifetime: deltaSeconds(cc.get("s-maxage")) ?? 0, heuristic: false };
  }
  if (cc.has("max-age")) {
    return { lifetime: deltaSeconds(cc.get("max-age")) ?? 0, heuristic: false };
  }
  const responseTime = options.responseTime ?? Date.now();
  const date = parseHttpDate(headers.get("date")) ?? responseTime;
  const expiresText = headers.get("expires");
  if (expiresText !== null) {
    const expires = parseHttpDate(expiresText);
    // §5.3: an invalid Expires (such as "0") means "already expired".
    if (expires === undefined) return { lifetime: 0, heuristic: false };
    return { lifetime: Math.max(0, Math.floor((expires - date) / 1000)), heuristic: false };
  }
  if (HEURISTIC_STATUSES.has(status) || cc.has("public")) {
    const lastModified = parseHttpDate(headers.get("last-modified"));
    if (lastModified !== undefined && lastModified < date) {
      // §4.2.2: "a typical setting of this fraction might be 10%".
      return { lifetime: Math.floor((date - lastModified) / 10000), heuristic: true };
    }
  }
  return { lifetime: 0, heuristic: false };
}

/**
 * Computes the current age of a stored response (RFC 9111 §4.2.3).
 *
 * @param headers The stored response's header fields (`Age`, `Date`).
 * @param timing When the request was sent and the response received, and now.
 * @returns The current age in whole seconds.
 *
 * @example
 * ```ts
 * import { currentAge } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const age = currentAge(new Headers({ age: "10" }), {
 *   requestTime: 0, responseTime: 1000, now: 5000,
 * });
 * assertEquals(age, 15); // 10 + 1 s in flight + 4 s resident
 * ```
 */
export function currentAge(
  headers: FieldReader,
  timing: ResponseTiming & {
    /** The current time in ms. */
    now: number;
  },
): number {
  const ageValue = parseAge(headers.get("age")) ?? 0;
  const dateValue = parseHttpDate(headers.get("date")) ?? timing.responseTime;
  const apparentAge = Math.max(0, (timing.responseTime - dateValue) / 1000);
  const responseDelay = (timing.responseTime - timing.requestTime) / 1000;
  const correctedAgeValue = ageValue + responseDelay;
  const correctedInitialAge = Math.max(apparentAge, correctedAgeValue);
  const residentTime = (timing.now - timing.responseTime) / 1000;
  return Math.max(0, Math.floor(correctedInitialAge + residentTime));
}

/**
 * Parses an `Age` field value (RFC 9111 §5.1). Age is a singleton, but a list
 * (a value such as `7200, 0`, or two `Age` lines) means the first member
 * counts and the rest are discarded; an invalid value is ignored.
 *
 * @param value The field value (lines joined by commas), or `null`.
 * @returns The age in seconds, or `undefined` when absent or invalid.
 *
 * @example
 * ```ts
 * import { parseAge } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseAge("7200, 0"), 7200);
 * assertEquals(parseAge("abc"), undefined);
 * ```
 */
export function parseAge(value: string | null): number | undefined {
  if (value === null) return undefined;
  const comma = value.indexOf(",");
  return deltaSeconds((comma < 0 ? value : value.slice(0, comma)).trim());
}

/** Directives whose argument is delta-seconds, so an Integer in a targeted field (RFC 9213 §2.2). */
const INTEGER_DIRECTIVES = new Set([
  "max-age",
  "s-maxage",
  "stale-while-revalidate",
  "stale-if-error",
]);

/**
 * Chooses the cache-control a shared cache obeys (RFC 9213 §2.1): the first
 * targeted field of `targets` that the response carries as a valid,
 * non-empty Structured Field Dictionary; then `Cache-Control` and `Expires`
 * are ignored. The result reads like the response's fields, except that
 * `Cache-Control` holds the targeted directives and `Expires` is absent, so
 * every policy function here applies unchanged. A targeted field that does not
 * parse is ignored (§2.1); a directive whose value has the wrong type, such as
 * `max-age="60"`, is dropped.
 *
 * @param headers The response's fields.
 * @param targets Targeted field names, in order of precedence.
 * @returns A reader of the fields the policy sees: `headers` itself when no targeted field applies.
 *
 * @example
 * ```ts
 * import { freshnessLifetime, targetedFields } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const h = new Headers({ "cache-control": "no-store", "cdn-cache-control": "max-age=600" });
 * const view = targetedFields(h, ["CDN-Cache-Control"]);
 * assertEquals(view.get("cache-control"), "max-age=600");
 * assertEquals(freshnessLifetime(200, view).lifetime, 600);
 * ```
 */
export function targetedFields(headers: FieldReader, targets: readonly string[]): FieldReader {
  for (const name of targets) {
    const dict = parseDictionary(headers.get(name));
    if (dict === undefined || dict.size === 0) continue;
    const parts: string[] = [];
    for (const [key, { value }] of dict) {
      if (Array.isArray(value)) continue;
      if (INTEGER_DIRECTIVES.has(key)) {
        if (value.type === "integer" && value.value >= 0) parts.push(`${key}=${value.value}`);
      } else if (value.type === "boolean") {
        if (value.value) parts.push(key);
      } else if (value.type === "token" || value.type === "integer") {
        parts.push(`${key}=${value.value}`);
      } else if (value.type === "string") {
        parts.push(`${key}="${value.value.replace(/["\\]/g, "\\$&")}"`);
      }
    }
    const cc = parts.join(", ");
    return {
      get(field: string): string | null {
        const lower = field.toLowerCase();
        if (lower === "cache-control") return cc;
        if (lower === "expires") return null;
        return headers.get(field);
      },
    };
  }
  return headers;
}

/**
 * Tells whether a stale response may be served because the origin could not
 * be reached at all (refused, reset, closed or silent before answering): RFC
 * 9111 §4.2.4 lets a disconnected cache serve stale, unless `must-revalidate`,
 * `proxy-revalidate`, `s-maxage` or `no-cache` in the response, or `no-cache`
 * in the request, ask for validation, and within `maxStale` seconds of
 * staleness (Squid's `max_stale`).
 *
 * @param request The request header fields.
 * @param stored The stored response's fields, as the policy sees them.
 * @param options How stale, and the bound.
 * @returns `true` when the stale response may be served instead of an error.
 *
 * @example
 * ```ts
 * import { mayServeStaleDisconnected } from "./cache.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const h = new Headers({ "cache-control": "max-age=1" });
 * assert(mayServeStaleDisconnected(new Headers(), h, { staleness: 30, maxStale: 60 }));
 * ```
 */
export function mayServeStaleDisconnected(
  request: FieldReader,
  stored: FieldReader,
  options: {
    /** Seconds past the freshness lifetime. */
    staleness: number;
    /** The most staleness served this way, in seconds. */
    maxStale: number;
  },
): boolean {
  const resCc = parseCacheControl(stored.get("cache-control"));
  for (const d of ["must-revalidate", "proxy-revalidate", "s-maxage", "no-cache"]) {
    if (resCc.has(d)) return false;
  }
  if (parseCacheControl(request.get("cache-control")).has("no-cache")) return false;
  // 0 turns it off, even for a response that has only just become stale.
  return options.maxStale > 0 && options.staleness <= options.maxStale;
}

/** What to do with a stored response for a request: the result of {@linkcode selectAction}. */
export type CacheAction =
  /** Serve it as is. */
  | { kind: "hit"; age: number; ttl: number }
  /** Serve it stale, and revalidate in the background (stale-while-revalidate). */
  | { kind: "stale-hit"; age: number; ttl: number }
  /** Forward a conditional request; `reason` is the RFC 9211 `fwd` value. */
  | { kind: "validate"; age: number; ttl: number; reason: "stale" | "request" };

/** A stored response as {@linkcode selectAction} sees it. */
export interface StoredHead extends ResponseTiming {
  /** Status code. */
  status: number;
  /** Header fields. */
  headers: FieldReader;
}

/**
 * Decides whether a stored response may answer a request without contacting
 * the origin (RFC 9111 §4, §4.2, §5.2.1, §5.2.2; RFC 5861 stale-while-revalidate).
 *
 * @param request The request header fields.
 * @param stored The stored response.
 * @param options The current time.
 * @returns The action, with the current age and remaining time-to-live (s).
 *
 * @example
 * ```ts
 * import { selectAction } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const stored = {
 *   status: 200, requestTime: 0, responseTime: 0,
 *   headers: new Headers({ "cache-control": "max-age=60" }),
 * };
 * assertEquals(selectAction(new Headers(), stored, { now: 10_000 }).kind, "hit");
 * assertEquals(selectAction(new Headers(), stored, { now: 70_000 }).kind, "validate");
 * ```
 */
export function selectAction(
  request: FieldReader,
  stored: StoredHead,
  options: {
    /**
     * The current time in ms.
     * @default {Date.now()}
     */
    now?: number;
  } = {},
): CacheAction {
  const now = options.now ?? Date.now();
  const { lifetime } = freshnessLifetime(stored.status, stored.headers, {
    responseTime: stored.responseTime,
  });
  const age = currentAge(stored.headers, { ...stored, now });
  const ttl = lifetime - age;
  const reqCcText = request.get("cache-control");
  const reqCc = parseCacheControl(reqCcText);
  // §5.4: Pragma: no-cache counts only when Cache-Control is absent.
  if (
    reqCc.has("no-cache") ||
    (reqCcText === null && /(^|,)\s*no-cache\s*(,|$)/i.test(request.get("pragma") ?? ""))
  ) {
    return { kind: "validate", age, ttl, reason: "request" };
  }
  const resCc = parseCacheControl(stored.headers.get("cache-control"));
  // §5.2.2.4: unqualified no-cache means "validate every time"; a qualified one
  // (no-cache="field") only forbids reusing those fields, which we do not strip,
  // so treat it the same, as the conservative choice.
  if (resCc.has("no-cache")) return { kind: "validate", age, ttl, reason: "stale" };
  const maxAge = deltaSeconds(reqCc.get("max-age"));
  if (maxAge !== undefined && age > maxAge) {
    return { kind: "validate", age, ttl, reason: "request" };
  }
  const minFresh = deltaSeconds(reqCc.get("min-fresh"));
  if (minFresh !== undefined && ttl < minFresh) {
    return { kind: "validate", age, ttl, reason: "request" };
  }
  if (ttl > 0) return { kind: "hit", age, ttl };
  // Stale from here. §4.2.4: must-revalidate, proxy-revalidate and s-maxage forbid
  // serving stale from a shared cache, whatever the client tolerates.
  if (resCc.has("must-revalidate") || resCc.has("proxy-revalidate") || resCc.has("s-maxage")) {
    return { kind: "validate", age, ttl, reason: "stale" };
  }
  const staleness = -ttl;
  if (reqCc.has("max-stale")) {
    const maxStale = reqCc.get("max-stale") === true
      ? Infinity
      : deltaSeconds(reqCc.get("max-stale"));
    if (maxStale !== undefined && staleness <= maxStale) return { kind: "hit", age, ttl };
  }
  const swr = deltaSeconds(resCc.get("stale-while-revalidate"));
  if (swr !== undefined && staleness <= swr) return { kind: "stale-hit", age, ttl };
  return { kind: "validate", age, ttl, reason: "stale" };
}

/**
 * Tells whether a stale response may be served because the origin failed
 * (RFC 5861 §4 stale-if-error, in the request or the response), unless
 * must-revalidate, proxy-revalidate or s-maxage forbid it (RFC 9111 §4.2.4).
 * Without a directive, the operator's `fallback` window applies (Varnish's
 * grace), unless `no-cache` in the request or the response asks for validation.
 *
 * @param request The request header fields.
 * @param stored The stored response header fields.
 * @param options How stale, and the operator's default window.
 * @returns `true` when the stale response may be served instead of an error.
 *
 * @example
 * ```ts
 * import { mayServeStaleOnError } from "./cache.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const h = new Headers({ "cache-control": "max-age=1, stale-if-error=60" });
 * assert(mayServeStaleOnError(new Headers(), h, { staleness: 30 }));
 * assert(mayServeStaleOnError(new Headers(), new Headers(), { staleness: 30, fallback: 60 }));
 * ```
 */
export function mayServeStaleOnError(
  request: FieldReader,
  stored: FieldReader,
  options: {
    /** Seconds past the freshness lifetime. */
    staleness: number;
    /**
     * The window, in seconds, when neither the request nor the response has
     * `stale-if-error` (0 or unset: none).
     * @default {undefined}
     */
    fallback?: number;
  },
): boolean {
  const resCc = parseCacheControl(stored.get("cache-control"));
  if (resCc.has("must-revalidate") || resCc.has("proxy-revalidate") || resCc.has("s-maxage")) {
    return false;
  }
  const reqCc = parseCacheControl(request.get("cache-control"));
  const limit = deltaSeconds(reqCc.get("stale-if-error")) ??
    deltaSeconds(resCc.get("stale-if-error"));
  if (limit !== undefined) return options.staleness <= limit;
  if (!options.fallback || resCc.has("no-cache") || reqCc.has("no-cache")) return false;
  return options.staleness <= options.fallback;
}

/**
 * Builds the validator fields for a conditional request that revalidates a
 * stored response (RFC 9111 §4.3.1): `If-None-Match` from its `ETag` and
 * `If-Modified-Since` from its `Last-Modified`.
 *
 * @param stored The stored response header fields.
 * @returns The fields to add; empty when the response has no validator.
 *
 * @example
 * ```ts
 * import { validatorFields } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const f = validatorFields(new Headers({ etag: '"v1"' }));
 * assertEquals(f, [["if-none-match", '"v1"']]);
 * ```
 */
export function validatorFields(stored: FieldReader): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const etag = stored.get("etag");
  if (etag !== null) out.push(["if-none-match", etag]);
  const lastModified = stored.get("last-modified");
  if (lastModified !== null) out.push(["if-modified-since", lastModified]);
  return out;
}

/**
 * Fields that describe one connection, not the message (RFC 9110 §7.6.1),
 * plus the proxy's own credentials: a proxy never forwards or stores them.
 * Lower-case names.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** Hop-by-hop fields plus those a 304 must not change (RFC 9111 §3.2). */
const NOT_UPDATED_BY_304: ReadonlySet<string> = new Set([...HOP_BY_HOP, "content-length"]);

/**
 * Merges a 304 (Not Modified) response's fields into a stored response's
 * fields (RFC 9111 §3.2, §4.3.4): each field the 304 carries replaces the
 * stored one, except hop-by-hop fields and Content-Length.
 *
 * @param stored The stored fields as name/value pairs (names lower-case).
 * @param notModified The 304's fields as name/value pairs (names lower-case).
 * @returns The updated field list.
 *
 * @example
 * ```ts
 * import { updateStoredFields } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const out = updateStoredFields(
 *   [["etag", '"a"'], ["cache-control", "max-age=1"], ["content-length", "5"]],
 *   [["cache-control", "max-age=60"], ["content-length", "0"]],
 * );
 * assertEquals(out, [["etag", '"a"'], ["content-length", "5"], ["cache-control", "max-age=60"]]);
 * ```
 */
export function updateStoredFields(
  stored: ReadonlyArray<readonly [string, string]>,
  notModified: ReadonlyArray<readonly [string, string]>,
): Array<[string, string]> {
  const replaced = new Set<string>();
  for (const [name] of notModified) if (!NOT_UPDATED_BY_304.has(name)) replaced.add(name);
  const out: Array<[string, string]> = [];
  for (const [name, value] of stored) if (!replaced.has(name)) out.push([name, value]);
  for (const [name, value] of notModified) if (replaced.has(name)) out.push([name, value]);
  return out;
}

/**
 * Computes the secondary cache key of a request for a response's `Vary`
 * field (RFC 9111 §4.1): the named request fields' values, with whitespace
 * normalised so that semantically equal values match.
 *
 * @param vary The stored response's Vary value (or `null`).
 * @param request The request header fields.
 * @returns The secondary key (empty when there is no Vary), or `null` for `Vary: *`.
 *
 * @example
 * ```ts
 * import { varyKey } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const a = varyKey("Accept-Encoding", new Headers({ "accept-encoding": "gzip,  br" }));
 * const b = varyKey("accept-encoding", new Headers({ "accept-encoding": "gzip, br" }));
 * assertEquals(a, b);
 * ```
 */
export function varyKey(vary: string | null, request: FieldReader): string | null {
  if (vary === null) return "";
  const names = varyNames(vary);
  if (names === null) return null;
  let key = "";
  for (const name of names) {
    const v = request.get(name);
    key += `${name}:${
      v === null ? "\u0000" : v.trim().replace(/\s*,\s*/g, ",").replace(/\s+/g, " ")
    }\n`;
  }
  return key;
}

/**
 * Lists the field names in a Vary value, lower-case and sorted.
 *
 * @param vary The Vary field value.
 * @returns The names, or `null` for `*`.
 *
 * @example
 * ```ts
 * import { varyNames } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(varyNames("Accept, accept-encoding"), ["accept", "accept-encoding"]);
 * ```
 */
export function varyNames(vary: string): string[] | null {
  const names: string[] = [];
  for (const element of splitList(vary)) {
    const name = element.toLowerCase();
    if (name === "*") return null;
    if (!names.includes(name)) names.push(name);
  }
  return names.sort();
}

/** Methods that are safe (RFC 9110 §9.2.1) and so never invalidate. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * Lists the URIs a cache must invalidate after a request (RFC 9111 §4.4):
 * for an unsafe method with a non-error response, the target URI and the
 * `Location` and `Content-Location` URIs when they share its origin.
 *
 * @param method The request method.
 * @param target The absolute target URI.
 * @param response The response status and fields.
 * @returns The absolute URIs to invalidate (maybe empty).
 *
 * @example
 * ```ts
 * import { invalidatedUris } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const uris = invalidatedUris("POST", "http://a.test/x", {
 *   status: 201, headers: new Headers({ location: "/y" }),
 * });
 * assertEquals(uris, ["http://a.test/x", "http://a.test/y"]);
 * ```
 */
export function invalidatedUris(
  method: string,
  target: string,
  response: { status: number; headers: FieldReader },
): string[] {
  if (SAFE_METHODS.has(method) || response.status < 200 || response.status >= 400) return [];
  const out = [target];
  let base: URL;
  try {
    base = new URL(target);
  } catch {
    return out;
  }
  for (const name of ["location", "content-location"]) {
    const v = response.headers.get(name);
    if (v === null) continue;
    try {
      const u = new URL(v, base);
      if (u.origin === base.origin && !out.includes(u.href)) out.push(u.href);
    } catch {
      // An unparseable reference invalidates nothing.
    }
  }
  return out;
}

/**
 * Evaluates a client's conditional GET/HEAD against a response the cache is
 * about to send (RFC 9110 §13.2.2): If-None-Match first, else If-Modified-Since.
 * A stored response without `Last-Modified` is compared by its `Date`, or
 * else by when it was received (RFC 9111 §4.3.2).
 *
 * @param request The request header fields.
 * @param response The response header fields.
 * @param options When the response was received, for a response without `Last-Modified` or `Date`.
 * @returns `true` when the answer should be 304 Not Modified.
 *
 * @example
 * ```ts
 * import { isNotModified } from "./cache.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const res = new Headers({ etag: 'W/"x"' });
 * assert(isNotModified(new Headers({ "if-none-match": '"x"' }), res));
 * ```
 */
export function isNotModified(
  request: FieldReader,
  response: FieldReader,
  options: {
    /**
     * When the response was received, in ms.
     * @default {undefined}
     */
    responseTime?: number;
  } = {},
): boolean {
  const inm = request.get("if-none-match");
  if (inm !== null) {
    const etag = response.get("etag");
    if (etag === null) return false;
    // Weak comparison (§8.8.3.2) is the rule for If-None-Match.
    return matchETagList(inm, etag.trim(), { weak: true });
  }
  const ims = parseHttpDate(request.get("if-modified-since"));
  if (ims === undefined) return false;
  const lm = parseHttpDate(response.get("last-modified")) ??
    parseHttpDate(response.get("date")) ?? options.responseTime;
  return lm !== undefined && lm <= ims;
}

/** The parameters of one Cache-Status entry (RFC 9211 §2). */
export interface CacheStatusParams {
  /** Served from cache without contacting the origin. */
  hit?: boolean;
  /** Why the request went forward: uri-miss, vary-miss, miss, request, stale, method, bypass. */
  fwd?: "uri-miss" | "vary-miss" | "miss" | "request" | "stale" | "method" | "bypass";
  /** The status the origin answered the forwarded request with. */
  fwdStatus?: number;
  /** Whether the response was stored. */
  stored?: boolean;
  /** Remaining freshness in seconds (negative when stale). */
  ttl?: number;
  /** Free-form detail token. */
  detail?: string;
  /** The request shared another request's forward (collapsed forwarding). */
  collapsed?: boolean;
}

/**
 * Formats one Cache-Status field value (RFC 9211).
 *
 * @param cacheName The cache's name (the list member's identifier).
 * @param params The parameters.
 * @returns The field value.
 *
 * @example
 * ```ts
 * import { formatCacheStatus } from "./cache.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const v = formatCacheStatus("netkit", { fwd: "uri-miss", fwdStatus: 200, stored: true, ttl: 60 });
 * assertEquals(v, "netkit; fwd=uri-miss; fwd-status=200; stored; ttl=60");
 * ```
 */
export function formatCacheStatus(cacheName: string, params: CacheStatusParams): string {
  let s = cacheName;
  if (params.hit) s += "; hit";
  if (params.fwd !== undefined) s += `; fwd=${params.fwd}`;
  if (params.fwdStatus !== undefined) s += `; fwd-status=${params.fwdStatus}`;
  if (params.stored) s += "; stored";
  if (params.collapsed) s += "; collapsed";
  if (params.ttl !== undefined) s += `; ttl=${params.ttl}`;
  if (params.detail !== undefined) s += `; detail=${params.detail}`;
  return s;
}

/**
 * Tells whether a request selects a stored entry's variant (RFC 9111 §4.1):
 * the fields its `Vary` names have the same values.
 *
 * @param entry The entry (its key holds the secondary key).
 * @param request The request fields.
 * @returns Whether the entry answers this request.
 *
 * @example
 * ```ts
 * import { selectsVariant } from "./cache.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const meta = {
 *   key: "http://a.test/\naccept:text/html\n", url: "http://a.test/", status: 200, reason: "OK",
 *   fields: [["vary", "Accept"]] as Array<[string, string]>, requestTime: 0, responseTime: 0,
 *   bodyLength: 0,
 * };
 * assert(selectsVariant({ meta }, new Headers({ accept: "text/html" })));
 * assert(!selectsVariant({ meta }, new Headers({ accept: "image/png" })));
 * ```
 */
export function selectsVariant(entry: { meta: EntryMeta }, request: FieldReader): boolean {
  const { meta } = entry;
  const vk = varyKey(meta.fields.find(([n]) => n === "vary")?.[1] ?? null, request);
  return vk !== null && meta.key === (vk === "" ? meta.url : `${meta.url}\n${vk}`);
}
