/**
 * `webclient` against curl, side by side in the same run, on loopback:
 *
 * - a download from nginx (sendfile, 2 workers) to `/dev/null`;
 * - the same download to a file (on tmpfs when `/dev/shm` exists, so the
 *   disk does not decide the race);
 * - an upload with `-T FILE` and one with `--data-binary @FILE` to a local
 *   sink that reads and drops the body (the same sink for both clients: a
 *   separate process of this file, on the project's codec; it answers
 *   `Expect: 100-continue`, which curl sends);
 *
 * each as wall time and peak RSS (`/usr/bin/time`'s maximum resident set),
 * medians of several rounds with the clients alternating. Ours runs as
 * `deno task webclient` does (its `deno run` line, V8 flags included), so
 * its times include Deno's start-up. Then the body-path variants the client's
 * design was chosen from, each a bare loop on a raw connection writing the
 * same file (`--variant`).
 *
 * Run: `deno run -A bench/client.ts [--size-mib 512] [--rounds 5] [--json] [--no-variants]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startNginx } from "../web_server/_nginx.ts";
import { median } from "../lib/stats.ts";
import { BufferedReader } from "../lib/http/reader.ts";
import { readRequestHead, readResponseHead } from "../lib/http/heads.ts";
import { HttpClient } from "../lib/http/client.ts";
import { bodyReader } from "../lib/http/bodies.ts";
import { writeAll } from "../lib/bytes.ts";
import { taskCommand } from "../lib/testing/tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "512" },
    rounds: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    "no-variants": { type: "boolean", default: false },
    sink: { type: "string" },
    variant: { type: "string" },
    url: { type: "string" },
    out: { type: "string" },
  },
});

const SELF = new URL(import.meta.url).pathname;
const encoder = new TextEncoder();

/** The upload sink: reads each request's body into one buffer and drops it. */
async function sink(port: number): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  const buffer = new Uint8Array(1 << 20);
  for await (const conn of listener) {
    (async () => {
      try {
        const reader = new BufferedReader(conn);
        for (;;) {
          const head = await readRequestHead(reader);
          if (head === null) break;
          if (head.expectContinue) {
            await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
          }
          let n = 0;
          for await (const piece of bodyReader(reader, head.body, { buffer })) n += piece.length;
          const text = `${n}\n`;
          await writeAll(
            conn,
            encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`),
          );
        }
      } catch {
        // A client that went away: nothing to answer.
      } finally {
        conn.close();
      }
    })();
  }
}

/** Reads a response head off a raw connection, returning the body bytes that followed it. */
async function rawGet(
  url: URL,
): Promise<{ conn: Deno.TcpConn; rest: Uint8Array; length: number }> {
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  await writeAll(
    conn,
    encoder.encode(
      `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`,
    ),
  );
  const reader = new BufferedReader(conn);
  const head = await readResponseHead(reader);
  const length = head?.body.type === "length" ? head.body.length : 0;
  return { conn, rest: reader.takeBuffered(), length };
}

/**
 * One body-path variant, on a raw connection to `url`, writing to `out`:
 * the options the client's body path was chosen from.
 */
async function variant(name: string, url: URL, out: string): Promise<void> {
  using file = await Deno.open(out, { write: true, create: true, truncate: true });
  const sync = (p: Uint8Array) => {
    for (let o = 0; o < p.length;) o += file.writeSync(p.subarray(o));
    return Promise.resolve();
  };
  if (name === "HttpClient writeTo, fill 1 MiB, sync write") {
    await using client = new HttpClient();
    const res = await client.request(url);
    await res.writeTo({ write: (p) => sync(p).then(() => p.length) }, { fill: true });
    return;
  }
  const { conn, rest, length } = await rawGet(url);
  if (name.endsWith("pre-sized")) file.truncateSync(length);
  file.writeSync(rest);
  const loop = async (size: number, fill: boolean, write: (p: Uint8Array) => Promise<void>) => {
    const buffer = new Uint8Array(size);
    for (let eof = false; !eof;) {
      let got = 0;
      do {
        const n = await conn.read(buffer.subarray(got));
        if (n === null) eof = true;
        else got += n;
      } while (fill && !eof && got < size);
      await write(buffer.subarray(0, got));
    }
  };
  switch (name) {
    case "pipeTo":
      await conn.readable.pipeTo(file.writable);
      return;
    case "read 64 KiB, async write":
      return await loop(65536, false, (p) => writeAll(file, p));
    case "read 1 MiB, async write":
      return await loop(1 << 20, false, (p) => writeAll(file, p));
    case "read 1 MiB, sync write":
      return await loop(1 << 20, false, sync);
    case "fill 1 MiB, async write":
      return await loop(1 << 20, true, (p) => writeAll(file, p));
    case "fill 1 MiB, sync write":
    case "fill 1 MiB, sync write, pre-sized":
      return await loop(1 << 20, true, sync);
    default:
      throw new Error(`unknown variant ${name}`);
  }
}

const VARIANTS = [
  "pipeTo",
  "read 64 KiB, async write",
  "read 1 MiB, async write",
  "read 1 MiB, sync write",
  "fill 1 MiB, async write",
  "fill 1 MiB, sync write",
  "fill 1 MiB, sync write, pre-sized",
  "HttpClient writeTo, fill 1 MiB, sync write",
];

interface Sample {
  seconds: number;
  /** User + system CPU time: steadier than wall time when other jobs share the cores. */
  cpu: number;
  rssKiB: number;
}

/** Runs a command under `/usr/bin/time`, for its wall time and peak resident set. */
async function measure(argv: string[]): Promise<Sample> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %U %S %M", ...argv],
    stdout: "null",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec(lines.at(-1) ?? "");
  if (!out.success || m === null) {
    throw new Error(`Cannot run ${argv.join(" ")}: ${lines.join("\n")}`);
  }
  return { seconds: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rssKiB: Number(m[4]) };
}

function summary(samples: Sample[]) {
  return {
    seconds: median(samples.map((s) => s.seconds)),
    cpu: median(samples.map((s) => s.cpu)),
    rssMiB: median(samples.map((s) => s.rssKiB)) / 1024,
    runs: samples.map((s) => s.seconds),
  };
}

async function main(): Promise<void> {
  const sizeMiB = Number(values["size-mib"]);
  const rounds = Number(values.rounds);
  const root = await Deno.makeTempDir({ prefix: "netkit_clientbench_" });
  await Deno.chmod(root, 0o755);
  let tmpfs: string | undefined;
  try {
    tmpfs = (await Deno.stat("/dev/shm")).isDirectory
      ? await Deno.makeTempDir({ dir: "/dev/shm", prefix: "netkit_clientbench_" })
      : undefined;
  } catch {
    tmpfs = undefined;
  }
  const outDir = tmpfs ?? root;
  const src = `${root}/big.bin`;
  {
    // Random bytes, so no layer can shortcut them; one random MiB repeated is enough.
    const block = new Uint8Array(1 << 20);
    for (let i = 0; i < block.length; i += 65536) {
      crypto.getRandomValues(block.subarray(i, i + 65536));
    }
    using f = await Deno.open(src, { write: true, create: true });
    for (let i = 0; i < sizeMiB; i++) await writeAll(f, block);
  }
  const sinkPort = (() => {
    using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return probe.addr.port;
  })();
  const sinkProc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SELF, "--sink", String(sinkPort)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const ready = sinkProc.stdout.getReader();
  await ready.read();
  ready.releaseLock();
  await using nginx = await startNginx(root, { workers: 2 });
  const get = `${nginx.url}/big.bin`;
  const put = `http://127.0.0.1:${sinkPort}/upload`;
  const cases = [
    { name: "download to /dev/null", args: ["-o", "/dev/null", get] },
    { name: "download to a file", args: ["-o", `${outDir}/out.bin`, get] },
    { name: "upload -T FILE", args: ["-o", "/dev/null", "-T", src, put] },
    {
      name: "upload --data-binary @FILE",
      args: ["-o", "/dev/null", "--data-binary", `@${src}`, put],
    },
  ];
  const results = [];
  const variants = [];
  try {
    for (const c of cases) {
      const curl: Sample[] = [];
      const ours: Sample[] = [];
      // One warm-up each (page cache, Deno's module cache).
      await measure(["curl", "-q", "-s", ...c.args]);
      await measure(taskCommand("webclient", ["-s", ...c.args]));
      for (let r = 0; r < rounds; r++) {
        curl.push(await measure(["curl", "-q", "-s", ...c.args]));
        ours.push(await measure(taskCommand("webclient", ["-s", ...c.args])));
      }
      const a = summary(curl);
      const b = summary(ours);
      results.push({ case: c.name, curl: a, ours: b, ratio: a.seconds / b.seconds });
    }
    if (!values["no-variants"]) {
      for (const name of VARIANTS) {
        const samples: Sample[] = [];
        for (let r = 0; r < rounds; r++) {
          samples.push(
            await measure([
              Deno.execPath(),
              "run",
              "-A",
              SELF,
              "--variant",
              name,
              "--url",
              get,
              "--out",
              `${outDir}/variant.bin`,
            ]),
          );
        }
        variants.push({ variant: name, ...summary(samples) });
      }
    }
  } finally {
    sinkProc.kill("SIGTERM");
    await sinkProc.status;
    await sinkProc.stdout.cancel().catch(() => {});
    await Deno.remove(root, { recursive: true });
    if (tmpfs !== undefined) await Deno.remove(tmpfs, { recursive: true });
  }
  if (values.json) {
    console.log(JSON.stringify({ sizeMiB, rounds, results, variants }));
    return;
  }
  const mbps = (s: number) => `${(sizeMiB / s).toFixed(0)} MiB/s`;
  console.log(
    `webclient vs curl, ${sizeMiB} MiB, median of ${rounds} (file on ${
      tmpfs !== undefined ? "tmpfs" : "the temp dir"
    }); ratio = curl's time / ours`,
  );
  console.log(
    "| case | curl | ours | ratio | curl CPU | ours CPU | curl RSS | ours RSS |\n" +
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const r of results) {
    console.log(
      `| ${r.case} | ${r.curl.seconds.toFixed(2)} s (${mbps(r.curl.seconds)}) | ${
        r.ours.seconds.toFixed(2)
      } s (${mbps(r.ours.seconds)}) | ${r.ratio.toFixed(2)} | ${r.curl.cpu.toFixed(2)} s | ${
        r.ours.cpu.toFixed(2)
      } s | ${r.curl.rssMiB.toFixed(1)} MiB | ${r.ours.rssMiB.toFixed(1)} MiB |`,
    );
  }
  if (variants.length > 0) {
    console.log(`\nbody-path variants, raw connection → the same file, median of ${rounds}`);
    console.log("| variant | time | peak RSS |\n| --- | --- | --- |");
    for (const v of variants) {
      console.log(`| ${v.variant} | ${v.seconds.toFixed(2)} s | ${v.rssMiB.toFixed(1)} MiB |`);
    }
  }
}

if (values.sink !== undefined) await sink(Number(values.sink));
else if (values.variant !== undefined) {
  await variant(values.variant, new URL(values.url!), values.out!);
} else await main();
