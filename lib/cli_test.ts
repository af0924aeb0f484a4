import { assertEquals, assertThrows } from "./testing/assert.ts";
import { CliError, parseArgs, parseNumber } from "./cli.ts";

const TABLE = {
  numeric: { short: "n", type: "boolean" },
  icmp: { short: "I", type: "boolean" },
  "max-hops": { short: "m", type: "string" },
  wait: { short: "w", type: "string" },
  header: { short: "H", type: "string", multiple: true },
} as const;

Deno.test("parseArgs() reads options as getopt does", async (t) => {
  const cases: [string[], Record<string, unknown>, string[]][] = [
    [["-n", "-I", "h"], { numeric: true, icmp: true }, ["h"]],
    [["-nIm5", "h", "100"], { numeric: true, icmp: true, "max-hops": "5" }, ["h", "100"]],
    [["-m", "5", "h"], { "max-hops": "5" }, ["h"]],
    [["--max-hops=7", "--wait", "1,2,3", "h"], { "max-hops": "7", wait: "1,2,3" }, ["h"]],
    [["h", "-n"], { numeric: true }, ["h"]],
    [["--", "-n"], {}, ["-n"]],
    [["-m", "-1"], { "max-hops": "-1" }, []],
    [["-H", "a: 1", "--header=b: 2", "-Hc: 3"], { header: ["a: 1", "b: 2", "c: 3"] }, []],
    [["-"], {}, ["-"]],
  ];
  for (const [args, values, positionals] of cases) {
    await t.step(
      args.join(" "),
      () => assertEquals(parseArgs(args, TABLE), { values, positionals }),
    );
  }
});

Deno.test("parseArgs() turns unknown options and missing values into exit-2 errors", () => {
  const cases: [string[], string][] = [
    [["-x"], "invalid option -- 'x'"],
    [["--nope"], "unknown option '--nope'"],
    [["-m"], "option requires an argument -- 'm'"],
    [["--wait"], "option '--wait' requires an argument"],
    [["--numeric=1"], "option '--numeric' does not take a value"],
    [["--constructor"], "unknown option '--constructor'"],
  ];
  for (const [args, message] of cases) {
    const err = assertThrows(() => parseArgs(args, TABLE), CliError);
    assertEquals([err.message, err.exitCode], [message, 2]);
  }
});

Deno.test("parseNumber() accepts numbers in range and names the option otherwise", () => {
  assertEquals(parseNumber("-c", " 3 ", { min: 1, integer: true }), 3);
  assertEquals(parseNumber("-i", "0.2", { min: 0 }), 0.2);
  const cases: [string, string][] = [
    ["x", "invalid argument for -c: 'x'"],
    ["", "invalid argument for -c: ''"],
    ["1.5", "invalid argument for -c: '1.5'"],
    ["0", "invalid argument for -c: '0': out of range: 1 <= value <= 100"],
    ["101", "invalid argument for -c: '101': out of range: 1 <= value <= 100"],
  ];
  for (const [text, message] of cases) {
    const err = assertThrows(
      () => parseNumber("-c", text, { min: 1, max: 100, integer: true }),
      CliError,
    );
    assertEquals(err.message, message);
  }
});
