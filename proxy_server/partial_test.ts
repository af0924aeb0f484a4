import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { createRandom } from "../lib/random.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { curlBytes } from "./_test_util.ts";
import { parseContentRange, PartStore, strongValidator } from "./_parts.ts";
import { startProxy } from "./proxy.ts";

/** Runs curl and returns the status, the Cache-Status and the body bytes. */
async function fetchBytes(
  args: string[],
): Promise<{ status: number; cacheStatus: string; body: Uint8Array }> {
  const { status, headers, body } = await curlBytes(args);
  return { status, cacheStatus: headers.get("cache-status") ?? "", body };
}

Deno.test("PartStore combines parts with one validator and drops those of another", async (t) => {
  const bytes = new TextEncoder().encode("0123456789");
  const part = (start: number, end: number) => ({
    url: "http://a.test/x",
    start,
    bytes: bytes.slice(start, end + 1),
    size: 10,
    fields: [["etag", '"v"']] as Array<[string, string]>,
    requestTime: 0,
    responseTime: 0,
  });
  await t.step("overlapping parts in any order add up to the whole once", () => {
    const parts = new PartStore(1 << 20);
    assertEquals(parts.add(part(6, 9), "etag a"), undefined);
    assertEquals(parts.add(part(0, 2), "etag a"), undefined);
    assertEquals(parts.add(part(5, 7), "etag a"), undefined);
    const whole = parts.add(part(2, 5), "etag a");
    assert(whole !== undefined);
    assertEquals(
      new TextDecoder().decode(new Uint8Array(whole.pieces.flatMap((p) => [...p]))),
      "0123456789",
    );
    assertEquals(parts.bytes, 0);
  });
  await t.step("a part with another validator replaces what was held", () => {
    const parts = new PartStore(1 << 20);
    parts.add(part(0, 4), "etag a");
    assertEquals(parts.add(part(5, 9), "etag b"), undefined);
    assertEquals(parts.bytes, 5);
  });
  await t.step(
    "the budget counts URIs and fields: 1-byte parts of long URIs stay within it",
    () => {
      const parts = new PartStore(1 << 20);
      const long = "q".repeat(8000);
      for (let i = 0; i < 20_000; i++) {
        parts.add({ ...part(0, 0), url: `http://a.test/x?${i}-${long}` }, "etag a");
      }
      // About 8.3 KB each: 126 fit in 1 MiB (counted by bytes alone, all 20,000 stayed).
      assert(parts.size > 100 && parts.size <= 126, `${parts.size} URIs held`);
      assertEquals(parts.bytes, parts.size);
    },
  );
  await t.step("validators: strong ETags, and Last-Modified a minute before Date", () => {
    const v = (fields: Record<string, string>) => strongValidator((n) => fields[n] ?? null);
    assertEquals(v({ etag: '"x"' }), 'etag "x"');
    assertEquals(v({ etag: 'W/"x"' }), undefined);
    const lm = "Thu, 03 Dec 2026 10:00:00 GMT";
    assertEquals(v({ "last-modified": lm, date: "Thu, 03 Dec 2026 10:00:30 GMT" }), undefined);
    assert(v({ "last-modified": lm, date: "Thu, 03 Dec 2026 10:01:00 GMT" }) !== undefined);
    assertEquals(parseContentRange("bytes 0-4/10"), { start: 0, end: 4, size: 10 });
    assertEquals(parseContentRange("bytes 0-4/*"), undefined);
  });
});

Deno.test("proxy combines two complementary 206s from nginx into a stored 200", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_partial_" });
  try {
    const random = createRandom(9);
    const bytes = Uint8Array.from({ length: 200_000 }, () => Math.floor(random() * 256));
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const name of ["etag.bin", "lm.bin", "changed.bin"]) {
      await Deno.writeFile(`${root}/${name}`, bytes);
      await Deno.utime(`${root}/${name}`, hourAgo, hourAgo);
    }
    await using nginx = await startNginx(root, {
      workers: 1,
      logFormat: '$uri "$http_range" $status',
      server: `add_header Cache-Control "max-age=600";
        location = /lm.bin { etag off; add_header Cache-Control "max-age=600"; }`,
    });
    await using proxy = await startProxy({ port: 0, upstream: nginx.url });
    const via = `http://127.0.0.1:${proxy.port}`;
    // A conditional range request goes upstream as it came (the proxy fetches a
    // whole object only for an unconditional one), so nginx answers each with a 206.
    const partOf = (path: string, range: string) =>
      fetchBytes(["-r", range, "-H", 'If-None-Match: "other"', `${via}${path}`]);

    for (const path of ["/etag.bin", "/lm.bin"]) {
      await t.step(`${path}: two halves, then the whole is a hit`, async () => {
        const first = await partOf(path, "0-99999");
        assertEquals(first.status, 206);
        assertEquals(first.body, bytes.subarray(0, 100_000));
        assertMatch(first.cacheStatus, /fwd-status=206/);
        const second = await partOf(path, "100000-");
        assertEquals(second.status, 206);
        assertEquals(second.body, bytes.subarray(100_000));
        const whole = await fetchBytes([`${via}${path}`]);
        assertEquals(whole.status, 200);
        assertMatch(whole.cacheStatus, /^netkit; hit;/);
        assertEquals(whole.body, bytes);
        const range = await fetchBytes(["-r", "150000-150009", `${via}${path}`]);
        assertEquals(range.status, 206);
        assertEquals(range.body, bytes.subarray(150_000, 150_010));
        const seen = (await nginx.log()).filter((l) => l.startsWith(path));
        assertEquals(seen, [`${path} "bytes=0-99999" 206`, `${path} "bytes=100000-" 206`]);
      });
    }

    await t.step(
      "parts of two versions (the file changed between them) do not combine",
      async () => {
        assertEquals((await partOf("/changed.bin", "0-99999")).status, 206);
        const later = new Date(Date.now() - 1800_000);
        const changed = bytes.map((b) => b ^ 0xff);
        await Deno.writeFile(`${root}/changed.bin`, changed);
        await Deno.utime(`${root}/changed.bin`, later, later);
        assertEquals((await partOf("/changed.bin", "100000-")).status, 206);
        const whole = await fetchBytes([`${via}/changed.bin`]);
        assertEquals(whole.status, 200);
        assertMatch(whole.cacheStatus, /fwd=uri-miss/);
        assertEquals(whole.body, changed);
        const seen = (await nginx.log(7)).filter((l) => l.startsWith("/changed.bin"));
        assertEquals(seen.at(-1), '/changed.bin "-" 200');
      },
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
