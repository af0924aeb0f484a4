/**
 * The web server's defences, run through its CLI: the checks shared with
 * the proxy in lib/testing/http_server.ts.
 */
import { hardeningTests, startTask } from "../lib/testing/http_server.ts";

const root = await Deno.makeTempDir({ prefix: "webserver_hardening_" });
await Deno.writeTextFile(`${root}/hello.txt`, "hello, world\n");
{
  using big = await Deno.create(`${root}/big.bin`);
  await big.truncate(100 * 1024 * 1024);
}
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

hardeningTests({
  name: "webserver",
  launch: (args, options) =>
    startTask("webserver", [
      "-p",
      "0",
      "--host",
      "127.0.0.1",
      ...(options?.logToHeldStdout ? ["--workers", "1"] : ["--no-log"]),
      ...args,
      root,
    ], { ...options, holdStdout: options?.logToHeldStdout ?? false }),
  small: "/hello.txt",
  big: "/big.bin",
});
