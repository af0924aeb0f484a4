import { createHash } from "node:crypto";
import { assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { writeAll } from "../lib/bytes.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { CacheStore } from "./store.ts";
import { startProxy } from "./proxy.ts";

/** Where large test files go: tmpfs when there is one, so the disk does not slow the test. */
async function scratchDir(prefix: string): Promise<string> {
  const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
  return await Deno.makeTempDir({ prefix, ...(shm ? { dir: "/dev/shm" } : {}) });
}

/** Fetches a URL and returns its status, Cache-Status and the SHA-256 of its body, streamed. */
async function fetchDigest(url: string): Promise<{ status: number; cache: string; sha: string }> {
  const res = await fetch(url);
  const hash = createHash("sha256");
  for await (const piece of res.body!) hash.update(piece);
  return {
    status: res.status,
    cache: res.headers.get("cache-status") ?? "",
    sha: hash.digest("hex"),
  };
}

Deno.test("a 256 MiB miss reaches the client and the disk tier byte for byte", async () => {
  const root = await scratchDir("netkit_miss_");
  const cacheDir = await scratchDir("netkit_miss_cache_");
  try {
    // Random bytes, so a piece delivered twice or out of place changes the digest.
    const hash = createHash("sha256");
    {
      using file = await Deno.open(`${root}/big.bin`, { write: true, create: true });
      const piece = new Uint8Array(65536);
      for (let i = 0; i < 4096; i++) {
        crypto.getRandomValues(piece);
        hash.update(piece);
        await writeAll(file, piece);
      }
    }
    const expected = hash.digest("hex");
    await using nginx = await startNginx(root, {
      workers: 1,
      server: 'add_header Cache-Control "max-age=600";',
    });
    const store = await CacheStore.open({ dir: cacheDir, maxObjectSize: 512 << 20 });
    await using proxy = await startProxy({ port: 0, upstream: nginx.url, store });
    const url = `http://127.0.0.1:${proxy.port}/big.bin`;

    const miss = await fetchDigest(url);
    assertEquals(miss.status, 200);
    assertMatch(miss.cache, /fwd=uri-miss; fwd-status=200; stored/);
    assertEquals(miss.sha, expected);
    // The entry is served once its file is synced and renamed into place.
    for (let i = 0; i < 200 && store.diskObjects === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const hit = await fetchDigest(url);
    assertMatch(hit.cache, /^netkit; hit;/);
    assertEquals(hit.sha, expected);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
  }
});
