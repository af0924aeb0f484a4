/**
 * Escaping text for HTML, for the pages the servers generate (directory
 * listings, error pages).
 *
 * @module
 */

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Escapes text for use in HTML element content or in a quoted attribute
 * value (either quote): `&`, `<`, `>`, `"` and `'` become character
 * references, so a file name or an error message cannot open a tag or end an
 * attribute.
 *
 * @param text Any text.
 * @returns The text with the five characters escaped.
 *
 * @example
 * ```ts
 * import { escapeHtml } from "./html.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(
 *   escapeHtml(`<a href="x">'&'</a>`),
 *   "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
 * );
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
