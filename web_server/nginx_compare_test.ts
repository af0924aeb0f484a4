import assert from "node:assert/strict";
import {
  BufferedReader,
  encodeRequestHead,
  readBody,
  readResponseHead,
  writeAll,
} from "../lib/http/mod.ts";
import { serveHttp } from "./engine.ts";
import { serveDir } from "./serve.ts";
import { startNginx } from "./_nginx.ts";
import { makeCorpus } from "./_corpus.ts";

/** A response reduced to what must match between two servers. */
interface Answer {
  status: number;
  body: string;
  /** Every header field, lower-cased, after the allowances below. */
  headers: Record<string, string>;
}

/** The header fields of a response, with the status and request method they answer. */
interface Seen {
  status: number;
  method: string;
  /** The request's URL on this server, to resolve a relative `Location`. */
  url: string;
  headers: Map<string, string>;
}

/**
 * Where nginx (1.22, Debian's default configuration) and we differ by
 * design. Each allowance applies to one server's fields only where its
 * condition holds; every other field both send is compared as sent, and a
 * field only one sends fails the comparison.
 */
const ALLOWANCES: Array<{ why: string; apply(ours: Seen, nginx: Seen): void }> = [
  {
    why: "nginx names itself; we send no Server field (RFC 9110 §10.2.4: MAY).",
    apply(_ours, nginx) {
      nginx.headers.delete("server");
    },
  },
  {
    why:
      "Date is the clock at sending (RFC 9110 §6.6.1): both must send one; the second may differ.",
    apply(ours, nginx) {
      for (const seen of [ours, nginx]) {
        const date = seen.headers.get("date");
        assert.ok(date !== undefined && !Number.isNaN(Date.parse(date)), `Date: ${date}`);
        seen.headers.set("date", "(the clock)");
      }
    },
  },
  {
    why:
      "Text types carry charset=utf-8 with us (web_server/mime_types.ts, as std's file_server); " +
      "nginx sends none unless configured with `charset`. The media type itself must match.",
    apply(ours, nginx) {
      const type = ours.headers.get("content-type");
      if (type === `${nginx.headers.get("content-type")}; charset=utf-8`) {
        ours.headers.set("content-type", nginx.headers.get("content-type")!);
      }
    },
  },
  {
    why: "Error and redirect bodies are each server's own page (nginx HTML, ours plain text), " +
      "so their type and length differ; both must send them.",
    apply(ours, nginx) {
      if (ours.status < 300 || ours.status === 304 || nginx.status !== ours.status) return;
      for (const seen of [ours, nginx]) {
        for (const name of ["content-type", "content-length"]) {
          assert.ok(seen.headers.has(name), `${seen.status} without ${name}`);
          seen.headers.set(name, "(the server's own page)");
        }
      }
    },
  },
  {
    why: "Multipart boundaries are each server's own, and the length follows from them; " +
      "the parts are compared in the body.",
    apply(ours, nginx) {
      for (const seen of [ours, nginx]) {
        const type = seen.headers.get("content-type");
        if (type?.startsWith("multipart/byteranges; boundary=")) {
          seen.headers.set("content-type", "multipart/byteranges; boundary=(own)");
          seen.headers.set("content-length", "(follows from the boundary)");
        }
      }
    },
  },
  {
    why: "A redirect's Location may be relative (RFC 9110 §10.2.2): ours is, nginx's is absolute " +
      "(its absolute_redirect default); both must resolve to the same path.",
    apply(ours, nginx) {
      for (const seen of [ours, nginx]) {
        const location = seen.headers.get("location");
        if (location === undefined) continue;
        const url = new URL(location, seen.url);
        seen.headers.set("location", url.pathname + url.search);
      }
    },
  },
  {
    why: "We send Vary: Accept-Encoding on every file answer: a precompressed .gz/.br sibling is " +
      "chosen by Accept-Encoding even with on-the-fly compression off (web_server/serve.ts); " +
      "nginx sends Vary only with gzip_vary on.",
    apply(ours, nginx) {
      if (ours.headers.get("vary") === "Accept-Encoding" && !nginx.headers.has("vary")) {
        ours.headers.delete("vary");
      }
    },
  },
  {
    why: "RFC 9110 §15.5.6: a 405 MUST carry Allow; nginx sends none.",
    apply(ours, nginx) {
      if (ours.status === 405 && !nginx.headers.has("allow")) {
        assert.equal(ours.headers.get("allow"), "GET, HEAD");
        ours.headers.delete("allow");
      }
    },
  },
  {
    why: "Accept-Ranges on a 206 (RFC 9110 §14.3: MAY, in any response; Apache sends it too); " +
      "nginx sends it on 200 only.",
    apply(ours, nginx) {
      if (ours.status === 206 && !nginx.headers.has("accept-ranges")) {
        ours.headers.delete("accept-ranges");
      }
    },
  },
];

