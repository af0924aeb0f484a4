import { assert, assertEquals, assertThrows } from "../lib/testing/assert.ts";
import {
  INCOMPLETE,
  keySlot,
  RespConnection,
  RespError,
  RespReader,
  type RespValue,
  RespWriter,
} from "./_resp.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("RespWriter encodes commands as arrays of bulk strings, bytes and UTF-8 alike", async (t) => {
  const cases: Array<[string, Array<string | Uint8Array>, string]> = [
    ["no arguments", ["PING"], "*1\r\n$4\r\nPING\r\n"],
    ["an empty string", ["GET", ""], "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"],
    ["UTF-8 counted in bytes", ["SET", "é€"], "*2\r\n$3\r\nSET\r\n$5\r\né€\r\n"],
    ["raw bytes with CRLF inside", ["SET", bytes("a\r\nb")], "*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n"],
    ["ten arguments (two-digit count)", Array(10).fill("x"), `*10\r\n${"$1\r\nx\r\n".repeat(10)}`],
  ];
  for (const [name, args, wire] of cases) {
    await t.step(name, () => {
      const w = new RespWriter();
      w.command(args);
      assertEquals(text(w.take()), wire);
    });
  }
  await t.step("a value larger than the buffer grows it", () => {
    const w = new RespWriter();
    const big = new Uint8Array(100_000).fill(97);
    w.command(["SET", "k", big]);
    const out = w.take();
    assertEquals(out.length, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".length + 100_000 + 2);
    assertEquals(out[out.length - 3], 97);
  });
  await t.step("the buffers alternate: a taken batch stays intact while the next fills", () => {
    const w = new RespWriter();
    w.command(["A"]);
    const first = w.take();
    w.command(["B"]);
    assertEquals(text(first), "*1\r\n$1\r\nA\r\n");
    assertEquals(text(w.take()), "*1\r\n$1\r\nB\r\n");
  });
});

/** Every reply type, with its wire form. */
const REPLIES: Array<[string, string, RespValue]> = [
  ["simple string", "+OK\r\n", bytes("OK")],
  ["integer", ":1000\r\n", 1000],
  ["negative integer", ":-2\r\n", -2],
  ["bulk string", "$5\r\nhello\r\n", bytes("hello")],
  ["empty bulk string", "$0\r\n\r\n", bytes("")],
  ["bulk string holding CRLF", "$4\r\na\r\nb\r\n", bytes("a\r\nb")],
  ["nil bulk", "$-1\r\n", null],
  ["nil array", "*-1\r\n", null],
  ["empty array", "*0\r\n", []],
  [
    "nested array",
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n$3\r\nend\r\n",
    [1, [bytes("a"), null], bytes("end")],
  ],
];

Deno.test("RespReader parses every reply type, split at every byte", async (t) => {
  for (const [name, wire, value] of REPLIES) {
    await t.step(name, () => {
      const raw = bytes(wire);
      for (let cut = 0; cut <= raw.length; cut++) {
        const r = new RespReader();
        r.feed(raw.subarray(0, cut));
        if (cut < raw.length) {
          assertEquals(r.read(), INCOMPLETE, `cut at ${cut}`);
          r.feed(raw.subarray(cut));
        }
        assertEquals(r.read(), value, `cut at ${cut}`);
        assertEquals(r.read(), INCOMPLETE);
        assertEquals(r.buffered, 0);
      }
    });
  }
  await t.step("error replies become RespError values", () => {
    const r = new RespReader();
    r.feed(bytes("-MOVED 3999 127.0.0.1:6381\r\n"));
    const v = r.read();
    assert(v instanceof RespError);
    assertEquals(v.message, "MOVED 3999 127.0.0.1:6381");
  });
  await t.step("many replies in one read, one byte at a time", () => {
    const all = REPLIES.map(([, wire]) => wire).join("");
    const r = new RespReader();
    const got: RespValue[] = [];
    for (const b of bytes(all)) {
      r.feed(new Uint8Array([b]));
      for (let v = r.read(); v !== INCOMPLETE; v = r.read()) got.push(v);
    }
    assertEquals(got, REPLIES.map(([, , v]) => v));
  });
  await t.step("a bulk string is a view into the bytes read, not a copy", () => {
    const raw = bytes("$3\r\nabc\r\n");
    const r = new RespReader();
    r.feed(raw);
    const v = r.read() as Uint8Array;
    assert(v.buffer === raw.buffer);
  });
  await t.step("a large reply split over many reads waits until all its bytes are there", () => {
    const body = "x".repeat(300_000);
    const raw = bytes(`$${body.length}\r\n${body}\r\n`);
    const r = new RespReader();
    r.feed(raw.subarray(0, 1000));
    assertEquals(r.read(), INCOMPLETE);
    assertEquals(r.missing, raw.length - 1000);
    for (let off = 1000; off < raw.length; off += 65536) {
      r.feed(raw.subarray(off, Math.min(raw.length, off + 65536)));
    }
    assertEquals(text(r.read() as Uint8Array), body);
  });
  await t.step("bytes that are not RESP are refused", () => {
    const r = new RespReader();
    r.feed(bytes("HTTP/1.1 400\r\n"));
    const err = assertThrows(() => r.read(), TypeError);
    assert(err.message.includes("unexpected byte"), err.message);
  });
});

