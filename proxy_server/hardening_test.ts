/**
 * The proxy's defences, run through its CLI in reverse mode in front of an
 * origin: the checks shared with the web server in lib/testing/http_server.ts.
 */
import { serveFetch } from "../lib/http/fetch.ts";
import { hardeningTests, startTask } from "../lib/testing/http_server.ts";

const BIG = 100 * 1024 * 1024;

/** The origin: a small cacheable text, and 100 MiB streamed (more than the proxy stores). */
function origin(req: Request): Response {
  if (new URL(req.url).pathname !== "/big.bin") {
    return new Response("hello, world\n", { headers: { "cache-control": "max-age=60" } });
  }
  const piece = new Uint8Array(1 << 20);
  let sent = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (sent === BIG) return controller.close();
      controller.enqueue(piece.slice());
      sent += piece.length;
    },
  });
  return new Response(body, { headers: { "content-length": String(BIG) } });
}

hardeningTests({
  name: "proxy",
  async launch(args, options) {
    const upstream = serveFetch(origin, { hostname: "127.0.0.1", port: 0 });
    const proxy = await startTask("proxy", [
      "-p",
      "0",
      "--upstream",
      `http://127.0.0.1:${upstream.addr.port}`,
      // The access log goes to stdout by default.
      ...(options?.logToHeldStdout ? [] : ["--access-log", "none"]),
      ...args,
    ], { ...options, holdStdout: options?.logToHeldStdout ?? false }).catch(async (err) => {
      await upstream.shutdown(0);
      throw err;
    });
    return {
      ...proxy,
      async [Symbol.asyncDispose]() {
        await proxy[Symbol.asyncDispose]();
        await upstream.shutdown(0);
      },
    };
  },
  small: "/hello.txt",
  big: "/big.bin",
});
