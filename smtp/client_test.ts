import { assert, assertEquals, assertRejects } from "../lib/testing/assert.ts";
import {
  type Credentials,
  openSession,
  type SmtpConn,
  SmtpError,
  SmtpSession,
  type SmtpTransport,
  type TranscriptDirection,
} from "./client.ts";
import { composeMessage, messageFromFile } from "./mime.ts";
import {
  makeCerts,
  parseWithPython,
  sha256File,
  startAiosmtpd,
  startSmtpServer,
} from "./_testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A scripted server for unit tests of the session logic: `script` maps each
 * command line the client sends to the raw bytes the server answers.
 */
class FakeConn implements SmtpConn {
  #pending: Uint8Array[] = [];
  #waiter: (() => void) | undefined;
  #partial = "";
  closed = false;
  readonly sent: string[] = [];
  constructor(greeting: string, readonly script: (line: string) => string) {
    this.#push(greeting);
  }
  #push(text: string) {
    if (text === "") return;
    this.#pending.push(encoder.encode(text));
    this.#waiter?.();
  }
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#pending.length === 0) {
      if (this.closed) return null;
      await new Promise<void>((r) => (this.#waiter = r));
    }
    const chunk = this.#pending.shift()!;
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n < chunk.length) this.#pending.unshift(chunk.subarray(n));
    return n;
  }
  write(p: Uint8Array): Promise<number> {
    const lines = (this.#partial + decoder.decode(p)).split("\r\n");
    this.#partial = lines.pop() ?? "";
    for (const line of lines) {
      this.sent.push(line);
      this.#push(this.script(line));
    }
    return Promise.resolve(p.length);
  }
  close() {
    this.closed = true;
    this.#waiter?.();
  }
}

function fakeTransport(conn: FakeConn, afterTls?: FakeConn): SmtpTransport {
  return {
    connect: () => Promise.resolve(conn),
    startTls: () => Promise.resolve(afterTls ?? conn),
  };
}

Deno.test("SmtpSession parses multi-line replies, enhanced codes and capabilities", async () => {
  const conn = new FakeConn("220-first\r\n220 second line\r\n", (line) => {
    if (line.startsWith("EHLO")) {
      return "250-fake.example\r\n250-SIZE 1000\r\n250-AUTH=LOGIN PLAIN\r\n250 ENHANCEDSTATUSCODES\r\n";
    }
    if (line === "QUIT") return "221 2.0.0 bye\r\n";
    return "500 5.5.1 what\r\n";
  });
  await using session = await SmtpSession.connect({
    hostname: "fake",
    transport: fakeTransport(conn),
    ehloName: "client.example",
  });
  assertEquals(session.greeting, { code: 220, lines: ["first", "second line"] });
  await session.hello();
  assertEquals(session.capabilities.get("SIZE"), "1000");
  assertEquals(session.authMechanisms, ["LOGIN", "PLAIN"]);
  assertEquals(conn.sent[0], "EHLO client.example");
  const reset = await session.reset();
  assertEquals(reset, { code: 500, enhanced: "5.5.1", lines: ["what"] });
});

Deno.test("SmtpSession falls back to HELO when the server does not know EHLO", async () => {
  const conn = new FakeConn("220 old\r\n", (line) => {
    if (line.startsWith("EHLO")) return "502 unknown command\r\n";
    if (line.startsWith("HELO")) return "250 hello\r\n";
    return "221 bye\r\n";
  });
  await using session = await SmtpSession.connect({
    hostname: "fake",
    transport: fakeTransport(conn),
    ehloName: "c",
  });
  await session.hello();
  assertEquals(conn.sent, ["EHLO c", "HELO c"]);
  assertEquals(session.capabilities.size, 0);
});

