import { ReusedHmac } from "./_hmac.ts";
import { createHmac } from "node:crypto";
import { assertEquals } from "../lib/testing/assert.ts";

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("ReusedHmac gives node:crypto's HMAC-SHA256 for every padding case and key length", async (t) => {
  await t.step("RFC 4231 test case 2", () => {
    const out = new Uint8Array(32);
    new ReusedHmac(new TextEncoder().encode("Jefe"))
      .sign(new TextEncoder().encode("what do ya want for nothing?"), out);
    assertEquals(hex(out), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });
  for (const keyLength of [1, 64, 65, 131]) {
    await t.step(`a ${keyLength}-byte key, messages of 0 to 300 bytes, one state reused`, () => {
      const key = crypto.getRandomValues(new Uint8Array(keyLength));
      const hmac = new ReusedHmac(key);
      const out = new Uint8Array(32);
      for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 179, 300]) {
        const data = crypto.getRandomValues(new Uint8Array(n));
        hmac.sign(data, out);
        assertEquals(hex(out), createHmac("sha256", key).update(data).digest("hex"), `${n} bytes`);
      }
    });
  }
});
