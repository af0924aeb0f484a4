import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { get, rawRequest } from "./_test_util.ts";
import { type Redis, type RedisNode, startRedis, startRedisCluster } from "./_redis_server.ts";
import { linesOf, loadWithOutage, redisPid, spawnProxy, until } from "./_shared_test_util.ts";
import { sharedKey } from "./shared_cache.ts";

/** What happens to one Redis server during the load, and what the proxies must show. */
interface Fault {
  /** The step's name. */
  step: string;
  /** Seconds of load; the fault starts a quarter of the way through and ends halfway. */
  seconds: number;
  /** Starts the fault on a server; returns how to end it. */
  start(node: RedisNode): Promise<() => Promise<void>>;
  /** `--shared-timeout`. */
  timeout: string;
  /** The longest a request may take (a stopped Redis must cost no more than the deadlines). */
  slowest?: number;
  /** Whether each proxy must log exactly one "down" (else at least one). */
  downOnce: boolean;
}

/**
 * Three proxies on `redis`: a hit through B of what A fetched, then a load
 * through all three during which one Redis server fails and comes back; no
 * client request may fail, and the shared tier must be in use again afterwards.
 */
async function outage(t: Deno.TestContext, redis: Redis, fault: Fault): Promise<void> {
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
  const args = [
    "--upstream",
    nginx.url,
    "--shared-cache",
    redis.url,
    "--shared-timeout",
    fault.timeout,
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

  await t.step(fault.step, async () => {
    const node = redis.nodes[redis.nodes.length - 1]!;
    let end = () => Promise.resolve();
    const report = await loadWithOutage({
      ports: proxies.map((p) => p.port),
      paths,
      bodyOf: (path) => bodies.get(path)!,
      seconds: fault.seconds,
      concurrency: 12,
      kill: async () => {
        end = await fault.start(node);
      },
      restart: () => end(),
    });
    assertEquals(report.failures.slice(0, 10), []);
    assert(report.ok > 100, `only ${report.ok} requests were answered`);
    if (fault.slowest !== undefined) {
      assert(report.slowest < fault.slowest, `a request took ${report.slowest} ms`);
    }
    let errors = 0;
    for (const p of proxies) errors += await p.metric("netkit_proxy_shared_errors_total");
    assert(errors > 0, "no proxy noticed the outage");
  });

  await t.step("the shared tier is used again once Redis is back", async () => {
    await until("every proxy's link to Redis is up again", ups(2));
    await sharedHit("/after.txt");
    for (const p of proxies) {
      const downs = p.stderr.filter((l) => l.includes(" is down")).length;
      if (fault.downOnce) {
        assertEquals(downs, 1, p.stderr.join("\n"));
        assertEquals(p.stderr.filter((l) => l.includes(" is up")).length, 2, p.stderr.join("\n"));
      } else assert(downs >= 1, p.stderr.join("\n"));
    }
  });
  await Deno.remove(root, { recursive: true });
}

// A dead Redis fails at once whatever the deadline; a generous one keeps a
// busy machine (the whole suite runs beside this) from looking like a slow Redis.
const kill: Omit<Fault, "step"> = {
  seconds: 30,
  timeout: "1000",
  downOnce: false,
  async start(node) {
    await node.kill();
    return () => node.restart();
  },
};

for (
  const { name, start, fault } of [
    {
      name: "three proxies on one Redis survive its kill -9 and use it again when it is back",
      start: () => startRedis(),
      fault: { ...kill, step: "kill -9 of Redis during a 30 s load: no client request fails" },
    },
    {
      name: "three proxies on a 3-master Redis Cluster survive a master's kill -9",
      start: () => startRedisCluster(3),
      fault: { ...kill, step: "kill -9 of a master during a 30 s load: no client request fails" },
    },
    {
      name:
        "three proxies on a stopped Redis (SIGSTOP) keep to the deadline and use it after SIGCONT",
      start: () => startRedis(),
      // The deadline is what bounds a request while Redis answers nothing;
      // 200 ms, not the default 50, so that a busy machine does not miss it.
      fault: {
        step: "Redis stopped for 4 s of a 16 s load: no request fails or waits long",
        seconds: 16,
        timeout: "200",
        // Generous: a request pays at most a few deadlines before the proxy stops asking.
        slowest: 2000,
        downOnce: true,
        async start(node: RedisNode) {
          const pid = await redisPid(node.port);
          Deno.kill(pid, "SIGSTOP");
          return () => Promise.resolve(Deno.kill(pid, "SIGCONT"));
        },
      } satisfies Fault,
    },
  ]
) {
  Deno.test(name, async (t) => {
    await using redis = await start();
    await outage(t, redis, fault);
  });
}
