import { assertEquals, assertThrows } from "./testing/assert.ts";
import { CliError, describePath, formatHelp, parseArgs, parseNumber, userPath } from "./cli.ts";

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
    [["--nope"], "unrecognized option '--nope'"],
    [["-m"], "option requires an argument -- 'm'"],
    [["--wait"], "option '--wait' requires an argument"],
    [["--numeric=1"], "option '--numeric' doesn't allow an argument"],
    [["--constructor"], "unrecognized option '--constructor'"],
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

Deno.test("formatHelp() lists every option of the table with its short form and default", () => {
  const help = formatHelp(
    {
      port: { type: "string", short: "p", arg: "N", default: "8000", description: "port" },
      header: { type: "string", arg: "LINE", multiple: true, description: "extra header" },
      "a-very-long-option-name": { type: "string", description: "long", group: "Tuning" },
      help: { type: "boolean", short: "h", description: "show this help" },
    },
    { usage: "Usage: demo [options]", summary: "Does a thing.", footer: "Exit codes: 0." },
  );
  const lines = help.split("\n");
  assertEquals(lines.slice(0, 5), ["Usage: demo [options]", "", "Does a thing.", "", "Options:"]);
  assertEquals(lines.find((l) => l.includes("--port"))?.trim().split(/\s{2,}/), [
    "-p, --port N",
    "port (default: 8000)",
  ]);
  assertEquals(
    lines.find((l) => l.includes("--header"))?.trim().split(/\s{2,}/)[1],
    "extra header (repeatable)",
  );
  // A long flag keeps its description on its own line, after a heading.
  const at = lines.indexOf("Tuning:");
  assertEquals(lines[at + 1]?.trim().split(/\s{2,}/), ["--a-very-long-option-name VALUE", "long"]);
  assertEquals(help.endsWith("Exit codes: 0.\n"), true);
});

Deno.test("userPath() resolves against INIT_CWD, else the working directory", () => {
  const saved = Deno.env.get("INIT_CWD");
  try {
    Deno.env.set("INIT_CWD", "/tmp/site");
    assertEquals(userPath("note.txt"), "/tmp/site/note.txt");
    assertEquals(userPath("./a/../b/c.txt"), "/tmp/site/b/c.txt");
    assertEquals(userPath("."), "/tmp/site");
    assertEquals(userPath("/etc/hosts"), "/etc/hosts");
    assertEquals(describePath("note.txt"), '"note.txt" (/tmp/site/note.txt)');
    Deno.env.delete("INIT_CWD");
    assertEquals(userPath("x"), `${Deno.cwd()}/x`);
  } finally {
    if (saved === undefined) Deno.env.delete("INIT_CWD");
    else Deno.env.set("INIT_CWD", saved);
  }
});
