/**
 * The static file handler: a function from a `Request` to a `Response`,
 * independent of any socket, so every behaviour is tested without one (the
 * shape of std's `serveDir`). The engines in `engine.ts` (our HTTP/1.1 loop)
 * or `Deno.serve` call it.
 *
 * Behaviour, with the references it follows:
 * - GET and HEAD; other methods get 405 with `Allow` (RFC 9110 §15.5.6).
 * - Conditional requests in the order of RFC 9110 §13.2.2: `If-Match`,
 *   `If-Unmodified-Since` (412), `If-None-Match`, `If-Modified-Since` (304),
 *   then `Range` guarded by `If-Range`.
 * - Byte ranges, single and `multipart/byteranges` (RFC 9110 §14), 416 when
 *   unsatisfiable; like nginx, a set of ranges larger than the file is served
 *   whole, which defuses overlapping-range amplification.
 * - Precompressed `.br` / `.gz` siblings, else on-the-fly br / gzip / deflate
 *   for compressible types above a threshold; `Vary: Accept-Encoding` always;
 *   never for ranges.
 * - Directories: `index.html`, else an HTML (sortable, escaped) or JSON listing;
 *   trailing-slash redirects as std's file_server.
 * - Paths: every segment is percent-decoded on its own, and a decoded segment
 *   holding `/`, `\`, NUL, `.` or `..` is a 400; symlinks resolving outside the
 *   root are 403; dotfiles are 404 unless enabled.
 *
 * @module
 */
import { concat, readFull } from "../lib/bytes.ts";
import { escapeHtml } from "../lib/html.ts";
import { formatHttpDate, parseHttpDate } from "../lib/http/dates.ts";
import { matchETagList } from "../lib/http/etag.ts";
import { splitList } from "../lib/http/fields.ts";
import { reasonPhrase } from "../lib/http/status.ts";
import { type ByteRange, byterangesFraming, rangesToServe } from "../lib/http/ranges.ts";
import { contentType, isCompressible } from "./mime_types.ts";

/** Options of {@linkcode serveDir}. */
export interface ServeDirOptions {
  /**
   * The directory to serve.
   * @default {"."}
   */
  fsRoot?: string;
  /**
   * List directories without an `index.html`; when off they get 403, as nginx.
   * @default {true}
   */
  showDirListing?: boolean;
  /**
   * Serve and list names starting with a dot.
   * @default {false}
   */
  showDotfiles?: boolean;
  /**
   * Single-page application mode: an unknown path whose last segment has no
   * extension gets the root `index.html` with status 200.
   * @default {false}
   */
  spa?: boolean;
  /**
   * Send `Access-Control-Allow-Origin: *` and answer CORS preflights.
   * @default {false}
   */
  cors?: boolean;
  /**
   * Extra headers added to every response, as `[name, value]` pairs.
   * @default {[]}
   */
  headers?: ReadonlyArray<readonly [string, string]>;
  /**
   * The `Cache-Control` value for files and listings; none when unset.
   * @default {undefined}
   */
  cacheControl?: string;
  /**
   * Compress compressible types on the fly when the client accepts it.
   * @default {true}
   */
  compression?: boolean;
  /**
   * Smallest body, in bytes, compressed on the fly (below it the coding costs more than it saves).
   * @default {1024}
   */
  compressionThreshold?: number;
  /**
   * Files up to this size are read whole into memory and sent with one write;
   * larger ones are streamed.
   * @default {1048576}
   */
  inMemoryLimit?: number;
}

const METHODS = "GET, HEAD";
const BOUNDARY_PREFIX = "netkit-byteranges-";

/** Responses that are a whole, in-memory file body, safe for an engine to cache, with that body. */
const cacheable = new WeakMap<Response, Uint8Array>();

/**
 * Tells whether a response from {@linkcode serveDir} is a complete file body
 * held in memory, which an engine may cache until the tree changes.
 *
 * @param response A response returned by {@linkcode serveDir}.
 * @returns `true` for a cacheable 200 response.
 *
 * @example
 * ```ts
 * import { isCacheable } from "./serve.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * assert(!isCacheable(new Response("made elsewhere")));
 * ```
 */
export function isCacheable(response: Response): boolean {
  return cacheable.has(response);
}

/**
 * Returns the in-memory body of a cacheable response from {@linkcode serveDir},
 * so an engine can write it without reading the body stream (one copy less).
 *
 * @param response A response returned by {@linkcode serveDir}.
 * @returns The body bytes, or `undefined` when the body is a stream.
 *
 * @example
 * ```ts
 * import { inMemoryBody } from "./serve.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(inMemoryBody(new Response("x")), undefined);
 * ```
 */
