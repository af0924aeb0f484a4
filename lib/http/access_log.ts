/**
 * Access logs: the Combined Log Format of Apache and nginx, and a buffered
 * line writer, so logging costs no write per request. The server core hands
 * each tool an {@linkcode AccessLogEntry}; the tool picks the format (the
 * proxy writes Squid's).
 *
 * @module
 */
import { writeAll } from "../bytes.ts";
import type { AccessLogEntry } from "./server.ts";

const encoder = new TextEncoder();

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function quote(text: string | null): string {
  if (text === null) return "-";
  // Apache escapes quotes, backslashes and controls so a line cannot be forged.
  return text.replace(
    // deno-lint-ignore no-control-regex
    /["\\\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * Formats an access-log record in the Combined Log Format of Apache and
 * nginx: `host - - [day/Mon/year:HH:MM:SS +0000] "request" status bytes "referer" "agent"`.
 *
 * @param entry The record.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatCombinedLog } from "./access_log.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const line = formatCombinedLog({
 *   remoteAddr: "127.0.0.1", time: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
 *   duration: 1, method: "GET", target: "/", requestLine: "GET / HTTP/1.1", status: 200, bytes: 12,
 *   sent: 100, referer: null, userAgent: "curl/8", extra: undefined,
 * });
 * assertEquals(line, '127.0.0.1 - - [02/Jan/2024:03:04:05 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"');
 * ```
 */
export function formatCombinedLog(entry: AccessLogEntry): string {
  const t = entry.time;
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${p(t.getUTCDate())}/${MONTHS[t.getUTCMonth()]}/${t.getUTCFullYear()}:${
    p(t.getUTCHours())
  }:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())} +0000`;
  // CLF writes "-" for an empty body.
  const bytes = entry.bytes === 0 ? "-" : String(entry.bytes);
  return `${entry.remoteAddr} - - [${stamp}] "${
    quote(entry.requestLine)
  }" ${entry.status} ${bytes} "${quote(entry.referer)}" "${quote(entry.userAgent)}"`;
}

/** Options of {@linkcode LogWriter}. */
export interface LogWriterOptions {
  /**
   * Bytes of lines that may wait for the output at once; past it, lines are
   * dropped and counted until the output catches up.
   * @default {8388608}
   */
  maxPending?: number;
  /**
   * Where the writer says that it drops lines, and how many it dropped.
   * @default {console.error}
   */
  onWarning?: (message: string) => void;
}

/**
 * A buffered line writer for access logs: lines are batched and written at
 * most every 100 ms, so logging costs no write per request.
 *
 * The lines waiting for the output are bounded ({@linkcode LogWriterOptions.maxPending},
 * 8 MiB): when the output does not keep up (a pipe nobody reads, a full
 * disk that blocks), lines past the bound are dropped, with a warning when
 * dropping begins and one with the count once the output has caught up. A
 * server keeps serving, in bounded memory, rather than queue its log
 * without end; its log, not its answers, is what a stalled reader costs.
 *
 * @example
 * ```ts
 * import { LogWriter } from "./access_log.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const chunks: Uint8Array[] = [];
 * const log = new LogWriter({ write: (p) => (chunks.push(p.slice()), Promise.resolve(p.length)) });
 * log.write("one");
 * await log.close();
 * assertEquals(new TextDecoder().decode(chunks[0]), "one\n");
 * ```
 *
 * @example An output that never takes a byte: the lines past the bound are dropped
 * ```ts
 * import { LogWriter } from "./access_log.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const warnings: string[] = [];
 * let release = () => {};
 * const stalled = new Promise<void>((resolve) => release = resolve);
 * const log = new LogWriter(
 *   { write: async (p) => (await stalled, p.length) },
 *   { maxPending: 8, onWarning: (m) => warnings.push(m) },
 * );
 * for (const line of ["abc", "def", "ghi"]) log.write(line);
 * void log.flush();
 * assertEquals(warnings.length, 1); // "ghi" did not fit: dropping began.
 * release();
 * await log.flush();
 * log.write("jkl"); // Taken: the output caught up.
 * assertEquals(warnings[1], "access log: 1 line dropped while the output was behind");
 * await log.close();
 * ```
 */
export class LogWriter {
  #out: { write(p: Uint8Array): Promise<number> };
  #lines: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();
  readonly #maxPending: number;
  readonly #warn: (message: string) => void;
  /** Bytes queued as lines or encoded and not yet written (lines counted by their length). */
  #pending = 0;
  #dropped = 0;

  /**
   * Creates a writer.
   *
   * @param out Where lines go: `Deno.stdout`, or an opened file.
   * @param options The bound on waiting lines and the warning sink.
   */
  constructor(out: { write(p: Uint8Array): Promise<number> }, options: LogWriterOptions = {}) {
    this.#out = out;
    this.#maxPending = options.maxPending ?? 8 << 20;
    this.#warn = options.onWarning ?? ((m) => console.error(m));
  }

  /**
   * Queues one line (a newline is added), or drops it when the lines
   * waiting already fill the bound.
   *
   * @param line The line.
   */
  write(line: string): void {
    const size = line.length + 1;
    // Once dropping, go on until half the bound is written: one warning per
    // stall, not one per flush while the output crawls.
    if (
      this.#dropped > 0
        ? this.#pending > this.#maxPending / 2
        : this.#pending + size > this.#maxPending
    ) {
      if (this.#dropped++ === 0) {
        this.#warn(
          `access log: the output is ${this.#pending} bytes behind; dropping lines until it catches up`,
        );
      }
      return;
    }
    this.#reportDropped();
    this.#pending += size;
    this.#lines.push(line);
    if (this.#lines.length >= 512) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), 100);
  }

  /**
   * Writes every queued line.
   *
   * @returns Resolves when they are written.
   */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return this.#flushing;
    const text = this.#lines.join("\n") + "\n";
    const data = encoder.encode(text);
    this.#lines = [];
    // Counted by length when queued; by bytes from now until written.
    this.#pending += data.length - text.length;
    this.#flushing = this.#flushing
      .then(() => writeAll(this.#out, data))
      .catch(() => {})
      .then(() => {
        this.#pending -= data.length;
      });
    return this.#flushing;
  }

  /** Says how many lines were dropped, if any, and starts counting again. */
  #reportDropped(): void {
    const n = this.#dropped;
    if (n === 0) return;
    this.#dropped = 0;
    this.#warn(`access log: ${n} line${n === 1 ? "" : "s"} dropped while the output was behind`);
  }

  /**
   * Flushes, stops the timer, and says how many lines were dropped, if any.
   *
   * @returns Resolves when everything is written.
   */
  async close(): Promise<void> {
    await this.flush();
    this.#reportDropped();
  }
}
