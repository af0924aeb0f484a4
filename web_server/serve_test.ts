import assert from "node:assert/strict";
import zlib from "node:zlib";
import { isCacheable, parseRange, serveDir, type ServeDirOptions } from "./serve.ts";

/** A tree with every case the handler distinguishes, in a fresh temporary directory. */
async function makeTree(): Promise<{ root: string; outside: string } & AsyncDisposable> {
  const base = await Deno.makeTempDir({ prefix: "netkit_serve_" });
  const root = `${base}/root`;
  const outside = `${base}/outside`;
  await Deno.mkdir(`${root}/sub/deeper`, { recursive: true });
  await Deno.mkdir(`${root}/withindex`);
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret.txt`, "top secret\n");
  await Deno.writeTextFile(`${root}/hello.txt`, "hello, world\n");
  await Deno.writeTextFile(`${root}/digits.txt`, "0123456789");
  await Deno.writeTextFile(`${root}/big.css`, "body { color: red; }\n".repeat(200));
  await Deno.writeFile(`${root}/logo.png`, new Uint8Array(4096).fill(7));
  await Deno.writeTextFile(`${root}/pre.js`, "console.log('plain');\n".repeat(100));
  await Deno.writeFile(`${root}/pre.js.br`, zlib.brotliCompressSync("console.log('br');"));
  await Deno.writeFile(`${root}/pre.js.gz`, zlib.gzipSync("console.log('gz');"));
  await Deno.writeTextFile(`${root}/.env`, "SECRET=1\n");
  await Deno.writeTextFile(`${root}/sub/a<b>&.txt`, "escaped\n");
  await Deno.writeTextFile(`${root}/sub/zzz.txt`, "z".repeat(50));
  await Deno.writeTextFile(`${root}/sub/.hidden`, "hidden\n");
  await Deno.writeTextFile(`${root}/withindex/index.html`, "<p>index</p>");
  await Deno.writeTextFile(`${root}/index.html`, "<h1>root</h1>");
  await Deno.symlink(`${outside}/secret.txt`, `${root}/escape.txt`);
  await Deno.symlink(outside, `${root}/escapedir`);
  await Deno.symlink(`${root}/hello.txt`, `${root}/inside-link.txt`);
  return {
    root,
    outside,
    async [Symbol.asyncDispose]() {
      await Deno.remove(base, { recursive: true });
    },
  };
}

function get(path: string, headers: HeadersInit = {}, method = "GET"): Request {
  return new Request(`http://localhost${path}`, { method, headers });
}

Deno.test("serveDir() serves files with type, length and validators", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  await t.step("GET returns the bytes", async () => {
    const res = await serveDir(get("/hello.txt"), opts);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(res.headers.get("content-length"), "13");
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.equal(res.headers.get("vary"), "Accept-Encoding");
    assert.match(res.headers.get("etag")!, /^"[0-9a-f]+-d"$/);
    assert.match(res.headers.get("last-modified")!, /GMT$/);
    assert.ok(isCacheable(res));
    assert.equal(await res.text(), "hello, world\n");
  });
  await t.step("HEAD has the headers and no body", async () => {
    const res = await serveDir(get("/hello.txt", {}, "HEAD"), opts);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "13");
    assert.equal(res.body, null);
  });
  await t.step("binary types carry no charset", async () => {
    const res = await serveDir(get("/logo.png"), opts);
    assert.equal(res.headers.get("content-type"), "image/png");
    assert.equal((await res.bytes()).length, 4096);
  });
  await t.step("a symlink inside the root is followed", async () => {
    const res = await serveDir(get("/inside-link.txt"), opts);
    assert.equal(await res.text(), "hello, world\n");
  });
  await t.step("big files are streamed, not cached", async () => {
    const res = await serveDir(get("/big.css"), { ...opts, inMemoryLimit: 100 });
    assert.ok(!isCacheable(res));
    assert.equal((await res.text()).length, 4200);
  });
});

