import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { get, rawRequest } from "./_test_util.ts";
import { type Redis, startRedis, startRedisCluster } from "./_redis_server.ts";
import { linesOf, loadWithOutage, spawnProxy, until } from "./_shared_test_util.ts";
import { sharedKey } from "./shared_cache.ts";

/**
 * Three proxies on `redis`: a hit through B of what A fetched, then a 30 s
 * load through all three during which one Redis server is killed with
 * SIGKILL and started again; no client request may fail, and the shared
 * tier must be in use again afterwards.
 */
async function outage(t: Deno.TestContext, redis: Redis): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "netkit_shared_outage_" });
  const paths: string[] = [];
  const bodies = new Map<string, string>();
  for (let i = 0; i < 200; i++) {
    const path = `/o${i}.txt`;
    paths.push(path);
    bodies.set(path, linesOf(2048, `o${i}`));
    await Deno.writeTextFile(`${root}${path}`, bodies.get(path)!);
  }
  for (const name of ["before", "after"]) {
    bodies.set(`/${name}.txt`, linesOf(300 * 1024, name));
    await Deno.writeTextFile(`${root}/${name}.txt`, bodies.get(`/${name}.txt`)!);
  }
  // max-age=2: entries keep expiring, so the load keeps using Redis and the origin.
  await using nginx = await startNginx(root, {
    workers: 1,
    server: `location / { add_header Cache-Control "max-age=2"; }
      location ~ ^/(before|after) { add_header Cache-Control "max-age=600"; }`,
  });
  // A dead Redis fails at once whatever the deadline; a generous one keeps a
  // busy machine (the whole suite runs beside this) from looking like a slow Redis.
  const args = [
    "--upstream",
    nginx.url,
    "--shared-cache",
    redis.url,
    "--shared-timeout",
    "1000",
    "--timeout",
    "20",
    // A tiny own store: most requests miss it and go to Redis, also during the outage.
    "--memory-size",
    "64K",
  ];
  await using a = await spawnProxy(args);
  await using b = await spawnProxy(args);
  await using c = await spawnProxy(args);
  const proxies = [a, b, c];
  const ups = (n: number) => () =>
    Promise.resolve(
      proxies.every((p) => p.stderr.filter((l) => l.includes(" is up")).length >= n),
    );
  await until("every proxy's link to Redis is up", ups(1));

  const sharedHit = async (path: string) => {
    const first = await rawRequest(a.port, get(path));
    assertEquals(first?.status, 200);
    await until(
      `A wrote ${path} to Redis`,
      async () => (await redis.cli("exists", sharedKey(`${nginx.url}${path}`))).trim() === "1",
    );
    const second = await rawRequest(b.port, get(path));
    assert(second?.body === bodies.get(path), `the body of ${path} through B differs`);
    assertMatch(second!.headers.get("cache-status")!, /^netkit; hit; ttl=\d+; detail=shared$/);
  };

  await t.step("fetched through A is a hit through B", () => sharedHit("/before.txt"));

  await t.step("kill -9 of Redis during a 30 s load: no client request fails", async () => {
    const node = redis.nodes[redis.nodes.length - 1]!;
    const report = await loadWithOutage({
      ports: proxies.map((p) => p.port),
      paths,
      bodyOf: (path) => bodies.get(path)!,
      seconds: 30,
      concurrency: 12,
      kill: () => node.kill(),
      restart: () => node.restart(),
    });
    assertEquals(report.failures.slice(0, 10), []);
    assert(report.ok > 100, `only ${report.ok} requests were answered`);
    let errors = 0;
    for (const p of proxies) errors += await p.metric("netkit_proxy_shared_errors_total");
    assert(errors > 0, "no proxy noticed the outage");
  });

  await t.step("the shared tier is used again once Redis is back", async () => {
    await until("every proxy's link to Redis is up again", ups(2));
    await sharedHit("/after.txt");
    for (const p of proxies) {
      const downs = p.stderr.filter((l) => l.includes(" is down"));
      assert(downs.length >= 1, p.stderr.join("\n"));
    }
  });
  await Deno.remove(root, { recursive: true });
}

Deno.test("three proxies on one Redis survive its kill -9 and use it again when it is back", async (t) => {
  await using redis = await startRedis();
  await outage(t, redis);
});

Deno.test("three proxies on a 3-master Redis Cluster survive a master's kill -9", async (t) => {
  await using redis = await startRedisCluster(3);
  await outage(t, redis);
});