/** Sends one request on a fresh connection and reads the answer with our codec. */
async function ask(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string>,
): Promise<{ seen: Seen; body: string }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    conn,
    encodeRequestHead({
      method,
      target,
      headers: { Host: "localhost", Connection: "close", ...headers },
    }),
  );
  const reader = new BufferedReader(conn);
  const head = await readResponseHead(reader, { requestMethod: method });
  assert.ok(head !== null, "a response");
  const fields = new Map([...head.headers.toHeaders()]);
  const body = await readBody(reader, head.body);
  let text = new TextDecoder("latin1").decode(body);
  const boundary = /boundary=(\S+)/.exec(fields.get("content-type") ?? "")?.[1];
  if (boundary !== undefined) {
    // Boundaries are each server's own: compare the parts, not the bytes around them.
    text = text.split(`--${boundary}`).slice(1, -1).map((part) => {
      const [heads, data] = part.replace(/^\r\n/, "").split("\r\n\r\n");
      const range = /Content-Range: (.*)/i.exec(heads!)?.[1];
      return `[${range}] ${data!.replace(/\r\n$/, "")}`;
    }).join("\n");
  }
  return {
    seen: {
      status: head.status,
      method,
      url: `http://localhost:${port}${target}`,
      headers: fields,
    },
    // Error pages are each server's own prose; only successful bodies must match.
    body: head.status < 300 ? text : "",
  };
}

/** Both answers, with the allowances applied. */
async function compare(
  ports: { ours: number; nginx: number },
  request: [string, string, Record<string, string>],
): Promise<{ ours: Answer; nginx: Answer }> {
  const theirs = await ask(ports.nginx, ...request);
  const mine = await ask(ports.ours, ...request);
  for (const allowance of ALLOWANCES) allowance.apply(mine.seen, theirs.seen);
  const answer = ({ seen, body }: { seen: Seen; body: string }): Answer => ({
    status: seen.status,
    body,
    headers: Object.fromEntries([...seen.headers].sort(([a], [b]) => a < b ? -1 : 1)),
  });
  return { ours: answer(mine), nginx: answer(theirs) };
}

Deno.test("the server and nginx give the same answers to the same requests", async (t) => {
  await using corpus = await makeCorpus();
  const root = corpus.root;
  await using nginx = await startNginx(root);
  await using ours = serveHttp((req) => serveDir(req, { fsRoot: root, compression: false }), {
    hostname: "127.0.0.1",
    port: 0,
    cacheRoot: root,
  });
  // Both derive the same strong validators from mtime and size.
  const probe = await ask(nginx.port, "HEAD", "/file.txt", {});
  assert.equal(probe.seen.status, 200);
  for (const [method, target, headers] of corpus.requests) {
    const label = `${method} ${target} ${JSON.stringify(headers)}`;
    await t.step(label, async () => {
      const answers = await compare({ ours: ours.addr.port, nginx: nginx.port }, [
        method,
        target,
        headers,
      ]);
      assert.deepEqual(answers.ours, answers.nginx);
    });
  }
});
