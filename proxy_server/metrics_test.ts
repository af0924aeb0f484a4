import { assert, assertEquals } from "../lib/testing/assert.ts";
import { startNginx } from "../web_server/_nginx.ts";
import { startProxy } from "./proxy.ts";

/** Parses Prometheus text into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert(m !== null, `not a sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Fetches through the proxy with curl; returns the bytes curl received (head + body). */
async function curlBytes(proxy: string, url: string): Promise<number> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "-o", "/dev/null", "-w", "%{size_header} %{size_download}", "-x", proxy, url],
    stdout: "piped",
  }).output();
  const [head, body] = new TextDecoder().decode(out.stdout).split(" ").map(Number);
  return head! + body!;
}

Deno.test("/metrics counts a known request mix; /healthz answers", async () => {
  const root = await Deno.makeTempDir({ prefix: "netkit_metrics_" });
  await Deno.writeTextFile(`${root}/a.txt`, "a".repeat(1000));
  await Deno.writeTextFile(`${root}/b.txt`, "b".repeat(300));
  await using nginx = await startNginx(root, {
    workers: 1,
    server: `add_header Cache-Control "max-age=600";`,
  });
  await using proxy = await startProxy({ port: 0, adminPort: 0 });
  const px = `http://127.0.0.1:${proxy.port}`;
  const admin = `http://127.0.0.1:${proxy.adminPort}`;

  let sent = 0;
  for (let i = 0; i < 3; i++) sent += await curlBytes(px, `${nginx.url}/a.txt`); // miss, 2 hits
  sent += await curlBytes(px, `${nginx.url}/b.txt`); // miss
  sent += await curlBytes(px, "http://127.0.0.1:1/"); // refused: 502

  // The counters move when each response has been written: wait for the fifth.
  let m = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    m = parseMetrics(await (await fetch(`${admin}/metrics`)).text());
    if (m.get("netkit_proxy_request_duration_seconds_count") === 5) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assertEquals(m.get('netkit_proxy_requests_total{result="TCP_MISS"}'), 3);
  assertEquals(m.get('netkit_proxy_requests_total{result="TCP_MEM_HIT"}'), 2);
  assertEquals(m.get("netkit_proxy_sent_bytes_total"), sent);
  assertEquals(m.get("netkit_proxy_upstream_received_bytes_total"), 1300);
  assertEquals(m.get('netkit_proxy_upstream_errors_total{kind="error"}'), 1);
  assertEquals(m.get('netkit_proxy_upstream_errors_total{kind="timeout"}'), 0);
  assertEquals(m.get("netkit_proxy_collapsed_waiters_total"), 0);
  assertEquals(m.get('netkit_proxy_cache_objects{tier="memory"}'), 2);
  assertEquals(m.get('netkit_proxy_cache_objects{tier="disk"}'), 0);
  assert(m.get('netkit_proxy_cache_bytes{tier="memory"}')! >= 1300);
  assertEquals(m.get('netkit_proxy_request_duration_seconds_bucket{le="+Inf"}'), 5);
  let previous = 0;
  for (const le of ["0.001", "0.01", "0.1", "1", "10"]) {
    const n = m.get(`netkit_proxy_request_duration_seconds_bucket{le="${le}"}`)!;
    assert(n >= previous && n <= 5, `bucket ${le}: ${n}`);
    previous = n;
  }

  const health = await fetch(`${admin}/healthz`);
  assertEquals([health.status, await health.text()], [200, "ok\n"]);
  const missing = await fetch(`${admin}/nothing`);
  assertEquals(missing.status, 404);
  await missing.body?.cancel();
  await Deno.remove(root, { recursive: true });
});
