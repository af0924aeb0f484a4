/**
 * The main loop's side of `--workers`: starts the hit loops
 * ({@linkcode HitLoop} in Web Workers), posts them copies of fresh small
 * responses, bumps the shared version of a URI before what is stored under
 * it changes, gathers their counters for `/metrics`, and stops them.
 *
 * @module
 */
import type { LoopCounts } from "./_metrics.ts";
import {
  type CopyData,
  type FromLoop,
  type LoopConfig,
  slotOf,
  type ToLoop,
  VERSION_SLOTS,
} from "./_loop.ts";

/** Largest body copied to the hit loops; larger ones are served by the main loop. */
export const MAX_COPY_BYTES = 256 << 10;

/** The hit loops of one proxy. */
export class Loops {
  readonly #workers: Worker[];
  readonly #versions: Int32Array;
  readonly #pending = new Map<number, (m: FromLoop) => void>();
  /** The version each URI was last posted at. */
  readonly #posted = new Map<string, number>();
  #next = 1;

  private constructor(workers: Worker[], versions: Int32Array, onLines: (lines: string[]) => void) {
    this.#workers = workers;
    this.#versions = versions;
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<FromLoop>) => {
        const m = e.data;
        if ("type" in m) onLines(m.lines);
        else this.#pending.get(m.id)?.(m);
      };
      // A loop that fails fails every request waiting on the loops.
      w.onerror = (e) => {
        e.preventDefault();
        for (const [id, settle] of this.#pending) {
          settle({ id, ok: false, error: `hit loop failed: ${e.message}` });
        }
      };
    }
  }

  /**
   * Starts `count` hit loops.
   *
   * @param count How many (at least 1).
   * @param config Their settings, without `index` and `versions`.
   * @param onLines Receives the access-log lines they post.
   * @returns The loops, listening.
   */
  static async start(
    count: number,
    config: Omit<LoopConfig, "index" | "versions">,
    onLines: (lines: string[]) => void,
  ): Promise<Loops> {
    const buffer = new SharedArrayBuffer(VERSION_SLOTS * 4);
    const workers: Worker[] = [];
    for (let i = 0; i < count; i++) {
      workers.push(new Worker(new URL("./_loop_worker.ts", import.meta.url), { type: "module" }));
    }
    const loops = new Loops(workers, new Int32Array(buffer), onLines);
    try {
      await Promise.all(workers.map((w, i) =>
        loops.#ask(w, {
          id: 0,
          type: "start",
          config: { ...config, index: i + 1, versions: buffer },
        })
      ));
    } catch (err) {
      for (const w of workers) w.terminate();
      throw err;
    }
    return loops;
  }

  /**
   * Marks what is stored under a URI as changing: copies of it stop being
   * served at once.
   *
   * @param url The absolute URI.
   */
  changed(url: string): void {
    Atomics.add(this.#versions, slotOf(url), 1);
    this.#posted.delete(url);
  }

  /**
   * Posts a copy of a fresh response to every hit loop, unless the current
   * version of its URI was posted already.
   *
   * @param url The absolute URI (stored without Vary).
   * @param make Builds the copy's data, given the slot and its version.
   */
  offer(url: string, make: (slot: number, version: number) => CopyData | undefined): void {
    const slot = slotOf(url);
    const version = Atomics.load(this.#versions, slot);
    if (this.#posted.get(url) === version) return;
    const copy = make(slot, version);
    if (copy === undefined || copy.body.length > MAX_COPY_BYTES) return;
    if (this.#posted.size >= 100_000) this.#posted.clear();
    this.#posted.set(url, version);
    for (const w of this.#workers) w.postMessage({ type: "copy", copy } satisfies ToLoop);
  }

  /** The request counters of every hit loop, in order. */
  async counts(): Promise<LoopCounts[]> {
    const out: LoopCounts[] = [];
    for (const w of this.#workers) {
      const m = await this.#ask(w, { id: 0, type: "counts" });
      if ("counts" in m && m.counts !== undefined) out.push(m.counts);
    }
    return out;
  }

  /** Stops every hit loop gracefully (each finishes its connections), then ends the workers. */
  async stop(): Promise<void> {
    await Promise.all(this.#workers.map(async (w) => {
      await this.#ask(w, { id: 0, type: "stop" }).catch(() => {});
      w.terminate();
    }));
  }

  /** Sends a request and waits for its answer. */
  #ask(w: Worker, message: ToLoop & { id: number }): Promise<FromLoop & { ok: true }> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (m) => {
        this.#pending.delete(id);
        if ("ok" in m && m.ok) resolve(m);
        else reject(new Error("error" in m ? m.error : "hit loop failed"));
      });
      w.postMessage({ ...message, id });
    });
  }
}
