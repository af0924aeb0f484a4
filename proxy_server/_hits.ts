/**
 * What every loop of the proxy needs to answer a plain request from stored
 * bytes: client access lists, the cache key of a request target, the Squid
 * access-log line, the proxy's error page, and a fresh response's bytes
 * with its `Age`. The main loop and the hit loops of `--workers` share it;
 * a hit loop loads only this module and its own.
 *
 * @module
 */
import { escapeHtml } from "../lib/html.ts";
import { concat } from "../lib/bytes.ts";
import { encodeResponseHead } from "../lib/http/encoder.ts";
import { HttpError } from "../lib/http/errors.ts";
import type { RequestHead } from "../lib/http/heads.ts";
import type { AccessLogEntry, ServerConnection } from "../lib/http/server.ts";
import { reasonPhrase } from "../lib/http/status.ts";
import { ipFamily, parseIP, unmapIPv4 } from "../lib/sockaddr.ts";
import { type CacheStatusParams, formatCacheStatus } from "./cache.ts";

const encoder = new TextEncoder();

/** An address block: the network's bytes and its prefix length. */
export interface Cidr {
  /** The network address (4 or 16 bytes). */
  bytes: Uint8Array;
  /** Leading bits that must match. */
  prefix: number;
}

/**
 * Parses `addr/len` (or a bare address: a single host).
 *
 * @param text The CIDR text.
 * @returns The address bytes and prefix length.
 * @throws {TypeError} On a bad address or prefix length.
 *
 * @example
 * ```ts
 * import { parseCidr } from "./_hits.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseCidr("10.0.0.0/8").prefix, 8);
 * ```
 */
export function parseCidr(text: string): { bytes: Uint8Array; prefix: number } {
  const [addr = "", len] = text.split("/");
  if (ipFamily(addr) === undefined) throw new TypeError(`Cannot parse CIDR "${text}": bad address`);
  const { bytes } = parseIP(addr);
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len ?? "0").trim() === "") {
    throw new TypeError(`Cannot parse CIDR "${text}": bad prefix length`);
  }
  return { bytes, prefix };
}

function inCidr(ip: Uint8Array, cidr: Cidr): boolean {
  if (ip.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== (cidr.bytes[i]! & mask)) return false;
  }
  return true;
}

/**
 * Loopback plus the given blocks: the proxy's client and purge lists.
 *
 * @param extra More CIDR texts.
 * @returns The list.
 */
export function withLoopback(extra: readonly string[]): Cidr[] {
  return [parseCidr("127.0.0.0/8"), parseCidr("::1/128"), ...extra.map(parseCidr)];
}

/**
 * Whether a client address falls in one of the blocks (an IPv4-mapped IPv6
 * address, `::ffff:a.b.c.d`, is checked as IPv4).
 *
 * @param host The client's address.
 * @param list The blocks.
 * @returns Whether it is listed.
 *
 * @example
 * ```ts
 * import { listed, withLoopback } from "./_hits.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * const list = withLoopback(["10.0.0.0/8"]);
 * assert(listed("::ffff:10.1.2.3", list));
 * assert(!listed("192.0.2.1", list));
 * ```
 */
export function listed(host: string, list: readonly Cidr[]): boolean {
  if (ipFamily(host) === undefined) return false;
  const { bytes } = parseIP(host);
  const ip = unmapIPv4(bytes) ?? bytes;
  return list.some((c) => inCidr(ip, c));
}

/** What the proxy attaches to each access-log record: Squid's result code, hierarchy, type and URL. */
export interface Exchange {
  /** Squid's result code, e.g. `TCP_MEM_HIT`. */
  code: string;
  /** Squid's hierarchy field, e.g. `HIER_DIRECT/127.0.0.1`. */
  hier: string;
  /** The response's media type. */
  type: string | null;
  /** The absolute URI. */
  url: string;
}

/**
 * Squid's native access log line (`logformat squid`): time, elapsed ms,
 * client, code/status, bytes, method, URL, user, hierarchy, type.
 *
 * @param e The server core's record, with an {@linkcode Exchange} as `extra`.
 * @returns The line, without a newline.
 */
export function squidLine(e: AccessLogEntry): string {
  const x = e.extra as Exchange | undefined;
  // Squid stamps the line when the transaction ends, so start = time - elapsed.
  const end = e.time.getTime() + e.duration;
  const elapsed = String(e.duration).padStart(6);
  const code = x?.code ?? "NONE_NONE";
  const url = x?.url ?? e.target ?? "error:invalid-request";
  // Squid logs the media type without parameters (up to ";", tab or space),
  // which also keeps the line at ten space-separated fields.
  const type = x?.type?.split(/[;\t ]/, 1)[0] || "-";
  return `${(end / 1000).toFixed(3)} ${elapsed} ${e.remoteAddr} ${code}/${
    String(e.status).padStart(3, "0")
  } ${e.sent} ${e.method ?? "NONE"} ${url} - ${x?.hier ?? "HIER_NONE/-"} ${type}`;
}

/**
 * The absolute URI (the cache key) a request targets: in reverse mode the
 * path and query on the upstream, in forward mode the absolute-form target.
 *
 * @param head The request head.
 * @param upstream The origin of reverse mode, or `undefined` for forward mode.
 * @returns The URI, without a fragment.
 * @throws {HttpError} 400 when the target cannot be proxied.
 *
 * @example
 * ```ts
 * import { resolveTarget } from "./_hits.ts";
 * import { FieldList } from "../lib/http/fields.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const head = {
 *   method: "GET", target: "/a?b", targetForm: "origin", version: "HTTP/1.1",
 *   headers: new FieldList(), body: { type: "none" }, keepAlive: true,
 *   expectContinue: false, headBytes: 0,
 * } as const;
 * assertEquals(resolveTarget(head, new URL("http://origin.test/")), "http://origin.test/a?b");
 * ```
 */