Deno.test("serveDir() answers errors with the right status", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  const cases: Array<[string, string, number, Record<string, string>?]> = [
    ["POST", "/hello.txt", 405, { allow: "GET, HEAD" }],
    ["DELETE", "/", 405, { allow: "GET, HEAD" }],
    ["OPTIONS", "/hello.txt", 405, { allow: "GET, HEAD" }],
    ["GET", "/missing.txt", 404],
    ["GET", "/sub/missing/deeper.txt", 404],
    ["GET", "/hello.txt/child", 404],
    ["GET", "/%zz", 400],
    ["GET", "/%ff", 400],
  ];
  for (const [method, path, status, headers] of cases) {
    await t.step(`${method} ${path} → ${status}`, async () => {
      const res = await serveDir(get(path, {}, method), opts);
      assert.equal(res.status, status);
      for (const [k, v] of Object.entries(headers ?? {})) assert.equal(res.headers.get(k), v);
      const body = await res.text();
      assert.ok(!body.includes(tree.root), "no path in the body");
    });
  }
  await t.step("404.html from the root is used when present", async () => {
    await Deno.writeTextFile(`${tree.root}/404.html`, "<p>custom missing</p>");
    const res = await serveDir(get("/nope"), opts);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await res.text(), "<p>custom missing</p>");
    await Deno.remove(`${tree.root}/404.html`);
  });
  await t.step("an unreadable file is a 403", async () => {
    // Root reads everything, so use a FIFO-free trick: a directory listing disabled.
    const res = await serveDir(get("/sub/"), { ...opts, showDirListing: false });
    assert.equal(res.status, 403);
    await res.body?.cancel();
  });
  await t.step("an internal failure is a 500 without details", async () => {
    // A root that is a file is a misconfiguration, not the client's fault.
    const bad = await serveDir(get("/x"), { fsRoot: `${tree.root}/hello.txt` });
    assert.equal(bad.status, 500);
    assert.equal(await bad.text(), "500 Internal Server Error\n");
  });
});

Deno.test("serveDir() never leaves the root, however the path is encoded", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  // [request target, acceptable statuses]
  const cases: Array<[string, number[]]> = [
    ["/../outside/secret.txt", [404]], // The URL parser resolves the dots inside the root.
    ["/sub/../../outside/secret.txt", [404]],
    ["/%2e%2e/outside/secret.txt", [404]],
    ["/%2E%2E/%2e%2e/outside/secret.txt", [404]],
    ["/..%2foutside%2fsecret.txt", [400]],
    ["/..%2Foutside/secret.txt", [400]],
    ["/%2e%2e%2foutside%2fsecret.txt", [400]],
    ["/..%5coutside%5csecret.txt", [400]],
    ["/..\\outside\\secret.txt", [404]], // WHATWG turns "\" into "/" for http URLs.
    ["/hello.txt%00.png", [400]],
    ["/%252e%252e/outside/secret.txt", [404]], // Decoded once only: a literal "%2e%2e" name.
    ["/escape.txt", [403]],
    ["/escapedir/secret.txt", [403]],
    ["/escapedir/", [403]],
    ["/.env", [404]],
    ["/sub/.hidden", [404]],
    ["/%2eenv", [404]],
  ];
  for (const [path, statuses] of cases) {
    await t.step(`${path} → ${statuses.join("/")}`, async () => {
      const res = await serveDir(get(path), opts);
      const body = await res.text();
      assert.ok(statuses.includes(res.status), `status ${res.status}`);
      assert.ok(!body.includes("secret"), "no file from outside");
      assert.ok(!body.includes("SECRET"), "no dotfile");
    });
  }
  await t.step("an index.html symlinked outside the root is refused", async () => {
    await Deno.mkdir(`${tree.root}/trap`);
    await Deno.symlink(`${tree.outside}/secret.txt`, `${tree.root}/trap/index.html`);
    const res = await serveDir(get("/trap/"), opts);
    assert.equal(res.status, 403);
    assert.ok(!(await res.text()).includes("secret"));
  });
  await t.step("--dotfiles serves dotfiles", async () => {
    const res = await serveDir(get("/.env"), { ...opts, showDotfiles: true });
    assert.equal(await res.text(), "SECRET=1\n");
  });
});

