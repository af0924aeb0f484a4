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
 * A loopback server whose every connection is handed to `serve` with a
 * buffered reader (for tests that script a peer which closes, stalls or
 * answers oddly). It counts connections and closes them all on disposal.
 *
 * @param serve Plays one connection; `index` counts from 0.
 * @returns The server's port, URL and connection count.
 */
export function scriptedServer(
  serve: (conn: Deno.Conn, reader: BufferedReader, index: number) => Promise<void>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  let connections = 0;
  const loop = (async () => {
    for await (const conn of listener) {
      const index = connections++;
      conns.add(conn);
      tasks.push((async () => {
        try {
          await serve(conn, new BufferedReader(conn), index);
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

/**
 * A loopback server that writes exact bytes. `respond` gets each parsed
 * request and returns the raw reply (or null to close without replying).
 * It records requests and counts connections.
 */
export function rawServer(
  respond: (req: Received, index: number) => string | Uint8Array | null | Promise<string | null>,
) {
  const received: Received[] = [];
  const server = scriptedServer(async (conn, reader) => {
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
  });
  return Object.assign(server, { received });
}
