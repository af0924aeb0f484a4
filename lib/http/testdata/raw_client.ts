/**
 * A raw loopback client for the server-core tests: it writes exact bytes,
 * parses responses with the codec, and tells a close from an open
 * connection within a bounded wait, so a broken deadline fails the test
 * instead of hanging it.
 *
 * @module
 */
import { Deadline } from "../../deadline.ts";
import { BufferedReader, readBody, readResponseHead, type ResponseHead, writeAll } from "../mod.ts";

const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** A parsed response: the head and the body as Latin-1 text. */
export interface RawResponse {
  head: ResponseHead;
  status: number;
  body: string;
}

/** How a connection ended, as {@linkcode RawClient.untilClose} saw it. */
export interface Ending {
  /** Everything received before the end, as Latin-1 text. */
  text: string;
  /** Whether the end was a reset rather than a FIN. */
  reset: boolean;
  /** `Date.now()` when the end was seen. */
  at: number;
}

/** A client connection to 127.0.0.1 that writes and reads exact bytes. */
export class RawClient implements Disposable {
  readonly conn: Deno.TcpConn;
  readonly reader: BufferedReader;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.reader = new BufferedReader(conn);
  }

  /** Connects to `127.0.0.1:port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes all of `data` (a string is taken as Latin-1 / ASCII). */
  async send(data: string | Uint8Array): Promise<void> {
    await writeAll(this.conn, typeof data === "string" ? enc.encode(data) : data);
  }

  /**
   * Reads one response (head and body), failing after `ms`.
   *
   * @param method The request's method (HEAD has no body).
   * @param ms The longest wait.
   */
  async response(method = "GET", ms = 3000): Promise<RawResponse> {
    using deadline = new Deadline(ms);
    const read = async () => {
      const head = await readResponseHead(this.reader, { requestMethod: method });
      if (head === null) {
        throw new Error("Cannot read a response: the server closed the connection");
      }
      const body = head.body.type === "none" ? "" : latin1.decode(
        await readBody(this.reader, head.body),
      );
      return { head, status: head.status, body };
    };
    return await deadline.race(read(), () => {
      this.close();
      return new Error(`Cannot read a response: none within ${ms} ms`);
    });
  }

  /**
   * Reads `n` bytes, failing after `ms`.
   *
   * @param n How many.
   * @param ms The longest wait.
   */
  async exactly(n: number, ms = 3000): Promise<string> {
    using deadline = new Deadline(ms);
    const read = async () => {
      const out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const got = await this.reader.read(out.subarray(off));
        if (got === null) throw new Error(`Cannot read ${n} bytes: closed after ${off}`);
        off += got;
      }
      return latin1.decode(out);
    };
    return await deadline.race(read(), () => {
      this.close();
      return new Error(`Cannot read ${n} bytes: not within ${ms} ms`);
    });
  }

  /**
   * Reads until the server closes the connection (FIN or reset), failing
   * when it is still open after `ms`.
   *
   * @param ms The longest wait.
   * @returns What arrived, and how and when the connection ended.
   */
  async untilClose(ms = 3000): Promise<Ending> {
    using deadline = new Deadline(ms);
    const read = async (): Promise<Ending> => {
      const chunks: string[] = [];
      const p = new Uint8Array(65536);
      for (;;) {
        let n: number | null;
        try {
          n = await this.reader.read(p);
        } catch (err) {
          if (err instanceof Deno.errors.ConnectionReset) {
            return { text: chunks.join(""), reset: true, at: Date.now() };
          }
          throw err;
        }
        if (n === null) return { text: chunks.join(""), reset: false, at: Date.now() };
        chunks.push(latin1.decode(p.subarray(0, n)));
      }
    };
    return await deadline.race(read(), () => {
      this.close();
      return new Error(`The server did not close the connection within ${ms} ms`);
    });
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Polls `check` until it holds, failing after `ms`.
 *
 * @param check The condition.
 * @param what Names it in the failure.
 * @param ms The longest wait.
 */
export async function waitFor(check: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
