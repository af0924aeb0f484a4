import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { evalScript } from "../testing/tasks.ts";
import { listenUring, type UringConn, type UringListener, uringWake } from "./uring.ts";

/** A listener on the ring; the kernel has io_uring here, in CI as on this machine. */
async function listen(): Promise<UringListener> {
  const l = await listenUring({ hostname: "127.0.0.1", port: 0 });
  assert(l !== undefined, "io_uring is available");
  return l;
}

/** Reads until `n` bytes or the end of input. */
async function readN(conn: { read(p: Uint8Array): Promise<number | null> }, n: number) {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(out.subarray(got));
    if (r === null) break;
    got += r;
  }
  return out.subarray(0, got);
}

async function writeAll(conn: { write(p: Uint8Array): Promise<number> }, data: Uint8Array) {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** This process's open descriptors. */
function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

Deno.test("a ring listener accepts a Deno client, with both addresses, and bytes go both ways", async () => {
  const l = await listen();
  try {
    assertEquals(l.addr.hostname, "127.0.0.1");
    assert(l.addr.port > 0);
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    using server = await l.accept();
    assertEquals(server.remoteAddr.port, (client.localAddr as Deno.NetAddr).port);
    assertEquals(server.localAddr.port, l.addr.port);
    await writeAll(client, new TextEncoder().encode("hello, ring"));
    assertEquals(new TextDecoder().decode(await readN(server, 11)), "hello, ring");
    await writeAll(server, new TextEncoder().encode("and back"));
    assertEquals(new TextDecoder().decode(await readN(client, 8)), "and back");
  } finally {
    l.close();
  }
});

Deno.test("a small read pending while a small write goes out each get their own bytes", async () => {
  // Buffers of 64 bytes or less go through fixed ones off V8's heap (V8 may
  // move such small arrays); the read and the write each have their own.
  const l = await listen();
  try {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    using server = await l.accept();
    const small = new Uint8Array(8);
    const reading = server.read(small);
    await server.write(new TextEncoder().encode("server->"));
    await writeAll(client, new TextEncoder().encode("client->"));
    assertEquals(await reading, 8);
    assertEquals(new TextDecoder().decode(small), "client->");
    assertEquals(new TextDecoder().decode(await readN(client, 8)), "server->");
  } finally {
    l.close();
  }
});

Deno.test("an 8 MiB write reaches a slow reader whole and in order, through partial sends", async () => {
  const l = await listen();
  try {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    using server = await l.accept();
    const data = new Uint8Array(8 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 13)) & 255;
    let calls = 0;
    const writing = (async () => {
      for (let off = 0; off < data.length; calls++) off += await server.write(data.subarray(off));
    })();
    await new Promise((r) => setTimeout(r, 50)); // the socket buffers fill first
    const got = await readN(client, data.length);
    await writing;
    assertEquals(got.length, data.length);
    assert(got.every((b, i) => b === data[i]), "the bytes arrive in order, unchanged");
    assert(calls > 1, `the kernel took the 8 MiB in parts (${calls} sends)`);
  } finally {
    l.close();
  }
});

Deno.test("read gives null at the peer's end of input, and closeWrite gives the peer its end", async () => {
  const l = await listen();
  try {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    using server = await l.accept();
    await server.closeWrite();
    assertEquals(await client.read(new Uint8Array(16)), null);
    await writeAll(client, new TextEncoder().encode("last words"));
    await client.closeWrite();
    assertEquals(new TextDecoder().decode(await readN(server, 100)), "last words");
    assertEquals(await server.read(new Uint8Array(100)), null);
  } finally {
    l.close();
  }
});

