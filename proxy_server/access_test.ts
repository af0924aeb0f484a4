import { Lab } from "../lib/testing/mod.ts";
import { assertEquals } from "../lib/testing/assert.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/** Asks the proxy (from the client namespace) for a URL and returns the HTTP status curl saw. */
async function statusVia(
  lab: Lab,
  proxy: string,
  url: string,
  method = "GET",
): Promise<string> {
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
      "-X",
      method,
      "-x",
      proxy,
      url,
    ]);
    if (r.stdout !== "000") return r.stdout;
    await new Promise((res) => setTimeout(res, 100)); // not listening yet
  }
  return "000";
}

/** Starts the proxy in the target namespace, listening on every address. */
function spawnProxy(lab: Lab, port: string, ...args: string[]): Deno.ChildProcess {
  return lab.spawn("target", [
    Deno.execPath(),
    "run",
    "-A",
    MAIN,
    "-l",
    "0.0.0.0",
    "-p",
    port,
    "--access-log",
    "none",
    ...args,
  ]);
}

/** Stops the proxies and drains their output. */
async function stopAll(children: Deno.ChildProcess[]): Promise<void> {
  for (const child of children) {
    child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
  }
}

Deno.test("proxy serves only loopback and --allow networks, even when listening on every address", async (t) => {
  await using lab = await Lab.create({ routers: 0 });
  const target = lab.host("target").v4;
  const client = lab.host("client").v4;
  const closed = spawnProxy(lab, "8888");
  const open = spawnProxy(lab, "8889", "--allow", `${client}/32`);
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
    await stopAll([closed, open]);
  }
});

Deno.test("PURGE is accepted only from loopback and --purge-allow networks", async (t) => {
  await using lab = await Lab.create({ routers: 0 });
  const target = lab.host("target").v4;
  const client = lab.host("client").v4;
  // Allowed to use the proxy, not to purge; and allowed to purge only.
  const user = spawnProxy(lab, "8888", "--allow", `${client}/32`);
  const purger = spawnProxy(lab, "8889", "--purge-allow", `${client}/32`);
  try {
    await t.step("an --allow client that is not in --purge-allow gets 403", async () => {
      assertEquals(await statusVia(lab, `http://${target}:8888`, "http://127.0.0.1:1/"), "502");
      assertEquals(
        await statusVia(lab, `http://${target}:8888`, "http://127.0.0.1:1/", "PURGE"),
        "403",
      );
    });
    await t.step("a --purge-allow client may purge (404: nothing stored), not fetch", async () => {
      assertEquals(
        await statusVia(lab, `http://${target}:8889`, "http://127.0.0.1:1/", "PURGE"),
        "404",
      );
      assertEquals(await statusVia(lab, `http://${target}:8889`, "http://127.0.0.1:1/"), "403");
    });
  } finally {
    await stopAll([user, purger]);
  }
});