export function inMemoryBody(response: Response): Uint8Array | undefined {
  return cacheable.get(response);
}

const realRoots = new Map<string, string>();

async function realRoot(root: string): Promise<string> {
  let real = realRoots.get(root);
  if (real === undefined) {
    real = await Deno.realPath(root);
    if (!(await Deno.stat(real)).isDirectory) {
      throw new TypeError(`Cannot serve "${root}": not a directory`);
    }
    realRoots.set(root, real);
  }
  return real;
}

/**
 * Serves a directory tree: answers one request with the file, listing,
 * redirect or error it asks for. Never throws: an unexpected failure becomes a
 * 500 without details.
 *
 * @param request The request; only its method, URL and headers are used.
 * @param options The root and serving policy.
 * @returns The response.
 *
 * @example Serving a file from a temporary directory
 * ```ts
 * import { serveDir } from "./serve.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hello.txt`, "hi\n");
 * const res = await serveDir(new Request("http://localhost/hello.txt"), { fsRoot: root });
 * assertEquals(res.status, 200);
 * assertEquals(await res.text(), "hi\n");
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function serveDir(request: Request, options: ServeDirOptions = {}): Promise<Response> {
  let response: Response;
  try {
    response = await route(request, options);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      response = await notFound(request, options);
    } else if (err instanceof Deno.errors.PermissionDenied) {
      response = plainResponse(403);
    } else {
      // Never leak internals (paths, stacks) to the client: the log has the status.
      response = plainResponse(500);
    }
  }
  return finish(request, response, options);
}

/** Adds the headers every response carries: CORS and the operator's extras. */
function finish(request: Request, response: Response, options: ServeDirOptions): Response {
  if (options.cors) {
    response.headers.set("access-control-allow-origin", "*");
    response.headers.set(
      "access-control-expose-headers",
      "Accept-Ranges, Content-Encoding, Content-Length, Content-Range, ETag, Last-Modified",
    );
  }
  for (const [name, value] of options.headers ?? []) response.headers.set(name, value);
  if (request.method === "HEAD" && response.body !== null) {
    void response.body.cancel().catch(() => {});
    return new Response(null, { status: response.status, headers: response.headers });
  }
  return response;
}

/**
 * Builds the short plain-text response (`404 Not Found\n`) that the server
 * and its engine send for errors and redirects.
 *
 * @param status The status code; the body names it with its RFC 9110 reason phrase.
 * @param headers Extra header fields (e.g. `location`, `allow`).
 * @returns The response, with Content-Type and Content-Length set.
 *
 * @example
 * ```ts
 * import { plainResponse } from "./serve.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const res = plainResponse(405, { allow: "GET, HEAD" });
 * assertEquals(await res.text(), "405 Method Not Allowed\n");
 * ```
 */
export function plainResponse(status: number, headers: Record<string, string> = {}): Response {
  const body = new TextEncoder().encode(`${status} ${reasonPhrase(status) || "Error"}\n`);
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(body.length),
      ...headers,
    },
  });
}

async function notFound(request: Request, options: ServeDirOptions): Promise<Response> {
  const root = options.fsRoot ?? ".";
  if (request.method === "GET" || request.method === "HEAD") {
    try {
      const page = await Deno.readFile(`${root}/404.html`);
      return new Response(page, {
        status: 404,
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-length": String(page.length),
        },
      });
    } catch {
      // No custom page: the plain one below.
    }
  }
  return plainResponse(404);
}

function redirect(location: string): Response {
  const res = plainResponse(301, { location });
  return res;
}

/**
 * Splits a URL path into decoded segments, or `undefined` when a segment is
 * malformed or could climb out of the root once decoded.
 */
function decodeSegments(pathname: string): string[] | undefined {
  const segments: string[] = [];
  for (const raw of pathname.split("/")) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return undefined; // Bad percent-encoding (%zz, stray UTF-8).
    }
    // The WHATWG URL parser already removed literal and %2e dot segments; a
    // decoded "/" or "\" would smuggle a separator past that, and NUL would
    // truncate the path in a syscall.
    if (seg === "." || seg === ".." || /[/\\\0]/.test(seg)) return undefined;
    segments.push(seg);
  }
  return segments;
}

function within(rootReal: string, real: string): boolean {
  return real === rootReal || real.startsWith(rootReal + "/");
}

