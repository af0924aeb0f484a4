/**
 * A UDP relay for the lab tests, standing in for netem (which this kernel
 * lacks): datagrams to LISTEN_PORT are forwarded to TARGET:TARGET_PORT and
 * the answers back to their sender, each direction held for its delay.
 *
 * Each datagram is held until its kernel receive time plus the delay
 * (spun, not slept: Deno's timers are millisecond grained), and its own
 * forwarding time, from the kernel's receive stamp to the return of
 * `sendto()`, is printed, in order, as `up MS WORD SEQ` or `down MS WORD SEQ`
 * (the datagram's first two words, e.g. `PING 3`): under load
 * the relay's wake-up can outlast a delay, and the test compares with what
 * it did.
 * It busy-polls both sockets, one datagram at a time, which suits pings
 * spaced wider than the delays. Prints "ready" once listening; SIGTERM
 * ends it.
 *
 * Usage: deno run -A udp_relay.ts LISTEN_PORT TARGET TARGET_PORT UP_MS DOWN_MS
 *
 * @module
 */
import { DatagramInfo, openSocket } from "../../lib/rawsock/socket.ts";
import type { SocketAddress } from "../../lib/sockaddr.ts";
import { realtimeNs } from "../../lib/rawsock/clock.ts";

const [listenPort, target, targetPort, upMs, downMs] = Deno.args;
const family = target!.includes(":") ? 6 : 4;
const any = family === 6 ? "::" : "0.0.0.0";
const options = { kind: "udp", family, receiveTtl: false, receiveErrors: false } as const;
const front = openSocket(options);
front.bind({ family, address: any, port: Number(listenPort) });
const back = openSocket(options);
back.bind({ family, address: any, port: 0 });
const server: SocketAddress = { family, address: target!, port: Number(targetPort) };
let client: SocketAddress | undefined;
const buf = new Uint8Array(65536);
const info = new DatagramInfo();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

console.log("ready");
for (;;) {
  for (
    const [from, to, direction, ms] of [[front, back, "up", upMs], [
      back,
      front,
      "down",
      downMs,
    ]] as const
  ) {
    const n = from.receiveInto(buf, info);
    if (n < 0) continue;
    if (from === front) client = { ...from.lastSender()! };
    const received = BigInt(info.timestampSec) * 1_000_000_000n + BigInt(info.timestampNsec);
    const due = received + BigInt(Math.round(Number(ms) * 1e6));
    let now = realtimeNs();
    while (now < due) now = realtimeNs();
    const where = from === front ? server : client;
    if (where) to.send(buf.subarray(0, n), where);
    // After sendto(): on veth the datagram is usually through the next
    // hops by then; a preemption before it counts too.
    const sent = realtimeNs();
    // Its first two words, so that the test matches each line with its
    // ping (the client sends a stats request before the first).
    const head = decoder.decode(buf.subarray(0, Math.min(n, 40))).split(" ", 2).join(" ");
    Deno.stdout.writeSync(
      encoder.encode(`${direction} ${Number(sent - received) / 1e6} ${head}\n`),
    );
  }
}
