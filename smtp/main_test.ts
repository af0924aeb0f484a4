import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import { assertHelpLists, runTaskIn } from "../lib/testing/tasks.ts";
import { makeCerts, makeSelfSigned, runCli, startAiosmtpd, startSmtpServer } from "./_testing.ts";
import { OPTIONS } from "./main.ts";

const basic = ["-f", "a@example.com", "-t", "b@example.com", "--subject", "cli test"];

Deno.test("smtp CLI sends over STARTTLS with --tls-ca and prints the final reply", async () => {
  await using certs = await makeCerts();
  await using server = await startAiosmtpd({ mode: "starttls", certs });
  const result = await runCli([
    "-s",
    `127.0.0.1:${server.port}`,
    ...basic,
    "--tls",
    "--tls-ca",
    certs.ca,
  ]);
  assertEquals(result.code, 0, result.stderr);
  assertMatch(result.stdout, /^sent to 1 recipient\(s\): 250 /);
  assertEquals((await server.delivered()).length, 1);
  assertEquals((await server.envelope(1)).tls, true);
});

Deno.test("smtp CLI trusts a self-signed CA:TRUE certificate given with --tls-ca, pinned, or with --insecure", async (t) => {
  await using self = await makeSelfSigned();
  await using other = await makeSelfSigned();
  const cases = [
    { name: "--tls-ca cert.pem", args: ["--tls-ca", self.cert], code: 0 },
    { name: "--tls-fingerprint", args: ["--tls-fingerprint", self.fingerprint], code: 0 },
    {
      name: "--tls-fingerprint, bare lower-case hex",
      args: ["--tls-fingerprint", self.fingerprint.slice(7).replaceAll(":", "").toLowerCase()],
      code: 0,
    },
    { name: "--insecure", args: ["--insecure"], code: 0 },
    { name: "no trust: refused", args: [], code: 29 },
    { name: "another certificate: refused", args: ["--tls-ca", other.cert], code: 29 },
    {
      name: "another fingerprint: refused",
      args: ["--tls-fingerprint", other.fingerprint],
      code: 29,
    },
  ];
  for (const mode of ["starttls", "implicit"] as const) {
    await using server = await startAiosmtpd({ mode, certs: self });
    const tlsFlag = mode === "starttls" ? "--tls" : "--tls-on-connect";
    let delivered = 0;
    for (const c of cases) {
      await t.step(`${mode}: ${c.name}`, async () => {
        const result = await runCli([
          "-s",
          `localhost:${server.port}`,
          ...basic,
          tlsFlag,
          ...c.args,
        ]);
        assertEquals(result.code, c.code, result.stderr);
        if (c.code === 0) delivered++;
        assertEquals((await server.delivered()).length, delivered);
        if (c.code !== 0) {
          // The refusal says why, shows what to pin, and names the fixes.
          assertMatch(result.stderr, /certificate/);
          assert(result.stderr.includes(self.fingerprint), result.stderr);
          assert(result.stderr.includes("--tls-ca FILE"), result.stderr);
        }
      });
    }
  }
});

