import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import {
  parseWithPython,
  runSendmail,
  startAiosmtpd,
  startSmtpServer,
  withTempDir,
} from "./_testing.ts";
import { taskViaConfig } from "../lib/testing/tasks.ts";

const here = new URL(".", import.meta.url).pathname;

Deno.test("sendmail -t, as cron runs it: recipients from To, Cc and Bcc, Bcc removed, header completed", async () => {
  await using server = await startAiosmtpd();
  const message =
    'To: Bob <bob@example.com>\nCc: carol@example.com, "Doe, Dan" <dan@example.com>\n' +
    "Bcc: eve@example.com\nSubject: cron output\n\nline one\n.\n.dotted\nlast line\n";
  const result = await runSendmail(
    [
      "-t",
      "-i",
      "-f",
      "cron@example.com",
      "-F",
      "Cron Daemon",
      "--server",
      `127.0.0.1:${server.port}`,
    ],
    message,
  );
  assertEquals(result.code, 0, result.stderr);
  const envelope = await server.envelope(1);
  assertEquals(envelope.mail_from, "cron@example.com");
  assertEquals(
    envelope.rcpt_tos,
    ["bob@example.com", "carol@example.com", "dan@example.com", "eve@example.com"],
  );
  const [path] = await server.delivered();
  const parsed = await parseWithPython(path!);
  assertEquals(parsed.headers.bcc, undefined);
  assertEquals(parsed.headers.from, ["Cron Daemon <cron@example.com>"]);
  assertEquals(parsed.headers.subject, ["cron output"]);
  assertEquals(parsed.headers.date?.length, 1);
  assertEquals(parsed.headers["message-id"]?.length, 1);
  // A lone dot is a line of the message, not its end (-i is the only behaviour).
  assertEquals(parsed.tree.text, "line one\n.\n.dotted\nlast line\n");
});

Deno.test("sendmail takes recipients as arguments and the sender from the From header", async () => {
  await using server = await startAiosmtpd();
  const result = await runSendmail(
    ["-oi", "--server", `127.0.0.1:${server.port}`, "--", "bob@example.com", "carol@example.com"],
    "From: Alice <alice@example.com>\nTo: someone-else@example.com\nSubject: hi\n\nhello\n",
  );
  assertEquals(result.code, 0, result.stderr);
  const envelope = await server.envelope(1);
  assertEquals(envelope.mail_from, "alice@example.com");
  // Without -t, the header's recipients are not added.
  assertEquals(envelope.rcpt_tos, ["bob@example.com", "carol@example.com"]);
});

