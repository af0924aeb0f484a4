// Run by lib/rawsock/socket_test.ts as an unprivileged user: opens a socket of the
// given kind and, with a target, does one echo round trip.
// Usage: rawsock_unprivileged.ts KIND FAMILY [TARGET]
// Exit 0: reply printed; 1: no reply; 3: the socket could not be opened.
import { openSocket, SocketError } from "../rawsock/mod.ts";
import { buildEcho, parseIcmp } from "../icmp.ts";

const [kind = "icmp", familyText = "4", target] = Deno.args;
const family = familyText === "6" ? 6 : 4;
let sock;
try {
  sock = openSocket({ kind: kind as "icmp", family });
} catch (err) {
  if (!(err instanceof SocketError)) throw err;
  console.log(`SocketError ${err.code} ${err.message}`);
  Deno.exit(3);
}
if (target === undefined) Deno.exit(0);
sock.send(buildEcho({ family, id: 0, seq: 1 }), { family, address: target, port: 0 });
const got = await sock.receive({ timeoutMs: 3000 });
sock.close();
if (got?.type === "data") {
  const msg = parseIcmp(got.data, family);
  if (msg.kind === "echo" && !msg.request) {
    console.log(`reply from ${got.from.address} ttl=${got.ttl}`);
    Deno.exit(0);
  }
}
console.log("no reply");
Deno.exit(1);
