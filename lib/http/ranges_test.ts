import { byterangesFraming, rangesToServe } from "./ranges.ts";
import { assertEquals } from "../testing/assert.ts";

Deno.test("rangesToServe() applies RFC 9110 §14.2 and If-Range (§13.1.5)", async (t) => {
  const lm = Date.UTC(2025, 0, 1);
  const rep = { size: 10, etag: '"v1"', lastModified: lm };
  const req = (fields: Record<string, string>) => rangesToServe(new Headers(fields), rep);
  await t.step("no Range, another unit, or an empty representation: the whole", () => {
    assertEquals(req({}), undefined);
    assertEquals(req({ range: "items=0-1" }), undefined);
    assertEquals(rangesToServe(new Headers({ range: "bytes=0-1" }), { size: 0 }), undefined);
  });
  await t.step("satisfiable, unsatisfiable and amplifying sets", () => {
    assertEquals(req({ range: "bytes=0-1, -2" }), [{ start: 0, end: 1 }, { start: 8, end: 9 }]);
    assertEquals(req({ range: "bytes=10-" }), []);
    // Overlapping ranges adding up to more than the whole are sent whole, as nginx does.
    assertEquals(req({ range: "bytes=0-9, 0-9" }), undefined);
  });
  await t.step("If-Range with a strong ETag or the exact Last-Modified date", () => {
    assertEquals(req({ range: "bytes=0-1", "if-range": '"v1"' }), [{ start: 0, end: 1 }]);
    assertEquals(req({ range: "bytes=0-1", "if-range": '"v2"' }), undefined);
    // A weak tag never matches: If-Range uses the strong comparison.
    assertEquals(req({ range: "bytes=0-1", "if-range": 'W/"v1"' }), undefined);
    const date = "Wed, 01 Jan 2025 00:00:00 GMT";
    assertEquals(req({ range: "bytes=0-1", "if-range": date }), [{ start: 0, end: 1 }]);
    assertEquals(
      req({ range: "bytes=0-1", "if-range": "Wed, 01 Jan 2025 00:00:01 GMT" }),
      undefined,
    );
    assertEquals(
      rangesToServe(new Headers({ range: "bytes=0-1", "if-range": '"v1"' }), { size: 10 }),
      undefined,
    );
  });
});

Deno.test("byterangesFraming() frames each part as RFC 9110 §14.6 shows", () => {
  const f = byterangesFraming([{ start: 0, end: 1 }, { start: 5, end: 5 }], {
    size: 6,
    type: "text/plain",
    boundary: "XYZ",
  });
  const text = f.parts.map((p) => new TextDecoder().decode(p));
  assertEquals(text, [
    "\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/6\r\n\r\n",
    "\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-5/6\r\n\r\n",
    "\r\n--XYZ--\r\n",
  ]);
  assertEquals(f.length, text.join("").length + 3);
});
