/**
 * The server core over real loopback sockets: its deadlines, body limits,
 * 100-continue, error answers, tunnels, graceful shutdown, access-log hook
 * and connection caps. The end-to-end checks through the CLIs (thousands of
 * connections, descriptor exhaustion) are in lib/testing/http_server.ts.
 */
import { delay } from "../deadline.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../testing/assert.ts";
import { HttpError } from "./errors.ts";
import type { RequestHead } from "./heads.ts";
import { ConnectionLimits } from "./limits.ts";
import {
  type AccessLogEntry,
  HttpServer,
  plainErrorResponse,
  type RawHandler,
  type ServerConnection,
  type ServerOptions,
} from "./server.ts";
import { RawClient, waitFor } from "./testdata/raw_client.ts";
import { evalScript } from "../testing/tasks.ts";

/** Every test here checks that it leaves no timer, socket or pending op behind. */
const sanitized = { sanitizeOps: true, sanitizeResources: true } as const;

const enc = new TextEncoder();
const dec = new TextDecoder();

function start(handler: RawHandler, options: ServerOptions = {}): HttpServer {
  return new HttpServer(handler, {
    hostname: "127.0.0.1",
    port: 0,
    onWarning: () => {},
    ...options,
  });
}

/** Writes a complete response with a Content-Length. */
async function reply(
  conn: ServerConnection,
  body: string,
  status = 200,
  extra = "",
): Promise<void> {
  const bytes = enc.encode(body);
  conn.status = status;
  conn.bodyBytes = bytes.length;
  await conn.write(
    enc.encode(`HTTP/1.1 ${status} X\r\nContent-Length: ${bytes.length}\r\n${extra}\r\n${body}`),
  );
}

/** Reads the request body through the core (limits, deadlines, 100-continue). */
async function bodyText(conn: ServerConnection, head: RequestHead): Promise<string> {
  const pieces: Uint8Array[] = [];
  for await (const piece of conn.body(head)) pieces.push(piece);
  return pieces.map((p) => dec.decode(p)).join("");
}

/** Answers 200 with the request body (or the target when there is none); keeps the connection when the client may. */
async function echo(head: RequestHead, conn: ServerConnection): Promise<boolean> {
  const body = head.body.type === "none" ? head.target : await bodyText(conn, head);
  await reply(conn, body);
  return head.keepAlive;
}

