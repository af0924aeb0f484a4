import { FieldList, listTokens } from "./fields.ts";
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
