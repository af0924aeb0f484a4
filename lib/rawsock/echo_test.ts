import { assert, assertEquals } from "../testing/assert.ts";
import { buildEcho, IcmpType, verifyChecksum } from "../icmp.ts";
import { DatagramInfo, EchoBurst, type EchoBurstHandler, echoIdFilter, openSocket } from "./mod.ts";
import { timespecUs } from "./clock.ts";

/** A raw ICMP socket on loopback that keeps only echo replies with identifier `id`. */
function loopbackSocket(id: number) {
  const sock = openSocket({ kind: "icmp-raw", family: 4, receiveErrors: true, receiveTtl: false });
  sock.setIcmpFilter([IcmpType.ECHO_REPLY]);
  sock.attachFilter(echoIdFilter(4, id));
  sock.connect({ family: 4, address: "127.0.0.1", port: 0 });
  return sock;
}

/** A handler that sends `count` requests and records what comes back. */
function recorder(count: number) {
  let seq = 0;
  const log = {
    sent: [] as number[],
    replied: [] as [seq: number, rttUs: number][],
    other: [] as number[],
    failed: [] as number[],
  };
  const handler: EchoBurstHandler = {
    next: () => (seq < count ? ++seq : -1),
    sent: (s) => void log.sent.push(s),
    sendFailed: (errno) => void log.failed.push(errno),
    replied: (s, rttUs) => void log.replied.push([s, rttUs]),
    other: (n) => (log.other.push(n), true),
  };
  return { handler, log };
}

Deno.test("EchoBurst.stamp() writes the sequence number, the send time and a checksum that verifies", () => {
  using sock = loopbackSocket(0x4242);
  const request = buildEcho({ type: "request", id: 0x4242, seq: 0, payload: new Uint8Array(56) });
  const burst = new EchoBurst(sock, {
    request,
    buffer: new Uint8Array(2048),
    info: new DatagramInfo(),
  });
  burst.stamp(0x1234);
  assertEquals([request[6], request[7]], [0x12, 0x34]);
  assert(verifyChecksum(request), "checksum verifies");
  const sentUs = timespecUs(request, 8);
  assert(Math.abs(sentUs / 1000 - Date.now()) < 5000, "send time is now");
  assertEquals(burst.sentAtMs(), sentUs / 1000);
});

Deno.test("EchoBurst.run() counts each loopback reply as the answer to the request just sent", async () => {
  const id = 0x4343;
  using sock = loopbackSocket(id);
  const request = buildEcho({ type: "request", id, seq: 0, payload: new Uint8Array(56) });
  const burst = new EchoBurst(sock, {
    request,
    buffer: new Uint8Array(2048),
    info: new DatagramInfo(),
  });
  const { handler, log } = recorder(32);
  // On loopback a reply is usually queued when sendto() returns; when one
  // is not, the burst stops and the next one resumes after a wait.
  for (let round = 0; round < 100 && log.replied.length + log.other.length < 32; round++) {
    if (burst.run(handler) === 0) await sock.wait({ timeoutMs: 50 });
    while (sock.tryReceive() !== null) log.other.push(-1);
  }
  assertEquals(log.failed, []);
  assertEquals(log.sent.length, 32);
  assert(log.replied.length > 0, "some replies matched in the burst");
  for (const [seq, rttUs] of log.replied) {
    assert(seq >= 1 && seq <= 32 && rttUs >= 0 && rttUs < 1_000_000, `${seq}: ${rttUs} µs`);
  }
});

Deno.test("EchoBurst.run() with matchReplies off hands every reply to other()", async () => {
  const id = 0x4444;
  using sock = loopbackSocket(id);
  const request = buildEcho({ type: "request", id, seq: 0, payload: new Uint8Array(56) });
  const info = new DatagramInfo();
  const burst = new EchoBurst(sock, {
    request,
    buffer: new Uint8Array(2048),
    info,
    matchReplies: false,
  });
  const { handler, log } = recorder(8);
  for (let round = 0; round < 100 && log.other.length === 0; round++) {
    if (burst.run(handler) === 0) await sock.wait({ timeoutMs: 50 });
  }
  assertEquals(log.replied, []);
  assert(log.other.length > 0, "a reply reached other()");
  // A raw IPv4 socket's datagram: a 20-byte IP header, then the 64-byte echo.
  for (const n of log.other) assertEquals(n, 84);
  assert(info.timestampSec > 0, "details in the DatagramInfo");
});
