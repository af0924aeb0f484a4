import { assert, assertEquals } from "../lib/testing/assert.ts";
import { launchChromium } from "../lib/testing/browser.ts";
import { startOrigin } from "./_test_util.ts";
import { startProxy } from "./proxy.ts";

const PAGE = `<!DOCTYPE html><html><head><title>cached</title>
<link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head>
<body><h1>hello</h1><img src="/logo.svg"></body></html>`;
const FILES: Record<string, [string, string]> = {
  "/": ["text/html", PAGE],
  "/style.css": ["text/css", "h1 { color: teal }"],
  "/app.js": ["text/javascript", "document.title = 'ran';"],
  "/logo.svg": ["image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>`],
};

Deno.test("a headless Chromium loads a page through the proxy twice; the second load hits the cache", async () => {
  await using origin = await startOrigin((req) => {
    const file = FILES[new URL(req.url).pathname];
    if (file === undefined) return new Response("not found", { status: 404 });
    return new Response(file[1], {
      headers: { "content-type": file[0], "cache-control": "max-age=300" },
    });
  });
  const log: string[] = [];
  await using proxy = await startProxy({ port: 0, log: (l) => log.push(l) });
  const browser = await launchChromium({ proxy: `http://127.0.0.1:${proxy.port}` });
  try {
    const statuses: string[][] = [];
    for (let load = 0; load < 2; load++) {
      // A fresh context has an empty browser cache, so the second load must come from the proxy.
      const context = await browser.newContext();
      const page = await context.newPage();
      const seen: string[] = [];
      page.on("response", (res) => {
        const path = new URL(res.url()).pathname;
        if (path in FILES) seen.push(`${path} ${res.headers()["cache-status"] ?? "none"}`);
      });
      await page.goto(`${origin.url}/`, { waitUntil: "load" });
      assertEquals(await page.title(), "ran");
      statuses.push(seen.sort());
      await context.close();
    }
    assertEquals(statuses[0]!.length, 4, statuses[0]!.join("\n"));
    for (const line of statuses[0]!) {
      assert(line.includes("fwd=uri-miss") && line.includes("stored"), line);
    }
    assertEquals(statuses[1]!.length, 4, statuses[1]!.join("\n"));
    for (const line of statuses[1]!) assert(/ netkit; hit; ttl=\d+$/.test(line), line);
    for (const path of Object.keys(FILES)) assertEquals(origin.hits.get(path), 1, path);
    assert(log.filter((l) => l.includes(" TCP_MEM_HIT/200 ")).length >= 4, log.join("\n"));
  } finally {
    await browser.close();
  }
});
