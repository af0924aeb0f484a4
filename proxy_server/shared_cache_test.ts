import { assert, assertEquals, assertThrows } from "../lib/testing/assert.ts";
import { parseSharedCacheUrl } from "./_redis.ts";
import { startRedis } from "./_redis_server.ts";
import { redisPid, until } from "./_shared_test_util.ts";
import { SharedCache, type SharedCache as Shared, sharedKey } from "./shared_cache.ts";
import type { EntryMeta } from "./store.ts";

Deno.test("parseSharedCacheUrl() reads every --shared-cache form and rejects the rest", async (t) => {
  await t.step("valid", () => {
    assertEquals(parseSharedCacheUrl("redis://127.0.0.1:6379"), {
      kind: "redis",
      nodes: [{ host: "127.0.0.1", port: 6379 }],
      tls: false,
      db: 0,
    });
    assertEquals(parseSharedCacheUrl("rediss://app:s%40cret@cache.example:6380/2", "env"), {
      kind: "redis",
      nodes: [{ host: "cache.example", port: 6380 }],
      tls: true,
      username: "app",
      password: "s@cret",
      db: 2,
    });
    assertEquals(parseSharedCacheUrl("redis://[::1]:7000", "fromenv").password, "fromenv");
    assertEquals(parseSharedCacheUrl("redis-cluster://a:7000,b:7001,c:7002").nodes.length, 3);
  });
  await t.step("invalid", () => {
    for (
      const bad of [
        "http://127.0.0.1:6379",
        "redis://127.0.0.1",
        "redis://127.0.0.1:99999",
        "redis://a:1,b:2",
        "redis-cluster://a:1/3",
        "redis://127.0.0.1:6379/x",
      ]
    ) {
      const err = assertThrows(() => parseSharedCacheUrl(bad), TypeError);
      assert(err.message.startsWith(`Cannot use shared cache "${bad}"`), err.message);
    }
  });
});

