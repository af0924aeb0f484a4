/**
 * The proxy's defences, run through its CLI in reverse mode in front of an
 * origin: the checks shared with the web server in lib/testing/http_server.ts.
 */
import { serveFetch } from "../lib/http/fetch.ts";
import {
  checkCaps,
  checkDescriptorExhaustion,
  checkGracefulShutdown,
  checkLingeringClose,
  checkSlowloris,
  type Launcher,
  startTask,
} from "../lib/testing/http_server.ts";

const BIG = 100 * 1024 * 1024;
const origin = serveFetch((req) => {
  if (new URL(req.url).pathname !== "/big.bin") {
    return new Response("hello, world\n", { headers: { "cache-control": "max-age=60" } });
  }
  // 100 MiB, streamed: larger than the proxy stores, so it is relayed as it comes.
  const piece = new Uint8Array(1 << 20);
  let sent = 0;
  return new Response(
    new ReadableStream({
      pull(controller) {
        if (sent === BIG) return controller.close();
        controller.enqueue(piece.slice());
        sent += piece.length;
      },
    }),
    { headers: { "content-length": String(BIG) } },
  );
}, { hostname: "127.0.0.1", port: 0, onWarning: () => {} });
globalThis.addEventListener("unload", () => void origin.shutdown(0));

const launch: Launcher = (args, options) =>
  startTask("proxy", [
    "-p",
    "0",
    "--upstream",
    `http://127.0.0.1:${origin.addr.port}`,
    "--access-log",
    "none",
    ...args,
  ], options);

Deno.test({
  name: "proxy: 2,000 connections under a 256-descriptor limit do not stop it",
  fn: () => checkDescriptorExhaustion(launch, "/hello.txt"),
  sanitizeOps: false,
  sanitizeResources: false,
});
Deno.test({
  name: "proxy: 20,000 half-sent requests from one address leave others served",
  fn: () => checkSlowloris(launch, "/hello.txt"),
  sanitizeOps: false,
  sanitizeResources: false,
});
Deno.test({
  name: "proxy: 431 and 413 reach a client that keeps writing, 50 times of 50",
  fn: () => checkLingeringClose(launch),
  sanitizeOps: false,
  sanitizeResources: false,
});
Deno.test({
  name: "proxy: the per-address cap holds and the proxy stays responsive",
  fn: () => checkCaps(launch, "/hello.txt"),
  sanitizeOps: false,
  sanitizeResources: false,
});
Deno.test({
  name: "proxy: SIGTERM lets a 100 MB download through it finish",
  fn: () => checkGracefulShutdown(launch, "/big.bin"),
  sanitizeOps: false,
  sanitizeResources: false,
});
