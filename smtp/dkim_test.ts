import { generateKeyPairSync } from "node:crypto";
import { assert, assertEquals, assertRejects } from "../lib/testing/assert.ts";
import { bodyHash, canonicalizeHeader, dkimSign } from "./dkim.ts";
import { messageFromFile } from "./mime.ts";
import { runCli, startAiosmtpd } from "./_testing.ts";

const encoder = new TextEncoder();
const here = new URL(".", import.meta.url).pathname;

/** A key pair in the files the CLI reads, and its DNS TXT record. */
interface TestKey {
  path: string;
  pem: string;
  record: string;
}

function makeKey(dir: string, type: "rsa" | "ed25519"): TestKey {
  const { privateKey, publicKey } = type === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ed25519");
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const spki = new Uint8Array(publicKey.export({ type: "spki", format: "der" }));
  // RFC 8463 §4.2: an Ed25519 record holds the bare 32-byte key, RSA's the SubjectPublicKeyInfo.
  const p = (type === "rsa" ? spki : spki.subarray(spki.length - 32)).toBase64();
  const path = `${dir}/${type}.pem`;
  Deno.writeTextFileSync(path, pem);
  return { path, pem, record: `v=DKIM1; k=${type}; p=${p}` };
}

async function dkimpyVerify(
  path: string,
  record: string,
): Promise<{ ok: boolean; error: string | null; names: string[] }> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${here}testdata/dkim_verify.py`, path, record],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`dkim_verify.py: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("bodyHash() canonicalizes as RFC 6376 §3.4.5's examples", async (t) => {
  const sha = async (text: string) =>
    (new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)))).toBase64();
  const body = " C \r\nD \t E\r\n\r\n\r\n";
  const cases = [
    { canon: "relaxed", body, expected: " C\r\nD E\r\n" },
    { canon: "simple", body, expected: " C \r\nD \t E\r\n" },
    { canon: "simple", body: "", expected: "\r\n" },
    { canon: "relaxed", body: "", expected: "" },
    { canon: "simple", body: "a", expected: "a\r\n" },
    { canon: "relaxed", body: "a \t\n\n \n", expected: "a\r\n" },
    { canon: "simple", body: "a\nb\rc\r\n", expected: "a\r\nb\r\nc\r\n" },
  ] as const;
  for (const c of cases) {
    await t.step(`${c.canon}: ${JSON.stringify(c.body)}`, async () => {
      // Byte by byte too: the state must carry across chunk boundaries.
      const whole = await bodyHash([encoder.encode(c.body)], c.canon);
      const bytes = [...encoder.encode(c.body)].map((b) => new Uint8Array([b]));
      assertEquals(whole, await sha(c.expected));
      assertEquals(await bodyHash(bytes, c.canon), whole);
    });
  }
});

Deno.test("canonicalizeHeader() follows RFC 6376 §3.4.5's example", () => {
  assertEquals(canonicalizeHeader("A: X\r\n", "relaxed"), "a:X\r\n");
  assertEquals(canonicalizeHeader("B : Y\t\r\n\tZ  \r\n", "relaxed"), "b:Y Z\r\n");
  assertEquals(canonicalizeHeader("B : Y\t\r\n\tZ  \r\n", "simple"), "B : Y\t\r\n\tZ  \r\n");
});

