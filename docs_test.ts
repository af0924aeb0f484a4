/**
 * The README and the manuals: every shell example runs as written, and the
 * benchmark figures they quote come from one run per suite.
 *
 * Each document's examples run in a lab namespace of their own (loopback
 * only), from the repository's root, so they use the documented default
 * ports without meeting other tests, and reach nothing beyond the machine.
 * The conventions (server markers, console output, figure markers) are
 * described in `lib/testing/_docs.ts`.
 *
 * @module
 */
import { assert, assertEquals, type Lab, labTest } from "./lib/testing/mod.ts";
import {
  type Command,
  figureDisagreements,
  missingOutput,
  type Port,
  quotedFigures,
  shellBlocks,
} from "./lib/testing/_docs.ts";
import { delay } from "./lib/deadline.ts";

const ROOT = new URL("./", import.meta.url).pathname;
const DOCS = [
  "README.md",
  "icmp_pinger/README.md",
  "traceroute/README.md",
  "udp_pinger/README.md",
  "web_server/SERVER.md",
  "web_server/CLIENT.md",
  "proxy_server/README.md",
  "smtp/README.md",
];
const COMMAND_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

function read(path: string): string {
  return Deno.readTextFileSync(`${ROOT}${path}`);
}

Deno.test("shellBlocks() reads commands, continuations, console output and server markers", async (t) => {
  const cases: { name: string; md: string; want: unknown }[] = [
    {
      name: "sh lines and continuations; comments stay for the shell",
      md: "```sh\n# setup\na --x \\\n  --y   # why\nb\n```\n",
      want: [{ line: 1, lang: "sh", commands: ["a --x --y   # why", "b"], expect: [[], []] }],
    },
    {
      name: "console commands with expected output",
      md: "```console\n$ a\nout 1\n\n$ b \\\n  c\n```\n",
      want: [{ line: 1, lang: "console", commands: ["a", "b c"], expect: [["out 1"], []] }],
    },
    {
      name: "a server marker with ports",
      md: "<!-- example: server 8000 12000/udp -->\n```sh\nsrv\n```\n```sh\nclient\n```\n",
      want: [
        { line: 2, lang: "sh", commands: ["srv"], expect: [[]], server: ["8000/tcp", "12000/udp"] },
        { line: 5, lang: "sh", commands: ["client"], expect: [[]] },
      ],
    },
    {
      name: "other languages are not examples",
      md: "```text\ndeno task ping HOST\n```\n```ts\nconst a = 1;\n```\n",
      want: [],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const got = shellBlocks(c.md).map((b) => ({
        line: b.line,
        lang: b.lang,
        commands: b.commands.map((x) => x.text),
        expect: b.commands.map((x) => x.expect),
        ...(b.server ? { server: b.server.map((p) => `${p.port}/${p.proto}`) } : {}),
      }));
      assertEquals(got, c.want);
    });
  }
  await t.step("a marker cannot skip a block or name an unknown kind", () => {
    for (
      const md of [
        "<!-- example: skip flaky -->\n```sh\na\n```\n",
        "<!-- example: server -->\n```sh\na\n```\n",
        "<!-- example: server 70000 -->\n```sh\na\n```\n",
        "<!-- example: server 80 -->\n```text\na\n```\n",
        "<!-- example: server 80 -->\nprose\n```sh\na\n```\n",
        "```sh\na\n",
      ]
    ) {
      let threw = false;
      try {
        shellBlocks(md);
      } catch (error) {
        threw = error instanceof SyntaxError;
      }
      assert(threw, `no SyntaxError for ${JSON.stringify(md)}`);
    }
  });
});

Deno.test("missingOutput() matches expected lines in order, with ... as a wildcard", () => {
  const out = "PING x\n64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms\n--- x ---\n";
  assertEquals(missingOutput(out, ["PING x", "64 bytes from ...: icmp_seq=1 ..."]), undefined);
  assertEquals(missingOutput(out, ["--- x ---", "PING x"]), "PING x");
  assertEquals(missingOutput(out, ["icmp_seq=1"]), "icmp_seq=1");
});

