import { assert, assertEquals } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { serveFetch } from "../lib/http/fetch.ts";
import { startTask } from "../lib/testing/http_server.ts";
import { peakResidentBytes, residentBytes } from "../lib/testing/memory.ts";
import { get, rawRequest } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";

/** 512 KiB of text in which every line differs, so a misplaced piece shows. */
function bigText(): string {
  const lines: string[] = [];
  for (let i = 0; lines.length * 16 < 512 * 1024; i++) {
    lines.push(`line ${String(i).padStart(9, "0")}\n`);
  }
  return lines.join("");
}

Deno.test("proxy collapses concurrent misses for one key into one origin request", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_collapse_" });
  const text = bigText();
  await Deno.writeTextFile(`${root}/big.txt`, text);
  await Deno.writeTextFile(`${root}/private.txt`, "not for sharing\n");
  await Deno.writeTextFile(`${root}/ranged.txt`, text);
  // limit_rate makes the body take about a quarter of a second, so the
  // requests arrive while the first response is still streaming.
  await using nginx = await startNginx(root, {
    workers: 1,
    logFormat: "$request_method $uri $status",
    server: `location /big.txt { limit_rate 2m; add_header Cache-Control "max-age=60"; }
      location /private.txt { add_header Cache-Control "no-store"; }
      location /ranged.txt { limit_rate 2m; add_header Cache-Control "max-age=60"; }`,
  });
  await using proxy = await startProxy({
    port: 0,
    upstream: nginx.url,
    maxConnectionsPerIp: 0,
    adminPort: 0,
  });

  await t.step("100 concurrent misses: 1 origin request, 100 whole bodies", async () => {
    const replies = await Promise.all(
      Array.from({ length: 100 }, () => rawRequest(proxy.port, get("/big.txt"))),
    );
    for (const reply of replies) {
      assert(reply !== null);
      const r = reply;
      assertEquals(r.status, 200);
      assert(r.body === text, `a body of ${r.body.length} bytes differs from the origin's`);
    }
    const collapsed = replies.filter((r) => /; collapsed/.test(r!.headers.get("cache-status")!));
    assert(collapsed.length > 0, "no request shared the first one's response");
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    assert(
      metrics.includes(`\nnetkit_proxy_collapsed_waiters_total ${collapsed.length}\n`),
      metrics,
    );
    const lines = await nginx.log(1);
    assertEquals(lines.filter((l) => l.includes("/big.txt")), ["GET /big.txt 200"]);
  });

  await t.step("a non-storable answer releases the waiters to fetch on their own", async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => rawRequest(proxy.port, get("/private.txt"))),
    );
    for (const reply of replies) {
      assert(reply !== null);
      const r = reply;
      assertEquals(r.status, 200);
      assertEquals(r.body, "not for sharing\n");
      assert(!/collapsed/.test(r.headers.get("cache-status")!));
    }
    const lines = await nginx.log(21);
    assertEquals(lines.filter((l) => l.includes("/private.txt")).length, 20);
  });

  await t.step("range misses share the whole fetch with plain ones: 1 origin request", async () => {
    const before = (await nginx.log(21)).length;
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const range = i % 2 === 0 ? undefined : `bytes=${i * 1000}-${i * 1000 + 99}`;
        return rawRequest(proxy.port, get("/ranged.txt", range ? { Range: range } : {}))
          .then((reply) => ({ reply, i, range }));
      }),
    );
    for (const { reply, i, range } of replies) {
      assert(reply !== null);
      if (range === undefined) {
        assertEquals(reply.status, 200);
        assert(reply.body === text, `a body of ${reply.body.length} bytes differs`);
      } else {
        assertEquals(reply.status, 206);
        assertEquals(reply.body, text.slice(i * 1000, i * 1000 + 100));
      }
    }
    const shared = replies.filter(({ reply, range }) =>
      range !== undefined && /; collapsed/.test(reply!.headers.get("cache-status")!)
    );
    assert(shared.length > 0, "no range request shared the first one's response");
    const lines = (await nginx.log(before + 1)).slice(before);
    assertEquals(lines.filter((l) => l.includes("/ranged.txt")), ["GET /ranged.txt 200"]);
  });
  await Deno.remove(root, { recursive: true });
});

Deno.test("a collapsed waiter that reads nothing of a 1 GiB body does not make the proxy keep it", async () => {
  const MIB = 1 << 20;
  // 1 GiB, chunked (no length), after a pause at the first MiB in which the
  // second request joins the flight.
  const origin = serveFetch(() => {
    let sent = 0;
    const piece = new Uint8Array(MIB).fill(0x61);
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 1024) return controller.close();
          if (sent === 1) await new Promise((r) => setTimeout(r, 500));
          controller.enqueue(piece.slice());
          sent++;
        },
      }),
      { headers: { "cache-control": "max-age=60" } },
    );
  }, { hostname: "127.0.0.1", port: 0 });
  try {
    await using proxy = await startTask("proxy", [
      "-p",
      "0",
      "--upstream",
      `http://127.0.0.1:${origin.addr.port}`,
      "--access-log",
      "none",
    ]);
    const before = await residentBytes(proxy.pid);
    const url = `http://127.0.0.1:${proxy.port}/big`;
    // The leader's client reads at full speed.
    const leader = new Deno.Command("curl", {
      args: ["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url],
      stdout: "piped",
    }).output();
    await new Promise((r) => setTimeout(r, 200));
    // The waiter asks for the same URI and never reads a byte.
    using waiter = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await waiter.write(new TextEncoder().encode(get("/big")));
    const out = new TextDecoder().decode((await leader).stdout);
    assertEquals(out, `200 ${1024 * MIB}`);
    const peak = await peakResidentBytes(proxy.pid);
    // Kept for the waiter, it would be the whole body (1,458 MiB at the
    // peak, measured). The flight keeps 8 MiB; the peak was 18 MiB over
    // the baseline.
    assert(
      peak - before < 64 * MIB,
      `peak RSS ${(peak / MIB).toFixed(0)} MiB from ${(before / MIB).toFixed(0)} MiB`,
    );
    // And the proxy serves on.
    const again = await fetch(`http://127.0.0.1:${proxy.port}/small`, { method: "HEAD" });
    await again.body?.cancel();
    assertEquals(again.status, 200);
  } finally {
    await origin.shutdown(0);
  }
});