Deno.test("smtp CLI failures give the documented exit code and message", async (t) => {
  await using certs = await makeCerts();

  await t.step("wrong password: 28", async () => {
    await using server = await startAiosmtpd({ user: "alice", password: "right" });
    const result = await runCli([
      "-s",
      `127.0.0.1:${server.port}`,
      ...basic,
      "--auth",
      "PLAIN",
      "--auth-user",
      "alice",
      "--auth-password",
      "wrong",
    ]);
    assertEquals(result.code, 28);
    assertEquals(
      result.stderr.trim(),
      'smtp: Authentication as "alice" with PLAIN failed: 535 5.7.8 Authentication credentials invalid',
    );
  });

  await t.step("TLS name mismatch, STARTTLS and implicit: 29", async () => {
    for (const mode of ["starttls", "implicit"] as const) {
      await using server = await startAiosmtpd({ mode, certs, cert: "wrong" });
      const tlsFlag = mode === "starttls" ? "--tls" : "--tls-on-connect";
      const result = await runCli([
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        tlsFlag,
        "--tls-ca",
        certs.ca,
      ]);
      assertEquals(result.code, 29, result.stderr);
      assertMatch(result.stderr, /^smtp: Cannot start TLS with 127\.0\.0\.1(:\d+)?: .*(name|Name)/);
      assertEquals((await server.delivered()).length, 0);
      // --insecure skips every check: the same server is then accepted, with a warning.
      const insecure = await runCli([
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        tlsFlag,
        "--tls-ca",
        certs.ca,
        "--insecure",
      ]);
      assertEquals(insecure.code, 0, insecure.stderr);
      assertMatch(
        insecure.stderr,
        /^smtp: warning: --insecure: the server's certificate is not verified/,
      );
    }
  });

  await t.step("an unknown CA: 29", async () => {
    await using server = await startAiosmtpd({ mode: "starttls", certs });
    const result = await runCli(["-s", `127.0.0.1:${server.port}`, ...basic, "--tls"]);
    assertEquals(result.code, 29);
    assertMatch(result.stderr, /^smtp: Cannot start TLS with 127\.0\.0\.1: .*(issuer|Issuer)/);
  });

  await t.step("a server that never answers: 21 after --timeout", async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const result = await runCli([
      "-s",
      `127.0.0.1:${listener.addr.port}`,
      ...basic,
      "--timeout",
      "0.5",
    ]);
    (await accepted).close();
    assertEquals(result.code, 21);
    assertEquals(
      result.stderr.trim(),
      "smtp: Timed out waiting for the server's reply in phase GREETING: no progress after 0.5 s",
    );
  });

  await t.step("nothing listening: 20", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const result = await runCli(["-s", `127.0.0.1:${port}`, ...basic]);
    assertEquals(result.code, 20);
    assertMatch(result.stderr, new RegExp(`^smtp: Cannot connect to 127\\.0\\.0\\.1:${port}: `));
  });

  await t.step("header injection in any header or address: 3, nothing sent", async () => {
    await using server = await startAiosmtpd();
    const cases = [
      ["--subject", "hi\r\nBcc: victim@example.com"],
      ["--header", "X-Test: a\nBcc: victim@example.com"],
      ["--cc", "c@example.com\r\nBcc: victim@example.com"],
      ["-f", "Eve <eve@example.com>\nBcc: victim@example.com"],
    ];
    for (const [flag, value] of cases) {
      const result = await runCli(["-s", `127.0.0.1:${server.port}`, ...basic, flag!, value!]);
      assertEquals(result.code, 3, `${flag}: ${result.stderr}`);
      assertMatch(
        result.stderr,
        /^smtp: Cannot use .*: it contains a CR or LF character \(header injection refused\)\n$/,
      );
    }
    assertEquals((await server.delivered()).length, 0);
  });

  await t.step("EHLO and HELO refused: 22", async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serve = (async () => {
      using conn = await listener.accept();
      const encoder = new TextEncoder();
      await conn.write(encoder.encode("220 scripted\r\n"));
      const buffer = new Uint8Array(1024);
      for (let i = 0; i < 2; i++) {
        if ((await conn.read(buffer)) === null) return;
        await conn.write(encoder.encode("554 5.7.1 go away\r\n"));
      }
      await conn.read(buffer);
    })();
    const result = await runCli(["-s", `127.0.0.1:${listener.addr.port}`, ...basic]);
    await serve;
    assertEquals(result.code, 22);
    assertEquals(result.stderr.trim(), "smtp: The server refused EHLO: 554 5.7.1 go away");
  });

  await t.step("MAIL, RCPT and DATA refused: 23, 24, 25", async () => {
    for (const [phase, code] of [["mail", 23], ["rcpt", 24], ["data", 25]] as const) {
      await using server = await startSmtpServer({
        refuse: { phase, code: 550, message: `no ${phase}` },
      });
      const result = await runCli(["-s", `127.0.0.1:${server.port}`, ...basic]);
      assertEquals(result.code, code, result.stderr);
      assert(result.stderr.includes(`550 no ${phase}`), result.stderr);
    }
  });

  await t.step("some recipients refused: 1, the rest delivered", async () => {
    await using server = await startSmtpServer({ refuseRecipients: ["x@example.com"] });
    const result = await runCli([
      "-s",
      `127.0.0.1:${server.port}`,
      ...basic,
      "-t",
      "x@example.com",
      "--pipeline",
    ]);
    assertEquals(result.code, 1);
    assertEquals(result.stderr, "smtp: recipient <x@example.com> refused: 550 No such user here\n");
    const data = await server.waitFor((e) => e.event === "data");
    assertEquals(data.rcpt, ["b@example.com"]);
  });
});

