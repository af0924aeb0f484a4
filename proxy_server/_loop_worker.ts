/**
 * Web Worker entry of a hit loop (see `_loop.ts`). Its message handler is
 * set before the loop's modules load: those await I/O as they load (the
 * io_uring notify socket of `lib/rawsock/uring.ts`), and a worker drops the
 * messages that come while its entry module is still loading.
 *
 * @module
 */
import type { FromLoop, HitLoop, ToLoop } from "./_loop.ts";

// The default lib types `self` as a Window; inside a worker it is the worker scope.
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<ToLoop>) => void) | null;
  postMessage(message: FromLoop): void;
};

let loop: HitLoop | undefined;
scope.onmessage = async (e) => {
  const m = e.data;
  if (m.type === "copy") {
    loop?.put(m.copy);
    return;
  }
  try {
    if (m.type === "start") {
      const { HitLoop } = await import("./_loop.ts");
      loop = new HitLoop(m.config, (msg) => scope.postMessage(msg));
      scope.postMessage({ id: m.id, ok: true });
    } else if (m.type === "counts") {
      const counts = loop?.counts();
      scope.postMessage(counts ? { id: m.id, ok: true, counts } : { id: m.id, ok: true });
    } else {
      await loop?.stop();
      scope.postMessage({ id: m.id, ok: true });
    }
  } catch (err) {
    scope.postMessage({ id: m.id, ok: false, error: (err as Error).message });
  }
};
