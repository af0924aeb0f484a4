/**
 * The proxy's access log against Squid's (Debian's Squid 5.7, forward mode):
 * the same requests through each, to the same origin, and the two lines
 * compared field by field.
 */
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { startTask } from "../lib/testing/http_server.ts";
import { squidMissing, startSquid } from "./_squid.ts";
import { startOrigin } from "./_test_util.ts";

const encoder = new TextEncoder();

/**
 * `logformat squid`: time.ms, elapsed ms (right-aligned in six columns),
 * client, code/status, bytes, method, URL, user, hierarchy/peer, type. A
 * line that does not split into exactly these ten fields fails here.
 */
const SQUID_LINE =
  /^(\d+\.\d{3}) ( *\d+) (\S+) ([A-Z_]+)\/(\d{3}) (\d+) (\S+) (\S+) (\S+) (\S+) (\S+)$/;

/** One line: `time` (when the transaction ended) and `elapsed` in ms, then the other fields. */
interface Line {
  time: number;
  elapsed: number;
  fields: {
    client: string;
    code: string;
    status: string;
    bytes: string;
    method: string;
    url: string;
    user: string;
    hier: string;
    type: string;
  };
}

function parse(line: string): Line {
  const m = SQUID_LINE.exec(line);
  assert(m !== null, `not a Squid access-log line: ${JSON.stringify(line)}`);
  const [, time, elapsed, client, code, status, bytes, method, url, user, hier, type] = m
    .map(String);
  assert(elapsed!.length >= 6, `elapsed is not six columns wide: ${JSON.stringify(line)}`);
  return {
    time: Math.round(Number(time) * 1000),
    elapsed: Number(elapsed),
    fields: {
      client: client!,
      code: code!,
      status: status!,
      bytes: bytes!,
      method: method!,
      url: url!,
      user: user!,
      hier: hier!,
      type: type!,
    },
  };
}

/**
 * Waits until the log has `count` lines and returns them. Both proxies write
 * the line after the response (ours batches lines for up to 100 ms); 10 s is
 * a generous bound for a line that never comes.
 */
