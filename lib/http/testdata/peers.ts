/**
 * Test peers for the HTTP/1.1 codec's users (client, server, proxy tests): a
 * loopback server that answers with exact bytes. Throw-away TLS certificates
 * are in lib/testing/tls.ts.
 *
 * @module
 */
import { BufferedReader, readBody, readRequestHead, type RequestHead, writeAll } from "../mod.ts";

const enc = new TextEncoder();

export interface Received {
  head: RequestHead;
  body: string;
}

/**
 * A loopback server that writes exact bytes. `respond` gets each parsed
 * request and returns the raw reply (or null to close without replying).
 * It records requests and counts connections.
 */
export function rawServer(
  respond: (req: Received, index: number) => string | Uint8Array | null | Promise<string | null>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: Received[] = [];
  const conns = new Set<Deno.Conn>();
  let connections = 0;
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      tasks.push((async () => {
        const reader = new BufferedReader(conn);
        try {
          for (;;) {
            const head = await readRequestHead(reader);
            if (head === null) break;
            const body = new TextDecoder().decode(await readBody(reader, head.body));
            received.push({ head, body });
            const reply = await respond({ head, body }, received.length - 1);
            if (reply === null) break;
            await writeAll(conn, typeof reply === "string" ? enc.encode(reply) : reply);
            // HTTP/1.0 replies here are delimited by the close; so is "Connection: close".
            const text = String(reply);
            if (/^HTTP\/1\.0 |\r\nConnection: close\r\n/i.test(text) || !head.keepAlive) break;
          }
        } catch {
          // The client went away or a test closed everything: the connection ends.
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        }
      })());
    }
  })();
  return {
    port: listener.addr.port,
    url: `http://127.0.0.1:${listener.addr.port}`,
    received,
    get connections() {
      return connections;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}