Deno.test("sendmail uses the configuration file's account; command-line options override it", async (t) => {
  await using server = await startAiosmtpd({ user: "alice", password: "from eval" });
  await using other = await startAiosmtpd();
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/netkit`);
    await Deno.writeTextFile(
      `${dir}/netkit/smtp.toml`,
      `# accounts, msmtp-style
default = "work"

[account.work]
server = "127.0.0.1:${server.port}"
from = "alice@example.com"
auth-user = "alice"
password-eval = "printf '%s\\\\n' 'from eval'"   # the first line it prints

[account.other]
server = "127.0.0.1:${other.port}"
from = "other@example.com"
`,
    );
    const env = { XDG_CONFIG_HOME: dir };
    const message = "Subject: configured\n\nbody\n";
    await t.step("the default account, its password from password-eval", async () => {
      const result = await runSendmail(["bob@example.com"], message, env);
      assertEquals(result.code, 0, result.stderr);
      const envelope = await server.envelope(1);
      assertEquals(envelope.mail_from, "alice@example.com");
      assertEquals(envelope.authenticated, true);
      assertEquals(await server.authAttempts(), ["CRAM-MD5 ok"]);
    });
    await t.step("-a picks another account", async () => {
      const result = await runSendmail(["-a", "other", "bob@example.com"], message, env);
      assertEquals(result.code, 0, result.stderr);
      assertEquals((await other.envelope(1)).mail_from, "other@example.com");
    });
    await t.step("--server and -f on the command line win", async () => {
      const result = await runSendmail(
        ["--server", `127.0.0.1:${other.port}`, "-f", "cli@example.com", "bob@example.com"],
        message,
        { ...env },
      );
      // The account's auth-user still applies; the other server offers no AUTH.
      assertEquals(result.code, 77, result.stderr);
      const plain = await runSendmail(
        ["-a", "other", "-f", "cli@example.com", "bob@example.com"],
        message,
        env,
      );
      assertEquals(plain.code, 0, plain.stderr);
      assertEquals((await other.envelope(2)).mail_from, "cli@example.com");
    });
    await t.step("a broken file: EX_CONFIG (78) with the file and line", async () => {
      await Deno.writeTextFile(`${dir}/broken.toml`, "[account.x]\nserver = localhost\n");
      const result = await runSendmail(["-C", `${dir}/broken.toml`, "bob@example.com"], message);
      assertEquals(result.code, 78, result.stderr);
      assert(result.stderr.startsWith(`smtp: ${dir}/broken.toml:2: cannot read value localhost`));
      const unknown = await runSendmail(["-a", "nope", "bob@example.com"], message, env);
      assertEquals(unknown.code, 78, unknown.stderr);
      assertMatch(unknown.stderr, /no account "nope" \(it has: work, other\)/);
    });
  });
});

Deno.test("sendmail exits with sysexits.h codes", async (t) => {
  const message = "From: a@example.com\nSubject: x\n\nbody\n";
  await t.step("no recipients: EX_USAGE (64)", async () => {
    const result = await runSendmail([], message);
    assertEquals(result.code, 64);
    assertMatch(result.stderr, /^smtp: no recipients/);
  });
  await t.step("an unsupported mode: EX_USAGE (64)", async () => {
    assertEquals((await runSendmail(["-bs"], message)).code, 64);
  });
  await t.step("nothing listening: EX_TEMPFAIL (75)", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const result = await runSendmail(["--server", `127.0.0.1:${port}`, "b@example.com"], message);
    assertEquals(result.code, 75, result.stderr);
  });
  const refusals = [
    { phase: "mail", code: 550, exit: 69 },
    { phase: "mail", code: 451, exit: 75 },
    { phase: "rcpt", code: 550, exit: 67 },
    { phase: "data", code: 554, exit: 69 },
  ];
  for (const r of refusals) {
    await t.step(`${r.code} at ${r.phase.toUpperCase()}: ${r.exit}`, async () => {
      await using server = await startSmtpServer({
        refuse: { phase: r.phase, code: r.code, message: "refused by the test" },
      });
      const result = await runSendmail(
        ["--server", `127.0.0.1:${server.port}`, "b@example.com"],
        message,
      );
      assertEquals(result.code, r.exit, result.stderr);
    });
  }
  await t.step("wrong password: EX_NOPERM (77)", async () => {
    await using server = await startAiosmtpd({ user: "alice", password: "right" });
    const result = await runSendmail(
      [
        "--server",
        `127.0.0.1:${server.port}`,
        "--auth-user",
        "alice",
        "--auth-password",
        "wrong",
        "b@example.com",
      ],
      message,
    );
    assertEquals(result.code, 77, result.stderr);
  });
});

Deno.test("git send-email delivers a patch through smtp/sendmail", async () => {
  await using server = await startAiosmtpd();
  await withTempDir(async (dir) => {
    const env = {
      GIT_AUTHOR_NAME: "Alice",
      GIT_AUTHOR_EMAIL: "alice@example.com",
      GIT_COMMITTER_NAME: "Alice",
      GIT_COMMITTER_EMAIL: "alice@example.com",
      HOME: dir,
      PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`,
    };
    const git = async (...args: string[]) => {
      const out = await new Deno.Command("git", { args, cwd: dir, env, stdin: "null" }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert(out.success, `git ${args.join(" ")}: ${text}`);
      return text;
    };
    await git("init", "-q");
    await Deno.writeTextFile(`${dir}/hello.txt`, "hello\n");
    await git("add", "hello.txt");
    await git("commit", "-q", "-m", "Add hello");
    await git(
      "send-email",
      "--to=bob@example.com",
      "--from=Alice <alice@example.com>",
      `--smtp-server=${here}sendmail`,
      `--smtp-server-option=--server=127.0.0.1:${server.port}`,
      "--confirm=never",
      "--suppress-cc=all",
      "--quiet",
      "-1",
    );
  });
  const envelope = await server.envelope(1);
  assertEquals(envelope.mail_from, "alice@example.com");
  assertEquals(envelope.rcpt_tos, ["bob@example.com"]);
  const [path] = await server.delivered();
  const parsed = await parseWithPython(path!);
  assertEquals(parsed.headers.subject, ["[PATCH] Add hello"]);
  assert(parsed.tree.text?.includes("+hello"), parsed.tree.text);
});

Deno.test("echo … | deno task sendmail -t, as a cron job pipes its output", async () => {
  await using server = await startAiosmtpd();
  const task = taskViaConfig("sendmail", ["-t", "--server", `127.0.0.1:${server.port}`]);
  const script = `printf 'To: root@example.com\\nSubject: cron\\n\\nbackup done\\n' | ${
    task.map((w) => `'${w}'`).join(" ")
  }`;
  const out = await new Deno.Command("sh", { args: ["-c", script], stdin: "null" }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const envelope = await server.envelope(1);
  assertEquals(envelope.rcpt_tos, ["root@example.com"]);
  assertMatch(String(envelope.mail_from), /^[^@]+@.+$/);
});
