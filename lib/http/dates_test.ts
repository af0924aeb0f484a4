import { httpDate } from "./dates.ts";
import { assertEquals } from "../testing/assert.ts";

Deno.test("httpDate() formats IMF-fixdate", () => {
  assertEquals(httpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  assertEquals(httpDate(784111777999), "Sun, 06 Nov 1994 08:49:37 GMT");
  assertEquals(httpDate(784111777000), "Sun, 06 Nov 1994 08:49:37 GMT");
});
