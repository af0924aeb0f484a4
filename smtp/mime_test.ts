import { assert, assertEquals, assertRejects, assertThrows } from "../lib/testing/assert.ts";
import {
  composeMessage,
  contentTypeFor,
  encodeAddressHeader,
  encodeHeader,
  parseMailbox,
  quotedPrintable,
  smtpData,
} from "./mime.ts";

const decoder = new TextDecoder();

/** Decodes RFC 2047 B encoded-words and unfolds, as a reader would (test-only helper). */
function decodeHeaderValue(folded: string): string {
  const unfolded = folded.replace(/\r\n$/, "").replace(/^[^:]+: /, "").replace(/\r\n /g, " ");
  return unfolded
    .replace(/\?= =\?/g, "?==?")
    .replace(/=\?UTF-8\?B\?([^?]*)\?=/g, (_, b64) => decoder.decode(Uint8Array.fromBase64(b64)));
}

async function streamToText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** A stream that delivers `text` in chunks of `size` bytes, to test chunk boundaries. */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + size));
      offset += size;
    },
  });
}

Deno.test("smtpData() normalises line ends and dot-stuffs, whatever the chunk boundaries", async () => {
  const cases = [
    { input: "a\nb", output: "a\r\nb\r\n.\r\n" },
    { input: "a\r\nb\r\n", output: "a\r\nb\r\n.\r\n" },
    { input: ".\n", output: "..\r\n.\r\n" },
    { input: "x\n.y\r\n..z\r.w", output: "x\r\n..y\r\n...z\r\n..w\r\n.\r\n" },
    { input: "bare\rcr\r", output: "bare\r\ncr\r\n.\r\n" },
    { input: "", output: ".\r\n" },
    { input: "no dot.\n a.b", output: "no dot.\r\n a.b\r\n.\r\n" },
  ];
  for (const { input, output } of cases) {
    for (const size of [1, 2, 3, 1000]) {
      assertEquals(
        await streamToText(smtpData(chunked(input, size))),
        output,
        `${input} / ${size}`,
      );
    }
  }
});

Deno.test("encodeHeader() folds at 78 columns and RFC 2047 words decode to the input", () => {
  const cases = [
    "plain ASCII subject",
    "Grüße aus Köln",
    "件名のテスト: 日本語の長いタイトルは複数の encoded-word に分割されるべきです",
    "emoji 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉 must not be split inside a character",
    "looks like =?UTF-8?B?encoded?= but is not",
    "a ".repeat(100).trim(),
    "two  spaces\tand a tab",
  ];
  for (const value of cases) {
    const header = encodeHeader("Subject", value);
    for (const line of header.split("\r\n").slice(0, -1)) {
      assert(line.length <= 78, `line too long: ${line}`);
      assert(/^[\t\x20-\x7e]*$/.test(line), `not ASCII: ${line}`);
    }
    for (const word of header.match(/=\?[^?]*\?B\?[^?]*\?=/g) ?? []) assert(word.length <= 75);
    assertEquals(decodeHeaderValue(header), value);
  }
});

Deno.test("encodeAddressHeader() quotes specials and encodes non-ASCII names", () => {
  assertEquals(
    encodeAddressHeader("To", [
      '"Doe, John" <j@example.com>',
      "Ann <a@example.com>",
      "x@example.com",
    ]),
    'To: "Doe, John" <j@example.com>, Ann <a@example.com>, x@example.com\r\n',
  );
  const folded = encodeAddressHeader("To", ["Zoë <z@example.com>"]);
  assertEquals(folded, "To: =?UTF-8?B?Wm/Dqw==?= <z@example.com>\r\n");
});

Deno.test("parseMailbox() splits names and addresses and rejects garbage", () => {
  assertEquals(parseMailbox("a@example.com"), { name: "", address: "a@example.com" });
  assertEquals(parseMailbox(" Ann Lee <ann@example.com> "), {
    name: "Ann Lee",
    address: "ann@example.com",
  });
  assertEquals(parseMailbox('"Lee, \\"A\\"" <a@example.com>'), {
    name: 'Lee, "A"',
    address: "a@example.com",
  });
  assertThrows(() => parseMailbox("not an address"), TypeError);
  assertThrows(() => parseMailbox("a@example.com\r\nBcc: b@example.com"), TypeError);
});

