import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { get, rawRequest } from "./_test_util.ts";
import { type Redis, startRedis, startRedisCluster } from "./_redis_server.ts";
import { linesOf, spawnProxy, until } from "./_shared_test_util.ts";
import { sharedKey } from "./shared_cache.ts";

/** Three proxies on `redis`, with nginx as their origin: every "Done when" case of the shared tier. */
async function sharedTier(t: Deno.TestContext, redis: Redis): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "netkit_shared_" });
  // 600 KiB: three 256 KiB chunks in Redis.
  const files: Record<string, string> = {};
  for (const name of ["a", "b", "c", "d", "e", "p", "s", "r", "t"]) {
    files[name] = linesOf(600 * 1024, name);
    await Deno.writeTextFile(`${root}/${name}.txt`, files[name]!);
  }
  await Deno.mkdir(`${root}/inv`);
  await Deno.writeTextFile(`${root}/inv/x.txt`, "invalidate me\n");
  // limit_rate makes /slow/ take about half a second, so 300 requests all arrive while it streams,
  // and /trickle/ about eight seconds, longer than a lease (5 s).
  for (const [path, file] of [["slow/big", "a"], ["trickle/t", "t"], ["re/r", "r"]] as const) {
    await Deno.mkdir(`${root}/${path.split("/")[0]}`);
    await Deno.writeTextFile(`${root}/${path}.txt`, files[file]!);
  }
  await using nginx = await startNginx(root, {
    workers: 1,
    logFormat: "$request_method $uri $status",
    // /re/ is stale at once but kept for stale-if-error; a revalidation makes it fresh.
    server: `location / { add_header Cache-Control "max-age=600"; }
      location /slow/ { limit_rate 1m; add_header Cache-Control "max-age=600"; }
      location /trickle/ { limit_rate 70k; add_header Cache-Control "max-age=600"; }
      location /re/ {
        set $cc "max-age=0, stale-if-error=600";
        if ($http_if_none_match) { set $cc "max-age=600"; }
        add_header Cache-Control $cc;
      }
      location /s.txt { add_header Cache-Control "max-age=600"; add_header Surrogate-Key "news front"; }
      location /inv/ { add_header Cache-Control "max-age=600"; if ($request_method = POST) { return 204; } }`,
  });
  // Six processes share two cores here, so Redis may not run for a while: a
  // generous deadline keeps a busy machine from looking like a slow Redis.
  const args = ["--upstream", nginx.url, "--shared-cache", redis.url, "--shared-timeout", "2000"];
  await using a = await spawnProxy(args);
  await using b = await spawnProxy(args);
  await using c = await spawnProxy(args);
  const proxies = [a, b, c];
  await until(
    "every proxy's link to Redis is up",
    () => Promise.resolve(proxies.every((p) => p.stderr.some((l) => l.includes("is up")))),
  );
  const inRedis = (path: string) => async () =>
    (await redis.cli("exists", sharedKey(`${nginx.url}${path}`))).trim() === "1";
  const originCount = async (path: string, status = 200) =>
    (await nginx.log()).filter((l) => l === `GET ${path} ${status}`).length;

  await t.step(
    "fetched through A is a hit through B, byte-identical, said to be shared",
    async () => {
      const first = await rawRequest(a.port, get("/a.txt"));
      assertEquals(first?.body, files.a);
      assertMatch(first!.headers.get("cache-status")!, /fwd=uri-miss; fwd-status=200; stored/);
      await until("A wrote /a.txt to Redis", inRedis("/a.txt"));
      const second = await rawRequest(b.port, get("/a.txt"));
      assertEquals(second?.status, 200);
      assert(second!.body === files.a, "the body through B differs from the origin's");
      assertMatch(second!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+; detail=shared$/);
      // Now in B's own store: a local hit, without detail.
      const third = await rawRequest(b.port, get("/a.txt"));
      assertMatch(third!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+$/);
      assertEquals(await originCount("/a.txt"), 1);
      assertEquals(await b.metric('netkit_proxy_shared_lookups_total{result="hit"}'), 1);
    },
  );

  await t.step("a corrupted, truncated or foreign value in Redis is a miss", async () => {
    await rawRequest(a.port, get("/a.txt"));
    for (
      const [path, spoil] of [
        // The same length with other bytes: only the digest tells.
        ["/b.txt", (key: string) =>
          redis.cli(
            "eval",
            "local v = redis.call('HGET', KEYS[1], 'c::1') " +
              "return redis.call('HSET', KEYS[1], 'c::1', string.rep('x', #v))",
            "1",
            key,
          )],
        ["/c.txt", (key: string) => redis.cli("hdel", key, "c::2")],
        ["/d.txt", async (key: string) => {
          const other = await redis.cli("--no-raw", "hget", sharedKey(`${nginx.url}/a.txt`), "m:");
          // --no-raw quotes the value; the foreign metadata goes in verbatim.
          await redis.cli("hset", key, "m:", JSON.parse(other.trim()));
        }],
      ] as const
    ) {
      const fetched = await rawRequest(a.port, get(path));
      assertEquals(fetched?.status, 200);
      await until(`A wrote ${path} to Redis`, inRedis(path));
      await spoil(sharedKey(`${nginx.url}${path}`));
      const reply = await rawRequest(b.port, get(path));
      assertEquals(reply?.status, 200);
      assert(reply!.body === files[path.slice(1, 2)], `a body for ${path} differs`);
      assertMatch(reply!.headers.get("cache-status")!, /fwd=uri-miss; fwd-status=200; stored/);
      assertEquals(await originCount(path), 2, path);
    }
    assertEquals(await b.metric('netkit_proxy_shared_lookups_total{result="corrupt"}'), 3);
  });

  await t.step("300 concurrent misses over three proxies: exactly 1 origin request", async () => {
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => rawRequest(proxies[i % 3]!.port, get("/slow/big.txt"))),
    );
    for (const r of replies) {
      assertEquals(r?.status, 200);
      assert(r!.body === files.a, "a body differs from the origin's");
    }
    const counts = [];
    for (const p of proxies) {
      const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
      counts.push(text.split("\n").filter((l) => /^netkit_proxy_(shared|requests|coll)/.test(l)));
    }
    assertEquals(await originCount("/slow/big.txt"), 1, JSON.stringify(counts, null, 1));
    let waits = 0;
    for (const p of proxies) waits += await p.metric("netkit_proxy_shared_lease_waits_total");
    assert(waits >= 1, "no proxy waited on another's lease");
  });

  await t.step("a PURGE through A makes B miss within 100 ms", async () => {
    for (
      const [path, purge] of [
        ["/p.txt", get("/p.txt", {}, "PURGE")],
        ["/s.txt", get("/", { "Surrogate-Key": "front" }, "PURGE")],
      ] as const
    ) {
      await rawRequest(a.port, get(path));
      await until(`A wrote ${path} to Redis`, inRedis(path));
      await rawRequest(b.port, get(path)); // now in B's own store
      const local = await rawRequest(b.port, get(path));
      assertMatch(local!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+$/);
      const purged = await rawRequest(a.port, purge);
      assertEquals(purged?.status, 200, path);
      await new Promise((r) => setTimeout(r, 100));
      const after = await rawRequest(b.port, get(path));
      assertMatch(after!.headers.get("cache-status")!, /fwd=uri-miss/, path);
      assertEquals(await originCount(path), 2, path);
    }
  });

  await t.step(
    "a 304 that refreshes A's copy refreshes the shared one: B finds it fresh",
    async () => {
      const path = "/re/r.txt";
      const first = await rawRequest(a.port, get(path));
      assertMatch(first!.headers.get("cache-status")!, /fwd=uri-miss; fwd-status=200; stored/);
      await until(`A wrote ${path} to Redis`, inRedis(path));
      const stored = await redis.cli("hget", sharedKey(`${nginx.url}${path}`), "m:");
      const revalidated = await rawRequest(a.port, get(path));
      assertEquals(revalidated?.body, files.r);
      assertMatch(revalidated!.headers.get("cache-status")!, /fwd=stale; fwd-status=304/);
      await until(
        "A refreshed the copy in Redis",
        async () => (await redis.cli("hget", sharedKey(`${nginx.url}${path}`), "m:")) !== stored,
      );
      const reply = await rawRequest(b.port, get(path));
      assert(reply?.body === files.r, "the body through B differs");
      assertMatch(reply!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+; detail=shared$/);
      assertEquals(await originCount(path, 304), 1);
    },
  );

  await t.step(
    "a fill longer than the lease is fetched once: its owner renews the lease",
    async () => {
      const path = "/trickle/t.txt";
      const misses = 'netkit_proxy_shared_lookups_total{result="miss"}';
      const before = await a.metric(misses);
      const waits = await b.metric("netkit_proxy_shared_lease_waits_total");
      const owner = rawRequest(a.port, get(path));
      await until("A holds the lease", async () => await a.metric(misses) > before);
      const waiter = await rawRequest(b.port, get(path));
      assert((await owner)?.body === files.t, "the body through A differs");
      assert(waiter?.body === files.t, "the body through B differs");
      assertMatch(waiter!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+; detail=shared$/);
      assertEquals(await b.metric("netkit_proxy_shared_lease_waits_total"), waits + 1);
      assertEquals(await originCount(path), 1);
    },
  );

  await t.step("a POST through A invalidates the URI on B (RFC 9111 §4.4)", async () => {
    await rawRequest(a.port, get("/inv/x.txt"));
    await until("A wrote /inv/x.txt to Redis", inRedis("/inv/x.txt"));
    await rawRequest(b.port, get("/inv/x.txt"));
    const posted = await rawRequest(
      a.port,
      "POST /inv/x.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assertEquals(posted?.status, 204);
    await new Promise((r) => setTimeout(r, 100));
    const after = await rawRequest(b.port, get("/inv/x.txt"));
    assertMatch(after!.headers.get("cache-status")!, /fwd=uri-miss/);
    // B stores it again, once its copy to Redis (after the answer) is done.
    await until("B wrote /inv/x.txt to Redis again", inRedis("/inv/x.txt"));
  });
  await Deno.remove(root, { recursive: true });
}

for (
  const [name, start] of [
    ["one Redis", () => startRedis()],
    ["a 3-master Redis Cluster", () => startRedisCluster(3)],
  ] as const
) {
  Deno.test(`three proxies on ${name} share their cache, collapse misses and purges`, async (t) => {
    await using redis = await start();
    await sharedTier(t, redis);
  });
}
