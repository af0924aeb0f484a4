import assert from "node:assert/strict";
import { encodeFields, HpackDecoder, HpackError } from "./hpack.ts";

function hex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("HpackDecoder decodes RFC 7541's Huffman examples (C.4), keeping the dynamic table", () => {
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hex("828684418cf1e3c2e5f23a6ba0ab90f4ff")), [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
  ]);
  assert.deepEqual(d.decode(hex("828684be5886a8eb10649cbf")), [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ]);
  assert.deepEqual(d.decode(hex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")), [
    [":method", "GET"],
    [":scheme", "https"],
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ]);
});

Deno.test("HpackDecoder rejects malformed blocks and stops an HPACK bomb", async (t) => {
  const cases: [string, Uint8Array, boolean][] = [
    ["an index past the table", hex("be"), false],
    ["index 0", hex("80"), false],
    ["a truncated string", hex("0f0005616263"), false],
    ["Huffman padding of zeros", hex("0f0081f0"), false],
    ["a table size update over our setting", hex("3fe21f"), false],
    ["a size update after a field", hex("8220"), false],
  ];
  for (const [name, block, tooLarge] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => new HpackDecoder().decode(block),
        (e) => e instanceof HpackError && e.tooLarge === tooLarge,
      );
    });
  }
  await t.step("one large entry referenced until the decoded size limit", () => {
    const d = new HpackDecoder({ maxListSize: 65536 });
    const value = "a".repeat(4000);
    const insert = [0x40, 1, 0x78, 0x7f, 0xa1, 0x1e, ...new TextEncoder().encode(value)];
    const block = new Uint8Array([...insert, ...new Array(100).fill(0x80 | 62)]);
    assert.throws(() => d.decode(block), (e) => e instanceof HpackError && e.tooLarge);
  });
});

Deno.test("encodeFields output decodes back, with static indices where they match", () => {
  const fields: [string, string][] = [
    [":status", "206"],
    [":status", "418"],
    ["content-type", "text/plain"],
    ["x-custom", "é".normalize()],
  ];
  const block = encodeFields(fields);
  assert.equal(block[0], 0x8a);
  const back = new HpackDecoder().decode(block);
  assert.deepEqual(back.slice(0, 3), fields.slice(0, 3));
});

Deno.test("HpackDecoder keeps obs-text bytes of a plain literal as Latin-1 (0x80 is U+0080, not €)", () => {
  // Literal without indexing, new name "x-t", value bytes 61 80 9f e9 (RFC 7541 §6.2.2).
  const block = new Uint8Array([0x00, 3, 0x78, 0x2d, 0x74, 4, 0x61, 0x80, 0x9f, 0xe9]);
  assert.deepEqual(new HpackDecoder().decode(block), [["x-t", "a\u0080\u009f\u00e9"]]);
});