/** Resolves symlinks in `path`, refusing (403) a target outside the root. */
async function inside(rootReal: string, path: string): Promise<string> {
  const real = await Deno.realPath(path);
  if (!within(rootReal, real)) throw new Deno.errors.PermissionDenied(`${path} leaves the root`);
  return real;
}

async function route(request: Request, options: ServeDirOptions): Promise<Response> {
  const method = request.method;
  if (
    method === "OPTIONS" && options.cors && request.headers.has("access-control-request-method")
  ) {
    // CORS preflight (Fetch standard §3.2.2); everything served is GET/HEAD.
    return new Response(null, {
      status: 204,
      headers: {
        "access-control-allow-methods": "GET, HEAD, OPTIONS",
        "access-control-allow-headers": request.headers.get("access-control-request-headers") ??
          "",
        "access-control-max-age": "86400",
      },
    });
  }
  if (method !== "GET" && method !== "HEAD") {
    return plainResponse(405, {
      allow: options.cors ? `${METHODS}, OPTIONS` : METHODS,
    });
  }
  const url = new URL(request.url);
  const segments = decodeSegments(url.pathname);
  if (segments === undefined || segments[0] !== "") return plainResponse(400);
  const names = segments.slice(1);
  // Collapse empty segments ("//") with a redirect, as std's file_server does,
  // so every file has one URL (and one cache entry).
  const inner = names.slice(0, -1);
  if (inner.includes("")) {
    const clean = "/" + names.filter((n, i) => n !== "" || i === names.length - 1)
      .map(encodeURIComponent).join("/");
    return redirect(clean + url.search);
  }
  if (!options.showDotfiles && names.some((n) => n.startsWith("."))) {
    return notFound(request, options);
  }
  const root = options.fsRoot ?? ".";
  const rootReal = await realRoot(root);
  const relative = (names.at(-1) === "" ? names.slice(0, -1) : names).join("/");
  const path = relative === "" ? rootReal : `${rootReal}/${relative}`;
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (err) {
    if (options.spa && (err instanceof Deno.errors.NotFound) && !names.at(-1)?.includes(".")) {
      return serveFile(request, await inside(rootReal, `${rootReal}/index.html`), options);
    }
    throw err;
  }
  if (!within(rootReal, real)) return plainResponse(403);
  const info = await Deno.stat(real);
  const trailing = url.pathname.endsWith("/");
  if (info.isDirectory) {
    if (!trailing) return redirect(`${url.pathname}/${url.search}`);
    try {
      return await serveFile(request, await inside(rootReal, `${real}/index.html`), options);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (options.showDirListing === false) return plainResponse(403);
    return serveListing(request, real, url, options);
  }
  if (!info.isFile) return plainResponse(403);
  if (trailing) return redirect(url.pathname.slice(0, -1) + url.search);
  return serveFile(request, real, options, info);
}

// ---- Validators -------------------------------------------------------------

/** nginx's strong validator: hex mtime seconds and hex size. */
function entityTag(info: Deno.FileInfo): string {
  const mtime = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
  return `"${mtime.toString(16)}-${info.size.toString(16)}"`;
}

// ---- Ranges -----------------------------------------------------------------

export { type ByteRange, parseRange } from "../lib/http/ranges.ts";

// ---- Content coding ---------------------------------------------------------

type Coding = "br" | "gzip" | "deflate";
const CODINGS: readonly Coding[] = ["br", "gzip", "deflate"];

/** The accepted codings, best first (q-values of RFC 9110 §12.5.3; ties go to br). */
function acceptedCodings(header: string | null): Coding[] {
  if (header === null) return [];
  const q = new Map<string, number>();
  for (const element of splitList(header)) {
    const [name, ...params] = element.toLowerCase().split(";");
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p);
      if (m) weight = Number(m[1]);
    }
    q.set(name.trim(), weight);
  }
  const star = q.get("*");
  return CODINGS
    .map((c) => ({ c, w: q.get(c) ?? star ?? 0 }))
    .filter(({ w }) => w > 0)
    .sort((a, b) => b.w - a.w)
    .map(({ c }) => c);
}

// node:zlib is imported on the first compression: loading it costs each loop
// about 1 MB of live JavaScript heap, which a server that never compresses
// (or only serves precompressed files) does not need.
let zlibModule: Promise<typeof import("node:zlib")> | undefined;

