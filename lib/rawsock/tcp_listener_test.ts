import { assertEquals } from "../testing/assert.ts";
import { makeTestCa } from "../testing/tls.ts";
import { connectionNoDelay, setListenerNoDelay } from "./tcp_listener.ts";

async function acceptOne(listener: Deno.TlsListener, caCert: string): Promise<boolean | undefined> {
  const [client, server] = await Promise.all([
    Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port, caCerts: [caCert] }),
    listener.accept(),
  ]);
  try {
    return await connectionNoDelay(listener.addr.port, (client.localAddr as Deno.NetAddr).port);
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
  assertEquals(await acceptOne(listener, ca.caCert), false);
  assertEquals(await setListenerNoDelay(listener.addr.port), 1);
  assertEquals(await acceptOne(listener, ca.caCert), true);
});

Deno.test("setListenerNoDelay() changes nothing on a port nobody listens on", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  assertEquals(await setListenerNoDelay(port), 0);
});