Deno.test("dkimSign() refuses bad keys, names and messages without From", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtp_dkim_" });
  try {
    const key = makeKey(dir, "ed25519");
    await Deno.writeTextFile(`${dir}/no_from.eml`, "Subject: x\r\n\r\nbody\r\n");
    const message = await messageFromFile(`${dir}/no_from.eml`);
    const options = { domain: "example.com", selector: "s1", privateKey: key.pem };
    const rejects = async (privateKey: string, selector: string, text: string) => {
      const err = await assertRejects(
        () => dkimSign(message, { ...options, privateKey, selector }),
        TypeError,
      );
      assert(err.message.includes(text), err.message);
    };
    await rejects(key.pem, "s1", "no From");
    await rejects("not a key", "s1", "Cannot read the DKIM key");
    await rejects(key.pem, "s1; x=1", "not a domain name");
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    await rejects(
      ec.export({ type: "pkcs8", format: "pem" }) as string,
      "s1",
      "RSA (rsa-sha256) or Ed25519",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dkimpy verifies what the CLI signs: rsa-sha256 and ed25519-sha256, each canonicalization", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp_dkim_" });
  try {
    await using server = await startAiosmtpd();
    const keys = { rsa: makeKey(dir, "rsa"), ed25519: makeKey(dir, "ed25519") };
    // A ready message that exercises every rule: bare LF line ends, folded and repeated
    // headers, whitespace runs, trailing whitespace and empty lines, lines starting with dots.
    const eml = `${dir}/tricky.eml`;
    await Deno.writeTextFile(
      eml,
      "From: Alice <alice@example.com>\nTo: bob@example.com\nSubject:  folded\n\t subject  \n" +
        "Received: one\nReceived: two\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n\n" +
        "Hello  Bob, \t\n.leading dot\n..two dots\n\n \n\tindented\n\n\n",
    );
    let n = 0;
    for (const type of ["rsa", "ed25519"] as const) {
      for (
        const canon of ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]
      ) {
        for (const source of ["composed", "--data"] as const) {
          await t.step(`${type} ${canon} ${source}`, async () => {
            const message = source === "--data" ? ["--data", `@${eml}`] : [
              "--subject",
              "Grüße  aus   Köln",
              "--body",
              "Hello\n\n.dot\ntrailing   \n\n\n",
              "--attach",
              `@${keys.rsa.path};type=application/octet-stream`,
              "--header",
              "Received: by test",
            ];
            const result = await runCli([
              ...["-s", `127.0.0.1:${server.port}`, "-f", "alice@example.com"],
              ...["-t", "bob@example.com", ...message, "--dkim-key", keys[type].path],
              ...["--dkim-selector", "sel", "--dkim-canonicalization", canon],
              ...["--dkim-headers", "From:To:Subject:Date:Received:Content-Type"],
            ]);
            assertEquals(result.code, 0, result.stderr);
            n++;
            const path = (await server.delivered())[n - 1]!;
            const verdict = await dkimpyVerify(path, keys[type].record);
            assertEquals(verdict, {
              ok: true,
              error: null,
              names: ["sel._domainkey.example.com."],
            });
            const signed = await Deno.readTextFile(path);
            assert(signed.startsWith(`DKIM-Signature: v=1; a=${type}-sha256; c=${canon};`), signed);
            // The same file with one byte of the body changed does not verify.
            await Deno.writeTextFile(path, signed.replace("Hello", "Hallo"));
            assertEquals((await dkimpyVerify(path, keys[type].record)).ok, false);
          });
        }
      }
    }
    await t.step("the other key's record does not verify", async () => {
      const result = await runCli([
        ...["-s", `127.0.0.1:${server.port}`, "-f", "alice@example.com"],
        ...["-t", "bob@example.com", "--body", "x", "--dkim-key", keys.rsa.path],
        ...["--dkim-selector", "sel", "--dkim-domain", "mail.example.org"],
      ]);
      assertEquals(result.code, 0, result.stderr);
      n++;
      const path = (await server.delivered())[n - 1]!;
      const other = makeKey(dir, "rsa");
      const verdict = await dkimpyVerify(path, other.record);
      assertEquals(verdict.ok, false);
      assertEquals(verdict.names, ["sel._domainkey.mail.example.org."]);
      assertEquals((await dkimpyVerify(path, keys.rsa.record)).ok, true);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp CLI DKIM usage errors: 2 for options, 3 for a key it cannot use", async () => {
  const basic = ["--dump", "-f", "a@example.com", "-t", "b@example.com"];
  const noSelector = await runCli([...basic, "--dkim-key", "/nonexistent"]);
  assertEquals(noSelector.code, 2);
  assertEquals(noSelector.stderr.split("\n")[0], "smtp: --dkim-key needs --dkim-selector");
  const orphan = await runCli([...basic, "--dkim-selector", "s"]);
  assertEquals(orphan.code, 2);
  const missing = await runCli([...basic, "--dkim-key", "/nonexistent", "--dkim-selector", "s"]);
  assertEquals(missing.code, 2);
  assert(
    missing.stderr.startsWith('smtp: Cannot read --dkim-key file "/nonexistent"'),
    missing.stderr,
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.pem`, "garbage");
    const bad = await runCli([...basic, "--dkim-key", `${dir}/bad.pem`, "--dkim-selector", "s"]);
    assertEquals(bad.code, 3);
    assert(bad.stderr.startsWith("smtp: Cannot read the DKIM key"), bad.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