/** Compresses with node:zlib's callback API (loaded once, on first use). */
async function compress(coding: Coding, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  zlibModule ??= import("node:zlib");
  const zlib = await zlibModule;
  return await new Promise((resolve, reject) => {
    const done = (err: Error | null, out: Uint8Array) =>
      err ? reject(err) : resolve(out as Uint8Array<ArrayBuffer>);
    if (coding === "br") {
      // Quality 5 compresses close to 11 at a fraction of the CPU.
      zlib.brotliCompress(data, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 },
      }, done);
    } else if (coding === "gzip") zlib.gzip(data, done);
    else zlib.deflate(data, done);
  });
}

async function sibling(path: string, suffix: string): Promise<Deno.FileInfo | undefined> {
  try {
    const info = await Deno.stat(path + suffix);
    return info.isFile ? info : undefined;
  } catch {
    return undefined;
  }
}

// ---- Files ------------------------------------------------------------------

function fileStream(path: string, ranges: ByteRange[], parts?: Uint8Array[]): ReadableStream {
  let file: Deno.FsFile | undefined;
  let index = 0;
  let remaining = -1;
  const buffer = new Uint8Array(256 * 1024);
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async pull(controller) {
      file ??= await Deno.open(path);
      if (remaining <= 0) {
        const range = ranges[index];
        if (range === undefined) {
          if (parts?.[index]) controller.enqueue(parts[index]!);
          file.close();
          controller.close();
          return;
        }
        if (parts?.[index]) controller.enqueue(parts[index]!);
        await file.seek(range.start, Deno.SeekMode.Start);
        remaining = range.end - range.start + 1;
        index++;
      }
      const n = await file.read(buffer.subarray(0, Math.min(buffer.length, remaining)));
      if (n === null) {
        file.close();
        controller.error(new Error(`Cannot read ${path}: file shrank while serving`));
        return;
      }
      remaining -= n;
      controller.enqueue(buffer.slice(0, n));
    },
    cancel() {
      file?.close();
    },
  });
}

async function readRanges(path: string, ranges: ByteRange[]): Promise<Uint8Array<ArrayBuffer>[]> {
  using file = await Deno.open(path);
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (const r of ranges) {
    const buf = new Uint8Array(r.end - r.start + 1);
    await file.seek(r.start, Deno.SeekMode.Start);
    if (await readFull(file, buf) < buf.length) {
      throw new Error(`Cannot read ${path}: file shrank while serving`);
    }
    out.push(buf);
  }
  return out;
}

