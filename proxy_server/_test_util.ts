/**
 * Test helpers for the proxy: loopback origins, a raw HTTP client and curl.
 *
 * @module
 */
import { BufferedReader, readBody, readResponseHead } from "../lib/http/mod.ts";

/** A parsed response as the tests see it. */
export interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

/** An origin server on loopback that counts requests per path. */
export interface Origin extends AsyncDisposable {
  port: number;
  url: string;
  hits: Map<string, number>;
  seen: Array<{ method: string; url: string; headers: Headers }>;
}

/**
 * Starts a `Deno.serve` origin on a free loopback port.
 *
 * @param handler Answers each request; `n` counts requests for this path.
 * @returns The origin.
 */
export function startOrigin(
  handler: (req: Request, n: number) => Response | Promise<Response>,
): Promise<Origin> {
  const hits = new Map<string, number>();
  const seen: Origin["seen"] = [];
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen({ port }) {
        resolve({
          port,
          url: `http://127.0.0.1:${port}`,
          hits,
          seen,
          async [Symbol.asyncDispose]() {
            await server.shutdown();
          },
        });
      },
    }, (req) => {
      const path = new URL(req.url).pathname;
      const n = (hits.get(path) ?? 0) + 1;
      hits.set(path, n);
      seen.push({ method: req.method, url: req.url, headers: new Headers(req.headers) });
      return handler(req, n);
    });
  });
}

/**
 * Sends raw bytes on a new connection and reads one response (or `null` when
 * the connection closes without one).
 *
 * @param port The proxy's port.
 * @param wire The request bytes (text).
 * @param method The request method (for HEAD framing).
 * @returns The reply.
 */
export async function rawRequest(
  port: number,
  wire: string,
  method = "GET",
): Promise<Reply | null> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(wire));
  const reader = new BufferedReader(conn);
  let head;
  try {
    head = await readResponseHead(reader, { requestMethod: method });
  } catch {
    return null;
  }
  while (head !== null && head.status < 200) {
    head = await readResponseHead(reader, { requestMethod: method });
  }
  if (head === null) return null;
  const body = await readBody(reader, head.body);
  return {
    status: head.status,
    headers: head.headers.toHeaders(),
    body: new TextDecoder().decode(body),
  };
}

/** A GET for `path` in origin-form or absolute-form with extra header lines. */
export function get(target: string, extra: Record<string, string> = {}, method = "GET"): string {
  let host = "x";
  try {
    host = new URL(target).host;
  } catch {
    // origin-form
  }
  let s = `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(extra)) s += `${k}: ${v}\r\n`;
  return s + "\r\n";
}

/** The result of running curl. */
export interface CurlResult {
  code: number;
  replies: Reply[];
  stderr: string;
}

/**
 * Runs curl with `-s -i` plus the given arguments and parses every response
 * it printed (interim ones included).
 *
 * @param args The curl arguments.
 * @returns The exit code and the responses.
 */
export async function curl(args: string[]): Promise<CurlResult> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "-i", "--max-time", "20", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const replies: Reply[] = [];
  let rest = text;
  while (rest.startsWith("HTTP/")) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    const lines = rest.slice(0, end).split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    rest = rest.slice(end + 4);
    const next = rest.search(/^HTTP\/1\.[01] \d{3}/m);
    const interim = status < 200 || (status === 200 && /established/i.test(lines[0]!));
    if (interim) {
      replies.push({ status, headers, body: "" });
      continue;
    }
    const body = next >= 0 && !rest.startsWith("HTTP/") ? rest : rest;
    replies.push({ status, headers, body });
    break;
  }
  return { code: out.code, replies, stderr: new TextDecoder().decode(out.stderr) };
}

/**
 * Runs curl with `-s` plus the given arguments, keeping the body as bytes.
 *
 * @param args The curl arguments.
 * @returns The status and headers of the last response, and its body.
 */
export async function curlBytes(
  args: string[],
): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command("curl", {
      args: ["-s", "--max-time", "20", "-D", `${dir}/h`, "-o", `${dir}/b`, ...args],
    }).output();
    if (out.code !== 0) throw new Error(`curl ${args.join(" ")} exited with ${out.code}`);
    const lines = (await Deno.readTextFile(`${dir}/h`)).trim().split("\r\n");
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    return {
      status: Number(lines[0]!.split(" ")[1]),
      headers,
      body: await Deno.readFile(`${dir}/b`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
