/**
 * Name resolution as the system does it (the C library's `getaddrinfo` and
 * `getnameinfo`, so `/etc/hosts`, nsswitch and DNS in the configured order),
 * and a cache of concurrent reverse lookups that never holds up a caller.
 *
 * The calls go through `lib/rawsock/lookup.ts` on a worker thread: loading
 * `node:dns` instead cost 13–17 ms of start-up, more than a whole trace.
 * Where the libc bindings are unavailable, `node:dns` (which wraps the same
 * C calls) is the fallback.
 *
 * @module
 */
import { lookupHost, lookupName } from "./rawsock/lookup.ts";
import { type Family, ipFamily, splitZone } from "./sockaddr.ts";

/**
 * A failed forward lookup. `code` is the resolver's (`ENOTFOUND` for no such
 * name, `EAI_AGAIN` for a temporary failure, `ENODATA` for a name without an
 * address of the wanted family, `EAI_ADDRFAMILY` for an address literal of
 * the other family).
 *
 * @example
 * ```ts
 * import { ResolveError } from "./resolve.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const err = new ResolveError("nowhere.invalid", "ENOTFOUND");
 * assertEquals(err.message, 'Cannot resolve host "nowhere.invalid": no such name');
 * ```
 */
export class ResolveError extends Error {
  /** The name that failed. */
  readonly host: string;
  /** The resolver's error code. */
  readonly code: string;

  /**
   * Creates the error.
   *
   * @param host The name that failed.
   * @param code The resolver's error code.
   */
  constructor(host: string, code: string) {
    const why = code === "ENOTFOUND"
      ? "no such name"
      : code === "EAI_AGAIN"
      ? "temporary failure in name resolution"
      : code === "ENODATA" || code === "EAI_ADDRFAMILY"
      ? "no address of the requested family"
      : code;
    super(`Cannot resolve host "${host}": ${why}`);
    this.name = "ResolveError";
    this.host = host;
    this.code = code;
  }
}

/** getaddrinfo's `gai_strerror()` words for the resolver's codes. */
const GAI_WORDS: Readonly<Record<string, string>> = {
  ENOTFOUND: "Name or service not known",
  EAI_AGAIN: "Temporary failure in name resolution",
  ENODATA: "No address associated with hostname",
  EAI_ADDRFAMILY: "Address family for hostname not supported",
  EAI_FAMILY: "Address family for hostname not supported",
};

/**
 * Words a failed lookup as the C library's tools print it, `host: ` then
 * `gai_strerror()`'s text: iputils ping and Butskoy traceroute both do, and
 * their parity tests compare the line.
 *
 * @param err The failed lookup.
 * @returns The line, e.g. `nowhere.invalid: Name or service not known`.
 *
 * @example
 * ```ts
 * import { gaiMessage, ResolveError } from "./resolve.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const line = gaiMessage(new ResolveError("nowhere.invalid", "ENOTFOUND"));
 * assertEquals(line, "nowhere.invalid: Name or service not known");
 * ```
 */
export function gaiMessage(err: ResolveError): string {
  return `${err.host}: ${GAI_WORDS[err.code] ?? err.code}`;
}

/** A resolved address. */
export interface Resolved {
  /** The address in text form. */
  address: string;
  /** Its IP version. */
  family: Family;
  /** The name as given (or the address itself for a numeric host). */
  host: string;
  /** Whether the host was given as an address, so no lookup happened. */
  numeric: boolean;
}

/** Options for {@linkcode resolveHost}. */
export interface ResolveOptions {
  /** Only this IP version. @default {undefined (the system's preferred order)} */
  family?: Family;
}

/**
 * Resolves a host name or address text to one address, as `ping` does.
 *
 * @param host A name or an IPv4/IPv6 address.
 * @param options The wanted family.
 * @returns The first address the system gives.
 * @throws {ResolveError} When the name cannot be resolved.
 *
 * @example
 * ```ts
 * import { resolveHost } from "./resolve.ts";
 * import { assert, assertEquals } from "./testing/assert.ts";
 * const r = await resolveHost("127.0.0.1");
 * assertEquals(r.family, 4);
 * assert(r.numeric);
 * ```
 */
export async function resolveHost(host: string, options: ResolveOptions = {}): Promise<Resolved> {
  return (await resolveAll(host, options))[0]!;
}

