/**
 * The proxy in reverse mode in front of an `https://` origin: trusted through
 * `upstreamCaCerts` (or `--upstream-ca`), cached like any other origin, and a
 * 502 naming the certificate problem when the origin's CA is not trusted.
 */
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { makeTestCa, type TestCa } from "../lib/testing/tls.ts";
import { startProxy } from "./proxy.ts";
import { curl } from "./_test_util.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** The final response curl printed for `url`, with curl's exit code. */
async function curlGet(url: string) {
  const r = await curl([url]);
  const last = r.replies.at(-1);
  return {
    code: r.code,
    status: last?.status ?? 0,
    headers: last?.headers ?? new Headers(),
    body: last?.body ?? "",
  };
}

/** An HTTPS origin on loopback with a leaf certificate signed by the test CA. */
function httpsOrigin(ca: TestCa) {
  const hits = new Map<string, number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    // The leaf, not the CA itself: rustls refuses a CA certificate as a server's own.
    cert: ca.cert,
    key: ca.key,
    onListen() {},
  }, (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    return new Response(`secure ${path}`, {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
    });
  });
  return {
    url: `https://127.0.0.1:${server.addr.port}`,
    hits,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** Checks a miss then a hit for `path` through a reverse proxy on `port`. */
async function assertMissThenHit(
  port: number,
  path: string,
  hits: Map<string, number>,
): Promise<void> {
  const first = await curlGet(`http://127.0.0.1:${port}${path}`);
  assertEquals(first.code, 0);
  assertEquals(first.status, 200);
  assertEquals(first.body, `secure ${path}`);
  const firstStatus = first.headers.get("cache-status") ?? "";
  assert(!firstStatus.includes("hit") && firstStatus.includes("stored"), firstStatus);
  const second = await curlGet(`http://127.0.0.1:${port}${path}`);
  assertEquals(second.status, 200);
  assertEquals(second.body, `secure ${path}`);
  const secondStatus = second.headers.get("cache-status") ?? "";
  assert(secondStatus.includes("hit"), secondStatus);
  assertEquals(hits.get(path), 1, "the origin was asked once");
}

Deno.test("proxy in reverse mode fetches from an https:// upstream it trusts through upstreamCaCerts", async (t) => {
  await using ca = await makeTestCa({ prefix: "proxy_upstream_tls_", hosts: ["127.0.0.1"] });
  await using origin = httpsOrigin(ca);

  await t.step("the response arrives, and the second request is a cache hit", async () => {
    await using proxy = await startProxy({
      port: 0,
      upstream: origin.url,
      upstreamCaCerts: [ca.caCert],
    });
    await assertMissThenHit(proxy.port, "/x", origin.hits);
  });

  await t.step("without the CA the proxy answers 502 naming the certificate problem", async () => {
    await using proxy = await startProxy({ port: 0, upstream: origin.url, timeout: 2000 });
    const r = await curlGet(`http://127.0.0.1:${proxy.port}/untrusted`);
    assertEquals(r.code, 0);
    assertEquals(r.status, 502);
    assertMatch(r.body, /<h1>502 Bad Gateway<\/h1>/);
    assertMatch(r.body, /certificate/i);
    assertMatch(r.body, /UnknownIssuer|unknown issuer/i);
    assertEquals(origin.hits.get("/untrusted"), undefined, "no request reached the origin");
  });
});

Deno.test("proxy CLI takes --upstream https://… with --upstream-ca, and refuses a missing CA file", async (t) => {
  await using ca = await makeTestCa({ prefix: "proxy_upstream_tls_", hosts: ["127.0.0.1"] });
  await using origin = httpsOrigin(ca);

  await t.step("--upstream-ca CAFILE: served through curl, then from cache", async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "-p",
        "0",
        "--upstream",
        origin.url,
        "--upstream-ca",
        ca.caPath,
        "--access-log",
        "none",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    try {
      // The proxy says where it listens once it is ready.
      let said = "";
      let port = 0;
      while (port === 0) {
        const { value, done } = await stderr.read();
        if (done) throw new Error(`the proxy exited before listening: ${said}`);
        said += value;
        const m = said.match(/proxy: listening on http:\/\/127\.0\.0\.1:(\d+)/);
        if (m !== null) port = Number(m[1]);
      }
      await assertMissThenHit(port, "/cli", origin.hits);
    } finally {
      child.kill("SIGTERM");
      // Drain what is left so the pipe closes with the process.
      while (!(await stderr.read()).done) {
        // Nothing else to check in it.
      }
      const status = await child.status;
      assertEquals(status.code, 0, "SIGTERM is a clean exit");
    }
  });

  await t.step("--upstream-ca /nonexistent exits 1 with a one-line message", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "-p",
        "0",
        "--upstream",
        origin.url,
        "--upstream-ca",
        "/nonexistent",
        "--access-log",
        "none",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 1);
    const err = decoder.decode(out.stderr);
    assertMatch(err, /^proxy: cannot use --upstream-ca "\/nonexistent": [^\n]+\n$/);
    assertEquals(decoder.decode(out.stdout), "");
  });
});