function meta(url: string, fields: Array<[string, string]>, key = url): EntryMeta {
  const now = Date.now();
  return {
    key,
    url,
    status: 200,
    reason: "OK",
    fields,
    requestTime: now,
    responseTime: now,
    bodyLength: 0,
  };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

async function connected(url: string, options = {}): Promise<Shared> {
  const shared = SharedCache.connect(url, { timeout: 2000, ...options });
  await until(
    "the link is up and subscribed",
    () => Promise.resolve(shared.up && shared.subscribed),
  );
  return shared;
}

Deno.test("SharedCache keeps Vary variants, replaces them with a response without Vary", async () => {
  await using redis = await startRedis();
  const shared = await connected(redis.url);
  try {
    const url = "http://a.test/v";
    const vary: Array<[string, string]> = [["vary", "Accept-Language"]];
    assert(await shared.put(meta(url, vary, `${url}\naccept-language:en\n`), bytes("english"), 60));
    assert(
      await shared.put(meta(url, vary, `${url}\naccept-language:fr\n`), bytes("français"), 60),
    );
    const en = await shared.lookup(url, new Headers({ "accept-language": "en" }));
    const fr = await shared.lookup(url, new Headers({ "accept-language": "fr" }));
    assertEquals([text(en?.body), text(fr?.body)], ["english", "français"]);
    assertEquals(await shared.lookup(url, new Headers({ "accept-language": "de" })), null);
    // 600 KiB: three chunks.
    const big = bytes("x".repeat(600 * 1024));
    assert(await shared.put(meta(url, []), big, 60));
    assertEquals((await shared.lookup(url, new Headers()))?.body.length, big.length);
    assertEquals(
      await shared.lookup(url, new Headers({ "accept-language": "en" })).then((e) => e?.meta.key),
      url,
    );
    assertEquals((await redis.cli("hlen", sharedKey(url))).trim(), "6"); // v, n:, m:, 3 chunks
    const ttl = Number(await redis.cli("pttl", sharedKey(url)));
    assert(ttl > 50_000 && ttl <= 60_000, `TTL ${ttl}`);
  } finally {
    await shared.close();
  }
});

Deno.test("SharedCache reads back an empty body, and takes a body missing a chunk as corrupt", async () => {
  await using redis = await startRedis();
  const shared = await connected(redis.url, { chunkSize: 4 });
  try {
    const empty = "http://a.test/empty";
    assert(await shared.put(meta(empty, []), new Uint8Array(0), 60));
    const got = await shared.lookup(empty, new Headers());
    assertEquals([got?.meta.key, got?.body.length], [empty, 0]);
    // One chunk, then three (4-byte chunks): both read back whole.
    const url = "http://a.test/chunks";
    assert(await shared.put(meta(url, []), bytes("abc"), 60));
    assertEquals(text((await shared.lookup(url, new Headers()))?.body), "abc");
    assert(await shared.put(meta(url, []), bytes("abcdefghij"), 60));
    assertEquals(text((await shared.lookup(url, new Headers()))?.body), "abcdefghij");
    await redis.cli("hdel", sharedKey(url), "c::1");
    assertEquals(await shared.lookup(url, new Headers()), null);
    assertEquals(shared.stats.corrupt, 1);
  } finally {
    await shared.close();
  }
});

Deno.test("SharedCache leases collapse misses, are renewed while held, and are taken over from a dead owner", async (t) => {
  await using redis = await startRedis();
  // A lease time long enough that a busy machine's stall does not skip a renewal.
  const owner = await connected(redis.url, { leaseTime: 2000 });
  const waiter = await connected(redis.url, { leaseTime: 2000 });
  try {
    await t.step("a waiter gets what the owner stores, when it publishes", async () => {
      const url = "http://a.test/fill";
      const mine = await owner.claim(url, url, new Headers());
      assert(mine.lease !== undefined && mine.entry === undefined);
      const waiting = waiter.claim(url, url, new Headers());
      await until("the waiter waits", () => Promise.resolve(waiter.stats.leaseWaits === 1));
      await owner.put(meta(url, []), bytes("filled"), 60);
      await mine.lease.release();
      assertEquals(text((await waiting).entry?.body), "filled");
    });
    await t.step(
      "a fill longer than the lease time: the owner renews it, nobody takes over",
      async () => {
        const url = "http://a.test/long";
        const mine = await owner.claim(url, url, new Headers());
        assert(mine.lease !== undefined);
        let settled = false;
        const waiting = waiter.claim(url, url, new Headers()).finally(() => settled = true);
        // Two and a half lease times: without renewal the lease would have expired and been taken over.
        const lk = `${sharedKey(url)}:l:*`;
        const held = async () => (await redis.cli("--scan", "--pattern", lk)).trim() !== "";
        await new Promise((r) => setTimeout(r, 5000));
        assert(await held(), "the lease is gone");
        assert(!settled, "the waiter stopped waiting while the owner was alive");
        assertEquals(waiter.stats.leaseWaits, 2);
        await owner.put(meta(url, []), bytes("long"), 60);
        await mine.lease.release();
        assertEquals(text((await waiting).entry?.body), "long");
        assert(!(await held()), "the lease was not released");
      },
    );
    await t.step("an owner that dies: the waiter takes the lease once it expires", async () => {
      const url = "http://a.test/dead";
      const dying = await connected(redis.url, { leaseTime: 300 });
      const held = await dying.claim(url, url, new Headers());
      assert(held.lease !== undefined);
      // It "dies": no renewal, no release.
      await dying.close();
      const before = waiter.stats.leaseWaits;
      const next = await waiter.claim(url, url, new Headers());
      assert(next.lease !== undefined, "the lease was not taken over");
      assert(waiter.stats.leaseWaits > before);
      await next.lease.release();
    });
  } finally {
    await owner.close();
    await waiter.close();
  }
});

Deno.test("SharedCache.refresh() takes a 304's metadata and TTL only onto the copy that was revalidated", async () => {
  await using redis = await startRedis();
  const shared = await connected(redis.url);
  try {
    const url = "http://a.test/r";
    const old = meta(url, [["etag", '"1"'], ["cache-control", "max-age=0, stale-if-error=60"]]);
    assert(await shared.put(old, bytes("body"), 60));
    const fields: Array<[string, string]> = [["etag", '"1"'], ["cache-control", "max-age=600"]];
    const updated = { ...meta(url, fields), responseTime: old.responseTime + 1 };
    const policy = { fields: new Headers(fields) };
    // Not the copy stored: another node's newer response stays as it is.
    assert(!(await shared.refresh({ ...old, responseTime: 1 }, updated, policy)));
    assert(await shared.refresh(old, updated, policy));
    const found = await shared.lookup(url, new Headers());
    assertEquals(found?.meta.fields, fields);
    assertEquals(text(found?.body), "body");
    const ttl = Number(await redis.cli("pttl", sharedKey(url)));
    assert(ttl > 590_000, `TTL ${ttl}`);
    // It was refreshed once: the old metadata no longer matches.
    assert(!(await shared.refresh(old, updated, policy)));
  } finally {
    await shared.close();
  }
});

Deno.test("SharedCache takes a Redis that answers nothing as down, and up again once it answers", async () => {
  await using redis = await startRedis();
  const lines: string[] = [];
  const shared = await connected(redis.url, { timeout: 50, log: (l: string) => lines.push(l) });
  const pid = await redisPid(redis.nodes[0]!.port);
  try {
    Deno.kill(pid, "SIGSTOP");
    await until("it is taken as down", async () => {
      await shared.lookup("http://a.test/s", new Headers());
      return !shared.up;
    });
    // Skipped, not sent: counted as errors, and answered without waiting for a deadline.
    const errors = shared.stats.errors;
    assertEquals(await shared.lookup("http://a.test/s", new Headers()), undefined);
    assertEquals(shared.stats.errors, errors + 1);
  } finally {
    Deno.kill(pid, "SIGCONT");
  }
  try {
    await until("it is up again", () => Promise.resolve(shared.up));
    await until(
      "a lookup is answered (a miss)",
      async () => (await shared.lookup("http://a.test/s", new Headers())) === null,
    );
    assertEquals(lines.map((l) => / is (up|down)/.exec(l)?.[1]), ["up", "down", "up"]);
    assert(lines[1]!.includes("(no answer within 50 ms)"), lines[1]);
  } finally {
    await shared.close();
  }
});

Deno.test("SharedCache authenticates with the URL's password or REDIS_PASSWORD's, and fails softly", async () => {
  await using redis = await startRedis({ args: ["--requirepass", "pa ss"] });
  const port = redis.nodes[0]!.port;
  const inUrl = await connected(`redis://:pa%20ss@127.0.0.1:${port}`);
  const fromEnv = await connected(`redis://127.0.0.1:${port}`, { password: "pa ss" });
  const lines: string[] = [];
  const wrong = SharedCache.connect(`redis://127.0.0.1:${port}`, {
    password: "wrong",
    log: (l) => lines.push(l),
  });
  try {
    assert(await inUrl.put(meta("http://a.test/auth", []), bytes("ok"), 60));
    assertEquals(text((await fromEnv.lookup("http://a.test/auth", new Headers()))?.body), "ok");
    await until("the wrong password is logged", () => Promise.resolve(lines.length > 0));
    assert(!wrong.up);
    assertEquals(await wrong.lookup("http://a.test/auth", new Headers()), undefined);
    assert(lines[0]!.includes("is down"), lines[0]);
    assert(!lines[0]!.includes("wrong"), "the log shows the password");
  } finally {
    await inUrl.close();
    await fromEnv.close();
    await wrong.close();
  }
});

Deno.test("proxy --shared-cache with a bad URL exits 2 with a message, not a trace", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      "-p",
      "0",
      "--shared-cache",
      "memcached://h:1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 2);
  const err = new TextDecoder().decode(out.stderr).trim();
  assert(
    err.startsWith('proxy: invalid --shared-cache: Cannot use shared cache "memcached://h:1"'),
    err,
  );
  assert(!err.includes("    at "), err);
});
