import { FieldList, listTokens, splitList } from "./fields.ts";
import { assert, assertEquals } from "../testing/assert.ts";

Deno.test("FieldList looks up case-insensitively, edits in place and clones; listTokens() drops parameters and empty members", () => {
  const f = new FieldList({ "Content-Type": "text/plain" });
  f.append("Set-Cookie", "a=1");
  f.append("set-cookie", "b=2");
  assertEquals(f.getAll("SET-COOKIE"), ["a=1", "b=2"]);
  assert(f.has("content-type") && !f.has("content"));
  assertEquals(f.get("missing"), null);
  f.set("Set-Cookie", "c=3");
  assertEquals([...f], [["Content-Type", "text/plain"], ["Set-Cookie", "c=3"]]);
  assertEquals(f.delete("content-type"), 1);
  assertEquals(f.size, 1);
  const copy = f.clone();
  copy.append("X", "1");
  assertEquals(f.size, 1);
  assertEquals(copy.toHeaders().get("x"), "1");
  assertEquals(f.nameAt(0), "Set-Cookie");
  assertEquals(f.valueAt(0), "c=3");
  assert(new FieldList([["Connection", "keep-alive, Upgrade"]]).hasToken("connection", "upgrade"));
  assertEquals(listTokens("gzip;q=1, , Chunked"), ["gzip", "chunked"]);
});

Deno.test("splitList() splits at commas outside quoted strings and drops empty elements", () => {
  const cases: [string, string[]][] = [
    ["", []],
    [" , ,", []],
    ["gzip, chunked", ["gzip", "chunked"]],
    ["  a  ,b\t, ,c ", ["a", "b", "c"]],
    ['"a,b", W/"c", d;q=1', ['"a,b"', 'W/"c"', "d;q=1"]],
    ['no-cache="Set-Cookie, Age", max-age=5', ['no-cache="Set-Cookie, Age"', "max-age=5"]],
    ['a="x\\",y", b', ['a="x\\",y"', "b"]],
    ['a="unterminated, b', ['a="unterminated, b']],
    ["Case;Kept=Yes", ["Case;Kept=Yes"]],
  ];
  for (const [input, want] of cases) assertEquals(splitList(input), want, input);
  assertEquals(listTokens('Keep-Alive, x="a,b", Close'), ["keep-alive", "x", "close"]);
});
