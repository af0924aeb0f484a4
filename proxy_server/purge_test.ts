import { assert, assertEquals } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { curl } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";
import { CacheStore } from "./store.ts";

/** The entry files of a disk tier. */
async function diskFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (/^[0-9a-f]{40}$/.test(e.name)) names.push(e.name);
  return names.sort();
}

Deno.test("PURGE evicts by URL and by surrogate key, from memory and disk", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_purge_root_" });
  const cacheDir = await Deno.makeTempDir({ prefix: "netkit_purge_cache_" });
  for (const name of ["a", "b", "c", "d"]) {
    await Deno.writeTextFile(`${root}/${name}.txt`, `${name}\n`);
  }
  // Tags as Fastly (Surrogate-Key) and Varnish's xkey module (xkey) send them.
  await using nginx = await startNginx(root, {
    workers: 1,
    logFormat: "$request_method $uri",
    server: `add_header Cache-Control "max-age=600";
      location = /a.txt { add_header Cache-Control "max-age=600"; add_header Surrogate-Key "news front"; }
      location = /b.txt { add_header Cache-Control "max-age=600"; add_header xkey "sports, front"; }
      location = /c.txt { add_header Cache-Control "max-age=600"; add_header Surrogate-Key "weather"; }`,
  });
  const store = await CacheStore.open({ dir: cacheDir });
  await using proxy = await startProxy({ port: 0, upstream: nginx.url, store });
  const base = `http://127.0.0.1:${proxy.port}`;

  async function status(path: string): Promise<string> {
    const r = await curl([`${base}${path}`]);
    assertEquals(r.replies[0]?.body, `${path.slice(1, 2)}\n`);
    return r.replies[0]!.headers.get("cache-status")!;
  }
  async function purge(path: string, extra: string[] = []): Promise<number> {
    const r = await curl(["-X", "PURGE", ...extra, `${base}${path}`]);
    return r.replies[0]!.status;
  }
  /** Waits until the disk tier holds n entries (a write is renamed into place after its answer). */
  async function untilOnDisk(n: number): Promise<string[]> {
    for (let i = 0; i < 200; i++) {
      const files = await diskFiles(cacheDir);
      if (files.length === n) return files;
      await new Promise((r) => setTimeout(r, 10));
    }
    return await diskFiles(cacheDir);
  }

  const paths = ["/a.txt", "/b.txt", "/c.txt", "/d.txt"];
  for (const p of paths) assert((await status(p)).includes("fwd=uri-miss"));
  assertEquals((await untilOnDisk(4)).length, 4);
  for (const p of paths) assert((await status(p)).includes("hit"));

  await t.step("by URL: 200, then a miss; 404 when nothing is stored", async () => {
    assertEquals(await purge("/d.txt"), 200);
    assertEquals((await diskFiles(cacheDir)).length, 3);
    assertEquals(store.get(`${nginx.url}/d.txt`), undefined);
    assertEquals(await purge("/d.txt"), 404);
    assert((await status("/d.txt")).includes("fwd=uri-miss"));
    assertEquals(await purge("/nothing.txt"), 404);
    await untilOnDisk(4);
  });

  await t.step("by surrogate key: Surrogate-Key and xkey members", async () => {
    assertEquals(await purge("/", ["-H", "Surrogate-Key: front"]), 200);
    assertEquals((await diskFiles(cacheDir)).length, 2);
    assert((await status("/a.txt")).includes("fwd=uri-miss"));
    assert((await status("/b.txt")).includes("fwd=uri-miss"));
    assert((await status("/c.txt")).includes("hit"));
    assert((await status("/d.txt")).includes("hit"));
    await untilOnDisk(4);
    assertEquals(await purge("/", ["-H", "Surrogate-Key: nosuchkey"]), 404);
    assertEquals(await purge("/", ["-H", "Surrogate-Key: sports weather"]), 200);
    assert((await status("/b.txt")).includes("fwd=uri-miss"));
    assert((await status("/c.txt")).includes("fwd=uri-miss"));
    assert((await status("/a.txt")).includes("hit"));
  });

  const lines = await nginx.log();
  assertEquals(lines.filter((l) => l === "GET /a.txt").length, 2);
  assertEquals(lines.filter((l) => l === "GET /b.txt").length, 3);
  assertEquals(lines.filter((l) => l.startsWith("PURGE")), []);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(cacheDir, { recursive: true });
});
