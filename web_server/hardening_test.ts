/**
 * The web server's defences, run through its CLI: the checks shared with
 * the proxy in lib/testing/http_server.ts.
 */
import {
  checkCaps,
  checkDescriptorExhaustion,
  checkGracefulShutdown,
  checkLingeringClose,
  checkSlowloris,
  type Launcher,
  startTask,
} from "../lib/testing/http_server.ts";

const root = await Deno.makeTempDir({ prefix: "webserver_hardening_" });
await Deno.writeTextFile(`${root}/hello.txt`, "hello, world\n");
{
  using big = await Deno.create(`${root}/big.bin`);
  await big.truncate(100 * 1024 * 1024);
}
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

const launch: Launcher = (args, options) =>
  startTask("webserver", ["-p", "0", "--host", "127.0.0.1", "--no-log", ...args, root], options);

Deno.test("webserver: 2,000 connections under a 256-descriptor limit do not stop it", () =>
  checkDescriptorExhaustion(launch, "/hello.txt"));
Deno.test("webserver: 20,000 half-sent requests from one address leave others served", () =>
  checkSlowloris(launch, "/hello.txt"));
Deno.test("webserver: 431 and 413 reach a client that keeps writing, 50 times of 50", () =>
  checkLingeringClose(launch));
Deno.test("webserver: the per-address cap holds over both event loops", () =>
  checkCaps(launch, "/hello.txt"));
Deno.test("webserver: SIGTERM lets a 100 MB download finish", () =>
  checkGracefulShutdown(launch, "/big.bin"));
