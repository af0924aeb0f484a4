import { assert, assertEquals, assertMatch } from "../lib/testing/assert.ts";
import {
  makeSelfSigned,
  runCli,
  startAiosmtpd,
  startPostfix,
  waitForDelivered,
} from "./_testing.ts";
import { generateKeyPairSync } from "node:crypto";

const here = new URL(".", import.meta.url).pathname;

Deno.test("Postfix with an openssl req -x509 certificate: STARTTLS and implicit TLS, trust by file or pin, a DKIM signature that survives the relay", async (t) => {
  await using self = await makeSelfSigned();
  await using relayed = await startAiosmtpd();
  await using postfix = await startPostfix(self, relayed.port);
  const dir = await Deno.makeTempDir({ prefix: "smtp_postfix_dkim_" });
  try {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    await Deno.writeTextFile(
      `${dir}/dkim.pem`,
      privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    );
    const record = `v=DKIM1; k=rsa; p=${
      new Uint8Array(publicKey.export({ type: "spki", format: "der" })).toBase64()
    }`;
    const modes = [
      { name: "STARTTLS", port: postfix.starttlsPort, flag: "--tls" },
      { name: "implicit TLS", port: postfix.implicitPort, flag: "--tls-on-connect" },
    ];
    let delivered = 0;
    for (const mode of modes) {
      const cases = [
        { trust: ["--tls-ca", self.cert], code: 0 },
        { trust: ["--tls-fingerprint", self.fingerprint], code: 0 },
        { trust: [], code: 29 },
      ];
      for (const c of cases) {
        await t.step(`${mode.name}, ${c.trust[0] ?? "no trust"}: ${c.code}`, async () => {
          const result = await runCli([
            ...["-s", `localhost:${mode.port}`, mode.flag, ...c.trust],
            ...["-f", "alice@example.com", "-t", "bob@example.org"],
            ...["--subject", `via Postfix, ${mode.name}`, "--body", "relayed\n"],
            ...["--dkim-key", `${dir}/dkim.pem`, "--dkim-selector", "pf"],
          ]);
          assertEquals(result.code, c.code, result.stderr);
          if (c.code !== 0) {
            assert(result.stderr.includes(self.fingerprint), result.stderr);
            return;
          }
          assertMatch(result.stdout, /^sent to 1 recipient\(s\): 250 2\.0\.0 Ok: queued as /);
          delivered++;
          const path = (await waitForDelivered(relayed, delivered))[delivered - 1]!;
          const text = await Deno.readTextFile(path);
          // Postfix received it over TLS (ESMTPS) and relayed it with its Received line on top.
          assertMatch(text, /^Received: from .*\r?\n\s+by postfix\.test \(Postfix\) with ESMTPS /);
          const out = await new Deno.Command("/usr/bin/python3", {
            args: [`${here}testdata/dkim_verify.py`, path, record],
            stdout: "piped",
          }).output();
          assertEquals(JSON.parse(new TextDecoder().decode(out.stdout)).ok, true);
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