function get(target: string, extra = ""): string {
  return `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
}

Deno.test(
  "HttpServer cuts a request head that stalls at headerTimeout, counted from its start",
  sanitized,
  async (t) => {
    await using server = start(echo, { headerTimeout: 300 });
    const port = server.addr.port;

    await t.step(
      "a head stalled halfway is closed after 300 ms, not before, unanswered",
      async () => {
        const begin = Date.now();
        using c = await RawClient.connect(port);
        await c.send("GET / HTTP/1.1\r\nHost: x\r\n");
        const end = await c.untilClose(2000);
        assertEquals(end.text, "");
        assert(end.at - begin >= 300, `closed after ${end.at - begin} ms`);
        assert(end.at - begin < 1500, `closed after ${end.at - begin} ms`);
      },
    );

    await t.step("a byte every 50 ms does not extend it (slowloris)", async () => {
      const begin = Date.now();
      using c = await RawClient.connect(port);
      const stop = new AbortController();
      const trickle = (async () => {
        for (const ch of "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n") {
          await c.send(ch);
          await delay(50, { signal: stop.signal });
        }
      })().catch(() => {});
      const end = await c.untilClose(2000);
      stop.abort();
      await trickle;
      assertEquals(end.text, "");
      assert(end.at - begin >= 300, `closed after ${end.at - begin} ms`);
      assert(end.at - begin < 1500, `closed after ${end.at - begin} ms`);
    });

    await t.step("a head sent in two halves 150 ms apart is answered", async () => {
      using c = await RawClient.connect(port);
      await c.send("GET /halves HTTP/1.1\r\n");
      await delay(150);
      await c.send("Host: x\r\nConnection: close\r\n\r\n");
      const res = await c.response();
      assertEquals([res.status, res.body], [200, "/halves"]);
    });
  },
);

Deno.test(
  "HttpServer answers pipelined requests in order, whether a handler ends its answer synchronously or writes it later",
  sanitized,
  async () => {
    const logged: number[] = [];
    await using server = start((head, conn) => {
      if (head.target === "/later") return echo(head, conn);
      // Answered synchronously: the core writes it, with the answers of any
      // requests already buffered behind it.
      const body = enc.encode(head.target);
      conn.status = 200;
      conn.end(
        enc.encode(`HTTP/1.1 200 X\r\nContent-Length: ${body.length}\r\n\r\n${head.target}`),
      );
      return true;
    }, { onLog: (e) => logged.push(e.status) });
    using c = await RawClient.connect(server.addr.port);
    // The last head has no Host: the answers before it are still delivered, then its 400.
    await c.send(
      get("/a") + get("/later") + get("/b") + get("/c") + "GET /d HTTP/1.1\r\n\r\n",
    );
    const bodies: string[] = [];
    for (let i = 0; i < 4; i++) bodies.push((await c.response()).body);
    assertEquals(bodies, ["/a", "/later", "/b", "/c"]);
    assertEquals((await c.response()).status, 400);
    assertEquals((await c.untilClose(2000)).text, "");
    await waitFor(() => logged.length === 5, "five log records");
    assertEquals(logged, [200, 200, 200, 200, 400]);
  },
);

Deno.test(
  "HttpServer closes an idle keep-alive connection at keepAliveTimeout after answering a pipelined request",
  sanitized,
  async () => {
    const seen: string[] = [];
    await using server = start(async (head, conn) => {
      seen.push(head.target);
      // Slower than both deadlines: a busy handler is never cut by them.
      if (head.target === "/slow") await delay(400);
      return await echo(head, conn);
    }, { keepAliveTimeout: 300, headerTimeout: 350 });
    using c = await RawClient.connect(server.addr.port);
    await c.send(get("/slow") + get("/second"));
    const first = await c.response();
    const second = await c.response();
    const answered = Date.now();
    assertEquals([first.body, second.body], ["/slow", "/second"]);
    assertEquals(seen, ["/slow", "/second"]);
    const end = await c.untilClose(2000);
    assertEquals(end.text, "");
    assert(end.at - answered >= 250, `idle connection closed after ${end.at - answered} ms`);
    assert(end.at - answered < 1500, `idle connection closed after ${end.at - answered} ms`);
  },
);

Deno.test(
  "HttpServer cuts a request body read that stalls for bodyTimeout, but not a slow steady one",
  sanitized,
  async (t) => {
    const failures: unknown[] = [];
    await using server = start(async (head, conn) => {
      try {
        return await echo(head, conn);
      } catch (err) {
        failures.push(err);
        throw err;
      }
    }, { bodyTimeout: 1000 });
    const port = server.addr.port;

    await t.step("4 of 10 bytes, then silence: closed after about 1 s, unanswered", async () => {
      using c = await RawClient.connect(port);
      await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcd");
      const sent = Date.now();
      const end = await c.untilClose(4000);
      assertEquals(end.text, "");
      // The read's start is stamped with the sweeper's clock, up to a quarter of the deadline early.
      assert(end.at - sent >= 700, `closed after ${end.at - sent} ms`);
      assert(end.at - sent < 3000, `closed after ${end.at - sent} ms`);
      await waitFor(() => failures.length === 1, "the handler's body read to fail");
    });

    // Gaps of a tenth of the deadline: a loaded machine does not stretch them past it.
    await t.step("10 bytes at one per 100 ms (1 s in all) are read whole", async () => {
      using c = await RawClient.connect(port);
      await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
      for (const ch of "0123456789") {
        await delay(100);
        await c.send(ch);
      }
      const res = await c.response();
      assertEquals([res.status, res.body], [200, "0123456789"]);
      assertEquals(failures.length, 1);
    });
  },
);

Deno.test(
  "HttpServer cuts a response write that stalls for sendTimeout when the client stops reading",
  sanitized,
  async () => {
    const total = 64;
    const piece = new Uint8Array(1 << 20);
    let outcome: { error: unknown; written: number; stalled: number } | undefined;
    await using server = start(async (_head, conn) => {
      let written = 0;
      let progress = Date.now();
      try {
        await conn.write(
          enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${total * piece.length}\r\n\r\n`),
        );
        for (let i = 0; i < total; i++) {
          await conn.write(piece);
          written++;
          progress = Date.now();
        }
      } catch (error) {
        outcome = { error, written, stalled: Date.now() - progress };
        throw error;
      }
      outcome = { error: null, written, stalled: 0 };
      return false;
    }, { sendTimeout: 300 });
    using c = await RawClient.connect(server.addr.port);
    await c.send(get("/big"));
    await waitFor(() => outcome !== undefined, "the handler's write to end", 5000);
    assert(
      outcome!.error !== null,
      "the 64 MiB response was written to a client that reads nothing",
    );
    assert(outcome!.written < total);
    assert(outcome!.stalled >= 200, `write cut after a ${outcome!.stalled} ms stall`);
    assert(outcome!.stalled < 2000, `write cut after a ${outcome!.stalled} ms stall`);
    await waitFor(() => server.connections === 0, "the connection to close");
  },
);

