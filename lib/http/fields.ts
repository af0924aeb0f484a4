/**
 * Header and trailer field lists that keep wire order and names, and the
 * list-value splitters (RFC 9110 §5.3, §5.6.1).
 *
 * @module
 */

// Field names are matched ignoring ASCII case without lower-casing either
// side per lookup: toLowerCase allocates a string even when nothing changes,
// and the hot paths look fields up by lower-case literals.

/** `name` in lower case; `name` itself when it has no upper-case letter. */
function lowerName(name: string): string {
  for (let k = 0; k < name.length; k++) {
    const c = name.charCodeAt(k);
    if ((c >= 65 && c <= 90) || c > 127) return name.toLowerCase();
  }
  return name;
}

/** Whether `name` equals `lower` (lower case, same length), ignoring case. */
function sameName(name: string, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    let c = name.charCodeAt(k);
    if (c >= 65 && c <= 90) c += 32;
    else if (c > 127) return name.toLowerCase() === lower;
    if (c !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/** Something {@linkcode FieldList} can be built from. */
export type FieldsInit =
  | FieldList
  | Headers
  | Iterable<readonly [string, string]>
  | Record<string, string>;

/**
 * An ordered list of header (or trailer) fields, keeping the names as they
 * were on the wire, with case-insensitive lookup. Unlike `Headers`, repeated
 * fields stay separate and order is kept, which a proxy needs to forward a
 * message faithfully.
 *
 * @example
 * ```ts
 * import { FieldList } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const f = new FieldList([["Host", "a"], ["Accept", "text/html"], ["accept", "*\/*"]]);
 * assertEquals(f.get("ACCEPT"), "text/html, *\/*");
 * assertEquals(f.getAll("accept").length, 2);
 * ```
 */
export class FieldList implements Iterable<[string, string]> {
  #names: string[];
  #values: string[];

  /**
   * Creates a field list.
   *
   * @param init Initial fields: pairs, a `Headers`, a record or another list.
   */
  constructor(init?: FieldsInit) {
    this.#names = [];
    this.#values = [];
    // The copying stays out of line: a small constructor is inlined where
    // the parser makes a list per request.
    if (init !== undefined) this.#init(init);
  }

  #init(init: FieldsInit): void {
    if (init instanceof FieldList) {
      this.#names = init.#names.slice();
      this.#values = init.#values.slice();
    } else if (Symbol.iterator in init) {
      for (const [name, value] of init as Iterable<readonly [string, string]>) {
        this.#names.push(name);
        this.#values.push(value);
      }
    } else {
      for (const [name, value] of Object.entries(init)) {
        this.#names.push(name);
        this.#values.push(value);
      }
    }
  }

  /**
   * Builds a list from parallel arrays of names and values, taking ownership
   * of them (no copy; the parser uses this).
   *
   * @param names Field names as on the wire.
   * @param values Field values, trimmed.
   * @returns The list.
   *
   * @example
   * ```ts
   * import { FieldList } from "./mod.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * assertEquals(FieldList.fromArrays(["A"], ["1"]).get("a"), "1");
   * ```
   */
  static fromArrays(names: string[], values: string[]): FieldList {
    const list = new FieldList();
    list.#names = names;
    list.#values = values;
    return list;
  }

  /** The number of field lines. */
  get size(): number {
    return this.#names.length;
  }

  /**
   * The name of the `i`-th field line, as it was on the wire.
   *
   * @param i The index.
   * @returns The name, or `undefined` past the end.
   */
  nameAt(i: number): string | undefined {
    return this.#names[i];
  }

  /**
   * The value of the `i`-th field line.
   *
   * @param i The index.
   * @returns The value, or `undefined` past the end.
   */
  valueAt(i: number): string | undefined {
    return this.#values[i];
  }

  #indexOf(lower: string, from: number): number {
    const names = this.#names;
    const len = lower.length;
    for (let i = from; i < names.length; i++) {
      if (names[i]!.length === len && sameName(names[i]!, lower)) return i;
    }
    return -1;
  }

  /**
   * Returns the value of a field, several lines joined with `", "` (RFC 9110
   * §5.3), or `null` when absent.
   *
   * @param name The field name, any case.
   * @returns The combined value or `null`.
   */
  get(name: string): string | null {
    const lower = lowerName(name);
    let i = this.#indexOf(lower, 0);
    if (i < 0) return null;
    let value = this.#values[i]!;
    while ((i = this.#indexOf(lower, i + 1)) >= 0) value += ", " + this.#values[i]!;
    return value;
  }

  /**
   * Returns every value of a field, one per field line (use this for
   * `Set-Cookie`, which cannot be combined).
   *
   * @param name The field name, any case.
   * @returns The values, possibly empty.
   */
  getAll(name: string): string[] {
    const lower = lowerName(name);
    const out: string[] = [];
    for (let i = this.#indexOf(lower, 0); i >= 0; i = this.#indexOf(lower, i + 1)) {
      out.push(this.#values[i]!);
    }
    return out;
  }

  /**
   * Tells whether a field is present.
   *
   * @param name The field name, any case.
   * @returns `true` when at least one line has that name.
   */
  has(name: string): boolean {
    return this.#indexOf(lowerName(name), 0) >= 0;
  }

  /**
   * Tells whether a comma-separated list field (Connection, Transfer-Encoding,
   * Expect, Cache-Control…) holds a token, compared case-insensitively.
   * Parameters after `;` or `=` are ignored.
   *
   * @param name The field name, any case.
   * @param token The token, lower case.
   * @returns `true` when one element of the list is that token.
   *
   * @example
   * ```ts
   * import { FieldList } from "./mod.ts";
   * import { assert } from "../testing/assert.ts";
   * const f = new FieldList([["Connection", "Upgrade, Close"]]);
   * assert(f.hasToken("connection", "close"));
   * ```
   */
  hasToken(name: string, token: string): boolean {
    for (const value of this.getAll(name)) {
      if (listTokens(value).includes(token)) return true;
    }
    return false;
  }

  /**
   * Replaces every line of a field with one line (appended at the end when
   * absent, in place of the first one otherwise).
   *
   * @param name The field name as it should be sent.
   * @param value The value.
   */
  set(name: string, value: string): void {
    const lower = lowerName(name);
    const i = this.#indexOf(lower, 0);
    if (i < 0) {
      this.append(name, value);
      return;
    }
    this.#names[i] = name;
    this.#values[i] = value;
    for (let j = this.#indexOf(lower, i + 1); j >= 0; j = this.#indexOf(lower, j)) {
      this.#removeAt(j);
    }
  }

  /**
   * Adds a field line at the end.
   *
   * @param name The field name as it should be sent.
   * @param value The value.
   */
  append(name: string, value: string): void {
    this.#names.push(name);
    this.#values.push(value);
  }

  /**
   * Removes every line of a field.
   *
   * @param name The field name, any case.
   * @returns How many lines were removed.
   */
  delete(name: string): number {
    const lower = lowerName(name);
    let removed = 0;
    for (let i = this.#indexOf(lower, 0); i >= 0; i = this.#indexOf(lower, i)) {
      this.#removeAt(i);
      removed++;
    }
    return removed;
  }

  #removeAt(i: number): void {
    this.#names.splice(i, 1);
    this.#values.splice(i, 1);
  }

  /**
   * Copies the list.
   *
   * @returns An independent copy.
   */
  clone(): FieldList {
    return new FieldList(this);
  }

  /**
   * Converts to a Fetch `Headers` (names lower-cased, repeated fields combined).
   *
   * @returns A new `Headers`.
   */
  toHeaders(): Headers {
    const h = new Headers();
    for (let i = 0; i < this.#names.length; i++) h.append(this.#names[i]!, this.#values[i]!);
    return h;
  }

  /**
   * Iterates over `[name, value]` pairs in wire order.
   *
   * @returns An iterator of pairs.
   */
  *[Symbol.iterator](): Iterator<[string, string]> {
    for (let i = 0; i < this.#names.length; i++) yield [this.#names[i]!, this.#values[i]!];
  }
}

/**
 * Splits a comma-separated list field value into its elements (RFC 9110
 * §5.6.1): commas inside quoted strings (an ETag, a `no-cache="a, b"`
 * argument) do not split, whitespace around elements is trimmed and empty
 * elements are dropped. Case and parameters are kept.
 *
 * @param value A field value such as `'"a,b", W/"c", , d;q=1'`.
 * @returns The elements, e.g. `['"a,b"', 'W/"c"', "d;q=1"]`.
 *
 * @example
 * ```ts
 * import { splitList } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const parts = splitList('max-age=60, no-cache="Set-Cookie, Age", ,public');
 * assertEquals(parts, ["max-age=60", 'no-cache="Set-Cookie, Age"', "public"]);
 * ```
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  // Most values hold no quoted string: split them without a character loop.
  if (value.indexOf('"') < 0) {
    for (const part of value.split(",")) pushElement(out, part);
    return out;
  }
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted) {
      if (c === 0x5c) i++; // a quoted-pair: the next character is literal
      else if (c === 0x22) quoted = false;
    } else if (c === 0x22) {
      quoted = true;
    } else if (c === 0x2c) {
      pushElement(out, value.slice(start, i));
      start = i + 1;
    }
  }
  pushElement(out, value.slice(start));
  return out;
}

function pushElement(out: string[], part: string): void {
  const t = part.trim();
  if (t !== "") out.push(t);
}

/**
 * Splits a comma-separated list field value into lower-case tokens, dropping
 * empty elements and parameters (RFC 9110 §5.6.1), for fields whose elements
 * are tokens (Connection, Transfer-Encoding, Vary…).
 *
 * @param value A field value such as `"gzip, chunked"`.
 * @returns The lower-case tokens, e.g. `["gzip", "chunked"]`.
 *
 * @example
 * ```ts
 * import { listTokens } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(listTokens(" Keep-Alive ,, close"), ["keep-alive", "close"]);
 * ```
 */
export function listTokens(value: string): string[] {
  const out: string[] = [];
  // Per-request fields (Connection) rarely quote: a plain split is faster there.
  const elements = value.indexOf('"') < 0 ? value.split(",") : splitList(value);
  for (const element of elements) {
    let t = element;
    const semi = t.indexOf(";");
    if (semi >= 0) t = t.slice(0, semi);
    const eq = t.indexOf("=");
    if (eq >= 0) t = t.slice(0, eq);
    t = t.trim().toLowerCase();
    if (t !== "") out.push(t);
  }
  return out;
}