Deno.test("composeMessage() refuses CR or LF in any header value or address", async () => {
  const base = { from: "a@example.com", to: ["b@example.com"] };
  const cases: Array<Parameters<typeof composeMessage>[0]> = [
    { ...base, subject: "hi\r\nBcc: c@example.com" },
    { ...base, subject: "hi\nX: y" },
    { ...base, headers: [["X-Test", "v\rBcc: c@example.com"]] },
    { ...base, headers: [["X-Test\r\nBcc", "v"]] },
    { ...base, headers: [["Bad:Name", "v"]] },
    { ...base, from: "a@example.com\nBcc: c@example.com" },
    { ...base, to: ["b@example.com\r\n"] },
    { ...base, cc: ["Ann\n <c@example.com>"] },
    { ...base, attachments: [{ path: "/dev/null", filename: "x\r\nContent-Type: text/html" }] },
    { ...base, attachments: [{ path: "/dev/null", contentType: "text/plain\r\nX: y" }] },
  ];
  for (const options of cases) {
    const err = await assertRejects(() => composeMessage(options), TypeError);
    assert(/header injection refused|printable ASCII/.test(err.message), err.message);
  }
});

Deno.test("quotedPrintable() keeps lines to 76 columns and round-trips", () => {
  const text = `${"é".repeat(100)}\ntrailing space \n${"x".repeat(300)}\n=\t\n`;
  const encoded = quotedPrintable(text);
  for (const line of encoded.split("\r\n")) assert(line.length <= 76, line);
  const decoded = encoded.replace(/=\r\n/g, "").replace(/\r\n/g, "\n");
  const bytes: number[] = [];
  for (let i = 0; i < decoded.length; i++) {
    if (decoded[i] === "=") {
      bytes.push(parseInt(decoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(decoded.charCodeAt(i));
  }
  assertEquals(decoder.decode(new Uint8Array(bytes)), text);
});

Deno.test("composeMessage() streams exactly `size` octets, base64 in 76-column lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const length of [0, 1, 56, 57, 58, 65_550, 200_000]) {
      const path = `${dir}/f${length}.bin`;
      await Deno.writeFile(path, new Uint8Array(length).map((_, i) => (i * 7) & 0xff));
      const message = await composeMessage({
        from: "a@example.com",
        to: ["b@example.com"],
        text: "t",
        attachments: [{ path }],
      });
      const bytes = new Uint8Array(await new Response(message.stream()).arrayBuffer());
      assertEquals(bytes.length, message.size);
      const text = decoder.decode(bytes);
      const body = text.split("Content-Disposition: attachment; filename=")[1]!.split(
        "\r\n\r\n",
      )[1]!
        .split("\r\n--")[0]!;
      const lines = body === "" ? [] : body.split("\r\n");
      lines.slice(0, -1).forEach((line) => assertEquals(line.length, 76, `size ${length}`));
      assertEquals(Uint8Array.fromBase64(lines.join("")).length, length);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("composeMessage() picks 7bit or quoted-printable for text bodies", async (t) => {
  const cases = [
    { text: "plain\n", encoding: "7bit" },
    { text: "café\n", encoding: "quoted-printable" },
    { text: `${"x".repeat(999)}\n`, encoding: "quoted-printable" },
    { text: `${"x".repeat(998)}\n`, encoding: "7bit" },
  ];
  for (const c of cases) {
    await t.step(`${c.text.slice(0, 10)}… → ${c.encoding}`, async () => {
      const message = await composeMessage({ from: "a@example.com", text: c.text });
      const text = await streamToText(message.stream());
      assert(text.includes(`Content-Transfer-Encoding: ${c.encoding}\r\n`), text.slice(0, 400));
      for (const line of text.split("\r\n")) assert(line.length <= 998);
    });
  }
});

Deno.test("contentTypeFor() maps common extensions", () => {
  const table: Array<[string, string]> = [
    ["a.pdf", "application/pdf"],
    ["photo.JPG", "image/jpeg"],
    ["data.csv", "text/csv"],
    ["archive.tar.gz", "application/gzip"],
    ["noext", "application/octet-stream"],
  ];
  for (const [name, type] of table) assertEquals(contentTypeFor(name), type);
});