Deno.test(
  "HttpServer answers 413 for a body over maxBodySize: at once for a Content-Length, when a chunked body passes it",
  sanitized,
  async (t) => {
    let calls = 0;
    const bodyErrors: number[] = [];
    await using server = start(async (head, conn) => {
      calls++;
      try {
        return await echo(head, conn);
      } catch (err) {
        if (err instanceof HttpError) bodyErrors.push(err.status);
        throw err;
      }
    }, { maxBodySize: 100 });
    const x100 = "x".repeat(100);
    const table = [
      {
        name: "Content-Length 1000, body not sent: 413 before the handler runs",
        request: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        status: 413,
        calls: 0,
        bodyErrors: [],
      },
      {
        name: "chunked, 100 then 10 bytes: 413 from the handler's body read",
        request: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
          `64\r\n${x100}\r\na\r\n${"y".repeat(10)}\r\n`,
        status: 413,
        calls: 1,
        bodyErrors: [413],
      },
      {
        name: "chunked, exactly 100 bytes: read whole",
        request:
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
          `64\r\n${x100}\r\n0\r\n\r\n`,
        status: 200,
        calls: 1,
        bodyErrors: [],
      },
      {
        name: "Content-Length 100: read whole",
        request:
          `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n${x100}`,
        status: 200,
        calls: 1,
        bodyErrors: [],
      },
    ];
    for (const row of table) {
      await t.step(row.name, async () => {
        calls = 0;
        bodyErrors.length = 0;
        using c = await RawClient.connect(server.addr.port);
        await c.send(row.request);
        const res = await c.response("POST", 1000);
        assertEquals(res.status, row.status);
        if (row.status === 413) {
          assertEquals(res.head.headers.get("connection"), "close");
        } else {
          assertEquals(res.body, x100);
        }
        // The error answer is followed by a (lingering) close; the 200 by Connection: close.
        assertEquals((await c.untilClose(1000)).text, "");
        assertEquals(calls, row.calls);
        assertEquals(bodyErrors, row.bodyErrors);
      });
    }
  },
);