/**
 * Resolves a host name or address text to every address the system gives,
 * in its order (`/etc/gai.conf`, RFC 6724), each once, for a client that
 * tries them in turn.
 *
 * @param host A name or an IPv4/IPv6 address.
 * @param options The wanted family.
 * @returns At least one address; a numeric host gives itself.
 * @throws {ResolveError} When the name cannot be resolved.
 *
 * @example
 * ```ts
 * import { resolveAll } from "./resolve.ts";
 * import { assert } from "./testing/assert.ts";
 * const all = await resolveAll("localhost", { family: 4 });
 * assert(all.some((r) => r.address === "127.0.0.1"));
 * ```
 */
export async function resolveAll(host: string, options: ResolveOptions = {}): Promise<Resolved[]> {
  const numericFamily = ipFamily(host);
  if (numericFamily !== undefined) {
    if (options.family !== undefined && options.family !== numericFamily) {
      throw new ResolveError(host, "EAI_ADDRFAMILY");
    }
    return [{ address: splitZone(host).address, family: numericFamily, host, numeric: true }];
  }
  if (host === "" || host.length > 253) throw new ResolveError(host, "ENOTFOUND");
  let found: { family: Family; address: string }[];
  try {
    found = await lookupHost(host, options.family);
  } catch (err) {
    if (!isUnavailable(err)) {
      throw new ResolveError(host, (err as { code?: string }).code ?? "ENOTFOUND");
    }
    const { lookup } = await import("node:dns/promises");
    try {
      const all = await lookup(host, { family: options.family ?? 0, all: true, verbatim: true });
      found = all.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
    } catch (err) {
      throw new ResolveError(host, (err as { code?: string }).code ?? "ENOTFOUND");
    }
  }
  if (found.length === 0) throw new ResolveError(host, "ENODATA");
  return found.map((r) => ({ address: r.address, family: r.family, host, numeric: false }));
}

/**
 * Finds the name of an address (reverse lookup through `getnameinfo`).
 *
 * @param address An IPv4 or IPv6 address.
 * @returns The name, or `undefined` when there is none.
 *
 * @example
 * ```ts
 * import { reverseLookup } from "./resolve.ts";
 * const name = await reverseLookup("127.0.0.1"); // "localhost" on most systems
 * ```
 */
export async function reverseLookup(address: string): Promise<string | undefined> {
  try {
    return await lookupName(address);
  } catch (err) {
    if (!isUnavailable(err)) return undefined;
  }
  try {
    const { lookupService } = await import("node:dns/promises");
    const { hostname } = await lookupService(address, 0);
    return hostname && hostname !== address ? hostname : undefined;
  } catch {
    return undefined;
  }
}

/** Whether an error says the libc bindings cannot be used here (not a lookup failure). */
function isUnavailable(err: unknown): boolean {
  return err instanceof Error && err.name !== "LookupError" && !("code" in err);
}

/**
 * A cache of reverse lookups. {@linkcode ReverseCache.peek} never waits: it
 * answers from the cache and starts a lookup in the background, so printing
 * or probing is never held up by DNS.
 *
 * @example
 * ```ts
 * import { ReverseCache } from "./resolve.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const names = new ReverseCache();
 * const name = await names.get("127.0.0.1");
 * assertEquals(names.peek("127.0.0.1"), name);
 * ```
 */
export class ReverseCache {
  #done = new Map<string, string | undefined>();
  #pending = new Map<string, Promise<string | undefined>>();
  #lookup: (address: string) => Promise<string | undefined>;

  /**
   * Creates an empty cache.
   *
   * @param lookupFn The lookup to use. @default {reverseLookup}
   */
  constructor(lookupFn: (address: string) => Promise<string | undefined> = reverseLookup) {
    this.#lookup = lookupFn;
  }

  /**
   * The name of an address, looked up once and then cached.
   *
   * @param address The address.
   * @returns The name, or `undefined` when there is none.
   */
  get(address: string): Promise<string | undefined> {
    if (this.#done.has(address)) return Promise.resolve(this.#done.get(address));
    let p = this.#pending.get(address);
    if (!p) {
      p = this.#lookup(address).then((name) => {
        this.#done.set(address, name);
        this.#pending.delete(address);
        return name;
      });
      this.#pending.set(address, p);
    }
    return p;
  }

  /**
   * The cached name of an address, without waiting; starts a lookup when
   * there is none yet.
   *
   * @param address The address.
   * @returns The name if already known; otherwise `undefined`.
   */
  peek(address: string): string | undefined {
    if (this.#done.has(address)) return this.#done.get(address);
    void this.get(address);
    return undefined;
  }

  /**
   * Waits for every lookup started so far.
   *
   * @returns When all are done.
   */
  async settle(): Promise<void> {
    await Promise.all(this.#pending.values());
  }
}
