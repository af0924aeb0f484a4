import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { runCli, runSendmail, startAiosmtpd, startSmtpServer, withTempDir } from "./_testing.ts";

const envelope = ["-f", "a@example.com", "-t", "b@example.com"];

async function list(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return names.sort();
}

Deno.test("--data sends several files and a Maildir over one connection, RSET between", async () => {
  await using server = await startAiosmtpd();
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/Maildir/new`, { recursive: true });
    await Deno.mkdir(`${dir}/Maildir/cur`);
    await Deno.mkdir(`${dir}/Maildir/tmp`);
    await Deno.writeTextFile(`${dir}/one.eml`, "Subject: one\n\n1\n");
    await Deno.writeTextFile(`${dir}/two.eml`, "Subject: two\n\n2\n");
    await Deno.writeTextFile(`${dir}/Maildir/new/1700000001.M1.host`, "Subject: three\n\n3\n");
    await Deno.writeTextFile(`${dir}/Maildir/cur/1700000000.M1.host:2,S`, "Subject: four\n\n4\n");
    // A delivery under way is not a message yet.
    await Deno.writeTextFile(`${dir}/Maildir/tmp/1700000002.M1.host`, "Subject: no\n\n");
    const result = await runCli([
      ...["-s", `127.0.0.1:${server.port}`, ...envelope, "-v"],
      ...["--data", `@${dir}/one.eml`, "--data", `${dir}/two.eml`, "--data", `${dir}/Maildir`],
    ]);
    assertEquals(result.code, 0, result.stderr);
    const lines = result.stdout.split("\n");
    assertEquals(lines.filter((l) => l.startsWith("** connected to")).length, 1);
    assertEquals(lines.filter((l) => l === "-> RSET").length, 3);
    assertEquals(lines.filter((l) => l === "-> DATA").length, 4);
    const subjects = [];
    for (const path of await server.delivered()) {
      subjects.push(/^Subject: (.*)$/m.exec(await Deno.readTextFile(path))?.[1]?.trim());
    }
    // The Maildir's messages in delivery order: their names start with the time.
    assertEquals(subjects, ["one", "two", "four", "three"]);
  });
});

Deno.test("a 4xx puts the message in the --queue; --flush-queue sends it later", async (t) => {
  await withTempDir(async (dir) => {
    const queue = `${dir}/queue`;
    await t.step("451 at MAIL: queued, exit 0", async () => {
      await using busy = await startSmtpServer({
        refuse: { phase: "mail", code: 451, message: "try later" },
      });
      const result = await runCli([
        ...["-s", `127.0.0.1:${busy.port}`, ...envelope, "--subject", "queued one"],
        ...["--queue", queue],
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertMatch(result.stderr, /^smtp: queued as .*\.eml: The server refused the sender .*451/);
      assertEquals((await list(queue)).length, 2);
    });
    await t.step("nothing listening: queued too", async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = listener.addr.port;
      listener.close();
      const result = await runCli([
        ...["-s", `127.0.0.1:${port}`, ...envelope, "--subject", "queued two"],
        ...["--queue", queue],
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals((await list(queue)).length, 4);
    });
    await t.step("a 5xx is not queued", async () => {
      await using refusing = await startSmtpServer({
        refuse: { phase: "mail", code: 550, message: "no" },
      });
      const result = await runCli([
        ...["-s", `127.0.0.1:${refusing.port}`, ...envelope, "--queue", queue],
      ]);
      assertEquals(result.code, 23, result.stderr);
      assertEquals((await list(queue)).length, 4);
    });
    await t.step("--flush-queue while the server still says 4xx: they stay", async () => {
      await using busy = await startSmtpServer({
        refuse: { phase: "mail", code: 452, message: "still busy" },
      });
      const result = await runCli([
        ...["-s", `127.0.0.1:${busy.port}`, "--queue", queue, "--flush-queue"],
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stderr.split("\n").filter((l) => l.includes("stays queued")).length, 2);
      assertEquals((await list(queue)).length, 4);
    });
    await t.step(
      "--flush-queue: both sent over one session, in order, the queue empties",
      async () => {
        await using server = await startAiosmtpd();
        const result = await runCli([
          ...["-s", `127.0.0.1:${server.port}`, "--queue", queue, "--flush-queue"],
        ]);
        assertEquals(result.code, 0, result.stderr);
        assertEquals(await list(queue), []);
        const delivered = await server.delivered();
        assertEquals(delivered.length, 2);
        const first = await Deno.readTextFile(delivered[0]!);
        assert(first.includes("Subject: queued one"), first);
        assertEquals((await server.envelope(2)).rcpt_tos, ["b@example.com"]);
      },
    );
    await t.step("--flush-queue with a permanent refusal: moved to failed/", async () => {
      await using busy = await startSmtpServer({
        refuse: { phase: "mail", code: 451, message: "try later" },
      });
      await runCli([...["-s", `127.0.0.1:${busy.port}`, ...envelope, "--queue", queue]]);
      await using refusing = await startSmtpServer({
        refuse: { phase: "rcpt", code: 550, message: "no such user" },
      });
      const result = await runCli([
        ...["-s", `127.0.0.1:${refusing.port}`, "--queue", queue, "--flush-queue"],
      ]);
      assertEquals(result.code, 24, result.stderr);
      assertEquals(await list(queue), []);
      assertEquals((await list(`${queue}/failed`)).length, 2);
    });
  });
});

Deno.test("sendmail mode queues a temporary failure and exits 0, as msmtpq does", async () => {
  await using busy = await startSmtpServer({
    refuse: { phase: "rcpt", code: 450, message: "mailbox busy" },
  });
  await withTempDir(async (dir) => {
    const result = await runSendmail(
      ["--server", `127.0.0.1:${busy.port}`, "--queue", dir, "root@example.com"],
      "Subject: nightly\n\nreport\n",
    );
    assertEquals(result.code, 0, result.stderr);
    assertEquals((await list(dir)).length, 2);
    const without = await runSendmail(
      ["--server", `127.0.0.1:${busy.port}`, "root@example.com"],
      "Subject: nightly\n\nreport\n",
    );
    assertEquals(without.code, 75, without.stderr);
  });
});