Deno.test("SmtpSession.startTls discards what came before the handshake and asks EHLO again", async () => {
  const afterTls = new FakeConn("", (line) => {
    if (line.startsWith("EHLO")) return "250-secure\r\n250 AUTH PLAIN\r\n";
    return "221 bye\r\n";
  });
  // RFC 3207 §6: the "250 injected" arrives with the 220, before TLS; it must not be read as a reply.
  const plain = new FakeConn("220 hi\r\n", (line) => {
    if (line.startsWith("EHLO")) return "250-plain\r\n250 STARTTLS\r\n";
    if (line === "STARTTLS") return "220 go ahead\r\n250 injected\r\n";
    return "500 no\r\n";
  });
  await using session = await SmtpSession.connect({
    hostname: "fake",
    transport: fakeTransport(plain, afterTls),
    ehloName: "c",
  });
  await session.hello();
  await session.startTls();
  assert(session.secure);
  assertEquals(session.authMechanisms, ["PLAIN"]);
  assert(!session.capabilities.has("STARTTLS"));
  assertEquals(afterTls.sent, ["EHLO c"]);
});

Deno.test("SmtpSession masks AUTH secrets in the transcript", async () => {
  for (const mechanism of ["PLAIN", "LOGIN"] as const) {
    const conn = new FakeConn("220 hi\r\n", (line) => {
      if (line.startsWith("EHLO")) return "250-x\r\n250 AUTH PLAIN LOGIN\r\n";
      if (line === "AUTH LOGIN") return "334 VXNlcm5hbWU6\r\n";
      if (line === btoa("user")) return "334 UGFzc3dvcmQ6\r\n";
      if (line.startsWith("AUTH PLAIN") || line === btoa("s3cret")) return "235 ok\r\n";
      return "221 bye\r\n";
    });
    const transcript: string[] = [];
    await using session = await SmtpSession.connect({
      hostname: "fake",
      transport: fakeTransport(conn),
      allowPlaintextAuth: true,
      onTranscript: (dir: TranscriptDirection, line: string) => transcript.push(`${dir} ${line}`),
    });
    await session.hello();
    await session.authenticate({ user: "user", password: "s3cret", mechanism });
    const text = transcript.join("\n");
    assert(!text.includes(btoa("s3cret")) && !text.includes(btoa("\0user\0s3cret")), text);
    assert(text.includes("****"));
  }
});

Deno.test("SmtpSession refuses clear-text credentials to a remote host unless allowed", async (t) => {
  const script = (line: string) => {
    if (line.startsWith("EHLO")) return "250-x\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n";
    if (line.startsWith("AUTH PLAIN")) return "235 ok\r\n";
    if (line === "AUTH CRAM-MD5") return `334 ${btoa("<1.2@x>")}\r\n`;
    if (line.startsWith(btoa("user ").slice(0, 4))) return "235 ok\r\n";
    return "221 bye\r\n";
  };
  const cases = [
    { host: "mail.example.test", mechanism: "PLAIN", allow: false, refused: true },
    { host: "mail.example.test", mechanism: "PLAIN", allow: true, refused: false },
    { host: "mail.example.test", mechanism: "CRAM-MD5", allow: false, refused: false },
    { host: "127.0.0.1", mechanism: "PLAIN", allow: false, refused: false },
    { host: "localhost", mechanism: "PLAIN", allow: false, refused: false },
    { host: "[::1]", mechanism: "PLAIN", allow: false, refused: false },
  ] as const;
  for (const { host, mechanism, allow, refused } of cases) {
    await t.step(`${mechanism} to ${host}${allow ? " (allowed)" : ""}`, async () => {
      const conn = new FakeConn("220 hi\r\n", script);
      await using session = await SmtpSession.connect({
        hostname: host,
        transport: fakeTransport(conn),
        allowPlaintextAuth: allow,
      });
      await session.hello();
      const attempt = session.authenticate({ user: "user", password: "s3cret", mechanism });
      if (refused) {
        const err = await assertRejects(() => attempt, SmtpError);
        assertEquals(err.phase, "auth");
        assert(err.message.startsWith(`Refusing to send PLAIN credentials to ${host}`));
        assert(!conn.sent.some((line) => line.startsWith("AUTH")), conn.sent.join("\n"));
      } else {
        assertEquals((await attempt).code, 235);
      }
    });
  }
});