Deno.test("figureDisagreements() reports a figure two documents quote differently", async (t) => {
  const run = "`deno task bench web`, 2026-12-03";
  const cases: { name: string; docs: { path: string; text: string }[]; problems: number }[] = [
    {
      name: "the same run and text",
      docs: [
        { path: "a", text: `${run}: <!-- fig:web.x -->1.65<!-- /fig -->` },
        { path: "b", text: `${run}: <!-- fig:web.x -->1.65<!-- /fig -->` },
      ],
      problems: 0,
    },
    {
      name: "different text",
      docs: [
        { path: "a", text: `${run}: <!-- fig:web.x -->1.65<!-- /fig -->` },
        { path: "b", text: `${run}: <!-- fig:web.x -->1.44<!-- /fig -->` },
      ],
      problems: 1,
    },
    {
      name: "different runs",
      docs: [
        { path: "a", text: `${run}: <!-- fig:web.x -->1.65<!-- /fig -->` },
        {
          path: "b",
          text: "`deno task bench web`, 2026-11-25: <!-- fig:web.y -->1.44<!-- /fig -->",
        },
      ],
      problems: 1,
    },
    {
      name: "a figure without its run",
      docs: [{ path: "a", text: "<!-- fig:web.x -->1.65<!-- /fig -->" }],
      problems: 1,
    },
    {
      name: "a marker in a code span describes the convention, it is no figure",
      docs: [{ path: "a", text: "write `<!-- fig:web.x -->1.65<!-- /fig -->` to quote" }],
      problems: 0,
    },
    {
      name: "a figure at the start of a line (an HTML block, which breaks the paragraph)",
      docs: [{ path: "a", text: `${run} is\n<!-- fig:web.x -->1.65<!-- /fig --> fast` }],
      problems: 1,
    },
    {
      name: "an unclosed figure",
      docs: [{ path: "a", text: `${run}: <!-- fig:web.x -->1.65` }],
      problems: 1,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assertEquals(figureDisagreements(c.docs).length, c.problems);
    });
  }
});

Deno.test("the README and the manuals quote the same benchmark run, from a bench suite", () => {
  const docs = DOCS.map((path) => ({ path, text: read(path) }));
  assertEquals(figureDisagreements(docs), []);
  const readme = quotedFigures(read("README.md"));
  assert(readme.figures.size > 0, "the README quotes no marked figure");
  for (const doc of docs) {
    for (const key of quotedFigures(doc.text).figures.keys()) {
      const suite = key.split(".")[0]!;
      let exists = true;
      try {
        Deno.statSync(`${ROOT}bench/${suite}.ts`);
      } catch {
        exists = false;
      }
      assert(exists, `${doc.path}: figure ${key} names no bench suite (bench/${suite}.ts)`);
    }
  }
  // A figure the README quotes from a manual's run must be marked in that
  // manual too, so the comparison above covers it.
  for (const key of readme.figures.keys()) {
    const elsewhere = docs.some((d) =>
      d.path !== "README.md" && quotedFigures(d.text).figures.has(key)
    );
    assert(elsewhere, `README.md quotes ${key}, which no manual quotes`);
  }
});

interface Running {
  command: string;
  child: Deno.ChildProcess;
  output: Promise<string>;
}

/** A document's sandbox: the lab's client namespace and a process holding a private /tmp. */
interface Sandbox {
  lab: Lab;
  holder: number;
}

// Examples write where a user would (/tmp/page.html, /tmp/cert.pem): fresh
// tmpfs mounts on /tmp and /var/tmp keep runs from meeting each other or an earlier
// run's files. A repository inside /tmp (a private clone) is bound back in
// from a descriptor opened before the mount hid it (`--no-canonicalize`, or
// mount would resolve /proc/self/fd/3 to the path, now inside the tmpfs).
const HOLDER_SCRIPT = `set -e
exec 3<"$1"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
case "$1/" in /tmp/* | /var/tmp/*) mkdir -p "$1" && mount --no-canonicalize --bind /proc/self/fd/3 "$1" ;; esac
exec 3<&-
echo "ready $$"
exec sleep infinity`;

async function openSandbox(lab: Lab): Promise<Sandbox> {
  const child = lab.spawn("client", [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "bash",
    "-c",
    HOLDER_SCRIPT,
    "holder",
    ROOT.replace(/\/$/, ""),
  ]);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  const m = /^ready (\d+)$/m.exec(text);
  if (m === null) {
    const status = await child.status;
    throw new Error(
      `Cannot make a private /tmp for the examples (exit ${status.code}): ` +
        (await new Response(child.stderr).text()),
    );
  }
  return { lab, holder: Number(m[1]) };
}

