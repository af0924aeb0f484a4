import { Lab } from "../lib/testing/mod.ts";
import { assertEquals } from "../lib/testing/assert.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/** Asks the proxy (from the client namespace) for a URL and returns the HTTP status curl saw. */
async function statusVia(lab: Lab, proxy: string, url: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const r = await lab.exec("client", [
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "--max-time",
      "5",
      "-x",
      proxy,
      url,
    ]);
    if (r.stdout !== "000") return r.stdout;
    await new Promise((res) => setTimeout(res, 100)); // not listening yet
  }
  return "000";
}

Deno.test("proxy serves only loopback and --allow networks, even when listening on every address", async (t) => {
  await using lab = await Lab.create({ routers: 0 });
  const target = lab.host("target").v4;
  const client = lab.host("client").v4;
  const closed = lab.spawn("target", [
    Deno.execPath(),
    "run",
    "-A",
    MAIN,
    "-l",
    "0.0.0.0",
    "-p",
    "8888",
    "--access-log",
    "none",
  ]);
  const open = lab.spawn("target", [
    Deno.execPath(),
    "run",
    "-A",
    MAIN,
    "-l",
    "0.0.0.0",
    "-p",
    "8889",
    "--access-log",
    "none",
    "--allow",
    `${client}/32`,
  ]);
  try {
    await t.step("a non-loopback client without --allow gets 403", async () => {
      assertEquals(await statusVia(lab, `http://${target}:8888`, "http://127.0.0.1:1/"), "403");
    });
    await t.step(
      "an allowed client is served (here: 502, nothing listens at the origin)",
      async () => {
        assertEquals(await statusVia(lab, `http://${target}:8889`, "http://127.0.0.1:1/"), "502");
      },
    );
  } finally {
    for (const child of [closed, open]) {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
    }
  }
});