async function logLines(path: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await Deno.readTextFile(path).catch(() => "");
    const lines = text.split("\n").filter((l) => l !== "");
    if (lines.length >= count) return lines;
    if (Date.now() > deadline) {
      throw new Error(`${path} has ${lines.length} lines, not ${count}, after 10 s:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Sends a request on a new connection and counts every byte received until
 * the proxy closes it. For a CONNECT, `inner` is sent once the tunnel is up.
 */
async function exchange(port: number, wire: string, inner?: string): Promise<number> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(wire));
  const buf = new Uint8Array(65536);
  let received = 0;
  let head = "";
  if (inner !== undefined) {
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      assert(n !== null, `the tunnel closed before its head: ${JSON.stringify(head)}`);
      received += n;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert(/^HTTP\/1\.1 200 /.test(head), head);
    await conn.write(encoder.encode(inner));
  }
  for (let n; (n = await conn.read(buf)) !== null;) received += n;
  return received;
}

/** A request sent through both proxies, and the fields where we knowingly differ. */
interface Case {
  name: string;
  wire: string;
  inner?: string;
  /** The origin holds the answer until the test releases it (see the timestamp check). */
  held?: boolean;
  /** Field → [Squid's value, ours], each checked, with the reason in a comment. */
  differs?: Partial<Record<keyof Line["fields"], [string, string]>>;
}

const missing = squidMissing();
const ci = Deno.env.get("CI") === "true";
if (missing !== undefined && !ci) console.warn(`Squid comparison ignored: ${missing}`);

Deno.test({
  name: "the proxy's access log matches Squid's field by field for the same requests",
  // Without Squid the comparison cannot run: ignored locally, failed under CI=true.
  ignore: missing !== undefined && !ci,
  async fn(t) {
    if (missing !== undefined) throw new Error(`Cannot compare with Squid: ${missing}`);
    let hold: { arrived: PromiseWithResolvers<void>; release: PromiseWithResolvers<void> } | null =
      null;
    await using origin = await startOrigin(async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/page" && hold !== null) {
        hold.arrived.resolve();
        await hold.release.promise;
      }
      if (path === "/missing") {
        return new Response("no such page", {
          status: 404,
          headers: { "content-type": "text/plain" },
        });
      }
      const body = req.method === "POST" ? `posted ${await req.text()}` : `page ${path}`;
      return new Response(req.method === "HEAD" ? null : body, {
        // The parameter checks that both log the media type alone.
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "max-age=60" },
      });
    });
    await using squid = await startSquid({ connectPorts: [origin.port] });
    const dir = await Deno.makeTempDir({ prefix: "netkit_squid_cmp_" });
    try {
      const ourLog = `${dir}/access.log`;
      await using ours = await startTask("proxy", [
        "-p",
        "0",
        "--access-log",
        ourLog,
        "--connect-ports",
        String(origin.port),
      ]);
      const o = `127.0.0.1:${origin.port}`;
      const get = (method: string, url: string, extra = "") =>
        `${method} ${url} HTTP/1.1\r\nHost: ${
          new URL(url).host
        }\r\nConnection: close\r\n${extra}\r\n`;
      const cases: Case[] = [
        { name: "a miss", wire: get("GET", `http://${o}/page`), held: true },
        { name: "a hit", wire: get("GET", `http://${o}/page`) },
        { name: "a 404 from the origin", wire: get("GET", `http://${o}/missing`) },
        { name: "a HEAD", wire: get("HEAD", `http://${o}/head`) },
        {
          name: "a POST",
          wire: get(
            "POST",
            `http://${o}/form`,
            "Content-Type: text/plain\r\nContent-Length: 5\r\n",
          ) + "x=1&y",
        },
        {
          name: "a refused upstream",
          wire: get("GET", "http://127.0.0.1:1/"),
          // Squid answers a refused connection with 503 (ERR_CONNECT_FAIL); we
          // answer 502 as nginx's proxy_pass does, and as proxy_server/README.md
          // documents: RFC 9110 fits neither exactly (§15.6.3: no response at
          // all is not an "invalid response"; §15.6.4 speaks of overload).
          differs: { status: ["503", "502"] },
        },
        {
          name: "a CONNECT",
          wire: `CONNECT ${o} HTTP/1.1\r\nHost: ${o}\r\n\r\n`,
          inner: get("GET", `http://${o}/tunnel`),
        },
      ];
      for (const [i, c] of cases.entries()) {
        await t.step(c.name, async () => {
          const lines: Line[] = [];
          for (const [port, log] of [[squid.port, squid.accessLog], [ours.port, ourLog]] as const) {
            const sent = Date.now();
            let released = 0;
            let answer: Promise<number>;
            if (c.held === true) {
              hold = { arrived: Promise.withResolvers(), release: Promise.withResolvers() };
              answer = exchange(port, c.wire, c.inner);
              await hold.arrived.promise;
              // The start and end of the transaction must fall in different
              // milliseconds, or the two readings of "time" look alike.
              const arrived = Date.now();
              while (Date.now() < arrived + 2) await new Promise((r) => setTimeout(r, 1));
              released = Date.now();
              hold.release.resolve();
            } else {
              answer = exchange(port, c.wire, c.inner);
            }
            const received = await answer;
            hold = null;
            const line = parse((await logLines(log, i + 1))[i]!);
            // Masked: the time and the elapsed ms vary from run to run. What
            // they mean is checked instead: the line is stamped when the
            // transaction ends, and time - elapsed is when it started.
            assert(line.time - line.elapsed >= sent - 1, `started before it was sent (${port})`);
            if (c.held === true) {
              assert(line.time >= released, `stamped at the start, not the end (${port})`);
              assert(line.time - line.elapsed <= released, `elapsed too short (${port})`);
            }
            // The byte count covers the heads, and each proxy writes its own
            // (Via, Server, Date, X-Cache...): each must equal what its
            // client received.
            assertEquals(Number(line.fields.bytes), received, `bytes (${port})`);
            line.fields.bytes = "what the client received";
            lines.push(line);
          }
          const [theirs, mine] = lines.map((l) => l.fields);
          for (const [field, [squidValue, ourValue]] of Object.entries(c.differs ?? {})) {
            const key = field as keyof Line["fields"];
            assertEquals(theirs![key], squidValue, `Squid's ${field}`);
            assertEquals(mine![key], ourValue, `our ${field}`);
            mine![key] = theirs![key];
          }
          assertEquals(mine, theirs);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
