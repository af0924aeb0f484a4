import { bodyReader, readBody, readFixed } from "./bodies.ts";
import { HttpError } from "./errors.ts";
import { assertRejects, readerOf } from "./_test_util.ts";
import { assertEquals } from "../testing/assert.ts";

const decoder = new TextDecoder();

Deno.test("readBody() enforces maxBytes (413), maxTrailerBytes (431) and maxChunkLineBytes (400)", async (t) => {
  const table: { name: string; wire: string; kind: Parameters<typeof readBody>[1] }[] = [
    { name: "fixed", wire: "abcdef", kind: { type: "length", length: 6 } },
    { name: "chunked", wire: "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", kind: { type: "chunked" } },
    { name: "until close", wire: "abcdef", kind: { type: "close" } },
  ];
  for (const c of table) {
    await t.step(c.name, async () => {
      assertEquals((await readBody(readerOf(c.wire), c.kind, { maxBytes: 6 })).length, 6);
      await assertRejects(
        () => readBody(readerOf(c.wire, 2), c.kind, { maxBytes: 5 }),
        (e) => e instanceof HttpError && e.status === 413,
        c.name,
      );
    });
  }
  await t.step("trailer section over maxTrailerBytes → 431", async () => {
    const wire = `0\r\nX: ${"a".repeat(100)}\r\n\r\n`;
    await assertRejects(
      () => readBody(readerOf(wire), { type: "chunked" }, { maxTrailerBytes: 50 }),
      (e) => e instanceof HttpError && e.status === 431,
      "trailers",
    );
  });
  await t.step("chunk line over maxChunkLineBytes → 400", async () => {
    const wire = `1;${"a".repeat(100)}\r\nx\r\n0\r\n\r\n`;
    await assertRejects(
      () => readBody(readerOf(wire, 10), { type: "chunked" }, { maxChunkLineBytes: 50 }),
      (e) => e instanceof HttpError && e.status === 400,
      "chunk line",
    );
  });
});

Deno.test("readFixed() yields pieces the consumer may keep", async () => {
  const r = readerOf("abcdefgh", 3);
  const kept: Uint8Array[] = [];
  for await (const p of readFixed(r, 8, { readSize: 2 })) kept.push(p);
  assertEquals(kept.map((p) => decoder.decode(p)).join(""), "abcdefgh");
});

Deno.test("bodyReader() with a buffer yields views of it, filled when asked", async (t) => {
  const body = "abcdefghij";
  const table: { name: string; wire: string; kind: Parameters<typeof bodyReader>[1] }[] = [
    { name: "fixed", wire: body, kind: { type: "length", length: 10 } },
    { name: "chunked", wire: "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", kind: { type: "chunked" } },
    { name: "until close", wire: body, kind: { type: "close" } },
  ];
  for (const c of table) {
    await t.step(`${c.name}: every piece lies in the one buffer`, async () => {
      const buffer = new Uint8Array(4);
      let text = "";
      for await (const p of bodyReader(readerOf(c.wire, 3), c.kind, { buffer })) {
        assertEquals(p.buffer, buffer.buffer);
        text += decoder.decode(p);
      }
      assertEquals(text, body);
    });
    await t.step(`${c.name}: fill waits for a full buffer`, async () => {
      const sizes: number[] = [];
      let text = "";
      const buffer = new Uint8Array(4);
      for await (const p of bodyReader(readerOf(c.wire, 1), c.kind, { buffer, fill: true })) {
        sizes.push(p.length);
        text += decoder.decode(p);
      }
      assertEquals(text, body);
      // A chunk boundary ends a piece early: a piece never spans two chunks.
      assertEquals(sizes, c.kind.type === "chunked" ? [4, 2, 4] : [4, 4, 2]);
    });
  }
  await t.step("fill hands over the bytes before a short body's end, then fails", async () => {
    const got: string[] = [];
    const buffer = new Uint8Array(8);
    const pieces = bodyReader(readerOf("abc", 1), { type: "length", length: 10 }, {
      buffer,
      fill: true,
    });
    await assertRejects(
      async () => {
        for await (const p of pieces) got.push(decoder.decode(p));
      },
      (e) => e instanceof Deno.errors.UnexpectedEof,
      "short body",
    );
    assertEquals(got, ["abc"]);
  });
});
