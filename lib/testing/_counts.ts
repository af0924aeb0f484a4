/**
 * The test counts that `deno task test` prints last: doc examples (JSDoc and
 * README code blocks run by `deno test --doc`) apart from tests written as
 * `Deno.test`, so the total does not hide how much of it is examples.
 *
 * Usage: `deno run --allow-read lib/testing/_counts.ts REPORT.xml...` with the
 * JUnit reports that `deno test --junit-path` wrote. It prints one line per
 * kind and exits 1 when a report holds a failure; 2 on a usage error or an
 * unreadable report; 0 otherwise. Ignored tests are counted, not judged: under
 * `CI=true` the lab's own rule already fails them.
 *
 * @module
 */

/** What one or more JUnit reports hold, by kind of test. */
export interface TestCounts {
  /** Code blocks of JSDoc comments and Markdown files, run by `--doc`. */
  docExamples: number;
  /** Top-level `Deno.test` registrations. */
  tests: number;
  /** `t.step` cases inside those tests. */
  steps: number;
  /** Test cases (of any kind) that failed or errored. */
  failed: number;
  /** Test cases reported as skipped (ignored). */
  ignored: number;
}

// deno names the module of a doc example after its source and line range:
// "./lib/bytes.ts#12-20.ts" or "./README.md#40-52.sh".
const DOC_SUITE = /#\d+-\d+\.\w+$/;
const SUITE = /<testsuite\b[^>]*\bname="([^"]*)"[^>]*>([\s\S]*?)<\/testsuite>/g;
const CASE = /<testcase\b[^>]*\bname="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g;

/**
 * Counts the test cases of a JUnit report written by `deno test --junit-path`.
 *
 * @param xml The report's text.
 * @returns The counts by kind; a step is a case whose name holds ` > `.
 *
 * @example
 * ```ts
 * import { countReport } from "./_counts.ts";
 * import { assertEquals } from "./assert.ts";
 * const xml = `<testsuites>
 *   <testsuite name="./a_test.ts"><testcase name="adds"></testcase>
 *     <testcase name="group"></testcase><testcase name="group &gt; s1"><failure/></testcase>
 *   </testsuite>
 *   <testsuite name="./a.ts#4-8.ts"><testcase name="file:///a.ts#4-8.ts"><skipped/></testcase></testsuite>
 * </testsuites>`;
 * assertEquals(countReport(xml), { docExamples: 1, tests: 2, steps: 1, failed: 1, ignored: 1 });
 * ```
 */
export function countReport(xml: string): TestCounts {
  const counts: TestCounts = { docExamples: 0, tests: 0, steps: 0, failed: 0, ignored: 0 };
  for (const [, suite = "", body = ""] of xml.matchAll(SUITE)) {
    for (const [, name = "", inner = ""] of body.matchAll(CASE)) {
      if (DOC_SUITE.test(suite)) counts.docExamples++;
      else if (name.includes(" &gt; ")) counts.steps++;
      else counts.tests++;
      if (/<(failure|error)\b/.test(inner)) counts.failed++;
      if (/<skipped\b/.test(inner)) counts.ignored++;
    }
  }
  return counts;
}

if (import.meta.main) {
  if (Deno.args.length === 0) {
    console.error("usage: _counts.ts REPORT.xml...");
    Deno.exit(2);
  }
  const total: TestCounts = { docExamples: 0, tests: 0, steps: 0, failed: 0, ignored: 0 };
  for (const path of Deno.args) {
    let xml: string;
    try {
      xml = Deno.readTextFileSync(path);
    } catch (error) {
      console.error(`_counts.ts: ${path}: ${error instanceof Error ? error.message : error}`);
      Deno.exit(2);
    }
    const counts = countReport(xml);
    for (const key of Object.keys(total) as (keyof TestCounts)[]) total[key] += counts[key];
  }
  console.log(`doc examples: ${total.docExamples}`);
  console.log(`tests: ${total.tests} (with ${total.steps} steps inside them)`);
  console.log(`failed: ${total.failed}, ignored: ${total.ignored}`);
  Deno.exit(total.failed === 0 ? 0 : 1);
}
