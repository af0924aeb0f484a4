import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { artifactPath, launchChromium } from "../lib/testing/browser.ts";
import { makeTestCa } from "../lib/testing/tls.ts";
import { serveHttp } from "./engine.ts";
import { serveDir } from "./serve.ts";

const PUBLIC = fileURLToPath(new URL("./public/", import.meta.url));

Deno.test({
  name: "a real browser shows the index page, a listing, and follows a link",
  // Playwright keeps pipes and timers of its own around the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir({ prefix: "netkit_browser_" });
    await Deno.mkdir(`${root}/files/sub`, { recursive: true });
    for await (const e of Deno.readDir(PUBLIC)) {
      if (e.isFile) await Deno.copyFile(`${PUBLIC}/${e.name}`, `${root}/${e.name}`);
    }
    await Deno.writeTextFile(`${root}/files/notes & <ideas>.txt`, "plain notes\n");
    await Deno.writeTextFile(
      `${root}/files/sub/page.html`,
      "<title>Sub page</title><p id=x>deep</p>",
    );
    // Name order (a, b, c) is not size order (b, c, a), so a sort by size shows.
    await Deno.mkdir(`${root}/sizes/d`, { recursive: true });
    await Deno.writeTextFile(`${root}/sizes/a.txt`, "a".repeat(3000));
    await Deno.writeTextFile(`${root}/sizes/b.txt`, "b".repeat(10));
    await Deno.writeTextFile(`${root}/sizes/c.txt`, "c".repeat(200));
    const server = serveHttp((req) => serveDir(req, { fsRoot: root }), {
      hostname: "127.0.0.1",
      port: 0,
      cacheRoot: root,
    });
    const base = `http://127.0.0.1:${server.addr.port}`;
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await t.step("the index page renders with its title and tool list", async () => {
        const res = await page.goto(base + "/");
        assert.equal(res?.status(), 200);
        assert.match(await page.title(), /netkit/);
        const text = await page.locator("body").innerText();
        for (const tool of ["ping", "traceroute", "UDP pinger", "web server", "proxy", "SMTP"]) {
          assert.ok(text.toLowerCase().includes(tool.toLowerCase()), `mentions ${tool}`);
        }
        await page.screenshot({ path: await artifactPath("web_server_index.png"), fullPage: true });
      });
      await t.step("a directory listing shows escaped names", async () => {
        await page.goto(base + "/files/");
        assert.equal(await page.title(), "Index of /files/");
        const names = await page.locator("tbody td:first-child a").allInnerTexts();
        assert.deepEqual(names, ["../", "sub/", "notes & <ideas>.txt"]);
        await page.screenshot({ path: await artifactPath("web_server_listing.png") });
      });
      await t.step("following links reaches the files", async () => {
        await page.click("text=sub/");
        assert.equal(new URL(page.url()).pathname, "/files/sub/");
        await page.click("text=page.html");
        assert.equal(await page.title(), "Sub page");
        assert.equal(await page.locator("#x").innerText(), "deep");
        await page.goBack();
        await page.goBack();
        await page.click("text=notes & <ideas>.txt");
        assert.equal((await page.locator("body").innerText()).trim(), "plain notes");
      });
      await t.step("sorting by size reorders the listing", async () => {
        /** The listing's names after `../`, and sizes in bytes (each size cell's title). */
        const rows = async () => {
          const names = await page.locator("tbody td:first-child a").allInnerTexts();
          const sizes = await page.locator("tbody td.n").evaluateAll((cells) =>
            cells.map((c) => Number(c.getAttribute("title")))
          );
          return { names: names.slice(1), sizes }; // `../` has no size cell.
        };
        await page.goto(base + "/sizes/");
        assert.deepEqual((await rows()).names, ["d/", "a.txt", "b.txt", "c.txt"]);
        await page.click("th >> text=Size");
        await page.waitForURL(/\?sort=size&order=asc$/);
        // The click navigates; waitForURL waits for the new page's load event.
        // Directories stay first, as most listings do; then the files by growing size.
        const ascending = await rows();
        assert.deepEqual(ascending.names, ["d/", "b.txt", "c.txt", "a.txt"]);
        assert.deepEqual(ascending.sizes.slice(1), [10, 200, 3000]);
        await page.click("th >> text=Size");
        await page.waitForURL(/\?sort=size&order=desc$/);
        const descending = await rows();
        assert.deepEqual(descending.names, ["d/", "a.txt", "c.txt", "b.txt"]);
        assert.deepEqual(descending.sizes.slice(1), [3000, 200, 10]);
      });
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "a real browser loads the index and a page of 50 images over h2",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const root = await Deno.makeTempDir({ prefix: "netkit_browser_h2_" });
    await using ca = await makeTestCa({ prefix: "netkit_browser_tls_" });
    for await (const e of Deno.readDir(PUBLIC)) {
      if (e.isFile) await Deno.copyFile(`${PUBLIC}/${e.name}`, `${root}/${e.name}`);
    }
    await Deno.mkdir(`${root}/img`);
    const images = Array.from({ length: 50 }, (_, i) => `img/${i}.svg`);
    for (const [i, name] of images.entries()) {
      await Deno.writeTextFile(
        `${root}/${name}`,
        `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#${
          (i * 5).toString(16).padStart(2, "0")
        }8040"/></svg>`,
      );
    }
    await Deno.writeTextFile(
      `${root}/gallery.html`,
      `<title>gallery</title>${images.map((src) => `<img src="/${src}">`).join("")}`,
    );
    const server = serveHttp((req) => serveDir(req, { fsRoot: root }), {
      hostname: "127.0.0.1",
      port: 0,
      cacheRoot: root,
      cert: ca.cert,
      key: ca.key,
    });
    const base = `https://localhost:${server.addr.port}`;
    const browser = await launchChromium();
    try {
      // The test CA is not in Chromium's store; the certificate itself is checked by curl elsewhere.
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      // Evaluated in the page (strings: the DOM types are not this program's).
      const protocols = () =>
        page.evaluate(
          "performance.getEntries().map((e) => e.nextHopProtocol).filter((p) => p !== undefined)",
        ) as Promise<string[]>;
      await t.step("the index page comes over h2", async () => {
        const res = await page.goto(base + "/");
        assert.equal(res?.status(), 200);
        assert.match(await page.title(), /netkit/);
        const seen = await protocols();
        assert.ok(seen.length > 0);
        assert.deepEqual(new Set(seen), new Set(["h2"]));
      });
      await t.step("50 images load over h2", async () => {
        await page.goto(base + "/gallery.html");
        await page.waitForFunction(
          "[...document.images].every((img) => img.complete && img.naturalWidth === 8)",
        );
        const entries = await page.evaluate(
          `performance.getEntriesByType("resource")
            .map((e) => [new URL(e.name).pathname, e.nextHopProtocol])`,
        ) as [string, string][];
        assert.equal(entries.filter(([path]) => path!.startsWith("/img/")).length, 50);
        assert.deepEqual(new Set(entries.map(([, p]) => p)), new Set(["h2"]));
        assert.equal((await protocols())[0], "h2"); // the page itself
        await page.screenshot({ path: await artifactPath("web_server_h2_gallery.png") });
      });
      await context.close();
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
