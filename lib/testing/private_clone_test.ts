/**
 * The suite from a checkout that user nobody cannot read: a root user's
 * clone under `/root`, or one in a `mktemp -d` directory (mode 0700). Tests
 * that drop privileges must still pass there, so this clones the project
 * into such a directory and runs one of them from the clone.
 *
 * The clone holds the committed tree (`git clone`), which is what CI tests.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { labAvailable } from "./lab.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(cmd: string[], options: Deno.CommandOptions = {}) {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdin: "null", ...options })
    .output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

const available = labAvailable();
const ci = Deno.env.get("CI") === "true";

Deno.test({
  name: "a test that runs as nobody passes from a clone in a private mktemp -d directory",
  ignore: !available.ok && !ci,
  async fn() {
    if (!available.ok) throw new Error(`Cannot drop privileges here: ${available.reason}`);
    const home = await Deno.makeTempDir({ prefix: "netkit_private_" });
    try {
      assertEquals((await Deno.stat(home)).mode! & 0o777, 0o700);
      const clone = `${home}/netkit`;
      const cloned = await run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, clone]);
      assertEquals(cloned.code, 0, cloned.stderr);
      // The premise: nobody cannot read the clone's modules.
      const peek = await run(["runuser", "-u", "nobody", "--", "test", "-r", `${clone}/deno.json`]);
      assertEquals(peek.code, 1, "nobody can read the clone: the test proves nothing");

      const r = await run([
        Deno.execPath(),
        "test",
        "-A",
        "--filter",
        "ping works unprivileged",
        `${clone}/icmp_pinger/ping_lab_test.ts`,
      ], { cwd: clone, env: { NO_COLOR: "1" } });
      const output = r.stdout + r.stderr;
      assertEquals(r.code, 0, output);
      assertMatch(output, /ok \| 1 passed \(\d+ steps?\) \| 0 failed/);
      assert(!/ignored/.test(output.split("\n").at(-2) ?? ""), output);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});
