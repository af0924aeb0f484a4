/**
 * Structured Field Dictionaries (RFC 9651 §3.2, §4.2.2): the parser that
 * targeted cache-control fields such as `CDN-Cache-Control` (RFC 9213) need.
 * It follows the RFC's parsing algorithm exactly, so that any deviation
 * makes the whole field invalid, as §4.2 requires.
 *
 * @module
 */

/** One bare item of a Structured Field (RFC 9651 §3.3), tagged with its type. */
export type BareItem =
  | { type: "integer" | "decimal"; value: number }
  | { type: "string" | "token" | "display"; value: string }
  | { type: "boolean"; value: boolean }
  | { type: "binary"; value: Uint8Array }
  | { type: "date"; value: number };

/** A dictionary member's value: an item or an inner list, with its parameters. */
export interface DictionaryMember {
  /** The bare item, or the items of an inner list. */
  value: BareItem | Array<{ value: BareItem; params: Map<string, BareItem> }>;
  /** The member's parameters. */
  params: Map<string, BareItem>;
}

class Invalid extends Error {}

const KEY_START = /[a-z*]/;
const KEY_CHAR = /[a-z0-9_\-.*]/;
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;

class Parser {
  #s: string;
  #i = 0;

  constructor(s: string) {
    this.#s = s;
  }

  get done(): boolean {
    return this.#i >= this.#s.length;
  }

  peek(): string {
    return this.#s[this.#i] ?? "";
  }

  take(): string {
    return this.#s[this.#i++] ?? "";
  }

  skip(chars: string): void {
    while (!this.done && chars.includes(this.peek())) this.#i++;
  }

  key(): string {
    if (!KEY_START.test(this.peek())) throw new Invalid();
    let k = "";
    while (!this.done && KEY_CHAR.test(this.peek())) k += this.take();
    return k;
  }

  params(): Map<string, BareItem> {
    const out = new Map<string, BareItem>();
    while (this.peek() === ";") {
      this.take();
      this.skip(" ");
      const k = this.key();
      let v: BareItem = { type: "boolean", value: true };
      if (this.peek() === "=") {
        this.take();
        v = this.bare();
      }
      out.set(k, v);
    }
    return out;
  }

  bare(): BareItem {
    const c = this.peek();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    if (c === '"') return { type: "string", value: this.string() };
    if (c === ":") return { type: "binary", value: this.binary() };
    if (c === "?") {
      this.take();
      const b = this.take();
      if (b !== "0" && b !== "1") throw new Invalid();
      return { type: "boolean", value: b === "1" };
    }
    if (c === "@") {
      this.take();
      const n = this.number();
      if (n.type !== "integer") throw new Invalid();
      return { type: "date", value: n.value };
    }
    if (c === "%") return { type: "display", value: this.display() };
    if (/[A-Za-z*]/.test(c)) {
      let t = "";
      while (!this.done && TCHAR.test(this.peek())) t += this.take();
      return { type: "token", value: t };
    }
    throw new Invalid();
  }

  number(): BareItem {
    let text = "";
    if (this.peek() === "-") text += this.take();
    if (!/[0-9]/.test(this.peek())) throw new Invalid();
    let decimal = false;
    while (!this.done) {
      const c = this.peek();
      if (c >= "0" && c <= "9") text += this.take();
      else if (c === "." && !decimal) {
        if (text.replace("-", "").length > 12) throw new Invalid();
        decimal = true;
        text += this.take();
      } else break;
      if (!decimal && text.replace("-", "").length > 15) throw new Invalid();
      if (decimal && text.replace("-", "").length > 16) throw new Invalid();
    }
    if (!decimal) return { type: "integer", value: Number(text) };
    const frac = text.length - text.indexOf(".") - 1;
    if (frac < 1 || frac > 3) throw new Invalid();
    return { type: "decimal", value: Number(text) };
  }

  string(): string {
    this.take();
    let s = "";
    for (;;) {
      if (this.done) throw new Invalid();
      const c = this.take();
      if (c === "\\") {
        const n = this.take();
        if (n !== '"' && n !== "\\") throw new Invalid();
        s += n;
      } else if (c === '"') return s;
      else if (c < " " || c > "~") throw new Invalid();
      else s += c;
    }
  }

  binary(): Uint8Array {
    this.take();
    let b = "";
    while (!this.done && this.peek() !== ":") {
      const c = this.take();
      if (!/[A-Za-z0-9+/=]/.test(c)) throw new Invalid();
      b += c;
    }
    if (this.take() !== ":") throw new Invalid();
    try {
      return Uint8Array.from(atob(b), (ch) => ch.charCodeAt(0));
    } catch {
      throw new Invalid();
    }
  }

  display(): string {
    this.take();
    if (this.take() !== '"') throw new Invalid();
    const bytes: number[] = [];
    for (;;) {
      if (this.done) throw new Invalid();
      const c = this.take();
      if (c === '"') break;
      if (c < " " || c > "~") throw new Invalid();
      if (c !== "%") {
        bytes.push(c.charCodeAt(0));
        continue;
      }
      const hex = this.take() + this.take();
      if (!/^[0-9a-f]{2}$/.test(hex)) throw new Invalid();
      bytes.push(parseInt(hex, 16));
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
    } catch {
      throw new Invalid();
    }
  }

  member(): DictionaryMember["value"] {
    if (this.peek() !== "(") return this.bare();
    this.take();
    const items: Array<{ value: BareItem; params: Map<string, BareItem> }> = [];
    for (;;) {
      this.skip(" ");
      if (this.peek() === ")") {
        this.take();
        return items;
      }
      const value = this.bare();
      items.push({ value, params: this.params() });
      if (this.peek() !== " " && this.peek() !== ")") throw new Invalid();
    }
  }
}

/**
 * Parses a Structured Field Dictionary (RFC 9651 §4.2.2). Several field
 * lines are joined with commas before parsing (§4.2). A repeated key keeps
 * its last value, as the RFC says.
 *
 * @param value The field value (lines joined by `", "`), or `null` when absent.
 * @returns The members in order, or `undefined` when the value is absent or
 * not a valid dictionary (the caller then ignores the field).
 *
 * @example
 * ```ts
 * import { parseDictionary } from "./structured.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const d = parseDictionary("max-age=60, no-store, private=?0");
 * assertEquals(d?.get("max-age")?.value, { type: "integer", value: 60 });
 * assertEquals(d?.get("no-store")?.value, { type: "boolean", value: true });
 * assertEquals(parseDictionary("max-age =60"), undefined);
 * ```
 */
export function parseDictionary(value: string | null): Map<string, DictionaryMember> | undefined {
  if (value === null) return undefined;
  const p = new Parser(value.replace(/^ +| +$/g, ""));
  const out = new Map<string, DictionaryMember>();
  try {
    while (!p.done) {
      const key = p.key();
      let member: DictionaryMember["value"] = { type: "boolean", value: true };
      if (p.peek() === "=") {
        p.take();
        member = p.member();
      }
      out.set(key, { value: member, params: p.params() });
      p.skip(" \t");
      if (p.done) break;
      if (p.take() !== ",") throw new Invalid();
      p.skip(" \t");
      if (p.done) throw new Invalid(); // A trailing comma.
    }
  } catch (err) {
    if (err instanceof Invalid) return undefined;
    throw err;
  }
  return out;
}
