import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { get, rawRequest, startOrigin } from "./_test_util.ts";
import { startRedis } from "./_redis_server.ts";
import { linesOf, spawnProxy, until } from "./_shared_test_util.ts";
import { sharedKey } from "./shared_cache.ts";

Deno.test("proxies share their cache through a Redis that speaks TLS only (rediss://)", async (t) => {
  await using ca = await makeTestCa({ prefix: "netkit_redis_tls_" });
  await using redis = await startRedis({ tls: ca });
  assert(redis.url.startsWith("rediss://"), redis.url);
  const body = linesOf(300 * 1024, "tls");
  await using origin = await startOrigin(() =>
    new Response(body, { headers: { "cache-control": "max-age=600" } })
  );
  const args = (url: string) => [
    "--upstream",
    origin.url,
    "--shared-cache",
    url,
    "--shared-timeout",
    "2000",
  ];

  await t.step(
    "fetched through A is a hit through B, the CA from ?ca= and from REDIS_CA",
    async () => {
      await using a = await spawnProxy(args(`${redis.url}?ca=${encodeURIComponent(ca.caPath)}`));
      // B inherits REDIS_CA from this process.
      Deno.env.set("REDIS_CA", ca.caPath);
      let b;
      try {
        b = await spawnProxy(args(redis.url));
      } finally {
        Deno.env.delete("REDIS_CA");
      }
      await using _b = b;
      await until(
        "both proxies' links to the TLS Redis are up",
        () => Promise.resolve([a, b].every((p) => p.stderr.some((l) => l.includes(" is up")))),
      );
      const first = await rawRequest(a.port, get("/t.txt"));
      assertEquals(first?.status, 200);
      await until(
        "A wrote /t.txt to Redis over TLS",
        async () => (await redis.cli("exists", sharedKey(`${origin.url}/t.txt`))).trim() === "1",
      );
      const second = await rawRequest(b.port, get("/t.txt"));
      assert(second?.body === body, "the body through B differs from the origin's");
      assertMatch(second!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+; detail=shared$/);
      assertEquals(origin.hits.get("/t.txt"), 1);
    },
  );

  await t.step(
    "a CA that did not sign Redis's certificate: down, and every request served from origin",
    async () => {
      await using other = await makeTestCa({ prefix: "netkit_redis_tls_other_" });
      await using c = await spawnProxy([
        ...args(`${redis.url}?ca=${encodeURIComponent(other.caPath)}`),
        "--memory-size",
        "0",
      ]);
      await until(
        "C logs the shared cache as down",
        () => Promise.resolve(c.stderr.some((l) => l.includes(" is down"))),
      );
      const before = origin.hits.get("/t.txt") ?? 0;
      for (let i = 0; i < 5; i++) {
        const r = await rawRequest(c.port, get("/t.txt"));
        assertEquals(r?.status, 200);
        assert(r!.body === body, "a body through C differs from the origin's");
        assert(!r!.headers.get("cache-status")!.includes("detail=shared"));
      }
      assertEquals(origin.hits.get("/t.txt"), before + 5);
      assert(!c.stderr.some((l) => l.includes(" is up")), c.stderr.join("\n"));
      const down = c.stderr.find((l) => l.includes(" is down"))!;
      assertMatch(down, /shared cache rediss:\/\/127\.0\.0\.1:\d+ is down \(.+\)/);
    },
  );
});
