// Our HTTP client against our web server, over a real loopback socket.
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { serveHttp } from "./engine.ts";
import { HttpClient } from "../lib/http/client.ts";
import { serveDir } from "./serve.ts";

const CLIENT_CLI = new URL("./client.ts", import.meta.url).pathname;

async function serveTree() {
  const root = await Deno.makeTempDir({ prefix: "netkit_client_server_" });
  await Deno.mkdir(`${root}/dir`);
  await Deno.writeTextFile(`${root}/hello.txt`, "hello, world\n");
  await Deno.writeTextFile(`${root}/dir/a.txt`, "A\n");
  const big = new Uint8Array(3 * 1024 * 1024 + 7);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  await Deno.writeFile(`${root}/big.bin`, big);
  const server = serveHttp((req) => serveDir(req, { fsRoot: root }), {
    hostname: "127.0.0.1",
    port: 0,
    cacheRoot: root,
  });
  return {
    root,
    big,
    base: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("HttpClient fetches files from our server over one keep-alive connection", async (t) => {
  await using site = await serveTree();
  await using client = new HttpClient();
  let first = -1;
  await t.step("a small file", async () => {
    const res = await client.request(`${site.base}/hello.txt`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assertEquals(await res.text(), "hello, world\n");
    first = res.connectionId;
  });
  await t.step("a 3 MiB file, byte for byte, on the same connection", async () => {
    const res = await client.request(`${site.base}/big.bin`);
    assertEquals(res.status, 200);
    const body = await res.bytes();
    assertEquals(body.length, site.big.length);
    assert(body.every((b, i) => b === site.big[i]), "body bytes differ");
    assertEquals([res.connectionId, res.reused], [first, true]);
  });
  await t.step("a range, a HEAD and a conditional request", async () => {
    const range = await client.request(`${site.base}/big.bin`, {
      headers: [["range", "bytes=10-19"]],
    });
    assertEquals(range.status, 206);
    assertEquals(range.headers.get("content-range"), `bytes 10-19/${site.big.length}`);
    assertEquals([...await range.bytes()], [...site.big.subarray(10, 20)]);
    const head = await client.request(`${site.base}/hello.txt`, { method: "HEAD" });
    assertEquals([head.status, head.headers.get("content-length")], [200, "13"]);
    assertEquals((await head.bytes()).length, 0);
    const etag = head.headers.get("etag");
    assert(etag, "no ETag");
    const again = await client.request(`${site.base}/hello.txt`, {
      headers: [["if-none-match", etag]],
    });
    assertEquals(again.status, 304);
    await again.discard();
    assertEquals(again.connectionId, first);
  });
});

Deno.test("the webclient CLI saves, follows redirects and fails as documented against our server", async (t) => {
  await using site = await serveTree();
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLIENT_CLI, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  await t.step("-o writes the body to a file", async () => {
    const file = `${site.root}/copy.bin`;
    const r = await run("-o", file, `${site.base}/big.bin`);
    assertEquals(r.code, 0, r.stderr);
    const copy = await Deno.readFile(file);
    assert(copy.length === site.big.length && copy.every((b, i) => b === site.big[i]));
  });
  await t.step("-L follows the directory redirect to the listing", async () => {
    const r = await run("-L", `${site.base}/dir`);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.includes("a.txt"), r.stdout);
  });
  await t.step("--fail on a missing file exits 22", async () => {
    const r = await run("--fail", `${site.base}/missing.txt`);
    assertEquals(r.code, 22, r.stderr);
  });
});
