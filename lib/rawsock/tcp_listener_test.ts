import { assertEquals } from "../testing/assert.ts";
import { makeTestCa } from "../testing/tls.ts";
import { IPPROTO_TCP, TCP_NODELAY } from "./constants.ts";
import { lib } from "./ffi.ts";
import { setListenerNoDelay } from "./tcp_listener.ts";

/** TCP_NODELAY of the server's side of the connection from `clientPort` to `port` (1 or 0). */
function acceptedNoDelay(port: number, clientPort: number): number[] {
  const hex = (p: number) => `:${p.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // ESTABLISHED ("01"), local port ours, remote the client's: the server's side.
    if (
      f.length >= 10 && f[3] === "01" && f[1]!.endsWith(hex(port)) &&
      f[2]!.endsWith(hex(clientPort))
    ) {
      inodes.add(f[9]!);
    }
  }
  const values: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target = "";
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m === null || !inodes.has(m[1]!)) continue;
    const value = new Uint8Array(4);
    const length = new Uint8Array(new Uint32Array([4]).buffer);
    lib().getsockopt(Number(entry.name), IPPROTO_TCP, TCP_NODELAY, value, length);
    values.push(new DataView(value.buffer).getInt32(0, true));
  }
  return values;
}

async function acceptOne(listener: Deno.TlsListener, caCert: string): Promise<number[]> {
  const [client, server] = await Promise.all([
    Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port, caCerts: [caCert] }),
    listener.accept(),
  ]);
  try {
    return acceptedNoDelay(listener.addr.port, (client.localAddr as Deno.NetAddr).port);
  } finally {
    client.close();
    server.close();
  }
}

Deno.test("setListenerNoDelay() makes a TLS listener's accepted connections skip Nagle", async () => {
  await using ca = await makeTestCa({ prefix: "netkit_nodelay_" });
  using listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: ca.cert,
    key: ca.key,
  });
  // Deno leaves Nagle on for TLS connections: that is what the call is for.
  assertEquals(await acceptOne(listener, ca.caCert), [0]);
  assertEquals(await setListenerNoDelay(listener.addr.port), 1);
  assertEquals(await acceptOne(listener, ca.caCert), [1]);
});

Deno.test("setListenerNoDelay() changes nothing on a port nobody listens on", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  assertEquals(await setListenerNoDelay(port), 0);
});