async function serveFile(
  request: Request,
  path: string,
  options: ServeDirOptions,
  known?: Deno.FileInfo,
): Promise<Response> {
  const info = known ?? await Deno.stat(path);
  if (!info.isFile) throw new Deno.errors.NotFound(`${path} is not a file`);
  const type = contentType(path);
  const size = info.size;
  const mtime = info.mtime?.getTime();
  const headers = new Headers({
    "content-type": type,
    "accept-ranges": "bytes",
    "vary": "Accept-Encoding",
  });
  if (mtime !== undefined) headers.set("last-modified", formatHttpDate(mtime));
  if (options.cacheControl !== undefined) headers.set("cache-control", options.cacheControl);

  // RFC 9110 §14.2 defines ranges for GET only, but §9.3.2 wants HEAD to answer
  // with GET's headers; nginx and Apache honour Range on HEAD, and so do we.
  const rangeHeader = request.headers.get("range");
  // Representation selection comes first: validators belong to the chosen one.
  let coding: Coding | undefined;
  let bodyPath = path;
  let bodyInfo = info;
  let onTheFly = false;
  if (rangeHeader === null) {
    const accepted = acceptedCodings(request.headers.get("accept-encoding"));
    for (const c of accepted) {
      if (c === "deflate") continue;
      const s = await sibling(path, c === "br" ? ".br" : ".gz");
      if (s !== undefined) {
        coding = c;
        bodyPath = path + (c === "br" ? ".br" : ".gz");
        bodyInfo = s;
        break;
      }
    }
    const threshold = options.compressionThreshold ?? 1024;
    if (
      coding === undefined && options.compression !== false && size >= threshold &&
      isCompressible(type)
    ) {
      const inMemory = size <= (options.inMemoryLimit ?? 1048576);
      // Brotli has no web stream here, so large files are only gzipped/deflated.
      coding = accepted.find((c) => inMemory || c !== "br");
      onTheFly = coding !== undefined;
    }
  }
  const base = entityTag(bodyInfo);
  const etag = coding === undefined ? base : onTheFly
    // A weak tag: the bytes depend on the compressor, as nginx does for gzip.
    ? `W/${base.slice(0, -1)}-${coding}"`
    : `${base.slice(0, -1)}-${coding}"`;
  headers.set("etag", etag);

  // RFC 9110 §13.2.2 evaluation order.
  const ifMatch = request.headers.get("if-match");
  if (ifMatch !== null) {
    if (!matchETagList(ifMatch, etag)) return plainResponse(412);
  } else {
    const since = parseHttpDate(request.headers.get("if-unmodified-since"));
    if (since !== undefined && mtime !== undefined && Math.floor(mtime / 1000) * 1000 > since) {
      return plainResponse(412);
    }
  }
  const ifNoneMatch = request.headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (matchETagList(ifNoneMatch, etag, { weak: true })) return notModified(headers);
  } else {
    const since = parseHttpDate(request.headers.get("if-modified-since"));
    if (since !== undefined && mtime !== undefined && Math.floor(mtime / 1000) * 1000 <= since) {
      return notModified(headers);
    }
  }

  const head = request.method === "HEAD";
  if (coding !== undefined) {
    headers.set("content-encoding", coding);
    if (!onTheFly) {
      headers.set("content-length", String(bodyInfo.size));
      if (head) return new Response(null, { headers });
      if (bodyInfo.size <= (options.inMemoryLimit ?? 1048576)) {
        const bytes = await Deno.readFile(bodyPath);
        headers.set("content-length", String(bytes.length));
        const res = new Response(bytes, { headers });
        cacheable.set(res, bytes);
        return res;
      }
      return new Response(fileStream(bodyPath, [{ start: 0, end: bodyInfo.size - 1 }]), {
        headers,
      });
    }
    if (size <= (options.inMemoryLimit ?? 1048576)) {
      const bytes = await compress(coding, await Deno.readFile(path));
      headers.set("content-length", String(bytes.length));
      const res = new Response(head ? null : bytes, { headers });
      if (!head) cacheable.set(res, bytes);
      return res;
    }
    if (head) return new Response(null, { headers });
    const stream = fileStream(path, [{ start: 0, end: size - 1 }])
      .pipeThrough(new CompressionStream(coding as "gzip" | "deflate"));
    return new Response(stream, { headers });
  }

  // An empty file has no byte to select: answer 200 with the (empty) whole, as nginx.
  const ranges = rangesToServe(request.headers, {
    size,
    etag,
    lastModified: mtime === undefined ? undefined : Math.floor(mtime / 1000) * 1000,
  });
  if (ranges !== undefined && ranges.length === 0) {
    return plainResponse(416, { "content-range": `bytes */${size}` });
  }
  if (ranges !== undefined) return serveRanges(path, type, size, ranges, headers, options);

  headers.set("content-length", String(size));
  if (head) return new Response(null, { headers });
  if (size <= (options.inMemoryLimit ?? 1048576)) {
    const bytes = await Deno.readFile(path);
    const res = new Response(bytes, { headers });
    cacheable.set(res, bytes);
    return res;
  }
  return new Response(fileStream(path, [{ start: 0, end: size - 1 }]), { headers });
}

function notModified(headers: Headers): Response {
  // RFC 9110 §15.4.5: a 304 carries the validators and caching headers, no content headers.
  const out = new Headers();
  for (const name of ["etag", "last-modified", "cache-control", "vary"]) {
    const v = headers.get(name);
    if (v !== null) out.set(name, v);
  }
  return new Response(null, { status: 304, headers: out });
}

async function serveRanges(
  path: string,
  type: string,
  size: number,
  ranges: ByteRange[],
  headers: Headers,
  options: ServeDirOptions,
): Promise<Response> {
  const limit = options.inMemoryLimit ?? 1048576;
  if (ranges.length === 1) {
    const r = ranges[0]!;
    const length = r.end - r.start + 1;
    headers.set("content-range", `bytes ${r.start}-${r.end}/${size}`);
    headers.set("content-length", String(length));
    const body = length <= limit ? (await readRanges(path, [r]))[0]! : fileStream(path, [r]);
    return new Response(body, { status: 206, headers });
  }
  // RFC 9110 §14.6: each part carries its own Content-Type and Content-Range.
  const boundary = BOUNDARY_PREFIX + crypto.randomUUID().replaceAll("-", "");
  const { parts, length } = byterangesFraming(ranges, { size, type, boundary });
  headers.set("content-type", `multipart/byteranges; boundary=${boundary}`);
  headers.set("content-length", String(length));
  if (length <= limit) {
    const data = await readRanges(path, ranges);
    const chunks: Uint8Array[] = [];
    data.forEach((d, i) => chunks.push(parts[i]!, d));
    chunks.push(parts.at(-1)!);
    return new Response(concat(chunks), { status: 206, headers });
  }
  return new Response(fileStream(path, ranges, parts), { status: 206, headers });
}

