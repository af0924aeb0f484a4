import { compareETags, matchETagList } from "./etag.ts";
import { assertEquals } from "../testing/assert.ts";

Deno.test("compareETags() follows the strong and weak table of RFC 9110 §8.8.3.2", () => {
  // [a, b, strong, weak]: the RFC's own example table.
  const table: [string, string, boolean, boolean][] = [
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true],
  ];
  for (const [a, b, strong, weak] of table) {
    assertEquals(compareETags(a, b), strong, `${a} ${b} strong`);
    assertEquals(compareETags(b, a), strong, `${b} ${a} strong`);
    assertEquals(compareETags(a, b, { weak: true }), weak, `${a} ${b} weak`);
  }
});

Deno.test("matchETagList() reads If-Match and If-None-Match lists", async (t) => {
  await t.step("a lone * names any tag, a * inside a list names none", () => {
    assertEquals(matchETagList("*", '"a"'), true);
    assertEquals(matchETagList(" * ", 'W/"a"', { weak: true }), true);
    assertEquals(matchETagList('"b", *', '"a"'), false);
  });
  await t.step("any element may match; strong lists skip weak tags", () => {
    assertEquals(matchETagList('"x", "a"', '"a"'), true);
    assertEquals(matchETagList('"x", W/"a"', '"a"'), false);
    assertEquals(matchETagList('"x", W/"a"', '"a"', { weak: true }), true);
    assertEquals(matchETagList('"x",,  "y"', '"a"', { weak: true }), false);
    assertEquals(matchETagList("", '"a"', { weak: true }), false);
  });
  await t.step("a comma inside a tag does not split it", () => {
    assertEquals(matchETagList('"a,b", "c"', '"a,b"'), true);
    assertEquals(matchETagList('"a,b"', '"a"'), false);
    assertEquals(matchETagList('"a,b"', '"b"'), false);
  });
});
