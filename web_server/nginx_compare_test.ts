import assert from "node:assert/strict";
import {
  BufferedReader,
  encodeRequestHead,
  readBody,
  readResponseHead,
  writeAll,
} from "../lib/http/mod.ts";
import { serveHttp } from "./engine.ts";
import { serveDir } from "./serve.ts";
import { startNginx } from "./_nginx.ts";

/** A response reduced to what must match between two servers. */
interface Answer {
  status: number;
  body: string;
  contentLength: string | null;
  contentRange: string | null;
  location: string | null;
}

/** Sends one request on a fresh connection and reads the answer with our codec. */
async function ask(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string>,
): Promise<Answer> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    conn,
    encodeRequestHead({
      method,
      target,
      headers: { Host: "localhost", Connection: "close", ...headers },
    }),
  );
  const reader = new BufferedReader(conn);
  const head = await readResponseHead(reader, { requestMethod: method });
  assert.ok(head !== null, "a response");
  const h = head.headers;
  const body = await readBody(reader, head.body);
  let text = new TextDecoder("latin1").decode(body);
  const type = h.get("content-type") ?? "";
  const boundary = /boundary=(\S+)/.exec(type)?.[1];
  if (boundary !== undefined) {
    // Boundaries are random: compare the parts, not the bytes around them.
    text = text.split(`--${boundary}`).slice(1, -1).map((part) => {
      const [heads, data] = part.replace(/^\r\n/, "").split("\r\n\r\n");
      const range = /Content-Range: (.*)/i.exec(heads!)?.[1];
      return `[${range}] ${data!.replace(/\r\n$/, "")}`;
    }).join("\n");
  }
  return {
    status: head.status,
    // Error pages are each server's own prose; only successful bodies must match.
    body: head.status < 300 ? text : "",
    // Multipart lengths depend on each server's boundary length.
    contentLength: head.status < 300 && boundary === undefined ? h.get("content-length") : null,
    contentRange: h.get("content-range"),
    location: h.get("location")?.replace(/^https?:\/\/[^/]+/, "") ?? null,
  };
}

Deno.test("the server and nginx give the same answers to the same requests", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "netkit_cmp_" });
  try {
    await Deno.mkdir(`${root}/dir`);
    await Deno.mkdir(`${root}/site`);
    await Deno.writeTextFile(`${root}/site/index.html`, "<p>site</p>");
    const alphabet = "abcdefghijklmnopqrstuvwxyz".repeat(40); // 1040 bytes
    await Deno.writeTextFile(`${root}/file.txt`, alphabet);
    await Deno.writeFile(`${root}/data.bin`, new Uint8Array(5000).map((_, i) => i % 251));
    await Deno.writeTextFile(`${root}/empty.txt`, "");
    await using nginx = await startNginx(root);
    await using ours = serveHttp((req) => serveDir(req, { fsRoot: root, compression: false }), {
      hostname: "127.0.0.1",
      port: 0,
      cacheRoot: root,
    });
    // Both derive the same strong validators from mtime and size.
    const probe = await ask(nginx.port, "HEAD", "/file.txt", {});
    assert.equal(probe.status, 200);
    const info = await Deno.stat(`${root}/file.txt`);
    const etag = `"${Math.floor(info.mtime!.getTime() / 1000).toString(16)}-${
      info.size.toString(16)
    }"`;
    const lastModified = info.mtime!.toUTCString();
    const old = new Date(info.mtime!.getTime() - 86_400_000).toUTCString();

    const corpus: Array<[string, string, Record<string, string>]> = [
      ["GET", "/file.txt", {}],
      ["HEAD", "/file.txt", {}],
      ["GET", "/data.bin", {}],
      ["GET", "/empty.txt", {}],
      ["GET", "/missing.txt", {}],
      ["GET", "/dir/missing/x.txt", {}],
      ["GET", "/site", {}],
      ["GET", "/site/", {}],
      ["GET", "/file.txt?query=1", {}],
      ["GET", "/fi%6Ce.txt", {}],
      ["POST", "/file.txt", {}],
      ["PUT", "/file.txt", {}],
      ["DELETE", "/file.txt", {}],
      ["PATCH", "/file.txt", {}],
      // Ranges.
      ["GET", "/file.txt", { Range: "bytes=0-9" }],
      ["GET", "/file.txt", { Range: "bytes=1000-" }],
      ["GET", "/file.txt", { Range: "bytes=-26" }],
      ["GET", "/file.txt", { Range: "bytes=0-0" }],
      ["GET", "/file.txt", { Range: "bytes=1030-5000" }],
      ["GET", "/file.txt", { Range: "bytes=5000-" }],
      ["GET", "/file.txt", { Range: "bytes=0-1,5-6" }],
      ["GET", "/file.txt", { Range: "bytes=0-1,5-6,-3" }],
      ["GET", "/data.bin", { Range: "bytes=100-199,4000-4099" }],
      ["GET", "/file.txt", { Range: "bytes=0-1,5000-6000" }],
      ["GET", "/file.txt", { Range: "bytes=0-1039,0-1039" }],
      ["GET", "/file.txt", { Range: "items=0-5" }],
      ["GET", "/file.txt", { Range: "bytes=5-2" }],
      ["GET", "/file.txt", { Range: "bytes=abc" }],
      ["GET", "/file.txt", { Range: "bytes=-0" }],
      ["GET", "/file.txt", { Range: "bytes= 0-1, 3-4" }],
      ["GET", "/empty.txt", { Range: "bytes=0-" }],
      ["OPTIONS", "/file.txt", {}],
      ["HEAD", "/file.txt", { Range: "bytes=0-9" }],
      // Conditionals.
      ["GET", "/file.txt", { "If-None-Match": etag }],
      ["GET", "/file.txt", { "If-None-Match": '"nope"' }],
      ["GET", "/file.txt", { "If-None-Match": `"nope", ${etag}` }],
      ["GET", "/file.txt", { "If-None-Match": "*" }],
      ["HEAD", "/file.txt", { "If-None-Match": etag }],
      ["GET", "/file.txt", { "If-Modified-Since": lastModified }],
      ["GET", "/file.txt", { "If-Modified-Since": old }],
      ["GET", "/file.txt", { "If-Match": etag }],
      ["GET", "/file.txt", { "If-Match": '"nope"' }],
      ["GET", "/file.txt", { "If-Unmodified-Since": old }],
      ["GET", "/file.txt", { "If-Unmodified-Since": lastModified }],
      ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": etag }],
      ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": '"nope"' }],
      ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": lastModified }],
      ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": old }],
    ];
    for (const [method, target, headers] of corpus) {
      const label = `${method} ${target} ${JSON.stringify(headers)}`;
      await t.step(label, async () => {
        const theirs = await ask(nginx.port, method, target, headers);
        const mine = await ask(ours.addr.port, method, target, headers);
        assert.deepEqual(mine, theirs);
      });
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