Deno.test(
  "HttpServer sends 100 Continue only when the handler reads the body",
  sanitized,
  async (t) => {
    const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";
    const expectHead =
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";

    await t.step(
      "the handler reads: 100 Continue after it starts reading, then the answer, and the connection stays",
      async () => {
        let open!: () => void;
        const gate = new Promise<void>((resolve) => open = resolve);
        await using server = start(async (head, conn) => {
          if (head.method === "POST") await gate;
          return await echo(head, conn);
        });
        using c = await RawClient.connect(server.addr.port);
        await c.send(expectHead);
        const interim = c.exactly(CONTINUE.length).then((text) => ({ text, at: Date.now() }));
        await delay(150);
        const openedAt = Date.now();
        open();
        const got = await interim;
        assertEquals(got.text, CONTINUE);
        assert(got.at >= openedAt, "100 Continue was sent before the handler read the body");
        await c.send("hello");
        const res = await c.response("POST");
        assertEquals([res.status, res.body], [200, "hello"]);
        await c.send(get("/next", "Connection: close\r\n"));
        assertEquals((await c.response()).body, "/next");
      },
    );

    await t.step(
      "the handler ignores the body: no 100 Continue, and EOF after its answer",
      async () => {
        await using server = start(async (_head, conn) => {
          await reply(conn, "ignored");
          return true;
        });
        using c = await RawClient.connect(server.addr.port);
        await c.send(expectHead);
        const end = await c.untilClose(2000);
        assert(!end.text.includes("100 Continue"), end.text);
        assertMatch(end.text, /^HTTP\/1\.1 200 X\r\n[^]*\r\n\r\nignored$/);
        assertEquals(end.reset, false);
      },
    );

    await t.step(
      "the handler answers, then reads a body over the limit: no 413 is appended to its answer",
      async () => {
        const logs: AccessLogEntry[] = [];
        const partial = "HTTP/1.1 200 X\r\nTransfer-Encoding: chunked\r\n\r\n";
        await using server = start(async (head, conn) => {
          await conn.write(enc.encode(partial));
          await bodyText(conn, head);
          return false;
        }, { maxBodySize: 10, onLog: (e) => logs.push(e) });
        using c = await RawClient.connect(server.addr.port);
        await c.send(
          "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assertEquals(await c.exactly(partial.length), partial);
        await c.send(`14\r\n${"z".repeat(20)}\r\n`);
        const end = await c.untilClose(2000);
        assertEquals(end.text, "", "a second response followed the handler's partial one");
        assertEquals(logs.length, 1);
        assertEquals(logs[0]!.sent, partial.length);
      },
    );
  },
);

Deno.test(
  "HttpServer turns an HttpError thrown before anything is written into that status via errorResponse",
  sanitized,
  async (t) => {
    const calls: [number, string][] = [];
    function errorResponse(status: number, message: string): Uint8Array {
      calls.push([status, message]);
      return enc.encode(
        `HTTP/1.1 ${status} Custom\r\nContent-Length: ${message.length}\r\nConnection: close\r\n\r\n${message}`,
      );
    }
    const written = "HTTP/1.1 200 X\r\nContent-Length: 10\r\n\r\n";
    await using server = start(async (head, conn) => {
      if (head.target === "/after") await conn.write(enc.encode(written));
      throw new HttpError(418, "Cannot brew coffee: I am a teapot");
    }, { errorResponse });

    await t.step("thrown before writing: 418 with the hook's body, then a close", async () => {
      calls.length = 0;
      using c = await RawClient.connect(server.addr.port);
      await c.send(get("/before"));
      const res = await c.response();
      assertEquals([res.status, res.head.reason, res.body], [
        418,
        "Custom",
        "Cannot brew coffee: I am a teapot",
      ]);
      assertEquals(calls, [[418, "Cannot brew coffee: I am a teapot"]]);
      assertEquals((await c.untilClose(1000)).text, "");
    });

    await t.step("thrown after writing: no second answer, just the close", async () => {
      calls.length = 0;
      using c = await RawClient.connect(server.addr.port);
      await c.send(get("/after"));
      assertEquals((await c.untilClose(1000)).text, written);
      assertEquals(calls, []);
    });

    await t.step("plainErrorResponse, the default, says the status and closes", () => {
      const text = dec.decode(plainErrorResponse(418, "secret detail"));
      assertMatch(text, /^HTTP\/1\.1 418 [^\r]+\r\n/);
      assertMatch(text, /\r\nConnection: close\r\n/);
      assert(!text.includes("secret detail"), "the message leaked to the client");
    });
  },
);

Deno.test(
  "HttpServer closes a connection whose handler returned true without reading the body",
  sanitized,
  async (t) => {
    const table = [
      { name: "body read: the pipelined request is answered too", read: true, answers: 2 },
      { name: "body left unread: the connection closes after one answer", read: false, answers: 1 },
    ];
    for (const row of table) {
      await t.step(row.name, async () => {
        const targets: string[] = [];
        await using server = start(async (head, conn) => {
          targets.push(head.target);
          if (row.read) await bodyText(conn, head);
          await reply(conn, "ok");
          return head.keepAlive;
        });
        using c = await RawClient.connect(server.addr.port);
        await c.send(
          "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
            get("/next", "Connection: close\r\n"),
        );
        const end = await c.untilClose(2000);
        const statuses = [...end.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
        assertEquals(statuses, Array(row.answers).fill("200"));
        assertEquals(targets, ["/post", "/next"].slice(0, row.answers));
      });
    }
  },
);

Deno.test(
  "ServerConnection.tunnel() passes bytes both ways, starting with those buffered after the head",
  sanitized,
  async (t) => {
    const established = "HTTP/1.1 200 Connection Established\r\n\r\n";
    let buffered: string | undefined;
    await using server = start(async (head, conn) => {
      assertEquals(head.method, "CONNECT");
      await conn.write(enc.encode(established));
      const tunnel = conn.tunnel();
      buffered = dec.decode(tunnel.buffered);
      if (tunnel.buffered.length > 0) await tunnel.write(tunnel.buffered);
      const p = new Uint8Array(1024);
      for (;;) {
        const n = await tunnel.read(p);
        if (n === null) break;
        await tunnel.write(p.slice(0, n));
      }
      await tunnel.closeWrite();
      // The core closes a tunnelled connection whatever the handler says.
      return true;
    }, { tunnelTimeout: 400 });
    const connect = "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n";

    await t.step(
      "early bytes and later bytes are echoed; a half-close ends the tunnel",
      async () => {
        using c = await RawClient.connect(server.addr.port);
        await c.send(connect + "EARLY");
        assertEquals(await c.exactly(established.length + 5), established + "EARLY");
        assertEquals(buffered, "EARLY");
        await c.send("LATER");
        assertEquals(await c.exactly(5), "LATER");
        await c.send("AGAIN");
        assertEquals(await c.exactly(5), "AGAIN");
        await c.conn.closeWrite();
        const end = await c.untilClose(1000);
        assertEquals([end.text, end.reset], ["", false]);
      },
    );

    await t.step(
      "a tunnel with traffic every 150 ms lives past tunnelTimeout; silent, it is closed at tunnelTimeout",
      async () => {
        using c = await RawClient.connect(server.addr.port);
        await c.send(connect);
        assertEquals(await c.exactly(established.length), established);
        for (let i = 0; i < 7; i++) {
          await delay(150);
          await c.send(`ping${i}`);
          assertEquals(await c.exactly(5), `ping${i}`);
        }
        const quietSince = Date.now();
        const end = await c.untilClose(2000);
        // Activity is stamped with the sweeper's clock, up to a quarter of the deadline early.
        assert(end.at - quietSince >= 280, `closed after ${end.at - quietSince} ms of silence`);
        assert(end.at - quietSince < 1500, `closed after ${end.at - quietSince} ms of silence`);
      },
    );
  },
);

Deno.test(
  "HttpServer.shutdown() closes idle connections at once and gives requests in flight graceMs",
  sanitized,
  async (t) => {
    function handler(started: () => void): RawHandler {
      return async (head, conn) => {
        if (head.target === "/slow") {
          started();
          await delay(250);
          await reply(conn, "slow", 200, conn.closing ? "Connection: close\r\n" : "");
          return !conn.closing;
        }
        if (head.target === "/stuck") {
          started();
          await conn.write(enc.encode("HTTP/1.1 200 X\r\nContent-Length: 10\r\n\r\nhello"));
          await bodyText(conn, head); // The client never sends it.
          return true;
        }
        return await echo(head, conn);
      };
    }

    await t.step("idle and fresh connections close at once; new ones are refused", async () => {
      await using server = start(handler(() => {}));
      const port = server.addr.port;
      using idle = await RawClient.connect(port);
      await idle.send(get("/fast"));
      assertEquals((await idle.response()).body, "/fast");
      using fresh = await RawClient.connect(port);
      await waitFor(() => server.connections === 2, "both connections to be accepted");
      const begin = Date.now();
      await server.shutdown(10_000);
      // At once, not after the grace (bounds are loose: a busy machine is slow).
      assert(
        Date.now() - begin < 5000,
        `shutdown took ${Date.now() - begin} ms with nothing in flight`,
      );
      assertEquals((await idle.untilClose(2000)).text, "");
      assertEquals((await fresh.untilClose(2000)).text, "");
      await assertRejects(
        () => Deno.connect({ hostname: "127.0.0.1", port }),
        Deno.errors.ConnectionRefused,
      );
    });

    await t.step("a slow response in flight finishes, with Connection: close", async () => {
      let started!: () => void;
      const running = new Promise<void>((resolve) => started = resolve);
      await using server = start(handler(() => started()));
      using slow = await RawClient.connect(server.addr.port);
      using idle = await RawClient.connect(server.addr.port);
      await slow.send(get("/slow"));
      await idle.send(get("/fast"));
      await idle.response();
      await running;
      const begin = Date.now();
      const stopped = server.shutdown(10_000);
      const idleEnd = await idle.untilClose(1000);
      const res = await slow.response();
      assertEquals([res.status, res.body], [200, "slow"]);
      assertEquals(res.head.headers.get("connection"), "close");
      const slowEnd = await slow.untilClose(1000);
      await stopped;
      const took = Date.now() - begin;
      assert(idleEnd.at < slowEnd.at, "the idle connection waited for the slow one");
      // When the response ended, not at the grace's end.
      assert(took >= 150 && took < 5000, `shutdown took ${took} ms for a 250 ms response`);
    });

    await t.step("a request still running after graceMs is cut", async () => {
      let started!: () => void;
      const running = new Promise<void>((resolve) => started = resolve);
      await using server = start(handler(() => started()));
      using stuck = await RawClient.connect(server.addr.port);
      await stuck.send("POST /stuck HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
      await running;
      const begin = Date.now();
      await server.shutdown(200);
      const took = Date.now() - begin;
      assert(took >= 195 && took < 5000, `shutdown(200) took ${took} ms`);
      const end = await stuck.untilClose(1000);
      assertMatch(end.text, /hello$/);
    });
  },
);

Deno.test(
  "HttpServer's onLog gets one record per request, and one with method null for a malformed head",
  sanitized,
  async () => {
    const logs: AccessLogEntry[] = [];
    await using server = start(async (head, conn) => {
      const body = head.body.type === "none" ? "hello" : await bodyText(conn, head);
      conn.logExtra = { cache: "MISS", target: head.target };
      await reply(conn, body);
      return head.keepAlive;
    }, { onLog: (entry) => logs.push(entry) });
    const port = server.addr.port;

    using c = await RawClient.connect(port);
    await c.send(get("/a", "User-Agent: test/1\r\nReferer: http://r.test/\r\n"));
    await c.send(
      "POST /b?q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    const wire = (await c.untilClose(2000)).text;
    const [first, second] = wire.split(/(?=HTTP\/1\.1 200)/);
    using bad = await RawClient.connect(port);
    await bad.send("\x01\x02 garbage\r\n\r\n");
    const refused = (await bad.untilClose(2000)).text;

    assertEquals(logs.length, 3);
    const [a, b, m] = logs as [AccessLogEntry, AccessLogEntry, AccessLogEntry];
    assertEquals(
      [a.method, a.target, a.requestLine, a.status, a.bytes, a.sent, a.userAgent, a.referer],
      ["GET", "/a", "GET /a HTTP/1.1", 200, 5, first!.length, "test/1", "http://r.test/"],
    );
    assertEquals(a.extra, { cache: "MISS", target: "/a" });
    assertEquals(a.remoteAddr, "127.0.0.1");
    assertEquals(
      [b.method, b.target, b.status, b.bytes, b.sent, b.userAgent],
      ["POST", "/b?q", 200, 3, second!.length, null],
    );
    assertEquals(b.extra, { cache: "MISS", target: "/b?q" });
    assertMatch(refused, /^HTTP\/1\.1 400 /);
    assertEquals(
      [m.method, m.target, m.requestLine, m.status, m.sent, m.extra],
      [null, null, "-", 400, refused.length, undefined],
    );
    for (const e of logs) assert(e.duration >= 0 && e.time instanceof Date);
  },
);

Deno.test(
  "HttpServer refuses with 503 past the per-address cap of its limits, and admits again after a close",
  sanitized,
  async () => {
    const limits = new ConnectionLimits({ maxConnections: 0, maxConnectionsPerIp: 2 });
    const logs: AccessLogEntry[] = [];
    await using server = start(echo, { limits, onLog: (e) => logs.push(e) });
    assert(server.limits === limits);
    const port = server.addr.port;
    using one = await RawClient.connect(port);
    using two = await RawClient.connect(port);
    for (const c of [one, two]) {
      await c.send(get("/in"));
      assertEquals((await c.response()).status, 200);
    }
    assertEquals(limits.open, 2);

    {
      using third = await RawClient.connect(port);
      const res = await third.response();
      assertEquals(res.status, 503);
      assertEquals(res.head.headers.get("connection"), "close");
      assertEquals((await third.untilClose(1000)).text, "");
    }
    assertEquals(limits.open, 2);
    assertEquals(logs.at(-1)?.status, 503);
    assertEquals(logs.at(-1)?.method, null);

    one.close();
    await waitFor(() => limits.open === 1, "the closed connection to be released");
    using four = await RawClient.connect(port);
    await four.send(get("/again"));
    assertEquals((await four.response()).body, "/again");
    assertEquals(limits.open, 2);
  },
);

Deno.test(
  "HttpServer past the global cap closes an idle keep-alive connection to make room, else refuses with 503",
  sanitized,
  async (t) => {
    await using server = start(echo, { maxConnections: 1, maxConnectionsPerIp: 0 });
    const port = server.addr.port;

    await t.step("an idle connection gives way to a new one", async () => {
      using idle = await RawClient.connect(port);
      await idle.send(get("/idle"));
      await idle.response();
      using next = await RawClient.connect(port);
      assertEquals((await idle.untilClose(1000)).text, "");
      await next.send(get("/next", "Connection: close\r\n"));
      assertEquals((await next.response()).body, "/next");
      await next.untilClose(1000);
      await waitFor(() => server.limits.open === 0, "both to be released");
    });

    await t.step("a connection mid-request is kept, and the new one gets 503", async () => {
      using busy = await RawClient.connect(port);
      await busy.send("GET /busy HTTP/1.1\r\nHost: x\r\n");
      await waitFor(() => server.connections === 1, "the first connection to be accepted");
      using next = await RawClient.connect(port);
      assertEquals((await next.response()).status, 503);
      await busy.send("Connection: close\r\n\r\n");
      assertEquals((await busy.response()).body, "/busy");
    });
  },
);

Deno.test(
  "HttpServer with proxyProtocol takes the client's address from a PROXY v1 line and closes without one",
  sanitized,
  async (t) => {
    const seen: string[] = [];
    await using server = start((head, conn) => {
      seen.push(`${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`);
      return echo(head, conn);
    }, { proxyProtocol: true, maxConnectionsPerIp: 1 });
    const port = server.addr.port;

    await t.step("TCP4 and TCP6 lines name the client; the request follows", async () => {
      for (
        const [line, who] of [
          ["PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\n", "192.0.2.7:40000"],
          ["PROXY TCP6 2001:db8::9 ::1 40001 80\r\n", "2001:db8::9:40001"],
        ]
      ) {
        using c = await RawClient.connect(port);
        await c.send(line + get("/p", "Connection: close\r\n"));
        const res = await c.response();
        assertEquals([res.status, res.body], [200, "/p"]);
        assertEquals(seen.at(-1), who);
      }
    });

    await t.step("UNKNOWN keeps the socket's address", async () => {
      using c = await RawClient.connect(port);
      await c.send("PROXY UNKNOWN\r\n" + get("/u", "Connection: close\r\n"));
      assertEquals((await c.response()).body, "/u");
      assertMatch(seen.at(-1)!, /^127\.0\.0\.1:/);
    });

    await t.step("no line, a bad address or a line past 107 bytes: closed unanswered", async () => {
      const before = seen.length;
      for (
        const wire of [
          get("/none"),
          "PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n" + get("/bad"),
          "PROXY TCP4 " + "1".repeat(120) + "\r\n" + get("/long"),
        ]
      ) {
        using c = await RawClient.connect(port);
        await c.send(wire);
        assertEquals((await c.untilClose(2000)).text, "");
      }
      assertEquals(seen.length, before);
    });

    await t.step("the caps count the socket's address, and release it", async () => {
      // maxConnectionsPerIp is 1: each connection is released when it closes,
      // whatever address its PROXY line named.
      for (let i = 0; i < 3; i++) {
        using c = await RawClient.connect(port);
        await c.send(
          `PROXY TCP4 192.0.2.${i} 127.0.0.1 1 2\r\n` + get("/c", "Connection: close\r\n"),
        );
        assertEquals((await c.response()).status, 200);
        await c.untilClose(2000);
      }
      await waitFor(() => server.connections === 0, "every connection released");
    });
  },
);

Deno.test(
  "HttpServer serves plain TCP on the io_uring ring with one loop, on Deno's sockets when loops share the port or when told",
  sanitized,
  async () => {
    const cases: [ServerOptions, "io_uring" | "deno"][] = [
      [{}, "io_uring"],
      [{ ioUring: "auto", reusePort: true }, "deno"],
      [{ ioUring: true, reusePort: true }, "io_uring"],
      [{ ioUring: false }, "deno"],
      [{ hostname: "localhost" }, "io_uring"],
    ];
    for (const [options, transport] of cases) {
      await using server = start(echo, options);
      assertEquals(server.transport, transport, JSON.stringify(options));
      // Each transport answers, keep-alive included.
      using c = await RawClient.connect(server.addr.port);
      await c.send(get("/one") + get("/two", "Connection: close\r\n"));
      const first = await c.response();
      const second = await c.response();
      assertEquals([first.body, second.body], ["/one", "/two"]);
    }
  },
);

Deno.test("HttpServer goes on on Deno's sockets when its io_uring ring fails: the ring's connections close, new ones are served", async () => {
  // In a process of its own: a failed ring is not used again in its thread.
  const script = `
    import { HttpServer } from ${JSON.stringify(new URL("./server.ts", import.meta.url).href)};
    import { failUringForTesting } from ${
    JSON.stringify(new URL("../rawsock/uring.ts", import.meta.url).href)
  };
    const body = new TextEncoder().encode("HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok");
    const warnings = [];
    const server = new HttpServer(async (_head, conn) => {
      await conn.write(body);
      return true;
    }, { hostname: "127.0.0.1", port: 0, onWarning: (m) => warnings.push(m) });
    const out = { before: server.transport };
    const c = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    const buf = new Uint8Array(256);
    await c.write(new TextEncoder().encode("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));
    out.first = new TextDecoder().decode(buf.subarray(0, (await c.read(buf)) ?? 0)).endsWith("ok");
    out.failed = failUringForTesting("injected");
    out.kept = await c.read(buf).then((n) => n, (e) => e.name);
    c.close();
    let answer = null;
    for (let i = 0; i < 100 && answer === null; i++) {
      answer = await fetch("http://127.0.0.1:" + server.addr.port + "/after")
        .then((r) => r.text(), () => null);
      if (answer === null) await new Promise((r) => setTimeout(r, 20));
    }
    out.after = answer;
    out.transport = server.transport;
    out.warnings = warnings;
    await server.shutdown();
    console.log(JSON.stringify(out));
  `;
  const res = await evalScript(script, 30_000);
  assertEquals(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  assertEquals(out.before, "io_uring");
  assertEquals(out.first, true, "the ring served the first request");
  assertEquals(out.failed, true);
  // The keep-alive connection on the failed ring was closed, not left hanging.
  assert(
    out.kept === null || out.kept === "ConnectionReset",
    `read after the failure: ${out.kept}`,
  );
  assertEquals(out.after, "ok", "a new connection was served");
  assertEquals(out.transport, "deno");
  assertEquals(out.warnings.length, 1);
  assertMatch(
    out.warnings[0],
    /^io_uring failed: injected; serving on Deno's sockets from now on$/,
  );
});
