/**
 * Micro-benchmarks of the web server's handler (no socket): the per-request
 * cost the engine pays on a cache miss. The wrk comparison with nginx is
 * `deno run -A bench/web.ts`.
 *
 * @module
 */
import { parseRange, serveDir } from "../web_server/serve.ts";
import { contentType } from "../web_server/mime_types.ts";

const root = await Deno.makeTempDir({ prefix: "netkit_web_microbench_" });
await Deno.writeFile(`${root}/1k.bin`, new Uint8Array(1024));
await Deno.writeTextFile(`${root}/style.css`, "p { margin: 0 }\n".repeat(512));
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
const options = { fsRoot: root };

Deno.bench("serveDir(): GET a 1 KiB file", async () => {
  const res = await serveDir(new Request("http://localhost/1k.bin"), options);
  await res.body?.cancel();
});

Deno.bench("serveDir(): 304 for If-None-Match", async () => {
  const res = await serveDir(
    new Request("http://localhost/1k.bin", { headers: { "if-none-match": "*" } }),
    options,
  );
  await res.body?.cancel();
});

Deno.bench("serveDir(): gzip an 8 KiB stylesheet", async () => {
  const res = await serveDir(
    new Request("http://localhost/style.css", { headers: { "accept-encoding": "gzip" } }),
    options,
  );
  await res.body?.cancel();
});

Deno.bench("parseRange(): three ranges", () => {
  parseRange("bytes=0-99, 200-299, -50", 1_000_000);
});

Deno.bench("contentType(): by extension", () => {
  contentType("/assets/app.min.js");
});
