import { parseDictionary } from "./structured.ts";
import { assertEquals } from "../testing/assert.ts";

Deno.test("parseDictionary() reads RFC 9651 §4.2.2 dictionaries and rejects any deviation", async (t) => {
  await t.step("members, types and parameters", () => {
    const d = parseDictionary(
      'a=1, b=-2.5, c="x\\"y", d=tok/en, e=?0, f, g=:aGk=:, h=(1 "two");p=3',
    );
    assertEquals([...d!.keys()], ["a", "b", "c", "d", "e", "f", "g", "h"]);
    assertEquals(d!.get("a")!.value, { type: "integer", value: 1 });
    assertEquals(d!.get("b")!.value, { type: "decimal", value: -2.5 });
    assertEquals(d!.get("c")!.value, { type: "string", value: 'x"y' });
    assertEquals(d!.get("d")!.value, { type: "token", value: "tok/en" });
    assertEquals(d!.get("e")!.value, { type: "boolean", value: false });
    assertEquals(d!.get("f")!.value, { type: "boolean", value: true });
    assertEquals(d!.get("g")!.value, { type: "binary", value: new Uint8Array([104, 105]) });
    assertEquals(d!.get("h")!.params.get("p"), { type: "integer", value: 3 });
    assertEquals((d!.get("h")!.value as unknown[]).length, 2);
  });
  await t.step("the last of a repeated key wins; spacing around commas is allowed", () => {
    assertEquals(parseDictionary("a=1 ,\tb, a=2")!.get("a")!.value, { type: "integer", value: 2 });
    assertEquals(parseDictionary("")!.size, 0);
  });
  await t.step("invalid dictionaries", () => {
    for (
      const text of [
        "max-age =1", // space before "="
        "max-age= 1", // space after "="
        "Max-Age=1", // upper-case key
        "a=1, &&&", // not a key
        "a=1,", // trailing comma
        "a=1 b=2", // no comma
        'a="unterminated',
        "a=1234567890123456", // 16 digits
        "a=1.2345", // 4 fraction digits
        "a=?2",
      ]
    ) assertEquals(parseDictionary(text), undefined, text);
    assertEquals(parseDictionary(null), undefined);
  });
});
