/**
 * What the UDP ping server's main thread and its receive loops
 * (`_server_worker.ts`) exchange: the start message, the loops' messages
 * and the layout of their shared counters.
 *
 * @module
 */
import type { Family } from "../lib/sockaddr.ts";
import type { PingServiceOptions } from "./server.ts";

/** Per-thread counters in the shared array, in this order. */
export const COUNTERS = [
  "datagrams",
  "replies",
  "malformed",
  "clients",
  "rejected",
  "replayed",
  "realtime",
  "realtimeExits",
] as const;

/** What the main thread sends to start the loop. */
export interface WorkerStart {
  /** The socket's descriptor (the main thread owns it and closes it after "stopped"). */
  fd: number;
  /** Its IP version. */
  family: Family;
  /** This loop's index, for its counters. */
  index: number;
  /** The service's options, without the log function. */
  service: Omit<PingServiceOptions, "log">;
  /** `SCHED_FIFO` priority while lightly loaded, 0 for never (see `ServeOptions.realtime`). */
  realtime: number;
  /** Whether to send session log lines. */
  log: boolean;
  /** Int32 per thread: log lines posted and not yet written ({@linkcode LogRelay}). */
  logBacklog: SharedArrayBuffer;
  /** Most delayed replies waiting at once. */
  maxPending: number;
  /** Int32 [stop flag]. */
  control: SharedArrayBuffer;
  /** Float64 counters, {@linkcode COUNTERS}.length per thread. */
  counters: SharedArrayBuffer;
}

/** What the loop sends back. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "log"; lines: string[] }
  | { type: "stopped" };

/**
 * Lines a loop posts at once: the main thread writes each batch in one
 * write. With batches of 256 lines the flood test's resident set grew 11
 * to 23 MB per 100,000 datagrams (the log read on); with 32, and with one
 * line per message as before, it stayed flat.
 */
export const LOG_BATCH = 32;

/**
 * Lines a loop may have posted and the main thread not yet written. Past
 * it, new lines are dropped and counted, and a line saying how many comes
 * once there is room: when the main thread cannot write them (stderr a
 * pipe nobody reads, a machine too busy for it), lines otherwise queued
 * without bound. About 2 MB of lines.
 */
export const LOG_BACKLOG = 10_000;

/**
 * A receive loop's session log, on its way to the main thread: lines go in
 * batches of {@linkcode LOG_BATCH}, and at most {@linkcode LOG_BACKLOG} are
 * in flight; the main thread subtracts what it has written from the
 * shared count.
 *
 * @example Lines past the backlog are dropped, then reported
 * ```ts
 * import { LogRelay } from "./_server_thread.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const backlog = new Int32Array(new SharedArrayBuffer(4));
 * const posted: string[][] = [];
 * const relay = new LogRelay(backlog, 0, (lines) => posted.push(lines), { batch: 2, limit: 2 });
 * for (const line of ["a", "b", "c"]) relay.add(line);
 * assertEquals(posted, [["a", "b"]]);
 * Atomics.sub(backlog, 0, 2); // The main thread wrote them.
 * relay.flush();
 * assertEquals(posted[1], ["udp-server: 1 session log line dropped: the log fell behind"]);
 * ```
 */
export class LogRelay {
  readonly #backlog: Int32Array;
  readonly #slot: number;
  readonly #post: (lines: string[]) => void;
  readonly #batch: number;
  #limit: number;
  #lines: string[] = [];
  #dropped = 0;

  /**
   * @param backlog The shared counts, one per loop.
   * @param slot This loop's index in it.
   * @param post Sends a batch to the main thread.
   * @param options Batch size and backlog limit (for tests).
   */
  constructor(
    backlog: Int32Array,
    slot: number,
    post: (lines: string[]) => void,
    options: { batch?: number; limit?: number } = {},
  ) {
    this.#backlog = backlog;
    this.#slot = slot;
    this.#post = post;
    this.#batch = options.batch ?? LOG_BATCH;
    this.#limit = options.limit ?? LOG_BACKLOG;
  }

  /**
   * Queues a line; posts the batch when it is full.
   *
   * @param line The line, without a newline.
   */
  add(line: string): void {
    if (Atomics.load(this.#backlog, this.#slot) + this.#lines.length >= this.#limit) {
      this.#dropped++;
      return;
    }
    this.#lines.push(line);
    if (this.#lines.length >= this.#batch) this.flush();
  }

  /** Lifts the backlog limit: for the lines at shutdown, which the main thread waits for. */
  unbound(): void {
    this.#limit = Infinity;
  }

  /** Posts what is queued, after the count of lines dropped if there is room to say so. */
  flush(): void {
    if (
      this.#dropped > 0 &&
      Atomics.load(this.#backlog, this.#slot) + this.#lines.length < this.#limit
    ) {
      const n = this.#dropped;
      this.#dropped = 0;
      this.#lines.push(
        `udp-server: ${n} session log line${n === 1 ? "" : "s"} dropped: the log fell behind`,
      );
    }
    const lines = this.#lines;
    if (lines.length === 0) return;
    this.#lines = [];
    Atomics.add(this.#backlog, this.#slot, lines.length);
    this.#post(lines);
  }
}
