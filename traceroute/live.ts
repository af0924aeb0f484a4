/**
 * The live view (`traceroute --live`, `deno task mtr HOST`): mtr's
 * full-screen display, redrawn as each hop answers. The path is probed in
 * cycles of one probe per hop; keys as mtr's: `q` quits and prints the
 * report so far, `p` pauses and resumes, `r` resets the counters, `n`
 * toggles names, `d` switches to a per-probe history strip, `j` to a
 * jitter view. The terminal is restored on `q`, Ctrl-C, SIGINT, SIGTERM and
 * errors.
 *
 * @module
 */
import { ReverseCache } from "../lib/resolve.ts";
import { PathStats, type Report } from "./report.ts";
import type { TraceOptions } from "./trace.ts";

/** Options of {@linkcode runLive}. */
export interface LiveOptions extends Omit<TraceOptions, "queries"> {
  /** Pause between cycles in milliseconds. @default {1000} */
  intervalMs?: number;
  /** Stop after this many cycles (for tests and scripts). @default {Infinity} */
  cycles?: number;
}

/** Where the live view draws and reads keys: the terminal, or a fake in tests. */
export interface LiveTerminal {
  /** Writes one frame or control sequence at once. */
  write(text: string): void;
  /** The screen size. */
  size(): { columns: number; rows: number };
  /** Whether colours and attributes may be used (a TTY without `NO_COLOR`). */
  color: boolean;
}

type View = "stats" | "history" | "jitter";

/**
 * Runs the live view until `q`, Ctrl-C, a signal or the last cycle, then
 * returns the report of what was measured.
 *
 * @param host The host.
 * @param options Trace options, the interval and an optional cycle limit.
 * @param term The terminal; keys arrive through the returned `key` function.
 * @returns The running view: `key(k)` feeds a key, `done` resolves to the report.
 *
 * @example
 * ```ts
 * import { runLive } from "./live.ts";
 * import { assert, assertEquals } from "../lib/testing/assert.ts";
 * let screen = "";
 * const live = runLive("127.0.0.1", { cycles: 2, intervalMs: 0, resolveNames: false }, {
 *   write: (t) => screen += t, size: () => ({ columns: 80, rows: 24 }), color: false,
 * });
 * const report = await live.done;
 * assertEquals(report.rows[0]!.sent, 2);
 * assert(screen.includes("127.0.0.1"));
 * ```
 */