Deno.test("serveDir() evaluates conditional requests as RFC 9110 §13.2.2", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  const first = await serveDir(get("/hello.txt"), opts);
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  const lastModified = first.headers.get("last-modified")!;
  const past = new Date(Date.parse(lastModified) - 60_000).toUTCString();
  const future = new Date(Date.parse(lastModified) + 60_000).toUTCString();
  const cases: Array<[string, Record<string, string>, number]> = [
    ["matching If-None-Match", { "if-none-match": etag }, 304],
    ["weak form of the tag", { "if-none-match": `W/${etag}` }, 304],
    ["tag in a list", { "if-none-match": `"other", ${etag}` }, 304],
    ["star", { "if-none-match": "*" }, 304],
    ["other tag", { "if-none-match": '"other"' }, 200],
    ["If-Modified-Since equal", { "if-modified-since": lastModified }, 304],
    ["If-Modified-Since later", { "if-modified-since": future }, 304],
    ["If-Modified-Since earlier", { "if-modified-since": past }, 200],
    ["If-Modified-Since garbage", { "if-modified-since": "yesterday-ish" }, 200],
    ["If-Modified-Since without a zone is no HTTP-date", {
      "if-modified-since": future.replace(" GMT", ""),
    }, 200],
    ["star inside a list is no star", { "if-none-match": '"other", *' }, 200],
    ["If-Match star", { "if-match": "*" }, 200],
    [
      "If-None-Match wins over If-Modified-Since",
      { "if-none-match": '"other"', "if-modified-since": future },
      200,
    ],
    ["If-Match matching", { "if-match": etag }, 200],
    ["If-Match other", { "if-match": '"other"' }, 412],
    ["If-Match weak never matches", { "if-match": `W/${etag}` }, 412],
    ["If-Unmodified-Since earlier", { "if-unmodified-since": past }, 412],
    ["If-Unmodified-Since later", { "if-unmodified-since": future }, 200],
  ];
  for (const [name, headers, status] of cases) {
    await t.step(`${name} → ${status}`, async () => {
      const res = await serveDir(get("/hello.txt", headers), opts);
      assert.equal(res.status, status);
      if (status === 304) {
        assert.equal(res.body, null);
        assert.equal(res.headers.get("etag"), etag);
        assert.equal(res.headers.get("content-length"), null);
      } else {
        await res.body?.cancel();
      }
    });
  }
});