// ---- Listings ---------------------------------------------------------------

/** One entry of a JSON directory listing. */
export interface ListingEntry {
  /** The entry's name. */
  name: string;
  /** What the entry is. */
  type: "file" | "directory" | "symlink" | "other";
  /** Size in bytes (of the target, for symlinks); 0 when unknown. */
  size: number;
  /** Modification time as an ISO 8601 string, or null when unknown. */
  modified: string | null;
}

function humanSize(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

async function serveListing(
  request: Request,
  dir: string,
  url: URL,
  options: ServeDirOptions,
): Promise<Response> {
  const entries: ListingEntry[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!options.showDotfiles && e.name.startsWith(".")) continue;
    let size = 0;
    let modified: string | null = null;
    try {
      const info = await Deno.stat(`${dir}/${e.name}`);
      size = info.isFile ? info.size : 0;
      modified = info.mtime?.toISOString() ?? null;
    } catch {
      // A dangling symlink: list it without size.
    }
    const type = e.isDirectory
      ? "directory"
      : e.isFile
      ? "file"
      : e.isSymlink
      ? "symlink"
      : "other";
    entries.push({ name: e.name, type, size, modified });
  }
  const sort = url.searchParams.get("sort") ?? "name";
  const desc = url.searchParams.get("order") === "desc";
  entries.sort((a, b) => {
    // Directories first, as most listings do; then the chosen key.
    if ((a.type === "directory") !== (b.type === "directory")) {
      return a.type === "directory" ? -1 : 1;
    }
    let c = sort === "size"
      ? a.size - b.size
      : sort === "modified"
      ? (a.modified ?? "").localeCompare(b.modified ?? "")
      : 0;
    if (c === 0) c = a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    return desc ? -c : c;
  });
  const headers = new Headers({ vary: "Accept, Accept-Encoding" });
  if (options.cacheControl !== undefined) headers.set("cache-control", options.cacheControl);
  const accept = request.headers.get("accept") ?? "";
  if (/\bapplication\/json\b/i.test(accept) && !/\btext\/html\b/i.test(accept)) {
    const body = new TextEncoder().encode(JSON.stringify(entries));
    headers.set("content-type", "application/json; charset=utf-8");
    headers.set("content-length", String(body.length));
    return new Response(body, { headers });
  }
  const title = escapeHtml(decodeURIComponent(url.pathname));
  const link = (key: string, label: string) => {
    const order = sort === key && !desc ? "desc" : "asc";
    const mark = sort === key ? (desc ? " ↓" : " ↑") : "";
    return `<a href="?sort=${key}&amp;order=${order}">${label}${mark}</a>`;
  };
  const rows = entries.map((e) => {
    const slash = e.type === "directory" ? "/" : "";
    const href = encodeURIComponent(e.name) + slash;
    const size = e.type === "directory" ? "—" : humanSize(e.size);
    const date = e.modified === null ? "" : e.modified.replace("T", " ").slice(0, 19);
    return `<tr><td><a href="${escapeHtml(href)}">${
      escapeHtml(e.name + slash)
    }</a></td><td class="n" title="${e.size}">${size}</td><td>${date}</td></tr>`;
  });
  if (url.pathname !== "/") {
    rows.unshift(`<tr><td><a href="../">../</a></td><td></td><td></td></tr>`);
  }
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of ${title}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.3rem;font-weight:600}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .8rem;border-bottom:1px solid #e3e6ec}
th a{color:inherit}td.n,th:nth-child(2){text-align:right}td.n{font-variant-numeric:tabular-nums}
a{color:#2456c9;text-decoration:none}a:hover{text-decoration:underline}
@media (prefers-color-scheme:dark){body{background:#14161b;color:#d8dce4}td,th{border-color:#2a2e37}a{color:#7aa5ff}}
</style>
</head>
<body>
<h1>Index of ${title}</h1>
<table>
<thead><tr><th>${link("name", "Name")}</th><th>${link("size", "Size")}</th><th>${
    link("modified", "Modified")
  }</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
</body>
</html>
`;
  const body = new TextEncoder().encode(html);
  headers.set("content-type", "text/html; charset=utf-8");
  headers.set("content-length", String(body.length));
  return new Response(body, { headers });
}