Deno.test("SmtpSession refuses CR, LF and angle brackets in envelope addresses", async () => {
  const conn = new FakeConn("220 hi\r\n", (line) => {
    if (line.startsWith("EHLO")) return "250 x\r\n";
    return "221 bye\r\n";
  });
  await using session = await SmtpSession.connect({
    hostname: "f",
    transport: fakeTransport(conn),
  });
  await session.hello();
  const message = await composeMessage({ from: "a@example.com", text: "x" });
  for (const bad of ["a@example.com>\r\nRCPT TO:<b@example.com", "x\n@y", "a>b@c"]) {
    const err = await assertRejects(
      () => session.send({ from: "a@example.com", to: [bad] }, message),
      TypeError,
    );
    assert(err.message.includes("command injection refused"), err.message);
  }
  assert(!conn.sent.some((l) => l.startsWith("MAIL")));
});

Deno.test("SmtpSession ends a pipelined DATA that got 354 when every recipient was refused", async () => {
  const conn = new FakeConn("220 hi\r\n", (line) => {
    if (line.startsWith("EHLO")) return "250-x\r\n250 PIPELINING\r\n";
    if (line.startsWith("MAIL")) return "250 ok\r\n";
    if (line.startsWith("RCPT")) return "550 5.1.1 no such user\r\n";
    if (line === "DATA") return "354 go on\r\n";
    if (line === ".") return "554 5.5.1 no valid recipients\r\n";
    return "221 bye\r\n";
  });
  await using session = await SmtpSession.connect({
    hostname: "f",
    transport: fakeTransport(conn),
  });
  await session.hello();
  const message = await composeMessage({ from: "a@example.com", text: "x" });
  const err = await assertRejects(
    () => session.send({ from: "a@example.com", to: ["b@example.com"] }, message),
    SmtpError,
  );
  assertEquals([err.phase, err.code, err.reply?.enhanced], ["rcpt", 550, "5.1.1"]);
  assertEquals(conn.sent.slice(1), [
    "MAIL FROM:<a@example.com>",
    "RCPT TO:<b@example.com>",
    "DATA",
    ".",
  ]);
});

Deno.test("SmtpSession times out in the phase where the server stops answering", async () => {
  for (const silentAt of ["EHLO", "MAIL", "RCPT", "DATA", "."] as const) {
    let inData = false;
    const conn = new FakeConn("220 hi\r\n", (line) => {
      if (inData && line !== ".") return "";
      if (line.startsWith(silentAt)) return "";
      if (line.startsWith("EHLO")) return "250 x\r\n";
      if (line === "DATA") {
        inData = true;
        return "354 go\r\n";
      }
      return "250 ok\r\n";
    });
    const session = await SmtpSession.connect({
      hostname: "f",
      transport: fakeTransport(conn),
      timeouts: { command: 50, data: 80 },
    });
    const err = await assertRejects(async () => {
      await session.hello();
      const message = await composeMessage({ from: "a@example.com", text: "x" });
      await session.send({ from: "a@example.com", to: ["b@example.com"] }, message);
    }, SmtpError);
    const phase = { EHLO: "ehlo", MAIL: "mail", RCPT: "rcpt", DATA: "data", ".": "data" }[silentAt];
    assertEquals(err.phase, phase);
    assert(err.message.startsWith("Timed out waiting for the server's reply"), err.message);
    assert(conn.closed);
    await session.quit();
  }
});

