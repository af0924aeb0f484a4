import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { createRandom } from "../lib/random.ts";
import { serveDir } from "../web_server/serve.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { curlBytes, startOrigin } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";

/** The parts of a multipart/byteranges body: each part's Content-Range and bytes. */
function multipartParts(body: Uint8Array, contentType: string): Array<[string, Uint8Array]> {
  const boundary = /boundary=(\S+)/.exec(contentType)?.[1];
  assert(boundary !== undefined, contentType);
  const text = new TextDecoder("latin1").decode(body);
  const out: Array<[string, Uint8Array]> = [];
  for (const part of text.split(`--${boundary}`).slice(1)) {
    if (part.startsWith("--")) break;
    const end = part.indexOf("\r\n\r\n");
    const range = /Content-Range: (.*)\r\n/i.exec(part.slice(0, end + 2))?.[1] ?? "";
    const data = part.slice(end + 4, part.length - 2); // each part ends with CRLF before the next delimiter
    out.push([range, Uint8Array.from(data, (c) => c.charCodeAt(0))]);
  }
  return out;
}

Deno.test("proxy answers curl -r from a stored response, byte for byte as the origin", async (t) => {
  const root = await Deno.makeTempDir();
  const cacheDir = await Deno.makeTempDir();
  try {
    const random = createRandom(16);
    const bytes = Uint8Array.from({ length: 300_000 }, () => Math.floor(random() * 256));
    await Deno.writeFile(`${root}/blob.bin`, bytes);
    await Deno.writeFile(`${root}/small.bin`, bytes.subarray(0, 1000));
    // The project's web server answers ranges itself: it is the reference for each answer.
    await using origin = await startOrigin((req) =>
      serveDir(req, { fsRoot: root, cacheControl: "max-age=600", compression: false })
    );
    // A tiny memory tier for objects: blob.bin is served from the disk tier as a stream,
    // small.bin from memory, so both ways of reading a stored body are covered.
    const store = await CacheStore.open({ dir: cacheDir, memoryObjectSize: 4096 });
    await using proxy = await startProxy({ port: 0, upstream: origin.url, store });
    const via = `http://127.0.0.1:${proxy.port}`;
    for (const path of ["/blob.bin", "/small.bin"]) {
      const first = await curlBytes([`${via}${path}`]);
      assertMatch(first.headers.get("cache-status") ?? "", /stored/);
    }
    // Stored entries become servable once committed to disk; wait for the hits.
    for (const path of ["/blob.bin", "/small.bin"]) {
      for (let i = 0; i < 100; i++) {
        const r = await curlBytes(["-r", "0-0", `${via}${path}`]);
        if (r.headers.get("cache-status")?.includes("hit")) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const viaProxy = () => origin.seen.filter((s) => s.headers.has("via")).length;
    const forwardedBefore = viaProxy();

    await t.step("single ranges: first, middle, open-ended, suffix, clipped", async () => {
      for (const path of ["/blob.bin", "/small.bin"]) {
        for (
          const range of ["0-0", "0-99", "1000-", "-1", "-5000", "250000-299999", "999-1000000"]
        ) {
          const size = path === "/blob.bin" ? 300_000 : 1000;
          if (Number(range.split("-")[0]) >= size) continue;
          const ours = await curlBytes(["-r", range, `${via}${path}`]);
          const theirs = await curlBytes(["-r", range, `${origin.url}${path}`]);
          assertEquals(ours.status, 206, `${path} ${range}`);
          assertEquals(theirs.status, 206, `${path} ${range}`);
          assertEquals(ours.headers.get("content-range"), theirs.headers.get("content-range"));
          assertEquals(ours.body, theirs.body, `${path} ${range}`);
          assertMatch(ours.headers.get("cache-status") ?? "", /^netkit; hit;/);
        }
      }
    });
    await t.step("multipart ranges carry each part as the origin's parts", async () => {
      for (const path of ["/blob.bin", "/small.bin"]) {
        const ours = await curlBytes(["-r", "0-9,100-199,-10", `${via}${path}`]);
        const theirs = await curlBytes(["-r", "0-9,100-199,-10", `${origin.url}${path}`]);
        assertEquals(ours.status, 206);
        const type = ours.headers.get("content-type") ?? "";
        assertMatch(type, /^multipart\/byteranges; boundary=/);
        assertEquals(Number(ours.headers.get("content-length")), ours.body.length);
        const a = multipartParts(ours.body, type);
        const b = multipartParts(theirs.body, theirs.headers.get("content-type") ?? "");
        assertEquals(a.length, 3);
        assertEquals(a, b);
      }
    });
    await t.step("If-Range: a matching ETag gets the range, another one the whole", async () => {
      const etag = (await curlBytes([`${via}/small.bin`])).headers.get("etag")!;
      const match = await curlBytes(["-r", "0-1", "-H", `If-Range: ${etag}`, `${via}/small.bin`]);
      assertEquals(match.status, 206);
      assertEquals(match.body, bytes.subarray(0, 2));
      const stale = await curlBytes(["-r", "0-1", "-H", 'If-Range: "other"', `${via}/small.bin`]);
      assertEquals(stale.status, 200);
      assertEquals(stale.body, bytes.subarray(0, 1000));
    });
    await t.step("an unsatisfiable range is 416 with the size, as the origin says", async () => {
      const ours = await curlBytes(["-r", "5000-6000", `${via}/small.bin`]);
      const theirs = await curlBytes(["-r", "5000-6000", `${origin.url}/small.bin`]);
      assertEquals(ours.status, 416);
      assertEquals(theirs.status, 416);
      assertEquals(ours.headers.get("content-range"), theirs.headers.get("content-range"));
    });
    // Every range above came from the cache: the origin saw none of them through the proxy.
    assertEquals(viaProxy(), forwardedBefore);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("proxy answers curl -r on a miss by storing the whole object, as nginx serves it", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_range_miss_" });
  try {
    const random = createRandom(23);
    const bytes = Uint8Array.from({ length: 300_000 }, () => Math.floor(random() * 256));
    for (const name of ["a.bin", "b.bin", "c.bin", "d.bin"]) {
      await Deno.writeFile(`${root}/${name}`, bytes);
    }
    await using nginx = await startNginx(root, {
      workers: 1,
      logFormat: '$uri "$http_range" "$http_if_range" $status $body_bytes_sent',
      server: 'add_header Cache-Control "max-age=600";',
    });
    // The memory tier keeps bodies up to 1 MiB: the whole 300,000 bytes fit.
    await using proxy = await startProxy({ port: 0, upstream: nginx.url });
    const via = `http://127.0.0.1:${proxy.port}`;
    let lines = 0;
    /** The origin's log lines since the last call. */
    const originSaw = async (count: number) => {
      const all = await nginx.log(lines + count);
      const fresh = all.slice(lines);
      lines = all.length;
      return fresh;
    };

    await t.step("the first range is fetched whole, stored, and cut as nginx cuts it", async () => {
      const ours = await curlBytes(["-r", "1000-1999", `${via}/a.bin`]);
      const theirs = await curlBytes(["-r", "1000-1999", `${nginx.url}/a.bin`]);
      assertEquals(ours.status, 206);
      assertEquals(ours.headers.get("content-range"), theirs.headers.get("content-range"));
      assertEquals(ours.body, theirs.body);
      assertMatch(ours.headers.get("cache-status") ?? "", /fwd=uri-miss; fwd-status=200; stored/);
      // nginx logs each request when it has sent it: in either order.
      assertEquals((await originSaw(2)).sort(), [
        `/a.bin "-" "-" 200 300000`,
        `/a.bin "bytes=1000-1999" "-" 206 1000`,
      ]);
    });
    await t.step("the next ranges are hits, single and multipart", async () => {
      for (const range of ["-5000", "0-0", "299999-", "0-9,100-199,-10"]) {
        const ours = await curlBytes(["-r", range, `${via}/a.bin`]);
        const theirs = await curlBytes(["-r", range, `${nginx.url}/a.bin`]);
        assertEquals(ours.status, 206, range);
        assertMatch(ours.headers.get("cache-status") ?? "", /^netkit; hit;/);
        if (range.includes(",")) {
          const type = ours.headers.get("content-type") ?? "";
          assertEquals(
            multipartParts(ours.body, type),
            multipartParts(theirs.body, theirs.headers.get("content-type") ?? ""),
          );
        } else {
          assertEquals(ours.headers.get("content-range"), theirs.headers.get("content-range"));
          assertEquals(ours.body, theirs.body, range);
        }
      }
      // Only the direct requests reached nginx.
      const seen = await originSaw(4);
      assertEquals(seen.filter((l) => l.startsWith('/a.bin "-"')), []);
    });
    await t.step("a multipart range and an unsatisfiable one on a miss", async () => {
      const multi = await curlBytes(["-r", "0-9,100-199", `${via}/b.bin`]);
      const direct = await curlBytes(["-r", "0-9,100-199", `${nginx.url}/b.bin`]);
      assertEquals(multi.status, 206);
      assertEquals(
        multipartParts(multi.body, multi.headers.get("content-type") ?? ""),
        multipartParts(direct.body, direct.headers.get("content-type") ?? ""),
      );
      const none = await curlBytes(["-r", "400000-", `${via}/c.bin`]);
      assertEquals(none.status, 416);
      assertEquals(none.headers.get("content-range"), "bytes */300000");
      // Both were stored whole: a plain GET of each is a hit, byte for byte.
      for (const path of ["/b.bin", "/c.bin"]) {
        const whole = await curlBytes([`${via}${path}`]);
        assertMatch(whole.headers.get("cache-status") ?? "", /^netkit; hit;/);
        assertEquals(whole.body, bytes);
      }
      assertEquals((await originSaw(3)).filter((l) => l.includes('"-" "-"')).length, 2);
    });
    await t.step("If-Range on a miss: a stale validator gets the whole 200", async () => {
      const r = await curlBytes(["-r", "0-1", "-H", 'If-Range: "stale"', `${via}/d.bin`]);
      assertEquals(r.status, 200);
      assertEquals(r.body, bytes);
      const etag = r.headers.get("etag")!;
      const again = await curlBytes(["-r", "0-1", "-H", `If-Range: ${etag}`, `${via}/d.bin`]);
      assertEquals(again.status, 206);
      assertEquals(again.body, bytes.subarray(0, 2));
      assertEquals(await originSaw(1), [`/d.bin "-" "-" 200 300000`]);
    });
    await t.step(
      "larger than the store keeps: the range goes upstream, the 206 comes back",
      async () => {
        const small = await CacheStore.open({ memoryObjectSize: 100_000 });
        await using tight = await startProxy({ port: 0, upstream: nginx.url, store: small });
        for (let i = 0; i < 2; i++) {
          const ours = await curlBytes(["-r", "5000-5999", `http://127.0.0.1:${tight.port}/a.bin`]);
          assertEquals(ours.status, 206);
          assertEquals(ours.body, bytes.subarray(5000, 6000));
          assertEquals(ours.headers.get("content-range"), "bytes 5000-5999/300000");
          assertMatch(ours.headers.get("cache-status") ?? "", /fwd=uri-miss; fwd-status=206/);
          // The whole fetch is dropped once its length shows; the range itself is relayed.
          const seen = await originSaw(2);
          assertEquals(seen.length, 2);
          assert(seen.includes(`/a.bin "bytes=5000-5999" "-" 206 1000`), seen.join("\n"));
          assert(seen.some((l) => l.startsWith(`/a.bin "-" "-" 200 `)), seen.join("\n"));
        }
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("proxy relays a chunked whole as a 200 to a range miss, and stores it", async () => {
  const text = "0123456789".repeat(1000);
  await using origin = await startOrigin(() =>
    new Response(
      new ReadableStream({
        start(c) {
          // Two pieces and no Content-Length: the length is unknown until the end.
          c.enqueue(new TextEncoder().encode(text.slice(0, 4000)));
          c.enqueue(new TextEncoder().encode(text.slice(4000)));
          c.close();
        },
      }),
      { headers: { "cache-control": "max-age=600" } },
    )
  );
  await using proxy = await startProxy({ port: 0, upstream: origin.url });
  const via = `http://127.0.0.1:${proxy.port}/stream`;
  const first = await curlBytes(["-r", "10-19", via]);
  assertEquals(first.status, 200);
  assertEquals(new TextDecoder().decode(first.body), text);
  const second = await curlBytes(["-r", "10-19", via]);
  assertEquals(second.status, 206);
  assertEquals(new TextDecoder().decode(second.body), "0123456789");
  assertMatch(second.headers.get("cache-status") ?? "", /^netkit; hit;/);
  assertEquals(origin.hits.get("/stream"), 1);
});

Deno.test("proxy does not store a body announced larger than the store keeps (detail=size)", async () => {
  const big = new Uint8Array(3 << 20).fill(7);
  await using origin = await startOrigin(() =>
    new Response(big, { headers: { "cache-control": "max-age=600" } })
  );
  // Memory only: bodies up to 1 MiB are kept.
  await using proxy = await startProxy({ port: 0, upstream: origin.url });
  for (let i = 1; i <= 2; i++) {
    const r = await curlBytes([`http://127.0.0.1:${proxy.port}/big`]);
    assertEquals(r.body.length, big.length);
    assertMatch(r.headers.get("cache-status") ?? "", /fwd=uri-miss; fwd-status=200; detail=size/);
    assertEquals(origin.hits.get("/big"), i);
  }
});
