import { assert } from "../../testing/assert.ts";
import { BufferedReader } from "../reader.ts";
import { H2_PREFACE, H2Session } from "./session.ts";

function frame(type: number, flags: number, id: number, payload = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = payload.length >>> 16;
  out[1] = (payload.length >>> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  new DataView(out.buffer).setUint32(5, id & 0x7fffffff);
  out.set(payload, 9);
  return out;
}

Deno.test("H2Session stops reading while the answers its peer's frames cost are not written", async () => {
  // A peer that reads nothing: the first write never completes until released.
  const released = Promise.withResolvers<void>();
  let writes = 0;
  const transport = {
    write: async () => {
      writes++;
      await released.promise;
    },
    close: () => released.resolve(),
  };
  // Then a flood of PRIORITY frames of a wrong length (0 bytes): each is
  // answered with a 13-byte RST_STREAM, and no budget counts them.
  const chunk = new Uint8Array(9 * 7000);
  for (let i = 0; i < 7000; i++) chunk.set(frame(2, 0, 1 + 2 * i), 9 * i);
  let pulled = 0;
  const flood = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array([...H2_PREFACE, ...frame(4, 0, 0)]));
    },
    pull(controller) {
      // 300 chunks: 18.9 MB of frames, 27 MB of answers.
      if (pulled === 300) return controller.close();
      pulled++;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  const session = new H2Session(transport, new BufferedReader(flood.getReader()), () => {
    throw new Error("no request expected");
  });
  const running = session.run();
  await new Promise((r) => setTimeout(r, 500));
  // 2 × 256 KiB of answers is about 40,000 frames, under six chunks; read
  // on regardless, it took all 300.
  assert(pulled < 10, `the session read ${pulled} chunks of 63 KB with its writes stalled`);
  assert(writes >= 1);
  session.close();
  await running;
});
