import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { createRandom } from "../lib/random.ts";
import { serveDir } from "../web_server/serve.ts";
import { startOrigin } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";

/** Runs curl and returns its status, the headers of the last response and the body bytes. */
async function curlBytes(
  args: string[],
): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command("curl", {
      args: ["-s", "--max-time", "20", "-D", `${dir}/h`, "-o", `${dir}/b`, ...args],
    }).output();
    assertEquals(out.code, 0, `curl ${args.join(" ")}`);
    const lines = (await Deno.readTextFile(`${dir}/h`)).trim().split("\r\n");
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    return {
      status: Number(lines[0]!.split(" ")[1]),
      headers,
      body: await Deno.readFile(`${dir}/b`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

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
