/**
 * SMTP benchmarks against swaks, in the same run, to the same local server
 * (nodemailer's smtp-server, see smtp/testdata/smtp_server.ts):
 *
 * 1. a large attachment (100 MiB): wall time and peak memory (VmHWM of the
 *    child process) of `smtp/main.ts`, of `smtp/main.ts` signing with DKIM,
 *    and of swaks (which cannot sign); targets: ≤ 80 MiB and ≤ swaks' time;
 * 2. 200 messages over one library session, against 200 swaks runs (and, for
 *    reference, 200 runs of our CLI).
 *
 * Run: deno run -A bench/smtp.ts [--size-mib 100] [--messages 200] [--runs 3] [--skip-swaks]
 *
 * swaks holds the whole message in memory many times over (2.4 GiB of RSS for
 * a 100 MiB attachment; the OOM killer stopped it at 1 GiB on a 24 GiB
 * machine): use --skip-swaks to measure our memory with larger attachments.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeyPairSync } from "node:crypto";
import { openSession } from "../smtp/client.ts";
import { composeMessage } from "../smtp/mime.ts";
import { startSmtpServer } from "../smtp/_testing.ts";
import { median } from "../lib/stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "100" },
    messages: { type: "string", default: "200" },
    runs: { type: "string", default: "3" },
    "skip-swaks": { type: "boolean", default: false },
  },
});
const sizeMiB = Number(values["size-mib"]);
const messages = Number(values.messages);
const runs = Number(values.runs);
const skipSwaks = values["skip-swaks"] ?? false;
const mainTs = new URL("../smtp/main.ts", import.meta.url).pathname;
const envelope = ["a@example.com", "b@example.com"] as const;

interface Measure {
  ms: number;
  hwmKiB: number;
}

/** Runs a command, sampling its VmHWM (peak resident set) until it exits. */
async function measure(cmd: string, args: string[]): Promise<Measure> {
  const start = performance.now();
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped", stdin: "null" })
    .spawn();
  let hwmKiB = 0;
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  const sampler = (async () => {
    while (!done) {
      try {
        const text = await Deno.readTextFile(`/proc/${child.pid}/status`);
        const match = /VmHWM:\s+(\d+) kB/.exec(text);
        if (match) hwmKiB = Math.max(hwmKiB, Number(match[1]));
      } catch {
        // The process has gone; the last sample stands (VmHWM only grows).
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const [result, stderr] = await Promise.all([status, new Response(child.stderr).text()]);
  const ms = performance.now() - start;
  await sampler;
  if (!result.success) throw new Error(`${cmd} failed (${result.code}): ${stderr}`);
  return { ms, hwmKiB };
}

function peakMiB(ms: Measure[]): number {
  return Math.max(...ms.map((r) => r.hwmKiB)) / 1024;
}

async function makeFile(path: string, mib: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < mib; i++) {
    crypto.getRandomValues(chunk.subarray(0, 65536));
    chunk.copyWithin(65536, 0, (1 << 20) - 65536);
    await f.write(chunk);
  }
}

async function largeAttachment(target: string, file: string, dkimKey: string): Promise<void> {
  const ours: Measure[] = [];
  const signed: Measure[] = [];
  const theirs: Measure[] = [];
  const ourArgs = [
    ...["run", "-A", mainTs, "-s", target, "-f", envelope[0], "-t", envelope[1]],
    ...["--subject", "big", "--body", "see attachment", "--attach", `@${file}`],
  ];
  for (let i = 0; i < runs; i++) {
    ours.push(await measure(Deno.execPath(), ourArgs));
    signed.push(
      await measure(Deno.execPath(), [...ourArgs, "--dkim-key", dkimKey, "--dkim-selector", "b"]),
    );
    if (skipSwaks) continue;
    theirs.push(
      await measure("swaks", [
        ...["--server", target, "--from", envelope[0], "--to", envelope[1]],
        ...["--header", "Subject: big", "--body", "see attachment", "--attach", `@${file}`],
        ...["--suppress-data", "--silent", "2"],
      ]),
    );
  }
  const ourMs = median(ours.map((r) => r.ms));
  console.log(`${sizeMiB} MiB attachment, median of ${runs} run(s):`);
  const signedMs = median(signed.map((r) => r.ms));
  console.log(
    `  smtp/main.ts  ${ourMs.toFixed(0)} ms, peak RSS (VmHWM) ${peakMiB(ours).toFixed(1)} MiB`,
  );
  console.log(
    `  with DKIM     ${signedMs.toFixed(0)} ms, peak RSS (VmHWM) ${
      peakMiB(signed).toFixed(1)
    } MiB (rsa-sha256, relaxed/relaxed)`,
  );
  if (skipSwaks) return;
  const swaksMs = median(theirs.map((r) => r.ms));
  console.log(
    `  swaks         ${swaksMs.toFixed(0)} ms, peak RSS (VmHWM) ${peakMiB(theirs).toFixed(1)} MiB`,
  );
  console.log(
    `  time ratio ours/swaks ${(ourMs / swaksMs).toFixed(2)}, with DKIM ${
      (signedMs / swaksMs).toFixed(2)
    }; memory ≤ 80 MiB: ${
      Math.max(peakMiB(ours), peakMiB(signed)) <= 80 ? "met" : "NOT met"
    }; time ≤ swaks: ${Math.max(ourMs, signedMs) <= swaksMs ? "met" : "NOT met"}`,
  );
}

async function runMany(cmd: string, argsFor: (i: number) => string[]): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < messages; i++) {
    const out = await new Deno.Command(cmd, { args: argsFor(i), stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return performance.now() - start;
}

async function manyMessages(target: string, port: number): Promise<void> {
  const sessionStart = performance.now();
  {
    await using session = await openSession({ hostname: "127.0.0.1", port });
    for (let i = 0; i < messages; i++) {
      const message = await composeMessage({
        from: envelope[0],
        to: [envelope[1]],
        subject: `message ${i}`,
        text: "hello\n",
      });
      await session.send({ from: envelope[0], to: [envelope[1]] }, message);
    }
  }
  const sessionMs = performance.now() - sessionStart;
  const rate = (ms: number) => `${ms.toFixed(0)} ms (${(messages / ms * 1000).toFixed(0)} msg/s)`;
  console.log(`${messages} messages:`);
  console.log(`  one library session    ${rate(sessionMs)}`);
  if (skipSwaks) return;
  const swaksMs = await runMany("swaks", (i) => [
    ...["--server", target, "--from", envelope[0], "--to", envelope[1]],
    ...["--header", `Subject: message ${i}`, "--body", "hello", "--silent", "2"],
  ]);
  console.log(`  ${messages} swaks runs        ${rate(swaksMs)}`);
  console.log(`  speed-up of the session over swaks runs: ${(swaksMs / sessionMs).toFixed(1)}x`);
  // For reference: separate processes of our CLI, start-up included.
  const cliMs = await runMany(Deno.execPath(), (i) => [
    ...["run", "-A", mainTs, "-s", target, "-f", envelope[0], "-t", envelope[1]],
    ...["--subject", `message ${i}`, "--body", "hello"],
  ]);
  console.log(
    `  ${messages} smtp/main.ts runs ${rate(cliMs)}; swaks/ours ${(swaksMs / cliMs).toFixed(2)}`,
  );
}

const dir = await Deno.makeTempDir({ prefix: "smtp_bench_" });
try {
  await using server = await startSmtpServer();
  const target = `127.0.0.1:${server.port}`;
  const file = `${dir}/big.bin`;
  await makeFile(file, sizeMiB);
  const dkimKey = `${dir}/dkim.pem`;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  await Deno.writeTextFile(dkimKey, privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  await largeAttachment(target, file, dkimKey);
  await manyMessages(target, server.port);
} finally {
  await Deno.remove(dir, { recursive: true });
}