/** The command line of an example: in the sandbox, from the root, this Deno first on PATH. */
function shellArgv(box: Sandbox, command: string): string[] {
  const bin = Deno.execPath().replace(/\/[^/]+$/, "");
  return [
    "nsenter",
    `--target=${box.holder}`,
    "--mount",
    "env",
    "-C",
    ROOT,
    // A login shell's PATH on Debian, so `python3` is the system's (with aiosmtpd).
    `PATH=${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    "NO_COLOR=1",
    "DENO_NO_UPDATE_CHECK=1",
    "bash",
    "-o",
    "pipefail",
    "-c",
    command,
  ];
}

async function collect(child: Deno.ChildProcess): Promise<string> {
  const [out, err] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return out + err;
}

function describe(path: string, line: number, command: string): string {
  return `${path}:${line}: \`${command}\``;
}

async function runCommand(box: Sandbox, where: string, command: Command): Promise<void> {
  const r = await box.lab.exec("client", shellArgv(box, command.text), {
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
  const output = r.stdout + r.stderr;
  assertEquals(r.code, 0, `${where} exited with ${r.code}:\n${output}`);
  const missing = missingOutput(output, command.expect);
  assertEquals(missing, undefined, `${where} did not print "${missing}":\n${output}`);
}

async function listening(lab: Lab, ports: readonly Port[]): Promise<boolean> {
  const r = await lab.exec("client", ["ss", "-Hlntu"]);
  const open = new Set(
    r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 5).map((f) =>
      `${f[0]}:${f[4]!.replace(/^.*:/, "")}`
    ),
  );
  return ports.every((p) => open.has(`${p.proto}:${p.port}`));
}

async function startServers(
  box: Sandbox,
  path: string,
  line: number,
  commands: readonly Command[],
  ports: readonly Port[],
): Promise<Running[]> {
  const running = commands.map((c) => {
    const child = box.lab.spawn("client", shellArgv(box, c.text));
    return { command: c.text, child, output: collect(child) };
  });
  const exited = running.map((r) => r.child.status.then(() => r));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await listening(box.lab, ports))) {
    const early = await Promise.race([
      ...exited,
      delay(100).then(() => undefined),
    ]);
    if (early !== undefined) {
      const status = await early.child.status;
      throw new Error(
        `${
          describe(path, line, early.command)
        } exited with ${status.code} before listening:\n${await early
          .output}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${path}:${line}: ports ${ports.map((p) => `${p.port}/${p.proto}`).join(", ")} ` +
          `were not listening after ${START_TIMEOUT_MS} ms`,
      );
    }
  }
  return running;
}

/** Stops everything the examples left running (all but the holder): SIGTERM, then SIGKILL. */
async function stopAll(box: Sandbox, running: readonly Running[]): Promise<void> {
  const ns = box.lab.host("client").ns;
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const pids = await new Deno.Command("ip", { args: ["netns", "pids", ns], stderr: "null" })
      .output();
    const all = new TextDecoder().decode(pids.stdout).split(/\s+/).filter(Boolean).map(Number);
    for (const pid of all.filter((p) => p !== box.holder)) {
      try {
        Deno.kill(pid, signal);
      } catch {
        // It ended meanwhile.
      }
    }
    const grace = new AbortController();
    const settled = await Promise.race([
      Promise.all(running.map((r) => r.child.status)).then(() => true),
      delay(STOP_GRACE_MS, { signal: grace.signal }).then(() => false),
    ]);
    grace.abort();
    // Even when the shells have ended, their children (a `deno task`'s
    // `deno run`) may not have: the second pass kills what is left.
    if (!settled && signal === "SIGKILL") throw new Error("servers survived SIGKILL");
  }
  await Promise.all(running.map((r) => r.output));
}

for (const path of DOCS) {
  labTest(`${path}: every shell example runs as written`, async (_t, lab) => {
    const blocks = shellBlocks(read(path));
    assert(blocks.length > 0, `${path} has no shell example`);
    const box = await openSandbox(lab);
    let servers: Running[] = [];
    try {
      for (const [k, block] of blocks.entries()) {
        if (block.server !== undefined) {
          servers.push(...await startServers(box, path, block.line, block.commands, block.server));
          const next = blocks[k + 1];
          assert(
            next !== undefined,
            `${path}:${block.line}: a server block with no client after it`,
          );
          continue;
        }
        for (const command of block.commands) {
          await runCommand(box, describe(path, block.line, command.text), command);
        }
        await stopAll(box, servers);
        servers = [];
      }
    } finally {
      await stopAll(box, servers);
    }
  }, { routers: 0 });
}