Deno.test("keySlot() gives Redis Cluster's slots: CRC16 of the key or its hash tag", async (t) => {
  // Vectors from the Redis Cluster specification and `CLUSTER KEYSLOT` of redis-server 7.0.
  const cases: Array<[string, number]> = [
    ["123456789", 12739],
    ["", 0],
    ["foo", 12182],
    ["bar", 5061],
    ["{user1000}.following", 3443],
    ["{user1000}.followers", 3443],
    ["user1000", 3443],
    ["foo{}{bar}", 8363],
    ["foo{{bar}}zap", 4015],
    ["foo{bar}{zap}", 5061],
  ];
  for (const [key, slot] of cases) {
    await t.step(`"${key}" → ${slot}`, () => assertEquals(keySlot(key), slot));
  }
});

Deno.test("RespConnection pipelines one turn's commands into one write and fails all on a loss", async (t) => {
  /** A fake transport: records writes and answers when told to. */
  function fake() {
    const writes: string[] = [];
    const inbox: Uint8Array[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const conn = {
      write(p: Uint8Array) {
        writes.push(text(p));
        return Promise.resolve(p.length);
      },
      async read(p: Uint8Array) {
        while (inbox.length === 0 && !ended) await new Promise<void>((r) => wake = r);
        const next = inbox.shift();
        if (next === undefined) return null;
        p.set(next);
        return next.length;
      },
      close() {
        ended = true;
        wake?.();
      },
    };
    const answer = (wire: string) => {
      inbox.push(bytes(wire));
      wake?.();
    };
    const end = () => conn.close();
    return { conn, writes, answer, end };
  }

  await t.step("three commands, one write; replies matched in order", async () => {
    const f = fake();
    const c = new RespConnection(f.conn);
    const replies = Promise.all([c.send(["GET", "a"]), c.send(["GET", "b"]), c.send(["X"])]);
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(f.writes, [
      "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*1\r\n$1\r\nX\r\n",
    ]);
    f.answer("$1\r\n1\r\n$-1\r\n-ERR unknown command\r\n");
    const [a, b, x] = await replies;
    assertEquals([a, b], [bytes("1"), null]);
    assert(x instanceof RespError);
    c.close();
  });

  await t.step("pub/sub messages go to onPush, not to a waiting command", async () => {
    const f = fake();
    const seen: string[] = [];
    const c = new RespConnection(f.conn, { onPush: (ch, m) => seen.push(`${ch}=${m}`) });
    const sub = c.send(["SUBSCRIBE", "nk:inv"]);
    f.answer("*3\r\n$9\r\nsubscribe\r\n$6\r\nnk:inv\r\n:1\r\n");
    assertEquals(await sub, [bytes("subscribe"), bytes("nk:inv"), 1]);
    f.answer("*3\r\n$7\r\nmessage\r\n$6\r\nnk:inv\r\n$2\r\nhi\r\n");
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(seen, ["nk:inv=hi"]);
    c.close();
  });

  await t.step("a lost connection answers waiting and later commands with an error", async () => {
    const f = fake();
    const reasons: string[] = [];
    const c = new RespConnection(f.conn, { onClose: (e) => reasons.push(e.message) });
    const waiting = c.send(["GET", "a"]);
    f.end();
    assert(await waiting instanceof RespError);
    assert(await c.send(["GET", "b"]) instanceof RespError);
    assert(c.closed);
    assertEquals(reasons.length, 1);
  });
});