Deno.test("aiosmtpd: a message goes through plain, STARTTLS and implicit TLS", async (t) => {
  await using certs = await makeCerts();
  const cases = [
    { name: "plain", mode: "plain", session: {} },
    { name: "STARTTLS", mode: "starttls", session: { startTls: "required" } },
    { name: "implicit TLS", mode: "implicit", session: { implicitTls: true } },
  ] as const;
  for (const c of cases) {
    await t.step(c.name, async () => {
      await using server = await startAiosmtpd({ mode: c.mode, certs });
      {
        await using session = await openSession({
          hostname: "127.0.0.1",
          port: server.port,
          caCerts: [await Deno.readTextFile(certs.ca)],
          ...c.session,
        });
        assertEquals(session.secure, c.mode !== "plain");
        const message = await composeMessage({
          from: "a@example.com",
          to: ["b@example.com"],
          subject: `over ${c.name}`,
          text: "hello\n",
        });
        const result = await session.send(
          { from: "a@example.com", to: ["b@example.com"] },
          message,
        );
        assertEquals(result.accepted, ["b@example.com"]);
        assertEquals(result.reply.code, 250);
      }
      const [path] = await server.delivered();
      const parsed = await parseWithPython(path!);
      assertEquals(parsed.headers.subject, [`over ${c.name}`]);
      // aiosmtpd records its TLS object for STARTTLS only.
      if (c.mode !== "implicit") assertEquals((await server.envelope(1)).tls, c.mode !== "plain");
    });
  }
});

Deno.test("aiosmtpd: each AUTH mechanism it offers logs in with that mechanism, a wrong password is refused", async (t) => {
  await using server = await startAiosmtpd({ user: "alice", password: "wonder land" });
  // Without a choice the client takes the best offered, CRAM-MD5.
  const cases = [
    ["PLAIN", "PLAIN"],
    ["LOGIN", "LOGIN"],
    ["CRAM-MD5", "CRAM-MD5"],
    [undefined, "CRAM-MD5"],
  ] as const;
  for (const [mechanism, used] of cases) {
    await t.step(mechanism ?? "best offered", async () => {
      const auth: Credentials = { user: "alice", password: "wonder land" };
      if (mechanism) auth.mechanism = mechanism;
      const before = (await server.authAttempts()).length;
      await using session = await openSession({ hostname: "127.0.0.1", port: server.port, auth });
      assert(session.authMechanisms.includes("CRAM-MD5"));
      // The server's own record: one attempt, with this mechanism, accepted.
      assertEquals((await server.authAttempts()).slice(before), [`${used} ok`]);
    });
  }
  await t.step("wrong password", async () => {
    const err = await assertRejects(
      () =>
        openSession({
          hostname: "127.0.0.1",
          port: server.port,
          auth: { user: "alice", password: "wrong", mechanism: "PLAIN" },
        }),
      SmtpError,
    );
    assertEquals(err.phase, "auth");
    assertEquals(err.code, 535);
    assertEquals((await server.authAttempts()).at(-1), "PLAIN refused");
  });
});

