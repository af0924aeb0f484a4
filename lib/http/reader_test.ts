import { BufferedReader } from "./reader.ts";
import { bodyStream, discardBody, readBody } from "./bodies.ts";
import { readRequestHead, readResponseHead } from "./heads.ts";
import { encodeResponseHead } from "./encoder.ts";
import { writeAll } from "../bytes.ts";
import { bytes, readerOf } from "./_test_util.ts";
import { assertEquals } from "../testing/assert.ts";

const decoder = new TextDecoder();

Deno.test("BufferedReader parses pipelined requests from a real TCP connection", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const wire = bytes(
    "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n" +
      "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
  );
  const client = (async () => {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    // Odd-sized writes so heads and chunks straddle reads.
    for (let i = 0; i < wire.length; i += 11) {
      await writeAll(conn, wire.subarray(i, i + 11));
    }
    const reply = await new Response(conn.readable).text();
    return reply;
  })();
  {
    using conn = await listener.accept();
    const r = new BufferedReader(conn, { bufferSize: 32 });
    const h1 = await readRequestHead(r);
    const body = await new Response(bodyStream(r, h1!.body)).text();
    const h2 = await readRequestHead(r);
    assertEquals(await discardBody(r, h2!.body), 0);
    assertEquals([h1!.target, body, h2!.target, String(h2!.keepAlive)], [
      "/a",
      "wikipedia",
      "/b",
      "false",
    ]);
    await writeAll(
      conn,
      encodeResponseHead({ status: 200, headers: { "Content-Length": "2" } }),
    );
    await writeAll(conn, bytes("ok"));
  }
  const reply = await client;
  const rr = readerOf(reply);
  const head = await readResponseHead(rr);
  assertEquals(head?.status, 200);
  assertEquals(decoder.decode(await readBody(rr, head!.body)), "ok");
});

Deno.test("BufferedReader in stream mode keeps only the remainder of a big chunk", async () => {
  const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
  const r = new BufferedReader(ReadableStream.from([big]).getReader(), { bufferSize: 1024 });
  const p = new Uint8Array(300_000);
  assertEquals(await r.read(p), 300_000);
  assertEquals(r.buffered, (1 << 20) - 300_000);
  const rest = await readBody(r, { type: "close" });
  assertEquals(rest.length, (1 << 20) - 300_000);
  assertEquals(rest[0], 300_000 & 0xff);
  assertEquals(await r.read(p), null);
});