export function runLive(
  host: string,
  options: LiveOptions,
  term: LiveTerminal,
): { key(k: string): void; done: Promise<Report> } {
  const names = options.names ?? new ReverseCache();
  const path = new PathStats(host, { ...options, names });
  const rows = path.rows;
  const shown = new Map<string, string>();
  let showNames = options.resolveNames ?? true;
  let view: View = "stats";
  let paused = false;
  let quit = false;
  let wake: (() => void) | undefined;
  const start = new Date();
  let cycles = 0;

  const name = (address: string): string => {
    if (!showNames) return address;
    const n = shown.get(address);
    if (n !== undefined) return n;
    shown.set(address, address);
    names.get(address).then((found) => {
      if (found !== undefined) shown.set(address, found);
      draw();
    }, () => {});
    return address;
  };

  const draw = (): void => {
    const target = path.target;
    if (target === undefined) return;
    const { columns, rows: height } = term.size();
    const bold = (s: string) => term.color ? `\x1b[1m${s}\x1b[0m` : s;
    const head = view === "stats"
      ? "Loss%   Snt   Last   Avg  Best  Wrst StDev  Jttr   MTU"
      : view === "jitter"
      ? "  Snt   Last  Jttr  Javg  Jmax"
      : "";
    const hostWidth = view === "history"
      ? Math.max(20, Math.floor(columns / 3))
      : Math.max(20, columns - head.length - 6);
    const lines = [
      `netkit traceroute live: ${target.host} (${target.address})` +
      (paused ? "  [paused]" : ""),
      "Keys: q quit  p pause  r reset  n names  d history  j jitter",
      "",
      `${"".padEnd(4)}${"Host".padEnd(hostWidth)}  ${head}`,
    ];
    for (const [ttl, row] of [...rows].sort((a, b) => a[0] - b[0])) {
      if (ttl > path.lastTtl) break;
      const who = row.hosts.length === 0 ? "???" : name(row.hosts[0]!);
      const label = `${String(ttl).padStart(2)}. ${who}`.slice(0, hostWidth + 4)
        .padEnd(hostWidth + 4);
      const s = row.stats;
      const f = (v: number, w: number) => (Number.isFinite(v) ? v.toFixed(1) : "0.0").padStart(w);
      let cols: string;
      if (view === "history") {
        cols = row.history.slice(-Math.max(1, columns - hostWidth - 6));
      } else if (view === "jitter") {
        cols = String(row.sent).padStart(5) + f(row.last, 7) + f(row.jitterLast, 6) +
          f(s.jitter, 6) + f(row.jitterMax, 6);
      } else {
        const loss = row.sent === 0 ? 0 : (row.sent - s.count) * 100 / row.sent;
        cols = `${loss.toFixed(1)}%`.padStart(5).slice(0, 5) + String(row.sent).padStart(6) +
          f(row.last, 7) + f(s.avg, 6) + f(s.min, 6) + f(s.max, 6) +
          f(s.count < 2 ? 0 : s.stddev, 6) + f(s.jitter, 6) +
          String(row.mtu ?? "").padStart(6);
      }
      lines.push(`${label}  ${cols}`);
      // Several addresses at a hop: the others on lines of their own, as mtr.
      for (const h of row.hosts.slice(1)) lines.push(`    ${name(h)}`);
    }
    // One write per frame: home, each line cleared to its end, then the rest
    // of the screen cleared, so the frame never flickers through a blank.
    // Lines are cut to the width before attributes are added.
    const frame = lines.slice(0, height).map((l, i) => {
      const cut = l.slice(0, columns);
      return (i === 0 || i === 3 ? bold(cut) : cut) + "\x1b[K";
    }).join("\r\n");
    term.write(`\x1b[H${frame}\x1b[J`);
  };

  const reset = (): void => {
    rows.clear();
    draw();
  };

  const key = (k: string): void => {
    if (k === "q" || k === "\x03") quit = true;
    else if (k === "p") paused = !paused;
    else if (k === "r") reset();
    else if (k === "n") showNames = !showNames;
    else if (k === "d") view = view === "history" ? "stats" : "history";
    else if (k === "j") view = view === "jitter" ? "stats" : "jitter";
    draw();
    wake?.();
  };

  const sleep = (ms: number) =>
    new Promise<void>((r) => {
      const id = setTimeout(() => {
        wake = undefined;
        r();
      }, ms);
      wake = () => {
        clearTimeout(id);
        wake = undefined;
        r();
      };
    });

  const done = (async (): Promise<Report> => {
    const maxCycles = options.cycles ?? Infinity;
    const intervalMs = options.intervalMs ?? 1000;
    while (!quit && cycles < maxCycles) {
      if (paused) {
        await sleep(3_600_000);
        continue;
      }
      await path.cycle(() => {
        draw();
        return quit;
      });
      cycles++;
      draw();
      if (!quit && cycles < maxCycles && intervalMs > 0) await sleep(intervalMs);
    }
    return {
      target: path.target!,
      cycles: Math.max(cycles, 1),
      start,
      rows: await path.reportRows(),
    };
  })();
  return { key, done };
}

/**
 * Runs the live view on this process's terminal: the alternate screen,
 * raw keys, redraws on resize, and the terminal restored however it ends.
 *
 * @param host The host.
 * @param options The live options.
 * @returns The report of what was measured, once the view has closed.
 *
 * @example
 * ```ts ignore
 * import { liveOnTerminal } from "./live.ts";
 * const report = await liveOnTerminal("127.0.0.1", {});
 * ```
 */
export async function liveOnTerminal(host: string, options: LiveOptions): Promise<Report> {
  const enc = new TextEncoder();
  const tty = Deno.stdin.isTerminal();
  const write = (t: string) => {
    const bytes = enc.encode(t);
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  };
  const term: LiveTerminal = {
    write,
    size: () => {
      try {
        return Deno.consoleSize();
      } catch {
        return { columns: 80, rows: 24 };
      }
    },
    color: Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined,
  };
  const live = runLive(host, options, term);
  const signals: [Deno.Signal, () => void][] = [
    ["SIGINT", () => live.key("q")],
    ["SIGTERM", () => live.key("q")],
    ["SIGWINCH", () => live.key("")],
  ];
  if (tty) Deno.stdin.setRaw(true);
  write("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);
  const reader = Deno.stdin.readable.getReader();
  const keys = (async () => {
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done || value === undefined) return;
      for (const k of dec.decode(value)) live.key(k);
    }
  })();
  try {
    return await live.done;
  } finally {
    for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
    write("\x1b[?25h\x1b[?1049l");
    if (tty) Deno.stdin.setRaw(false);
    await reader.cancel().catch(() => {});
    await keys;
  }
}
