import { formatHttpDate, parseHttpDate } from "./dates.ts";
import { assertEquals } from "../testing/assert.ts";

Deno.test("formatHttpDate() formats IMF-fixdate, whole seconds only", () => {
  assertEquals(formatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  assertEquals(formatHttpDate(784111777999), "Sun, 06 Nov 1994 08:49:37 GMT");
  assertEquals(formatHttpDate(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");
  // An older time between two calls for a later one does not disturb either.
  const now = formatHttpDate(1_800_000_000_000);
  assertEquals(formatHttpDate(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");
  assertEquals(formatHttpDate(1_800_000_000_500), now);
  assertEquals(now, "Fri, 15 Jan 2027 08:00:00 GMT");
});

Deno.test("parseHttpDate() reads the three HTTP-date forms and nothing else", async (t) => {
  const t0 = 784111777000; // Sun, 06 Nov 1994 08:49:37 GMT
  await t.step("the three forms of RFC 9110 §5.6.7", () => {
    const cases: [string, number][] = [
      ["Sun, 06 Nov 1994 08:49:37 GMT", t0],
      ["  Sun, 06 Nov 1994 08:49:37 GMT ", t0],
      ["Sunday, 06-Nov-94 08:49:37 GMT", t0],
      ["Sun Nov  6 08:49:37 1994", t0],
    ];
    for (const [text, want] of cases) assertEquals(parseHttpDate(text), want, text);
  });
  await t.step("an RFC 850 year more than 50 years ahead is in the past century", () => {
    const year = new Date().getUTCFullYear();
    const ahead = (year + 60) % 100;
    const text = `Monday, 01-Jan-${String(ahead).padStart(2, "0")} 00:00:00 GMT`;
    assertEquals(new Date(parseHttpDate(text)!).getUTCFullYear(), year + 60 - 100);
    const soon = (year + 1) % 100;
    const near = `Monday, 01-Jan-${String(soon).padStart(2, "0")} 00:00:00 GMT`;
    assertEquals(new Date(parseHttpDate(near)!).getUTCFullYear(), year + 1);
  });
  await t.step("absent, numeric, zone-less and junk values are invalid", () => {
    for (const text of [null, "", "0", "-1", "2026-12-03", "Sun, 06 Nov 1994 08:49:37", "x GMT"]) {
      assertEquals(parseHttpDate(text), undefined, String(text));
    }
  });
  await t.step("a formatted date parses back", () => {
    assertEquals(parseHttpDate(formatHttpDate(t0 + 999)), t0);
  });
});
