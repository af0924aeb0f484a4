// The CLI's input checking: one line on stderr and exit code 2.
import { assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { labTest } from "../lib/testing/mod.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

async function run(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("traceroute rejects bad input with one line and exit code 2", async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["an unknown host", ["nowhere.invalid"], /^traceroute: Cannot resolve host "nowhere\.invalid"/],
    ["no host", ["-n"], /^traceroute: missing host operand/],
    ["an unknown option", ["-x", "127.0.0.1"], /^traceroute: invalid option -- 'x'/],
    ["too many probes per hop", ["-q", "11", "127.0.0.1"], /^traceroute: invalid argument for -q/],
    ["a max TTL that is no number", ["-m", "abc", "127.0.0.1"], /invalid argument for -m: 'abc'/],
    ["a first TTL beyond the max", ["-f", "9", "-m", "5", "127.0.0.1"], /invalid argument for -f/],
    ["a bad packet length", ["127.0.0.1", "-5"], /invalid option -- '5'|invalid argument/],
    ["a bad wait", ["-w", "x", "127.0.0.1"], /invalid argument for -w/],
    ["both -I and -T", ["-I", "-T", "127.0.0.1"], /-I and -T/],
    ["a source port with ICMP", ["-I", "--sport", "5000", "127.0.0.1"], /ICMP has no ports/],
  ];
  for (const [what, args, pattern] of cases) {
    await t.step(what, async () => {
      const r = await run(args);
      assertEquals(r.code, 2, r.stderr);
      assertEquals(r.stdout, "");
      assertEquals(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assertMatch(r.stderr, pattern);
    });
  }
});

labTest("traceroute to the loopback address prints the header and one hop", async (t, lab) => {
  // Inside a lab namespace: the host's loopback carries other tests' traffic.
  for (const [name, args] of [["UDP", []], ["ICMP", ["-I"]], ["TCP", ["-T"]]] as const) {
    for (const host of ["127.0.0.1", "::1"]) {
      await t.step(`${name} to ${host}`, async () => {
        const r = await lab.exec("client", [
          Deno.execPath(),
          "run",
          "-A",
          MAIN,
          "-n",
          ...args,
          host,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const lines = r.stdout.trimEnd().split("\n");
        const re = host.replaceAll(".", "\\.");
        assertMatch(lines[0]!, new RegExp(`^traceroute to ${re} \\(`));
        assertMatch(lines[1]!, new RegExp(`^ 1 {2}${re}( {2}\\d+\\.\\d{3} ms){3}$`));
        assertEquals(lines.length, 2);
      });
    }
  }
}, { routers: 0 });