Deno.test("smtp CLI authenticates from SMTP_PASSWORD and masks secrets with -v", async () => {
  await using server = await startAiosmtpd({ user: "alice", password: "pa55word" });
  for (const mechanism of ["PLAIN", "LOGIN", "CRAM-MD5"]) {
    const result = await runCli(
      [
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        "--auth",
        mechanism,
        "--auth-user",
        "alice",
        "-v",
      ],
      { SMTP_PASSWORD: "pa55word" },
    );
    assertEquals(result.code, 0, result.stderr);
    assert(result.stdout.includes(`-> AUTH ${mechanism}`), result.stdout);
    assert(result.stdout.includes("<- 235 2.7.0 Authentication successful"));
    assert(!result.stdout.includes(btoa("pa55word")) && !result.stdout.includes("pa55word"));
    assertMatch(result.stdout, /^<- 354 /m);
  }
});

Deno.test("smtp CLI --dump, --quit-after and --data", async (t) => {
  await t.step("--dump prints the composed message", async () => {
    const result = await runCli([...basic, "--body", "hello", "--dump"]);
    assertEquals(result.code, 0);
    assertMatch(
      result.stdout,
      /^Date: .*\r\nFrom: a@example.com\r\nTo: b@example.com\r\nSubject: cli test\r\n/,
    );
    assert(result.stdout.endsWith("\r\n\r\nhello\r\n"));
  });

  await t.step("--quit-after stops after the phase", async () => {
    const cases = [
      { phase: "CONNECT", events: [] },
      { phase: "EHLO", events: [] },
      { phase: "TLS", events: [] },
      { phase: "AUTH", events: ["auth"] },
      { phase: "MAIL", events: ["auth", "mail"] },
      { phase: "RCPT", events: ["auth", "mail", "rcpt"] },
    ];
    for (const { phase, events } of cases) {
      await using server = await startSmtpServer({ authMethods: ["PLAIN"], users: { u: "p" } });
      const result = await runCli([
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        "--auth-user",
        "u",
        "--auth-password",
        "p",
        "--quit-after",
        phase.toLowerCase(),
      ]);
      assertEquals(result.code, 0, result.stderr);
      assertEquals(result.stdout, "");
      const last = events[events.length - 1];
      if (last) await server.waitFor((e) => e.event === last);
      assertEquals(server.events().map((e) => e.event), events, phase);
    }
  });

  await t.step("--data sends a ready message as it is, dot-stuffed on the wire", async () => {
    await using server = await startAiosmtpd();
    const path = await Deno.makeTempFile({ suffix: ".eml" });
    try {
      const eml =
        "From: a@example.com\r\nSubject: ready\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n";
      await Deno.writeTextFile(path, eml);
      const result = await runCli([
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        "--data",
        `@${path}`,
      ]);
      assertEquals(result.code, 0, result.stderr);
      const [delivered] = await server.delivered();
      assertEquals(await Deno.readTextFile(delivered!), eml);
    } finally {
      await Deno.remove(path);
    }
  });
});

