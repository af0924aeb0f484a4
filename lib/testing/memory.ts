/**
 * A process's memory as Linux reports it in `/proc/PID/status`, for tests
 * and benchmarks that check a server's footprint from outside.
 *
 * @module
 */

async function statusField(pid: number, field: string): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (m === null) throw new Error(`No ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/**
 * The resident set of a process now (`VmRSS`), in bytes.
 *
 * @param pid The process.
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { residentBytes } from "./memory.ts";
 * import { assert } from "./assert.ts";
 * assert((await residentBytes(Deno.pid)) > 0);
 * ```
 */
export function residentBytes(pid: number): Promise<number> {
  return statusField(pid, "VmRSS");
}

/**
 * The largest resident set of a process so far (`VmHWM`), in bytes.
 *
 * @param pid The process.
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import { peakResidentBytes, residentBytes } from "./memory.ts";
 * import { assert } from "./assert.ts";
 * assert((await peakResidentBytes(Deno.pid)) >= (await residentBytes(Deno.pid)) / 2);
 * ```
 */
export function peakResidentBytes(pid: number): Promise<number> {
  return statusField(pid, "VmHWM");
}
