import { openSocket } from "./socket.ts";
import { sharePort } from "./share.ts";
import { SocketError } from "./errno.ts";
import { assert, assertEquals, assertThrows } from "../testing/assert.ts";

Deno.test("sharePort() lets SO_REUSEPORT sockets join a bound port, which then share its datagrams", async () => {
  using first = openSocket({ kind: "udp", family: 4 });
  first.bind({ family: 4, address: "127.0.0.1", port: 0 });
  const address = { family: 4 as const, address: "127.0.0.1", port: first.localAddress().port };
  // Without it, the port is the first socket's alone, even for SO_REUSEPORT.
  {
    using early = openSocket({ kind: "udp", family: 4, reusePort: true });
    const err = assertThrows(() => early.bind(address), SocketError);
    assert(err.message.includes("EADDRINUSE"), err.message);
  }
  sharePort(first);
  using second = openSocket({ kind: "udp", family: 4, reusePort: true });
  second.bind(address);
  // A socket without the option is still refused.
  {
    using plain = openSocket({ kind: "udp", family: 4 });
    const err = assertThrows(() => plain.bind(address), SocketError);
    assert(err.message.includes("EADDRINUSE"), err.message);
  }
  // The kernel spreads senders over both by a hash of their address and port.
  const got = [0, 0];
  const senders = Array.from({ length: 32 }, () => openSocket({ kind: "udp", family: 4 }));
  try {
    for (const s of senders) s.send(new TextEncoder().encode("x"), address);
    for (const [i, sock] of [first, second].entries()) {
      for (;;) {
        const d = await sock.receive({ timeoutMs: 200 });
        if (d === null) break;
        got[i]!++;
      }
    }
  } finally {
    for (const s of senders) s.close();
  }
  assertEquals(got[0]! + got[1]!, 32);
  assert(got[0]! > 0 && got[1]! > 0, `spread ${got.join("/")}`);
});
