import { assertEquals } from "./testing/assert.ts";
import { escapeHtml } from "./html.ts";

Deno.test("escapeHtml() escapes the five markup characters and nothing else", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["plain text, é ✓", "plain text, é ✓"],
    ["a<b>&.txt", "a&lt;b&gt;&amp;.txt"],
    [`"quoted" 'single'`, "&quot;quoted&quot; &#39;single&#39;"],
    ["&amp;", "&amp;amp;"],
    ["<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"],
  ];
  for (const [input, want] of cases) assertEquals(escapeHtml(input), want, input);
});
