import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { get, rawRequest, startOrigin } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";

// Both proxies serve nothing stale on a mere disconnection (maxStale 0), so a
// stale answer below comes from the --stale-if-error default alone.
const WITH = { port: 0, maxStale: 0, staleIfError: 60 };
const WITHOUT = { port: 0, maxStale: 0 };

Deno.test("--stale-if-error serves stale while the nginx origin is stopped", async () => {
  const root = await Deno.makeTempDir({ prefix: "netkit_stale_" });
  await Deno.writeTextFile(`${root}/a.txt`, "a\n");
  // max-age=0: stored, and stale at once, so every request goes to the origin.
  const nginx = await startNginx(root, {
    workers: 1,
    server: `add_header Cache-Control "max-age=0";`,
  });
  let running = true;
  try {
    await using grace = await startProxy({ ...WITH, upstream: nginx.url });
    await using strict = await startProxy({ ...WITHOUT, upstream: nginx.url });
    for (const p of [grace, strict]) {
      assertEquals((await rawRequest(p.port, get("/a.txt")))?.status, 200);
      const again = await rawRequest(p.port, get("/a.txt"));
      // Stale at once: the ttl is 0, or -1 when the origin's Date (whole seconds)
      // and the proxy's clock straddle a second boundary.
      assertMatch(
        again?.headers.get("cache-status") ?? "",
        /^netkit; fwd=stale; fwd-status=304; ttl=(0|-1)$/,
      );
    }
    await nginx[Symbol.asyncDispose]();
    running = false;
    const stale = await rawRequest(grace.port, get("/a.txt"));
    assertEquals(stale?.status, 200);
    assertEquals(stale?.body, "a\n");
    assertMatch(
      stale?.headers.get("cache-status") ?? "",
      /^netkit; fwd=stale; ttl=(0|-1); detail=stale-if-error$/,
    );
    const refused = await rawRequest(strict.port, get("/a.txt"));
    assertEquals(refused?.status, 502);
    // A client asking for a validated answer gets the error, not the stale copy.
    const noCache = await rawRequest(grace.port, get("/a.txt", { "Cache-Control": "no-cache" }));
    assertEquals(noCache?.status, 502);
  } finally {
    if (running) await nginx[Symbol.asyncDispose]();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--stale-if-error serves stale on a 5xx and on an upstream timeout", async (t) => {
  let mode: "ok" | "error" | "slow" = "ok";
  const held: Array<() => void> = [];
  await using origin = await startOrigin(async () => {
    if (mode === "error") return new Response("down\n", { status: 503 });
    if (mode === "slow") await new Promise<void>((r) => held.push(r));
    return new Response("fresh\n", { headers: { "cache-control": "max-age=0", etag: '"v1"' } });
  });
  await using grace = await startProxy({ ...WITH, upstream: origin.url, timeout: 300 });
  await using strict = await startProxy({ ...WITHOUT, upstream: origin.url, timeout: 300 });
  for (const p of [grace, strict]) {
    assertEquals((await rawRequest(p.port, get("/b")))?.status, 200);
  }

  await t.step("503 from the origin", async () => {
    mode = "error";
    const stale = await rawRequest(grace.port, get("/b"));
    assertEquals(stale?.status, 200);
    assertEquals(stale?.body, "fresh\n");
    assert(stale?.headers.get("cache-status")?.includes("fwd-status=503"));
    assert(stale?.headers.get("cache-status")?.endsWith("detail=stale-if-error"));
    assertEquals((await rawRequest(strict.port, get("/b")))?.status, 503);
  });

  await t.step("origin silent past the timeout", async () => {
    mode = "slow";
    try {
      const stale = await rawRequest(grace.port, get("/b"));
      assertEquals(stale?.status, 200);
      assertEquals(stale?.body, "fresh\n");
      assert(stale?.headers.get("cache-status")?.endsWith("detail=stale-if-error"));
      assertEquals((await rawRequest(strict.port, get("/b")))?.status, 504);
    } finally {
      mode = "ok";
      for (const r of held) r();
    }
  });
});
