import { assert, assertEquals, assertThrows } from "../lib/testing/assert.ts";
import { parseSharedCacheUrl, RedisLink, type Reply } from "./_redis.ts";
import { keySlot } from "./_resp.ts";
import { startRedis, startRedisCluster } from "./_redis_server.ts";
import { until } from "./_shared_test_util.ts";

const SET = "return redis.call('SET', KEYS[1], ARGV[1])";
const GET = "return redis.call('GET', KEYS[1])";
const text = (r: Reply | undefined) => r instanceof Uint8Array ? new TextDecoder().decode(r) : r;

function link(url: string, logs: string[] = []): RedisLink {
  return new RedisLink(parseSharedCacheUrl(url), {
    timeout: 5000,
    log: (line) => logs.push(line),
    onState() {},
    onMessage() {},
    channels: [],
  });
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("parseSharedCacheUrl() takes a TLS CA file from ?ca= and nothing else after the path", () => {
  assertEquals(parseSharedCacheUrl("rediss://127.0.0.1:6380?ca=%2Fetc%2Fredis%2Fca.pem"), {
    kind: "redis",
    nodes: [{ host: "127.0.0.1", port: 6380 }],
    tls: true,
    db: 0,
    ca: "/etc/redis/ca.pem",
  });
  assertEquals(parseSharedCacheUrl("rediss://h:1/2?ca=/x.pem").ca, "/x.pem");
  assertEquals(parseSharedCacheUrl("rediss-cluster://a:1,b:2?ca=/x.pem").nodes.length, 2);
  for (const bad of ["rediss://h:1?cafile=/x", "rediss://h:1?ca=/x&y=1", "redis://h:1?"]) {
    assertThrows(() => parseSharedCacheUrl(bad), TypeError);
  }
});

Deno.test("RedisLink authenticates as an ACL user and selects the URL's database", async () => {
  await using redis = await startRedis();
  const port = redis.nodes[0]!.port;
  await cli(port, "acl", "setuser", "app", "on", ">s3cret", "~*", "&*", "+@all");
  await cli(port, "acl", "setuser", "default", "off");
  const logs: string[] = [];
  const l = link(`redis://app:s3cret@127.0.0.1:${port}/3`, logs);
  try {
    await until("the link is up", () => Promise.resolve(l.up));
    assertEquals(text(await l.eval(SET, ["k"], ["in three"])), "OK");
    assertEquals(
      await cli(port, "--user", "app", "--pass", "s3cret", "-n", "3", "get", "k"),
      "in three",
    );
    assertEquals(
      await cli(port, "--user", "app", "--pass", "s3cret", "-n", "0", "exists", "k"),
      "0",
    );
    assertEquals(l.errors, 0);
  } finally {
    await l.close();
  }
  const wrong = link(`redis://app:nope@127.0.0.1:${port}`, logs);
  try {
    await until(
      "a wrong password is logged as down",
      () =>
        Promise.resolve(logs.some((line) => line.includes("is down") && /WRONGPASS/.test(line))),
    );
    assertEquals(await wrong.eval(GET, ["k"], []), undefined);
  } finally {
    await wrong.close();
  }
});

Deno.test("RedisLink on a cluster follows ASK while a slot migrates and MOVED once it has", async () => {
  await using cluster = await startRedisCluster(3);
  const logs: string[] = [];
  const l = link(cluster.url, logs);
  try {
    await until("the link is up", () => Promise.resolve(logs.some((x) => x.includes(" is up"))));
    const key = "moving";
    const slot = String(keySlot(key));
    assertEquals(text(await l.eval(SET, [key], ["moved along"])), "OK");
    // The node that stored it owns its slot; move the slot to the next node.
    const ids = await Promise.all(cluster.nodes.map((n) => cli(n.port, "cluster", "myid")));
    const counts = await Promise.all(
      cluster.nodes.map((n) => cli(n.port, "cluster", "countkeysinslot", slot)),
    );
    const from = counts.indexOf("1");
    assert(from >= 0, `no node holds ${key}: ${counts}`);
    const owner = cluster.nodes[from]!;
    const to = (from + 1) % cluster.nodes.length;

    // Half-way: the key is on the new node, the slot still on the old (RFC: the cluster spec's ASK).
    const dst = cluster.nodes[to]!;
    assertEquals(
      await cli(dst.port, "cluster", "setslot", slot, "importing", ids[from]!),
      "OK",
    );
    assertEquals(
      await cli(owner.port, "cluster", "setslot", slot, "migrating", ids[to]!),
      "OK",
    );
    assertEquals(
      await cli(owner.port, "migrate", "127.0.0.1", String(dst.port), "", "0", "5000", "keys", key),
      "OK",
    );
    assertEquals(text(await l.eval(GET, [key], [])), "moved along");

    // Done: every node says the slot is the new node's.
    for (const n of cluster.nodes) {
      assertEquals(await cli(n.port, "cluster", "setslot", slot, "node", ids[to]!), "OK");
    }
    assertEquals(text(await l.eval(GET, [key], [])), "moved along");
    assertEquals(text(await l.eval(SET, [key], ["and written"])), "OK");
    assertEquals(await cli(dst.port, "get", key), "and written");
    assertEquals(l.errors, 0);
    assert(l.up);
  } finally {
    await l.close();
  }
});

Deno.test("RedisLink on a cluster: a master that dies takes only its own slots down", async () => {
  await using cluster = await startRedisCluster(3);
  // The other masters keep serving their slots while one is gone.
  for (const n of cluster.nodes) {
    assertEquals(await cli(n.port, "config", "set", "cluster-require-full-coverage", "no"), "OK");
  }
  const logs: string[] = [];
  const l = link(cluster.url, logs);
  try {
    await until("the link is up", () => Promise.resolve(logs.some((x) => x.includes(" is up"))));
    // One key on each master.
    const keys = new Map<number, string>();
    for (let i = 0; keys.size < cluster.nodes.length; i++) {
      const key = `k${i}`;
      assertEquals(text(await l.eval(SET, [key], [key])), "OK");
      const counts = await Promise.all(
        cluster.nodes.map((n) => cli(n.port, "cluster", "countkeysinslot", String(keySlot(key)))),
      );
      const at = counts.indexOf("1");
      if (!keys.has(at)) keys.set(at, key);
    }
    const victim = cluster.nodes[0]!;
    await victim.kill();
    await until(
      "the link logs the lost master",
      () =>
        Promise.resolve(logs.some((x) => x.includes(" is down") && x.includes(`:${victim.port}:`))),
    );
    assertEquals(await l.eval(GET, [keys.get(0)!], []), undefined);
    for (const i of [1, 2]) assertEquals(text(await l.eval(GET, [keys.get(i)!], [])), keys.get(i));
    assert(l.up, "the link counts as up while other masters serve");
    await victim.restart();
    await until(
      "the link is up again",
      () => Promise.resolve(logs.filter((x) => x.includes(" is up")).length >= 2),
    );
    // Once it has rejoined (it says CLUSTERDOWN until then) it answers again;
    // without persistence, that it has no such key.
    await until(
      "the restarted master answers",
      async () => (await l.eval(GET, [keys.get(0)!], [])) === null,
    );
  } finally {
    await l.close();
  }
});