Deno.test("serveDir() serves byte ranges, single and multipart", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  const first = await serveDir(get("/digits.txt"), opts);
  await first.body?.cancel();
  const etag = first.headers.get("etag")!;
  const lastModified = first.headers.get("last-modified")!;
  // [name, headers, status, body or parts, content-range]
  const cases: Array<[string, Record<string, string>, number, string | string[], string?]> = [
    ["first bytes", { range: "bytes=0-3" }, 206, "0123", "bytes 0-3/10"],
    ["open end", { range: "bytes=7-" }, 206, "789", "bytes 7-9/10"],
    ["suffix", { range: "bytes=-2" }, 206, "89", "bytes 8-9/10"],
    ["suffix larger than file", { range: "bytes=-50" }, 206, "0123456789", "bytes 0-9/10"],
    ["end past the file", { range: "bytes=8-100" }, 206, "89", "bytes 8-9/10"],
    ["whitespace", { range: "bytes = 1-2" }, 206, "12", "bytes 1-2/10"],
    ["one unsatisfiable of two", { range: "bytes=2-3,20-30" }, 206, "23", "bytes 2-3/10"],
    ["two ranges", { range: "bytes=0-1,5-6" }, 206, ["01", "56"]],
    ["three ranges with suffix", { range: "bytes=0-0, 4-4, -1" }, 206, ["0", "4", "9"]],
    ["unsatisfiable", { range: "bytes=10-" }, 416, "", "bytes */10"],
    ["zero suffix", { range: "bytes=-0" }, 416, "", "bytes */10"],
    ["reversed is unsatisfiable, as nginx", { range: "bytes=5-2" }, 416, "", "bytes */10"],
    ["other unit is ignored", { range: "items=0-1" }, 200, "0123456789"],
    ["garbage is unsatisfiable", { range: "bytes=abc" }, 416, "", "bytes */10"],
    ["empty list elements are allowed", { range: "bytes=0-1,,3-3" }, 206, ["01", "3"]],
    ["more than the file is served whole", { range: "bytes=0-9,0-9" }, 200, "0123456789"],
    ["If-Range with current tag", { range: "bytes=0-1", "if-range": etag }, 206, "01"],
    ["If-Range with old tag", { range: "bytes=0-1", "if-range": '"old"' }, 200, "0123456789"],
    ["If-Range weak tag", { range: "bytes=0-1", "if-range": `W/${etag}` }, 200, "0123456789"],
    [
      "If-Range is one tag, not a list",
      {
        range: "bytes=0-1",
        "if-range": `"old", ${etag}`,
      },
      200,
      "0123456789",
    ],
    ["If-Range with date", { range: "bytes=0-1", "if-range": lastModified }, 206, "01"],
    [
      "If-Range with old date",
      { range: "bytes=0-1", "if-range": new Date(0).toUTCString() },
      200,
      "0123456789",
    ],
  ];
  for (const [name, headers, status, body, contentRange] of cases) {
    await t.step(`${name} → ${status}`, async () => {
      const res = await serveDir(get("/digits.txt", headers), opts);
      assert.equal(res.status, status);
      const bytes = await res.bytes();
      assert.equal(res.headers.get("content-length"), String(bytes.length));
      if (contentRange !== undefined) assert.equal(res.headers.get("content-range"), contentRange);
      if (typeof body === "string") {
        if (status !== 416) assert.equal(new TextDecoder().decode(bytes), body);
        return;
      }
      const type = res.headers.get("content-type")!;
      const boundary = /^multipart\/byteranges; boundary=(.+)$/.exec(type)![1]!;
      const text = new TextDecoder().decode(bytes);
      const parts = text.split(`--${boundary}`).slice(1, -1).map((p) =>
        p.split("\r\n\r\n")[1]!.replace(/\r\n$/, "")
      );
      assert.deepEqual(parts, body);
      assert.ok(text.endsWith(`--${boundary}--\r\n`));
      assert.match(text, /Content-Range: bytes 0-\d\/10/);
    });
  }
  await t.step("HEAD answers a range with GET's headers, as nginx does", async () => {
    const res = await serveDir(get("/digits.txt", { range: "bytes=0-1" }, "HEAD"), opts);
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-length"), "2");
    assert.equal(res.headers.get("content-range"), "bytes 0-1/10");
    assert.equal(res.body, null);
  });
  await t.step("large multipart bodies are streamed", async () => {
    const res = await serveDir(get("/big.css", { range: "bytes=0-4,10-14" }), {
      ...opts,
      inMemoryLimit: 8,
    });
    assert.equal(res.status, 206);
    const text = await res.text();
    assert.equal(res.headers.get("content-length"), String(new TextEncoder().encode(text).length));
    assert.match(text, /\r\n\r\nbody \r\n/);
  });
  await t.step("parseRange() is exported for the engine", () => {
    assert.deepEqual(parseRange("bytes=0-0", 1), [{ start: 0, end: 0 }]);
    assert.deepEqual(parseRange("bytes=", 1), []);
    assert.equal(parseRange("lines=1-2", 1), undefined);
  });
});