Deno.test("aiosmtpd: headers decode, attachments arrive byte-identical, structure is mixed ⊃ alternative", async () => {
  await using server = await startAiosmtpd();
  const dir = await Deno.makeTempDir();
  try {
    const binary = `${dir}/data.bin`;
    const bytes = new Uint8Array(200_003);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, bytes.length)));
    }
    await Deno.writeFile(binary, bytes);
    const csv = `${dir}/table.csv`;
    await Deno.writeTextFile(csv, "a,b\n.1,2\n");
    const subject = "Grüße aus Köln — ünïcödé 件名 that is long enough to be folded over lines ✓";
    const longLine = "x".repeat(2000);
    const message = await composeMessage({
      from: "Jörg Müller <jorg@example.com>",
      to: ["Ann <ann@example.com>", '"Doe, John" <john@example.com>'],
      cc: ["Zoë <zoe@example.com>"],
      subject,
      text: `héllo\n.line starting with a dot\n${longLine}\n`,
      html: "<p>héllo</p>\n",
      attachments: [
        { path: binary, filename: "Übersicht – 2024 résumé très très long nom de fichier.bin" },
        { path: csv },
      ],
      headers: [["X-Note", "ça va"]],
    });
    {
      await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
      await session.send(
        {
          from: "jorg@example.com",
          to: ["ann@example.com", "john@example.com", "zoe@example.com"],
        },
        message,
      );
    }
    const [path] = await server.delivered();
    const raw = await Deno.readTextFile(path!);
    for (const line of raw.split("\r\n")) assert(line.length <= 998, "a line over 998 octets");
    const parsed = await parseWithPython(path!);
    assertEquals(parsed.defects, []);
    assertEquals(parsed.headers.subject, [subject]);
    assertEquals(parsed.headers.from, ["Jörg Müller <jorg@example.com>"]);
    assertEquals(parsed.headers.to, ['Ann <ann@example.com>, "Doe, John" <john@example.com>']);
    assertEquals(parsed.headers.cc, ["Zoë <zoe@example.com>"]);
    assertEquals(parsed.headers["x-note"], ["ça va"]);
    assertEquals(parsed.headers["mime-version"], ["1.0"]);
    assert(parsed.headers.date?.[0] && parsed.headers["message-id"]?.[0]);
    const tree = parsed.tree;
    assertEquals(tree.content_type, "multipart/mixed");
    const [alternative, attachment, table] = tree.parts!;
    assertEquals(alternative!.content_type, "multipart/alternative");
    assertEquals(alternative!.parts!.map((p) => p.content_type), ["text/plain", "text/html"]);
    assertEquals(alternative!.parts![0]!.text, `héllo\n.line starting with a dot\n${longLine}\n`);
    assertEquals(alternative!.parts![1]!.text, "<p>héllo</p>\n");
    assertEquals(attachment!.filename, "Übersicht – 2024 résumé très très long nom de fichier.bin");
    assertEquals(attachment!.content_type, "application/octet-stream");
    assertEquals(attachment!.sha256, await sha256File(binary));
    assertEquals(table!.content_type, "text/csv");
    assertEquals(table!.sha256, await sha256File(csv));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp-server: PIPELINING sends MAIL, RCPT and DATA in one group", async () => {
  await using server = await startSmtpServer();
  const transcript: string[] = [];
  {
    await using session = await openSession({
      hostname: "127.0.0.1",
      port: server.port,
      onTranscript: (dir, line) => transcript.push(`${dir} ${line}`),
    });
    assert(session.capabilities.has("PIPELINING"));
    const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
    await session.send({ from: "a@example.com", to: ["b@example.com", "c@example.com"] }, message);
  }
  const mail = transcript.findIndex((l) => l.startsWith("-> MAIL FROM"));
  assertEquals(transcript.slice(mail, mail + 4), [
    "-> MAIL FROM:<a@example.com>",
    "-> RCPT TO:<b@example.com>",
    "-> RCPT TO:<c@example.com>",
    "-> DATA",
  ]);
  const data = await server.waitFor((e) => e.event === "data");
  assertEquals(data.rcpt, ["b@example.com", "c@example.com"]);
});

Deno.test("smtp-server: DSN parameters are sent when offered", async () => {
  await using server = await startSmtpServer({ dsn: true });
  {
    await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
    const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
    await session.send({ from: "a@example.com", to: ["b@example.com"] }, message, {
      dsn: { notify: ["SUCCESS", "FAILURE"], ret: "HDRS", envid: "id+1=2", orcpt: true },
    });
  }
  const mail = await server.waitFor((e) => e.event === "mail");
  assertEquals((mail.args as Record<string, string>).RET, "HDRS");
  // smtp-server decodes the xtext (RFC 3461 §4) that carried "+" and "=".
  assertEquals((mail.args as Record<string, string>).ENVID, "id+1=2");
  const rcpt = await server.waitFor((e) => e.event === "rcpt");
  assertEquals((rcpt.dsn as { notify: string[] }).notify, ["SUCCESS", "FAILURE"]);
  assertEquals((rcpt.dsn as { orcpt: string }).orcpt, "rfc822;b@example.com");
});

