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
  | { type: "log"; line: string }
  | { type: "stopped" };
