import { consoleAssertLines } from "./_doc_asserts.ts";
import { assertEquals } from "./assert.ts";

// Built at run time so this file's own source holds no call for the check to find.
const CALL = "console" + ".assert";

Deno.test("consoleAssertLines() finds console.assert in JSDoc examples only", async (t) => {
  const cases: { name: string; lines: string[]; want: number[] }[] = [
    {
      name: "a call in a fenced @example block",
      lines: ["/**", " * @example", " * ```ts", ` * ${CALL}(f() === 1);`, " * ```", " */"],
      want: [4],
    },
    {
      name: "a call after @example without a fence, and in a class member's example",
      lines: [
        "/**",
        " * @example",
        ` * ${CALL}(x);`,
        " */",
        "  /**",
        "   * @example",
        `   * ${CALL}(y);`,
        "   */",
      ],
      want: [3, 7],
    },
    {
      name: "a fenced block in JSDoc prose before any tag",
      lines: ["/**", " * ```ts", ` * ${CALL}(x);`, " * ```", " */"],
      want: [3],
    },
    {
      name: "prose, another tag after the example, and code outside JSDoc",
      lines: [
        "/**",
        ` * \`${CALL}\` only logs: ${CALL}(x) passes.`,
        " * @example",
        " * f();",
        ` * @returns Not ${CALL}(x).`,
        " */",
        `${CALL}(x);`,
        `/** ${CALL}(x) */`,
      ],
      want: [],
    },
    {
      name: "a tag inside a fence does not end the example",
      lines: ["/**", " * @example", " * ```ts", " * @returns", " * ```", ` * ${CALL}(x);`, " */"],
      want: [6],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => assertEquals(consoleAssertLines(c.lines.join("\n")), c.want));
  }
});
