/**
 * Web Worker entry of `startCluster`: one more server loop on the shared port.
 *
 * @module
 */
import type { Running, ServerConfig } from "./cluster.ts";

type Message =
  | { type: "start"; config: ServerConfig }
  | { type: "reload"; cert: string; key: string }
  | { type: "stop" };

// The default lib types `self` as a Window; inside a worker it is the worker scope.
const scope = self as unknown as {
  onmessage: (e: MessageEvent<Message>) => void;
  postMessage(message: unknown): void;
};

let running: Running | undefined;

// Set before the server's modules load: they await I/O as they load (the
// io_uring notify socket), and a worker drops messages that come while its
// entry module is still loading.
scope.onmessage = async (e) => {
  try {
    if (e.data.type === "start") {
      const { startServer } = await import("./cluster.ts");
      running = await startServer(e.data.config);
    } else if (e.data.type === "reload") await running?.reloadTls(e.data.cert, e.data.key);
    else await running?.stop();
    scope.postMessage({ ok: true });
  } catch (err) {
    scope.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
  }
};
