/**
 * What the tests mask before comparing our ping's output with iputils'.
 *
 * @module
 */

/**
 * Masks what legitimately differs between two runs of ping on the same path:
 * round-trip times, the elapsed time, `-D` timestamps and the ipg/ewma
 * figures; and what depends on how the scheduler interleaves sending with
 * receiving: the `pipe N` figure (the most requests ever outstanding) and the
 * order of a flood's dots and backspaces, whose counts are kept.
 *
 * @param text One run's standard output.
 * @returns The text with each varying figure replaced by a fixed token.
 *
 * @example
 * ```ts
 * import { maskPingOutput } from "./_compare.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const iputils = "..\b \b\b \b\nrtt min/avg/max/mdev = 0.1/0.2/0.3/0.05 ms, pipe 2, ipg/ewma 0.4/0.2 ms\n";
 * const ours = ".\b \b.\b \b\nrtt min/avg/max/mdev = 0.2/0.2/0.2/0.01 ms, ipg/ewma 0.5/0.3 ms\n";
 * assertEquals(maskPingOutput(ours), maskPingOutput(iputils));
 * assertEquals(maskPingOutput("pipe 2\n"), "\n");
 * ```
 */
export function maskPingOutput(text: string): string {
  return text
    .replace(/time=[\d.]+ ms/g, "time=T ms")
    .replace(/time \d+ms/g, "time Tms")
    .replace(/= [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/g, "= R ms")
    .replace(/ipg\/ewma [\d.]+\/[\d.]+ ms/g, "ipg/ewma I ms")
    .replace(/^\[\d+\.\d{6}\] /gm, "[TS] ")
    // iputils prints "pipe N" alone on the line when no reply came back.
    .replace(/(, )?pipe \d+/g, "")
    .split("\n").map((line) => line.includes("\b") ? floodCounts(line) : line).join("\n");
}

/** A flood line as its counts: each request prints "." and each reply erases one. */
function floodCounts(line: string): string {
  const erased = line.split("\b \b").length - 1;
  const rest = line.replaceAll("\b \b", "");
  const dots = rest.split(".").length - 1;
  return `[${dots} sent, ${erased} answered] ${rest.replaceAll(".", "")}`;
}
