// ICMP echo round trips through the socket layer on loopback, in a tight
// loop: the synchronous path (send, then recvmsg with MSG_DONTWAIT until the
// reply is there) against the waiting path (send, then a poll() on a worker
// thread before reading), so the cost of waiting is visible. Run as root:
// raw ICMP sockets need CAP_NET_RAW.
import { buildEcho, IcmpType } from "../icmp.ts";
import { openSocket } from "./mod.ts";

const sock = openSocket({ kind: "icmp-raw", family: 4, timestamps: true });
// Keep our own echo requests, which loopback also delivers, off the socket.
sock.setIcmpFilter([IcmpType.ECHO_REPLY]);
const dst = { family: 4 as const, address: "127.0.0.1", port: 0 };
const id = Deno.pid & 0xffff;
const payload = new Uint8Array(56);
let seq = 0;

function nextEcho(): Uint8Array {
  seq = (seq + 1) & 0xffff;
  return buildEcho({ family: 4, id, seq, payload });
}

Deno.bench(
  "ICMP echo round trip, synchronous path (loopback)",
  { group: "echo", baseline: true },
  () => {
    sock.send(nextEcho(), dst);
    while (sock.tryReceive() === null) { /* the reply is due within microseconds */ }
  },
);

Deno.bench(
  "ICMP echo round trip, waiting in a worker-thread poll (loopback)",
  { group: "echo" },
  async () => {
    sock.send(nextEcho(), dst);
    for (;;) {
      await sock.wait({ timeoutMs: 1000 });
      if (sock.tryReceive() !== null) return;
    }
  },
);
