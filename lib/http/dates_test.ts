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
  await t.step("RFC 9110 §5.6.7 grammar is exact: spacing, commas, digits", () => {
    // Each is what some origin sends; RFC 9111 §5.3 makes an invalid Expires
    // "already expired", so a lenient parse would serve stale responses as fresh.
    for (
      const text of [
        "Thu 18 Aug 2050 02:01:18 GMT", // no comma
        "Thu, 18  Aug  2050 02:01:18 GMT", // doubled spaces
        "Thu, 18-Aug-2050 02:01:18 GMT", // RFC 850 dashes with a four-digit year
        "Thu, 18 Aug 2050 2:01:18 GMT", // one-digit hour
        "Thu, 18 Aug 2050 02.01.18 GMT", // periods
        "Thu, 18 Aug 50 02:01:18 GMT", // two-digit year in an IMF-fixdate
        "Thu, 18 Aug 2050 02:01:18 UTC", // another zone name
        "Thu, 18 Aug 2050 02:01:18 AEST",
        "Thu, 31 Feb 2050 02:01:18 GMT", // no such day
        "Thu, 18 Aug 2050 24:00:00 GMT", // no such hour
        "Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT", // two lines combined
      ]
    ) assertEquals(parseHttpDate(text), undefined, text);
  });
  await t.step("names match in any case; far and leap dates are exact", () => {
    const aug18 = Date.UTC(2050, 7, 18, 2, 1, 18);
    for (
      const text of [
        "Thu, 18 Aug 2050 02:01:18 gMT",
        "THU, 18 AUG 2050 02:01:18 GMT",
        "thursday, 18-aug-50 02:01:18 gmt",
      ]
    ) assertEquals(parseHttpDate(text), aug18, text);
    assertEquals(parseHttpDate("Sun, 21 Nov 2286 04:46:39 GMT"), Date.UTC(2286, 10, 21, 4, 46, 39));
    assertEquals(parseHttpDate("Thu, 29 Feb 2024 00:00:00 GMT"), Date.UTC(2024, 1, 29));
    assertEquals(parseHttpDate("Thu Feb 29 00:00:00 2024"), Date.UTC(2024, 1, 29));
    assertEquals(parseHttpDate("Sat, 29 Feb 2025 00:00:00 GMT"), undefined);
    // A leap second is the next second, not an error (RFC 5322 §3.3).
    assertEquals(parseHttpDate("Wed, 31 Dec 2025 23:59:60 GMT"), Date.UTC(2026, 0, 1));
  });
  await t.step("a formatted date parses back", () => {
    assertEquals(parseHttpDate(formatHttpDate(t0 + 999)), t0);
  });
});