Deno.test("closing a connection with a read pending rejects the read and frees its descriptor", async () => {
  const l = await listen();
  try {
    const before = openFds();
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    const server: UringConn = await l.accept();
    const reading = server.read(new Uint8Array(1024));
    server.close();
    await assertRejects(() => reading, Deno.errors.Interrupted);
    await assertRejects(() => server.read(new Uint8Array(1)), Deno.errors.BadResource);
    // The peer sees the end, and the descriptor goes once the kernel is done with the read.
    assertEquals(await client.read(new Uint8Array(16)), null);
    for (let i = 0; i < 100 && openFds() > before + 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(openFds(), before + 1, "only the client's descriptor is left");
  } finally {
    l.close();
  }
});

Deno.test("closing a listener ends a pending accept, frees the port at once, and refuses connects", async () => {
  const l = await listen();
  const port = l.addr.port;
  const accepting = l.accept();
  await new Promise((r) => setTimeout(r, 20)); // the accept waits on its worker thread
  l.close();
  await assertRejects(() => accepting, Deno.errors.BadResource);
  await assertRejects(
    () => Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
  // Deno can listen on the port right away.
  using again = Deno.listen({ hostname: "127.0.0.1", port });
  assertEquals((again.addr as Deno.NetAddr).port, port);
});

Deno.test("connections waiting in the backlog are all accepted, in turn, by async iteration", async () => {
  const l = await listen();
  const clients = await Promise.all(
    Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port: l.addr.port })),
  );
  const ports = new Set<number>();
  for await (const c of l) {
    ports.add(c.remoteAddr.port);
    c.close();
    if (ports.size === 20) l.close();
  }
  assertEquals(ports, new Set(clients.map((c) => (c.localAddr as Deno.NetAddr).port)));
  for (const c of clients) c.close();
});

Deno.test("listenUring leaves host names to Deno.listen, and reports a port in use as Deno does", async () => {
  assertEquals(await listenUring({ hostname: "localhost", port: 0 }), undefined);
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await assertRejects(
    () => listenUring({ hostname: "127.0.0.1", port: (taken.addr as Deno.NetAddr).port }),
    Deno.errors.AddrInUse,
  );
});

Deno.test("completions wake the event loop through the notify socket, and timers run while a read waits", async () => {
  const l = await listen();
  try {
    using client = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    using server = await l.accept();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    const read = readN(server, 5);
    setTimeout(() => client.write(new TextEncoder().encode("hello")), 300);
    assertEquals(new TextDecoder().decode(await read), "hello");
    clearInterval(timer);
    assert(performance.now() - started >= 290, "the read waited for the bytes");
    assert(ticks >= 10, `timers ran meanwhile (${ticks} ticks of 10 ms in 300 ms)`);
    assertEquals(uringWake(), "socket");
  } finally {
    l.close();
  }
});

Deno.test("a process whose ring has nothing left in flight exits by itself", async () => {
  const script = `
    import { listenUring } from ${JSON.stringify(new URL("./uring.ts", import.meta.url).href)};
    const l = await listenUring({ hostname: "127.0.0.1", port: 0 });
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    const s = await l.accept();
    await c.write(new Uint8Array([1, 2, 3]));
    console.log(await s.read(new Uint8Array(8)));
    s.close(); c.close(); l.close();
  `;
  const out = await evalScript(script);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stdout.trim(), "3");
});

Deno.test("when the ring fails, reads and a waiting accept reject with UringFailure, the port is free, and later listeners are Deno's", async () => {
  // In a process of its own: a failed ring is not used again in its thread.
  const script = `
    import { failUringForTesting, listenUring } from ${
    JSON.stringify(new URL("./uring.ts", import.meta.url).href)
  };
    const l = await listenUring({ hostname: "127.0.0.1", port: 0 });
    const c = await Deno.connect({ hostname: "127.0.0.1", port: l.addr.port });
    const s = await l.accept();
    const read = s.read(new Uint8Array(64)).then(() => "resolved", (e) => e.name);
    const accept = l.accept().then(() => "resolved", (e) => e.name);
    await new Promise((r) => setTimeout(r, 50));
    failUringForTesting("injected");
    const out = { read: await read, accept: await accept };
    out.peer = await c.read(new Uint8Array(8)).then((n) => n, (e) => e.name);
    const again = Deno.listen({ hostname: "127.0.0.1", port: l.addr.port });
    out.relisten = again.addr.port === l.addr.port;
    again.close();
    out.later = (await listenUring({ hostname: "127.0.0.1", port: 0 })) === undefined;
    c.close();
    console.log(JSON.stringify(out));
  `;
  const res = await evalScript(script);
  assertEquals(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  assertEquals(out.read, "UringFailure");
  assertEquals(out.accept, "UringFailure");
  assert(out.peer === null || out.peer === "ConnectionReset", `the peer saw ${out.peer}`);
  assertEquals(out.relisten, true, "the port is free to listen on again");
  assertEquals(out.later, true, "later listeners fall back to Deno.listen");
});
