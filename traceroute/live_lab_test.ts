// The live view on a real terminal: tmux runs it inside the lab's client
// namespace, the test types keys with send-keys and reads the screen with
// capture-pane. Waits poll the screen for the state they expect (up to 30 s),
// never a fixed sleep.
import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { type Lab, labTest } from "../lib/testing/mod.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/**
 * Runs tmux on a server of the session's own (`-L` with the session's name): when
 * the last session of a shared server is killed the server exits, and a session
 * started in that instant fails with "server exited unexpectedly".
 */
async function tmux(args: string[]): Promise<string> {
  const at = args.findIndex((a) => a === "-t" || a === "-s");
  const all = at >= 0 ? ["-L", args[at + 1]!, ...args] : args;
  const out = await new Deno.Command("tmux", { args: all, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  assertEquals(out.code, 0, `tmux ${all.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

interface Screen {
  text: string;
  rows: { ttl: number; host: string; loss: number; sent: number }[];
}

async function screen(session: string): Promise<Screen> {
  const text = await tmux(["capture-pane", "-p", "-t", session]);
  const rows = [...text.matchAll(/^ ?(\d+)\. (\S+)\s+([\d.]+)%?\s+(\d+)/gm)].map((m) => ({
    ttl: Number(m[1]),
    host: m[2]!,
    loss: Number(m[3]),
    sent: Number(m[4]),
  }));
  return { text, rows };
}

async function until(session: string, what: string, ok: (s: Screen) => boolean): Promise<Screen> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await screen(session);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`Screen never showed ${what}:\n${s.text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the live view in a tmux session; files record stty before and after, and the pid. */
async function start(lab: Lab, dir: string, session: string): Promise<void> {
  const target = lab.host("target").v4;
  await Deno.writeTextFile(
    `${dir}/run.sh`,
    `stty -a > ${dir}/before\necho $$ > ${dir}/pid\n` +
      `${Deno.execPath()} run -A ${MAIN} --live -n --interval 0.2 ${target}\n` +
      `echo $? > ${dir}/code\nstty -a > ${dir}/after\nsleep 600\n`,
  );
  const ns = lab.host("client").ns;
  await tmux([
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    "120",
    "-y",
    "30",
    "ip",
    "netns",
    "exec",
    ns,
    "sh",
    `${dir}/run.sh`,
  ]);
}

async function fileText(path: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const t = await Deno.readTextFile(path);
      if (t !== "") return t;
    } catch {
      // Not written yet.
    }
    if (Date.now() > deadline) throw new Error(`${path} was never written`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

labTest(
  "traceroute --live shows the path live, obeys p r d q, restores the terminal",
  async (t, lab) => {
    await lab.silence("r2");
    const dir = await Deno.makeTempDir({ prefix: "netkit_live_" });
    const session = `nk-live-${crypto.randomUUID().slice(0, 8)}`;
    await start(lab, dir, session);
    try {
      const hosts = ["r1", "r2", "r3", "target"].map((h) => lab.host(h).v4);
      await t.step(
        "every hop of the path, Snt rising, loss at the silent router only",
        async () => {
          const first = await until(session, "four hops", (s) => s.rows.length === 4);
          assertEquals(first.rows.map((r) => r.host), [hosts[0], "???", hosts[2], hosts[3]]);
          const later = await until(
            session,
            "Snt above 3",
            (s) => s.rows.length === 4 && s.rows.every((r, i) => r.sent > first.rows[i]!.sent + 2),
          );
          assertEquals(later.rows.map((r) => r.loss), [0, 100, 0, 0]);
        },
      );
      await t.step("p pauses: the counters stop; r resets them; p resumes from zero", async () => {
        await tmux(["send-keys", "-t", session, "p"]);
        const paused = await until(session, "[paused]", (s) => s.text.includes("[paused]"));
        // The cycle under way may finish (late, on a busy machine): the counters must
        // then stay still for a whole second, 5 cycles' time, within 10 s.
        const settle = Date.now() + 10_000;
        let a = await screen(session);
        for (;;) {
          await new Promise((r) => setTimeout(r, 1000));
          const b = await screen(session);
          const still = JSON.stringify(b.rows) === JSON.stringify(a.rows);
          if (still || Date.now() > settle) {
            assertEquals(b.rows, a.rows, "nothing sent while paused (5 cycles' time)");
            break;
          }
          a = b;
        }
        assert(paused.rows.length > 0);
        await tmux(["send-keys", "-t", session, "r"]);
        await until(session, "no rows after r", (s) => s.rows.length === 0);
        await tmux(["send-keys", "-t", session, "p"]);
        const resumed = await until(session, "the path again", (s) => s.rows.length === 4);
        assert(resumed.rows.every((r) => r.sent < a.rows[0]!.sent), resumed.text);
      });
      await t.step("d shows a history strip: . answered, ? lost", async () => {
        await tmux(["send-keys", "-t", session, "d"]);
        const s = await until(
          session,
          "a history strip",
          (s) => /^ 2\. \?\?\?\s+\?{2,}/m.test(s.text),
        );
        assertMatch(s.text, /^ 1\. \S+\s+\.{2,}$/m);
        assert(!s.text.includes("Loss%"));
        await tmux(["send-keys", "-t", session, "d"]);
        await until(session, "the statistics again", (s) => s.text.includes("Loss%"));
      });
      await t.step("j shows the jitter view, and back", async () => {
        await tmux(["send-keys", "-t", session, "j"]);
        await until(
          session,
          "jitter columns",
          (s) => /Snt {3}Last {2}Jttr {2}Javg {2}Jmax/.test(s.text),
        );
        await tmux(["send-keys", "-t", session, "j"]);
        await until(session, "the statistics again", (s) => s.text.includes("Loss%"));
      });
      await t.step("q quits, prints the report and restores the terminal", async () => {
        await tmux(["send-keys", "-t", session, "q"]);
        assertEquals((await fileText(`${dir}/code`)).trim(), "0");
        const s = await until(session, "the report", (s) => s.text.includes("HOST:"));
        assertMatch(s.text, /Loss% {3}Snt {3}Last/);
        assertEquals(await fileText(`${dir}/after`), await fileText(`${dir}/before`));
      });
    } finally {
      await tmux(["kill-session", "-t", session]).catch(() => {});
    }
    await t.step("SIGINT quits and restores the terminal too", async () => {
      const dir2 = await Deno.makeTempDir({ prefix: "netkit_live_" });
      const s2 = `${session}-int`;
      await start(lab, dir2, s2);
      try {
        await until(s2, "four hops", (s) => s.rows.length === 4);
        // The script's shell runs the tool as its child: signal the tool.
        const shell = Number((await fileText(`${dir2}/pid`)).trim());
        const kids = await new Deno.Command("pgrep", {
          args: ["-P", String(shell)],
          stdout: "piped",
        })
          .output();
        const pid = Number(new TextDecoder().decode(kids.stdout).trim().split("\n")[0]);
        assert(pid > 0, "the tool's pid");
        Deno.kill(pid, "SIGINT");
        assertEquals((await fileText(`${dir2}/code`)).trim(), "0");
        assertEquals(await fileText(`${dir2}/after`), await fileText(`${dir2}/before`));
        await until(s2, "the report", (s) => s.text.includes("HOST:"));
      } finally {
        await tmux(["kill-session", "-t", s2]).catch(() => {});
        await Deno.remove(dir2, { recursive: true });
      }
    });
    await Deno.remove(dir, { recursive: true });
  },
);