Deno.test("smtp-server: XOAUTH2 logs in with a token and a bad token is refused", async () => {
  await using server = await startSmtpServer({
    authMethods: ["XOAUTH2", "PLAIN"],
    users: { "ann@example.com": "ya29.token" },
  });
  {
    await using _session = await openSession({
      hostname: "127.0.0.1",
      port: server.port,
      auth: { user: "ann@example.com", password: "ya29.token", mechanism: "XOAUTH2" },
    });
  }
  const err = await assertRejects(
    () =>
      openSession({
        hostname: "127.0.0.1",
        port: server.port,
        auth: { user: "ann@example.com", password: "expired", mechanism: "XOAUTH2" },
      }),
    SmtpError,
  );
  assertEquals([err.phase, err.code], ["auth", 535]);
});

Deno.test("smtp-server: CRAM-MD5 agrees with nodemailer's implementation", async () => {
  await using server = await startSmtpServer({ authMethods: ["CRAM-MD5"], users: { u: "pw" } });
  {
    await using _session = await openSession({
      hostname: "127.0.0.1",
      port: server.port,
      auth: { user: "u", password: "pw" },
    });
  }
  assertEquals((await server.waitFor((e) => e.event === "auth")).method, "CRAM-MD5");
  const err = await assertRejects(
    () =>
      openSession({
        hostname: "127.0.0.1",
        port: server.port,
        auth: { user: "u", password: "no" },
      }),
    SmtpError,
  );
  assertEquals([err.phase, err.code], ["auth", 535]);
});