export function resolveTarget(head: RequestHead, upstream: URL | undefined): string {
  let url: URL;
  if (upstream !== undefined) {
    if (head.targetForm === "absolute") {
      let u: URL;
      try {
        u = new URL(head.target);
      } catch {
        throw new HttpError(400, `Cannot proxy "${head.target}": invalid URI`);
      }
      url = new URL(u.pathname + u.search, upstream);
    } else if (head.targetForm === "origin") {
      url = new URL(head.target, upstream);
    } else {
      throw new HttpError(400, `Cannot proxy "${head.target}": not an origin-form target`);
    }
  } else {
    if (head.targetForm !== "absolute") {
      throw new HttpError(
        400,
        `Cannot proxy "${head.target}": a forward proxy needs an absolute URI (is the client configured for a proxy?)`,
      );
    }
    try {
      url = new URL(head.target);
    } catch {
      throw new HttpError(400, `Cannot proxy "${head.target}": invalid URI`);
    }
    if (url.protocol !== "http:") {
      throw new HttpError(
        400,
        `Cannot proxy "${head.target}": only http: URIs (use CONNECT for https)`,
      );
    }
  }
  url.hash = "";
  return url.href;
}

/**
 * Builds the proxy's short HTML error page (head and body).
 *
 * @param name The proxy's name (`Cache-Status`, the page's footer).
 * @param via This proxy's `Via` member.
 * @param status The status code.
 * @param message The explanation shown on the page.
 * @param fwd The `Cache-Status` forward reason.
 * @param keepAlive Whether the connection stays open.
 * @param detail A `Cache-Status` detail.
 * @returns The response bytes.
 */
export function errorPage(
  name: string,
  via: string,
  status: number,
  message: string,
  fwd: NonNullable<CacheStatusParams["fwd"]>,
  keepAlive: boolean,
  detail?: string,
): Uint8Array {
  const title = `${status} ${reasonPhrase(status)}`;
  const body = encoder.encode(
    `<!DOCTYPE html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1>` +
      `<p>${escapeHtml(message)}</p><hr><address>${name} proxy</address></body></html>\n`,
  );
  const fields: Array<[string, string]> = [
    ["Content-Type", "text/html; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Cache-Status", formatCacheStatus(name, detail ? { fwd, detail } : { fwd })],
    ["Via", via],
  ];
  if (!keepAlive) fields.push(["Connection", "close"]);
  return concat([encodeResponseHead({ status, headers: fields }), body]);
}

/**
 * Whether a request may be answered with a stored fresh response as it is:
 * a GET or HEAD without a body, over a keep-alive HTTP/1.1 connection, with
 * no cache directives, conditionals or ranges.
 *
 * @param head The request head.
 * @param conn The connection.
 * @returns Whether the lean path applies.
 */
export function plainRequest(head: RequestHead, conn: ServerConnection): boolean {
  const method = head.method;
  const h = head.headers;
  return (method === "GET" || method === "HEAD") && head.body.type === "none" &&
    head.keepAlive && !conn.closing && head.version === "HTTP/1.1" &&
    !h.has("cache-control") && !h.has("pragma") && !h.has("if-none-match") &&
    !h.has("if-modified-since") && !h.has("range");
}

/**
 * A stored response ready to send: its head without `Age` and
 * `Cache-Status` (and without the final CRLF), its freshness, and the bytes
 * last built for one second of age.
 */
export interface Ready {
  /** The head up to the fields that change with age. */
  prefix: Uint8Array;
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** Corrected initial age, seconds (RFC 9111 §4.2.3). */
  initialAge: number;
  /** When the response was received (ms since the epoch). */
  responseTime: number;
  /** The age the cached bytes were built for (-1: none yet). */
  ageSecond: number;
  /** Head and body for `ageSecond`. */
  full: Uint8Array | null;
  /** The head alone for `ageSecond` (a view into `full`). */
  head: Uint8Array | null;
}

/**
 * A stored response's current age in whole seconds.
 *
 * @param r The response.
 * @param now The time (ms since the epoch).
 * @returns Its age.
 */
export function ageOf(r: Ready, now: number): number {
  return Math.floor(r.initialAge + (now - r.responseTime) / 1000);
}

/**
 * The bytes of a hit: head with `Age` and `Cache-Status`, and the body for
 * a GET; rebuilt at most once per second of age.
 *
 * @param r The response.
 * @param body Its body.
 * @param age Its current age ({@linkcode ageOf}).
 * @param name The proxy's name in `Cache-Status`.
 * @param headOnly For a HEAD: the head alone.
 * @returns The bytes to send.
 */
export function readyBytes(
  r: Ready,
  body: Uint8Array,
  age: number,
  name: string,
  headOnly: boolean,
): Uint8Array {
  if (r.ageSecond !== age || r.full === null) {
    const tail = encoder.encode(
      `Age: ${age}\r\nCache-Status: ${
        formatCacheStatus(name, { hit: true, ttl: r.lifetime - age })
      }\r\n\r\n`,
    );
    const full = new Uint8Array(r.prefix.length + tail.length + body.length);
    full.set(r.prefix, 0);
    full.set(tail, r.prefix.length);
    full.set(body, r.prefix.length + tail.length);
    r.full = full;
    r.head = full.subarray(0, r.prefix.length + tail.length);
    r.ageSecond = age;
  }
  return headOnly ? r.head! : r.full;
}