Deno.test("serveDir() compresses as the client accepts", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  const plainCss = await Deno.readTextFile(`${tree.root}/big.css`);
  const decode: Record<string, (b: Uint8Array) => Uint8Array> = {
    br: (b) => zlib.brotliDecompressSync(b),
    gzip: (b) => zlib.gunzipSync(b),
    deflate: (b) => zlib.inflateSync(b),
  };
  const cases: Array<[string, string, string | null]> = [
    ["gzip", "gzip", "gzip"],
    ["br preferred on a tie", "gzip, deflate, br", "br"],
    ["q-values decide", "br;q=0.5, gzip;q=0.9", "gzip"],
    ["deflate", "deflate", "deflate"],
    ["star", "*", "br"],
    ["refused coding", "gzip;q=0", null],
    ["unknown coding", "zstd", null],
  ];
  for (const [name, accept, coding] of cases) {
    await t.step(`${name}: ${accept} → ${coding ?? "identity"}`, async () => {
      const res = await serveDir(get("/big.css", { "accept-encoding": accept }), opts);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("vary"), "Accept-Encoding");
      assert.equal(res.headers.get("content-encoding"), coding);
      const bytes = await res.bytes();
      const text = new TextDecoder().decode(coding ? decode[coding]!(bytes) : bytes);
      assert.equal(text, plainCss);
      if (coding) assert.ok(bytes.length < plainCss.length / 4);
    });
  }
  await t.step("a tag for a compressed body differs from the identity one", async () => {
    const a = await serveDir(get("/big.css", { "accept-encoding": "gzip" }), opts);
    const b = await serveDir(get("/big.css"), opts);
    await a.body?.cancel();
    await b.body?.cancel();
    assert.notEqual(a.headers.get("etag"), b.headers.get("etag"));
    const again = await serveDir(
      get("/big.css", { "accept-encoding": "gzip", "if-none-match": a.headers.get("etag")! }),
      opts,
    );
    assert.equal(again.status, 304);
  });
  await t.step("images and small files are never compressed", async () => {
    for (const path of ["/logo.png", "/hello.txt"]) {
      const res = await serveDir(get(path, { "accept-encoding": "gzip" }), opts);
      assert.equal(res.headers.get("content-encoding"), null);
      assert.equal(res.headers.get("vary"), "Accept-Encoding");
      await res.body?.cancel();
    }
  });
  await t.step("ranges are never compressed", async () => {
    const res = await serveDir(
      get("/big.css", { "accept-encoding": "gzip", range: "bytes=0-3" }),
      opts,
    );
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-encoding"), null);
    assert.equal(await res.text(), "body");
  });
  await t.step("large files are gzipped as a stream", async () => {
    const res = await serveDir(get("/big.css", { "accept-encoding": "br, gzip" }), {
      ...opts,
      inMemoryLimit: 100,
    });
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.equal(res.headers.get("content-length"), null);
    assert.equal(new TextDecoder().decode(zlib.gunzipSync(await res.bytes())), plainCss);
  });
  await t.step("precompressed siblings are preferred", async () => {
    const cases2: Array<[string, string, string]> = [
      ["br, gzip", "br", "console.log('br');"],
      ["gzip", "gzip", "console.log('gz');"],
    ];
    for (const [accept, coding, body] of cases2) {
      const res = await serveDir(get("/pre.js", { "accept-encoding": accept }), opts);
      assert.equal(res.headers.get("content-encoding"), coding);
      assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
      assert.equal(new TextDecoder().decode(decode[coding]!(await res.bytes())), body);
    }
    const none = await serveDir(get("/pre.js", { "accept-encoding": "identity" }), opts);
    assert.equal((await none.text()).length, 2200);
  });
  await t.step("--no-compression turns on-the-fly compression off", async () => {
    const res = await serveDir(get("/big.css", { "accept-encoding": "gzip" }), {
      ...opts,
      compression: false,
    });
    assert.equal(res.headers.get("content-encoding"), null);
    await res.body?.cancel();
  });
});

