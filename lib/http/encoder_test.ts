import {
  ChunkedEncoderStream,
  encodeChunk,
  encodeRequestHead,
  encodeRequestHeadInto,
  encodeResponseHead,
  encodeResponseHeadInto,
  LAST_CHUNK,
} from "./encoder.ts";
import { readBody, readChunked } from "./bodies.ts";
import { readRequestHead } from "./heads.ts";
import { FieldList } from "./fields.ts";
import { readerOf } from "./_test_util.ts";
import { assert, assertEquals } from "../testing/assert.ts";

const decoder = new TextDecoder();

Deno.test("encodeChunk() and ChunkedEncoderStream round-trip through readChunked(), and readBody() hands trailers to onTrailers", async (t) => {
  // A deterministic mix of sizes, including ones that straddle read pieces.
  const sizes = [1, 15, 16, 255, 256, 4095, 65536, 70000, 3];
  const parts = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + k) & 0xff));
  const expected = parts.flatMap((p) => [...p]);
  await t.step("encodeChunk", async () => {
    const wire = new Uint8Array([...parts.flatMap((p) => [...encodeChunk(p)]), ...LAST_CHUNK]);
    for (const piece of [Infinity, 1000, 3]) {
      const got: number[] = [];
      for await (const p of readChunked(readerOf(wire, piece))) got.push(...p);
      assertEquals(got.length, expected.length);
      assert(got.every((b, i) => b === expected[i]), "bytes differ");
    }
  });
  await t.step("ChunkedEncoderStream", async () => {
    const encoded = ReadableStream.from(parts).pipeThrough(new ChunkedEncoderStream());
    const wire = new Uint8Array(await new Response(encoded).arrayBuffer());
    const body = await readBody(readerOf(wire, 4096), { type: "chunked" });
    assert(body.every((b, i) => b === expected[i]) && body.length === expected.length);
  });
  await t.step("an empty chunk encodes to nothing and sizes are lower-case hex", () => {
    assertEquals(encodeChunk(new Uint8Array(0)).length, 0);
    assertEquals(decoder.decode(encodeChunk(new Uint8Array(26))).slice(0, 4), "1a\r\n");
  });
  await t.step("trailers reach onTrailers", async () => {
    let trailers: [string, string][] = [];
    await readBody(readerOf("1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"), { type: "chunked" }, {
      onTrailers: (f) => (trailers = [...f]),
    });
    assertEquals(trailers, [["A", "1"], ["B", "2"]]);
  });
});

Deno.test("encodeRequestHead(), encodeResponseHead() and their *Into variants serialise heads and refuse injection", async (t) => {
  await t.step("request round trip", async () => {
    const wire = encodeRequestHead({
      method: "POST",
      target: "/x?y=1",
      headers: new FieldList([["Host", "h"], ["Content-Length", "2"], ["X-Multi", "a"], [
        "x-multi",
        "b",
      ]]),
    });
    const r = readerOf(new Uint8Array([...wire, 104, 105]));
    const head = await readRequestHead(r);
    assertEquals(head?.method, "POST");
    assertEquals(head?.headers.getAll("x-multi"), ["a", "b"]);
    assertEquals(decoder.decode(await readBody(r, head!.body)), "hi");
  });
  await t.step("response with reason table and headers forms", () => {
    assertEquals(
      decoder.decode(encodeResponseHead({ status: 431, headers: { "Content-Length": "0" } })),
      "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n",
    );
    assertEquals(
      decoder.decode(
        encodeResponseHead({ status: 200, reason: "Fine", version: "HTTP/1.0", headers: [] }),
      ),
      "HTTP/1.0 200 Fine\r\n\r\n",
    );
    const h = new Headers({ "X-A": "1" });
    assertEquals(
      decoder.decode(encodeResponseHead({ status: 299, headers: h })),
      "HTTP/1.1 299 \r\nx-a: 1\r\n\r\n",
    );
  });
  await t.step("the *Into variants write into a caller buffer", () => {
    const buf = new Uint8Array(64).fill(0x2e);
    const end = encodeResponseHeadInto({ status: 200, headers: [["A", " b "]] }, buf, {
      offset: 2,
    });
    assertEquals(decoder.decode(buf.subarray(0, end + 1)), "..HTTP/1.1 200 OK\r\nA: b\r\n\r\n.");
    const req = encodeRequestHeadInto({ method: "GET", target: "/", headers: { H: "1" } }, buf);
    assertEquals(decoder.decode(buf.subarray(0, req)), "GET / HTTP/1.1\r\nH: 1\r\n\r\n");
    let range = false;
    try {
      encodeResponseHeadInto({ status: 200, headers: [["X", "y".repeat(100)]] }, buf);
    } catch (err) {
      range = err instanceof RangeError;
    }
    assert(range, "RangeError when the head does not fit");
  });
  await t.step("injection attempts throw TypeError", () => {
    const bad: (() => unknown)[] = [
      () => encodeRequestHead({ method: "GET /", target: "/" }),
      () => encodeRequestHead({ method: "GET", target: "/ HTTP/1.1\r\nX: y" }),
      () => encodeRequestHead({ method: "GET", target: "" }),
      () => encodeRequestHead({ method: "GET", target: "/", headers: { "X\r\nY": "1" } }),
      () => encodeRequestHead({ method: "GET", target: "/", headers: { "X": "1\r\nY: 2" } }),
      () => encodeRequestHead({ method: "GET", target: "/", headers: { "X": "a\0b" } }),
      () => encodeRequestHead({ method: "GET", target: "/", headers: { "X": "\u2603" } }),
      () => encodeResponseHead({ status: 99 }),
      () => encodeResponseHead({ status: 200, reason: "OK\r\nX: y" }),
    ];
    for (const [i, fn] of bad.entries()) {
      let ok = false;
      try {
        fn();
      } catch (err) {
        ok = err instanceof TypeError;
      }
      assert(ok, `case ${i} did not throw TypeError`);
    }
  });
});
