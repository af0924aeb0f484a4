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

/**
 * A buffered line writer for access logs: lines are batched and written at
 * most every 100 ms, so logging costs no write per request.
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
 */
export class LogWriter {
  #out: { write(p: Uint8Array): Promise<number> };
  #lines: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  /**
   * Creates a writer.
   *
   * @param out Where lines go: `Deno.stdout`, or an opened file.
   */
  constructor(out: { write(p: Uint8Array): Promise<number> }) {
    this.#out = out;
  }

  /**
   * Queues one line (a newline is added).
   *
   * @param line The line.
   */
  write(line: string): void {
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
    const data = encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    this.#flushing = this.#flushing.then(() => writeAll(this.#out, data)).catch(() => {});
    return this.#flushing;
  }

  /**
   * Flushes and stops the timer.
   *
   * @returns Resolves when everything is written.
   */
  async close(): Promise<void> {
    await this.flush();
  }
}
