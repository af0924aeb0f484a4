// The CLI's input checking: one line on stderr and exit code 2.
import { assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { assertHelpLists, labTest, taskCommand } from "../lib/testing/mod.ts";
import { OPTIONS } from "./main.ts";

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
    ["no host", ["-n"], /^traceroute: missing host operand/],
    ["an unknown option", ["-x", "127.0.0.1"], /^traceroute: invalid option -- 'x'/],
    ["too many probes per hop", ["-q", "11", "127.0.0.1"], /^traceroute: invalid argument for -q/],
    ["a max TTL that is no number", ["-m", "abc", "127.0.0.1"], /invalid argument for -m: 'abc'/],
    ["a first TTL beyond the max", ["-f", "9", "-m", "5", "127.0.0.1"], /invalid argument for -f/],
    ["a bad packet length", ["127.0.0.1", "-5"], /invalid option -- '5'|invalid argument/],
    ["a bad wait", ["-w", "x", "127.0.0.1"], /invalid argument for -w/],
    ["both -I and -T", ["-I", "-T", "127.0.0.1"], /-I and -T/],
    ["a source port with ICMP", ["-I", "--sport", "5000", "127.0.0.1"], /ICMP has no ports/],
    ["--mtu with TCP", ["-T", "--mtu", "127.0.0.1"], /Cannot use --mtu or -F with TCP/],
    ["--dot without --flows", ["--dot", "127.0.0.1"], /--dot needs --flows/],
    ["no flows", ["--flows", "0", "127.0.0.1"], /invalid argument for --flows/],
    ["--flows with --report", ["--flows", "2", "-r", "127.0.0.1"], /--flows cannot be used/],
    [
      "flows beyond the last port",
      ["--flows", "4", "--sport", "65534", "::1"],
      /ports up to 65535/,
    ],
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

Deno.test("traceroute words an unknown host as Butskoy does, exit code 2", async (t) => {
  for (const args of [["nowhere.invalid"], ["-n", "-q", "1", "nowhere.invalid"], ["-4", "::1"]]) {
    await t.step(args.join(" "), async () => {
      const a = await run(args);
      const b = await new Deno.Command("traceroute", { args, stdout: "piped", stderr: "piped" })
        .output();
      const dec = new TextDecoder();
      assertEquals(a, { code: b.code, stdout: dec.decode(b.stdout), stderr: dec.decode(b.stderr) });
      assertEquals(a.code, 2);
    });
  }
});

Deno.test("traceroute --help lists every option with its default, on stdout, exit 0", async () => {
  const help = await assertHelpLists("traceroute", OPTIONS);
  assertMatch(help, /^Usage: deno task traceroute /);
});

labTest(
  "traceroute as nobody without privilege: Butskoy's lines, then how to fix it",
  async (t, lab) => {
    // A closed ping_group_range leaves ICMP with no socket nobody may open.
    await lab.sysctl("client", "net.ipv4.ping_group_range", "1 0");
    const cases: [string, string, RegExp][] = [
      [
        "-I",
        "ICMP",
        /^traceroute: to fix, as root: sysctl -w net\.ipv4\.ping_group_range="0 2147483647" \(admits group 65534; now "1 0"\)$/,
      ],
      [
        "-T",
        "TCP",
        /^traceroute: to fix, as root: setcap cap_net_raw\+ep \S+ \(raw sockets need it\)$/,
      ],
    ];
    for (const [flag, method, fix] of cases) {
      await t.step(`${method}: ${flag}`, async () => {
        const args = [flag, "-n", "127.0.0.1"];
        const a = await lab.exec("client", taskCommand("traceroute", args), { user: "nobody" });
        const b = await lab.exec("client", ["traceroute", ...args], { user: "nobody" });
        assertEquals([a.code, a.stdout], [b.code, b.stdout]);
        assertEquals(a.code, 1);
        const ours = a.stderr.trimEnd().split("\n");
        const butskoy = b.stderr.trimEnd().split("\n");
        assertEquals(butskoy.length, 2, b.stderr);
        // Butskoy tries the ICMP datagram socket first and reports the raw
        // socket's EPERM; ours tries raw first and reports the datagram
        // socket's EACCES, so only -T's socket line is the same.
        assertEquals(ours.slice(0, flag === "-T" ? 2 : 1), butskoy.slice(0, flag === "-T" ? 2 : 1));
        assertMatch(ours[1]!, /^socket: /);
        assertEquals(ours.length, 3, a.stderr);
        assertMatch(ours[2]!, fix);
      });
    }
  },
  { routers: 0 },
);

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