Deno.test("smtp CLI prompts for the password on a TTY without echoing it", async () => {
  await using server = await startSmtpServer({ authMethods: ["PLAIN"], users: { u: "p4ss" } });
  const main = new URL("./main.ts", import.meta.url).pathname;
  // util-linux `script` gives the CLI a pseudo-terminal as stdin and stdout.
  const command = [Deno.execPath(), "run", "-A", "--quiet", main, "-s", `127.0.0.1:${server.port}`]
    .concat(basic, ["--auth-user", "u"]).map((a) => `'${a}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { SMTP_PASSWORD: "" },
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  const stderr = new Response(child.stderr).text();
  const writer = child.stdin.getWriter();
  let typed = false;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    output += decoder.decode(value);
    if (!typed && output.includes("Password: ")) {
      typed = true;
      await writer.write(new TextEncoder().encode("p4ss\r"));
    }
  }
  await writer.close();
  const status = await child.status;
  assertEquals(status.code, 0, output + (await stderr));
  assert(!output.includes("p4ss"), output);
  assertMatch(output, /sent to 1 recipient\(s\): 250 /);
});

Deno.test("smtp --help lists every option with its default and the exit codes", async () => {
  const help = await assertHelpLists("smtp", OPTIONS);
  assertMatch(help, /Exit codes: 0 sent, 1 sent but some recipients refused, 2 usage/);
});

Deno.test("smtp takes --body, --html, --attach, --data and --tls-ca files from the directory it is run in", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "netkit_smtp_paths_" });
  const smtp = (args: string[]) => runTaskIn(dir, "smtp", args);
  try {
    await Deno.writeTextFile(`${dir}/note.txt`, "the note from the user's folder\n");
    await Deno.writeTextFile(`${dir}/note.html`, "<p>the page from the user's folder</p>\n");
    await Deno.writeTextFile(`${dir}/report.csv`, "a,b\n");
    await Deno.writeTextFile(`${dir}/ready.eml`, "Subject: ready-made\r\n\r\nready body\r\n");
    await t.step("--dump --body @note.txt --html @note.html --attach report.csv", async () => {
      const r = await smtp([
        ...basic,
        "--dump",
        "--body",
        "@note.txt",
        "--html",
        "@note.html",
        "--attach",
        "report.csv",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assert(r.stdout.includes("the note from the user's folder"), r.stdout);
      assert(r.stdout.includes("<p>the page from the user's folder</p>"), r.stdout);
      assert(r.stdout.includes("filename=report.csv"), r.stdout);
      assert(r.stdout.includes(btoa("a,b\n")), r.stdout);
    });
    await t.step("--dump --data @ready.eml", async () => {
      const r = await smtp([...basic, "--dump", "--data", "@ready.eml"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "Subject: ready-made\r\n\r\nready body\r\n");
    });
    await t.step("--tls-ca ca.pem", async () => {
      await using certs = await makeCerts();
      await using server = await startAiosmtpd({ mode: "starttls", certs });
      await Deno.copyFile(certs.ca, `${dir}/ca.pem`);
      const r = await smtp([
        "-s",
        `127.0.0.1:${server.port}`,
        ...basic,
        "--tls",
        "--tls-ca",
        "ca.pem",
      ]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals((await server.envelope(1)).tls, true);
    });
    await t.step("a missing file is named as typed and as resolved", async () => {
      for (
        const args of [["--body", "@gone.txt"], ["--attach", "gone.txt"], ["--data", "@gone.txt"]]
      ) {
        const r = await smtp([...basic, "--dump", ...args]);
        assertEquals(r.code, 3, r.stderr);
        assertMatch(r.stderr, /^smtp: Cannot [^\n]*"gone\.txt" \(/);
        assert(r.stderr.includes(`"gone.txt" (${dir}/gone.txt): `), r.stderr);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp words an unknown host as every tool does", async () => {
  const main = new URL("./main.ts", import.meta.url).pathname;
  // No network namespace resolver: the lookup fails at once, whatever the host's DNS.
  const out = await new Deno.Command("unshare", {
    args: ["-n", Deno.execPath(), "run", "-A", main, "-s", "nowhere.invalid", ...basic],
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 20, stderr);
  assert(stderr.startsWith('smtp: Cannot resolve host "nowhere.invalid": '), stderr);
});