Deno.test("serveDir() serves directories: index, listings and redirects", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  await t.step("index.html is served for a directory", async () => {
    const res = await serveDir(get("/withindex/"), opts);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await res.text(), "<p>index</p>");
  });
  const redirects: Array<[string, string]> = [
    ["/sub", "/sub/"],
    ["/sub?x=1", "/sub/?x=1"],
    ["/hello.txt/", "/hello.txt"],
    ["/sub//deeper/", "/sub/deeper/"],
    ["//hello.txt", "/hello.txt"],
  ];
  for (const [from, to] of redirects) {
    await t.step(`${from} redirects to ${to}`, async () => {
      const res = await serveDir(get(from), opts);
      assert.equal(res.status, 301);
      assert.equal(res.headers.get("location"), to);
      await res.body?.cancel();
    });
  }
  await t.step("an HTML listing escapes names and hides dotfiles", async () => {
    const res = await serveDir(get("/sub/"), opts);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    const html = await res.text();
    assert.match(html, /<title>Index of \/sub\/<\/title>/);
    assert.ok(html.includes("a&lt;b&gt;&amp;.txt"), "escaped text");
    assert.ok(html.includes('href="a%3Cb%3E%26.txt"'), "encoded link");
    assert.ok(!html.includes("<b>"), "no raw markup from names");
    assert.ok(html.includes('href="deeper/"'));
    assert.ok(html.includes('href="../"'));
    assert.ok(!html.includes(".hidden"));
    assert.ok(html.indexOf("deeper/") < html.indexOf("zzz.txt"), "directories first");
  });
  await t.step("the listing sorts by size, descending", async () => {
    const res = await serveDir(get("/sub/?sort=size&order=desc"), opts);
    const html = await res.text();
    assert.ok(html.indexOf("zzz.txt") < html.indexOf("a&lt;b"), "50 bytes before 8");
    assert.ok(html.includes('href="?sort=size&amp;order=asc"'), "link toggles the order");
  });
  await t.step("a JSON listing for Accept: application/json", async () => {
    const res = await serveDir(get("/sub/", { accept: "application/json" }), opts);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    const list = await res.json();
    assert.deepEqual(
      list.map((e: { name: string; type: string; size: number }) => [e.name, e.type, e.size]),
      [["deeper", "directory", 0], ["a<b>&.txt", "file", 8], ["zzz.txt", "file", 50]],
    );
    assert.match(list[1].modified, /^\d{4}-\d\d-\d\dT/);
  });
  await t.step("--dotfiles lists dotfiles", async () => {
    const res = await serveDir(get("/sub/"), { ...opts, showDotfiles: true });
    assert.ok((await res.text()).includes(".hidden"));
  });
});

Deno.test("serveDir() applies SPA, CORS, Cache-Control and extra headers", async (t) => {
  await using tree = await makeTree();
  const opts: ServeDirOptions = { fsRoot: tree.root };
  await t.step("--spa: an extension-less unknown route gets index.html", async () => {
    const res = await serveDir(get("/app/route"), { ...opts, spa: true });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "<h1>root</h1>");
    const missing = await serveDir(get("/app/missing.js"), { ...opts, spa: true });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });
  await t.step("--cors adds the origin header and answers preflights", async () => {
    const res = await serveDir(get("/hello.txt"), { ...opts, cors: true });
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    await res.body?.cancel();
    const pre = await serveDir(
      get("/hello.txt", {
        origin: "http://example.test",
        "access-control-request-method": "GET",
        "access-control-request-headers": "range",
      }, "OPTIONS"),
      { ...opts, cors: true },
    );
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-headers"), "range");
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  });
  await t.step("--cache-control and -H headers", async () => {
    const res = await serveDir(get("/hello.txt"), {
      ...opts,
      cacheControl: "public, max-age=60",
      headers: [["X-Frame-Options", "DENY"], ["X-Test", "1"]],
    });
    assert.equal(res.headers.get("cache-control"), "public, max-age=60");
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("x-test"), "1");
    await res.body?.cancel();
    const missing = await serveDir(get("/nope"), { ...opts, headers: [["X-Test", "1"]] });
    assert.equal(missing.headers.get("x-test"), "1");
    await missing.body?.cancel();
  });
});