Deno.test("smtp-server: SIZE is checked before sending, and an oversized message is refused", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const big = `${dir}/big.bin`;
    await Deno.writeFile(big, new Uint8Array(5000));
    const message = await composeMessage({
      from: "a@example.com",
      to: ["b@example.com"],
      attachments: [{ path: big }],
    });
    await t.step("advertised limit: refused before MAIL", async () => {
      await using server = await startSmtpServer({ size: 2000 });
      await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
      const err = await assertRejects(
        () => session.send({ from: "a@example.com", to: ["b@example.com"] }, message),
        SmtpError,
      );
      assert(err.message.includes("at most 2000"), err.message);
      assertEquals(err.phase, "mail");
      assertEquals(server.events().filter((e) => e.event === "mail"), []);
    });
    await t.step("hidden limit: the server refuses after the data", async () => {
      await using server = await startSmtpServer({ size: 2000, hideSize: true });
      await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
      const err = await assertRejects(
        () => session.send({ from: "a@example.com", to: ["b@example.com"] }, message),
        SmtpError,
      );
      assertEquals([err.phase, err.code], ["data", 552]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp-server: a 4xx or 5xx at each phase fails that phase", async (t) => {
  const cases = [
    { phase: "connect", code: 554, expect: "greeting" },
    { phase: "auth", code: 454, expect: "auth" },
    { phase: "mail", code: 451, expect: "mail" },
    { phase: "mail", code: 550, expect: "mail" },
    { phase: "rcpt", code: 450, expect: "rcpt" },
    { phase: "rcpt", code: 550, expect: "rcpt" },
    { phase: "data", code: 451, expect: "data" },
    { phase: "data", code: 554, expect: "data" },
  ];
  for (const pipelining of [false, true]) {
    for (const c of cases) {
      await t.step(`${c.code} at ${c.phase}${pipelining ? " (pipelined)" : ""}`, async () => {
        await using server = await startSmtpServer({
          refuse: { phase: c.phase, code: c.code, message: "refused by test" },
          authMethods: ["PLAIN"],
          users: { u: "p" },
          enhanced: true,
        });
        const err = await assertRejects(async () => {
          await using session = await openSession({
            hostname: "127.0.0.1",
            port: server.port,
            auth: { user: "u", password: "p" },
          });
          const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
          await session.send({ from: "a@example.com", to: ["b@example.com"] }, message, {
            pipelining,
          });
        }, SmtpError);
        assertEquals([err.phase, err.code], [c.expect, c.code]);
        assert(err.message.includes("refused by test"), err.message);
      });
    }
  }
});

Deno.test("smtp-server: a refused recipient is reported and the others still get the message", async () => {
  await using server = await startSmtpServer({ refuseRecipients: ["nobody@example.com"] });
  for (const pipelining of [false, true]) {
    await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
    const message = await composeMessage({ from: "a@example.com", to: ["b@example.com"] });
    const result = await session.send(
      { from: "a@example.com", to: ["b@example.com", "nobody@example.com", "c@example.com"] },
      message,
      { pipelining },
    );
    assertEquals(result.accepted, ["b@example.com", "c@example.com"]);
    assertEquals(result.rejected.map((r) => [r.recipient, r.reply.code]), [
      ["nobody@example.com", 550],
    ]);
    assertEquals(result.reply.code, 250);
  }
  const deliveries = server.events().filter((e) => e.event === "data");
  assertEquals(deliveries.map((e) => e.rcpt), [
    ["b@example.com", "c@example.com"],
    ["b@example.com", "c@example.com"],
  ]);
});

Deno.test("smtp-server: one session sends many messages and recovers with RSET after a refusal", async () => {
  await using server = await startSmtpServer({ refuseRecipients: ["bad@example.com"] });
  const transcript: string[] = [];
  {
    await using session = await openSession({
      hostname: "127.0.0.1",
      port: server.port,
      onTranscript: (dir, line) => transcript.push(`${dir} ${line}`),
    });
    for (let i = 0; i < 5; i++) {
      const message = await composeMessage({
        from: "a@example.com",
        to: ["b@example.com"],
        subject: `n${i}`,
      });
      const to = i === 2 ? ["bad@example.com"] : ["b@example.com"];
      if (i === 2) {
        await assertRejects(() => session.send({ from: "a@example.com", to }, message), SmtpError);
      } else {
        await session.send({ from: "a@example.com", to }, message);
      }
    }
  }
  const deliveries = server.events().filter((e) => e.event === "data");
  assertEquals(
    deliveries.map((e) => /Subject: (\S+)/.exec(String(e.text))?.[1]),
    ["n0", "n1", "n3", "n4"],
  );
  assertEquals(transcript.filter((l) => l === "-> RSET").length, 1);
});

Deno.test("aiosmtpd: BODY=8BITMIME and SMTPUTF8 are asked for only when the message needs them", async () => {
  await using server = await startAiosmtpd();
  const path = await Deno.makeTempFile({ suffix: ".eml" });
  try {
    await Deno.writeTextFile(path, "Subject: raw\r\n\r\nGrüße, 8-bit body\r\n");
    const eightBit = await messageFromFile(path);
    const ascii = await composeMessage({ from: "a@example.com", text: "hi\n" });
    const utf8 = await composeMessage({ from: "jörg@exämple.com", to: ["zoë@example.com"] });
    {
      await using session = await openSession({ hostname: "127.0.0.1", port: server.port });
      await session.send({ from: "a@example.com", to: ["b@example.com"] }, ascii);
      await session.send({ from: "a@example.com", to: ["b@example.com"] }, eightBit);
      await session.send({ from: "jörg@exämple.com", to: ["zoë@example.com"] }, utf8);
    }
    const options = await Promise.all(
      [1, 2, 3].map(async (n) => (await server.envelope(n)).mail_options),
    );
    assertEquals(options, [
      [`SIZE=${ascii.size}`],
      [`SIZE=${eightBit.size}`, "BODY=8BITMIME"],
      [`SIZE=${utf8.size}`, "BODY=8BITMIME", "SMTPUTF8"],
    ]);
    assertEquals((await server.envelope(3)).rcpt_tos, ["zoë@example.com"]);
    const [, second, third] = await server.delivered();
    assertEquals(await Deno.readTextFile(second!), "Subject: raw\r\n\r\nGrüße, 8-bit body\r\n");
    const parsed = await parseWithPython(third!);
    assertEquals(parsed.headers.from, ["jörg@exämple.com"]);
  } finally {
    await Deno.remove(path);
  }
});
