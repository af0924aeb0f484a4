/**
 * `deno task webclient [options] URL...`: a curl-like HTTP/1.1 client on the
 * project's own codec. The transfers happen in {@linkcode HttpClient}
 * (`lib/http/client.ts`); this file parses options, writes the output and exits
 * with the documented codes (see CLIENT.md; they are curl's).
 *
 * @module
 */
import {
  CliError,
  describePath,
  type Options,
  parseNumber,
  parseOrHelp,
  runMain,
  userPath,
} from "../lib/cli.ts";
import { concat, writeAll } from "../lib/bytes.ts";
import {
  type BodySink,
  type ClientResponse,
  EXIT_CODES,
  HttpClient,
  HttpClientError,
  type Timing,
} from "../lib/http/client.ts";

/** The options `webclient` takes: the parser and `--help` both read this table. */
export const OPTIONS = {
  request: {
    type: "string",
    short: "X",
    arg: "METHOD",
    default: "GET, or POST with -d",
    description: "method to use",
  },
  header: {
    type: "string",
    short: "H",
    multiple: true,
    arg: "'N: v'",
    description: "add a request field; 'N:' removes a default",
  },
  data: {
    type: "string",
    short: "d",
    multiple: true,
    arg: "DATA|@FILE",
    description: "send DATA (or FILE's bytes, streamed) as the body; several are joined with &",
  },
  "data-binary": {
    type: "string",
    multiple: true,
    arg: "DATA|@FILE",
    description: "as -d (FILE's bytes are always sent unchanged)",
  },
  "upload-file": {
    type: "string",
    short: "T",
    arg: "FILE",
    description: "PUT FILE's bytes, streamed; a URL ending in / gets FILE's name",
  },
  output: {
    type: "string",
    short: "o",
    multiple: true,
    arg: "FILE",
    default: "stdout",
    description: "write the body of the next URL to FILE",
  },
  head: { type: "boolean", short: "I", description: "send HEAD and print the response head" },
  include: { type: "boolean", short: "i", description: "print the response head before the body" },
  location: { type: "boolean", short: "L", description: "follow redirects" },
  "max-redirs": { type: "string", arg: "N", default: "50", description: "redirect limit with -L" },
  fail: {
    type: "boolean",
    short: "f",
    description: "exit 22 without output when the status is 400 or more",
  },
  "remove-on-error": {
    type: "boolean",
    description: "delete an -o file when its transfer fails (no partial file)",
  },
  "max-time": {
    type: "string",
    short: "m",
    arg: "SECONDS",
    default: "no limit",
    description: "limit each transfer's total time (exit 28)",
  },
  "connect-timeout": {
    type: "string",
    arg: "SECONDS",
    default: "30",
    description: "limit resolving and connecting (exit 28)",
  },
  cacert: {
    type: "string",
    arg: "FILE",
    default: "the system's CAs",
    description: "trust the CA certificates in FILE (PEM) for https",
  },
  "user-agent": {
    type: "string",
    short: "A",
    arg: "NAME",
    default: "netkit-client/0.1",
    description: "User-Agent to send",
  },
  verbose: {
    type: "boolean",
    short: "v",
    description: "show connection events and the request and response heads on stderr",
  },
  timing: {
    type: "boolean",
    description: "show DNS, connect, TLS, first byte and total times on stderr",
  },
  silent: { type: "boolean", short: "s", description: "no progress bar" },
  help: { type: "boolean", short: "h", description: "show this help" },
} as const satisfies Options;

const HELP = {
  usage: "Usage: deno task webclient [options] URL...",
  summary: "Fetches each URL over HTTP/1.1 (http or https); URLs to the same origin\n" +
    "share one keep-alive connection. Relative paths (-o, -d @FILE, --cacert) are taken\n" +
    "from the directory the command runs in.",
  footer: `Exit codes: 0 ok, 1 unsupported protocol, 2 usage, 3 bad URL, 6 DNS, 7 connect,
8 bad reply, 18 partial body, 22 HTTP error with --fail, 23 write error,
26 cannot read -d @file, 28 timeout, 35 TLS, 47 too many redirects,
52 empty reply, 56 receive error, 60 certificate not trusted, 77 cannot read --cacert.`,
};

const encoder = new TextEncoder();

/**
 * Parses a `-H` argument as curl does: `"Name: value"` adds a field,
 * `"Name:"` removes a default field, `"Name;"` sends an empty value.
 *
 * @param text The argument.
 * @returns The field to send, or `{ omit: name }` for a removal.
 * @throws {CliError} When there is no colon or semicolon.
 *
 * @example
 * ```ts
 * import { parseHeaderOption } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseHeaderOption("X-A:  1 "), { field: ["X-A", "1"] });
 * assertEquals(parseHeaderOption("Accept:"), { omit: "Accept" });
 * ```
 */
export function parseHeaderOption(text: string): { field: [string, string] } | { omit: string } {
  const colon = text.indexOf(":");
  if (colon > 0) {
    const name = text.slice(0, colon).trim();
    const value = text.slice(colon + 1).trim();
    return value === "" ? { omit: name } : { field: [name, value] };
  }
  if (text.endsWith(";") && text.length > 1) return { field: [text.slice(0, -1).trim(), ""] };
  throw new CliError(`invalid header "${text}": expected "Name: value"`);
}

/**
 * Formats a byte count for humans, as 1024-based units.
 *
 * @param n Bytes.
 * @returns E.g. `"1.5 MiB"`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatBytes(1536), "1.5 KiB");
 * assertEquals(formatBytes(12), "12 B");
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${n} ${units[0]}` : `${n.toFixed(1)} ${units[u]}`;
}

/**
 * Renders one progress-bar line: a bar and percentage when the total size is
 * known, then bytes so far and the rate.
 *
 * @param done Bytes received.
 * @param total Expected bytes, or `null` when unknown.
 * @param elapsedMs Time since the transfer started.
 * @param width Columns of the bar itself.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatProgress } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(formatProgress(512, 1024, 1000, 10), "[#####     ]  50%  512 B / 1.0 KiB  512 B/s");
 * ```
 */
export function formatProgress(
  done: number,
  total: number | null,
  elapsedMs: number,
  width = 30,
): string {
  const rate = elapsedMs > 0 ? Math.round(done / (elapsedMs / 1000)) : 0;
  const speed = `${formatBytes(rate)}/s`;
  if (total === null || total <= 0) return `${formatBytes(done)}  ${speed}`;
  const frac = Math.min(1, done / total);
  const filled = Math.round(frac * width);
  const pct = String(Math.floor(frac * 100)).padStart(3);
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${pct}%  ${formatBytes(done)} / ${
    formatBytes(total)
  }  ${speed}`;
}

/**
 * Formats a timing breakdown (cumulative milliseconds, as curl's `-w`
 * `time_*` variables) as lines for stderr.
 *
 * @param timing The marks of one transfer.
 * @param reused Whether the connection was reused.
 * @returns The lines.
 *
 * @example
 * ```ts
 * import { formatTiming } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const lines = formatTiming({ dns: 1, connect: 2, tls: 0, firstByte: 3, total: 4 }, false);
 * assertEquals(lines[0], "*   dns           1.000 ms");
 * assertEquals(lines.length, 5);
 * ```
 */
export function formatTiming(timing: Timing, reused: boolean): string[] {
  const row = (name: string, ms: number) => `*   ${name.padEnd(11)}${ms.toFixed(3).padStart(8)} ms`;
  return [
    row("dns", timing.dns),
    row("connect", timing.connect),
    row("tls", timing.tls),
    row("first byte", timing.firstByte),
    row("total", timing.total) + (reused ? "  (connection reused)" : ""),
  ];
}

/** Options of {@linkcode ProgressMeter}. */
export interface ProgressMeterOptions {
  /**
   * The clock, in milliseconds.
   * @default {performance.now}
   */
  now?: () => number;
}

/**
 * The progress meter on stderr: it redraws at most 10 times a second,
 * whatever the rate of updates, so at full speed it costs a clock read per
 * write; a transfer over within a quarter second shows nothing.
 *
 * @example
 * ```ts
 * import { ProgressMeter } from "./client.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * let t = 0;
 * let draws = 0;
 * const meter = new ProgressMeter({ writeSync: (p) => (draws++, p.length) }, 1000, {
 *   now: () => t,
 * });
 * for (t = 0; t <= 1250; t++) meter.update(t);
 * assertEquals(draws, 11); // at 250 ms, then every 100 ms
 * ```
 */
export class ProgressMeter {
  #out: { writeSync(p: Uint8Array): number };
  #now: () => number;
  #start: number;
  #last = -Infinity;
  #shown = false;
  #total: number | null;

  /**
   * Starts the meter's clock.
   *
   * @param out Where to draw (stderr).
   * @param total Expected bytes, or `null` when unknown.
   * @param options The clock.
   */
  constructor(
    out: { writeSync(p: Uint8Array): number },
    total: number | null,
    options: ProgressMeterOptions = {},
  ) {
    this.#out = out;
    this.#total = total;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /**
   * Notes progress, redrawing when 100 ms passed since the last redraw.
   *
   * @param done Bytes so far.
   */
  update(done: number): void {
    const now = this.#now();
    // Small transfers finish before the bar would be worth drawing.
    if (now - this.#start < 250 || now - this.#last < 100) return;
    this.#last = now;
    this.#shown = true;
    const line = formatProgress(done, this.#total, now - this.#start);
    this.#out.writeSync(encoder.encode(`\r${line}\x1b[K`));
  }

  /** Erases the line, if one was drawn. */
  end(): void {
    if (this.#shown) this.#out.writeSync(encoder.encode("\r\x1b[K"));
  }
}

function headText(res: ClientResponse): string {
  let text = `${res.head.version} ${res.status} ${res.head.reason}`.trimEnd() + "\r\n";
  for (const [n, v] of res.headers) text += `${n}: ${v}\r\n`;
  return text + "\r\n";
}

/** One part of a request body: bytes, or a file streamed from its start. */
type DataPart = { bytes: Uint8Array } | { file: Deno.FsFile; typed: string; regular: boolean };

/** A request body to send: its parts, total length, and the files to close. */
interface Upload extends Disposable {
  parts: DataPart[];
  /** The total, or `undefined` when a part is not a regular file (a pipe): sent chunked. */
  length: number | undefined;
}

/**
 * Opens the body of `-d`/`--data-binary` (`joiner` "&", as curl joins several)
 * or `-T` (one file). Files are opened and measured now, so a missing one
 * fails before anything is sent; their bytes are read while sending.
 */
async function openUpload(values: string[], joiner: string): Promise<Upload> {
  const parts: DataPart[] = [];
  let length: number | undefined = 0;
  const upload: Upload = {
    parts,
    length: undefined,
    [Symbol.dispose]() {
      for (const p of parts) if ("file" in p) p.file.close();
    },
  };
  const sep = encoder.encode(joiner);
  try {
    for (const [i, v] of values.entries()) {
      if (i > 0 && sep.length > 0) {
        parts.push({ bytes: sep });
        if (length !== undefined) length += sep.length;
      }
      if (!v.startsWith("@")) {
        const bytes = encoder.encode(v);
        parts.push({ bytes });
        if (length !== undefined) length += bytes.length;
        continue;
      }
      const typed = v.slice(1);
      try {
        const file = await Deno.open(userPath(typed));
        const info = await file.stat().catch((err) => {
          file.close();
          throw err;
        });
        parts.push({ file, typed, regular: info.isFile });
        // A pipe or a device has no size to announce: curl sends those chunked too.
        length = info.isFile && length !== undefined ? length + info.size : undefined;
      } catch (err) {
        throw new CliError(dataError(typed, err).message, EXIT_CODES.read);
      }
    }
  } catch (err) {
    upload[Symbol.dispose]();
    throw err;
  }
  upload.length = length;
  return upload;
}

function dataError(typed: string, err: unknown): HttpClientError {
  return new HttpClientError(
    "read",
    `Cannot read data file ${describePath(typed)}: ${(err as Error).message}`,
    { cause: err },
  );
}

/**
 * The bytes of an upload, each file read from its start into one reused
 * buffer (the client writes a piece before it asks for the next), so a
 * file of any size is sent in one buffer's worth of memory.
 */
async function* uploadPieces(parts: DataPart[]): AsyncGenerator<Uint8Array> {
  let buffer: Uint8Array | undefined;
  for (const part of parts) {
    if ("bytes" in part) {
      yield part.bytes;
      continue;
    }
    buffer ??= new Uint8Array(UPLOAD_BUFFER);
    try {
      // From the start for each URL; a pipe cannot seek and is read once.
      if (part.regular) await part.file.seek(0, Deno.SeekMode.Start);
    } catch (err) {
      throw dataError(part.typed, err);
    }
    for (;;) {
      let n: number | null;
      try {
        n = await part.file.read(buffer);
      } catch (err) {
        throw dataError(part.typed, err);
      }
      if (n === null) break;
      yield buffer.subarray(0, n);
    }
  }
}

/** The request body for the client: bytes when there is no file, else the stream. */
function uploadBody(upload: Upload): { body: Uint8Array } | {
  body: AsyncIterable<Uint8Array>;
  bodyLength?: number;
} {
  if (upload.parts.every((p) => "bytes" in p)) {
    const bytes = concat(upload.parts.map((p) => (p as { bytes: Uint8Array }).bytes));
    return { body: bytes };
  }
  const body = uploadPieces(upload.parts);
  return upload.length === undefined ? { body } : { body, bodyLength: upload.length };
}

/** curl's -T: a URL without a file part gets the local file's name. */
function uploadUrl(url: string, file: string): string {
  const name = file.slice(file.lastIndexOf("/") + 1);
  return url.endsWith("/") ? url + encodeURIComponent(name) : url;
}

/**
 * Writes synchronously: the CLI has nothing else to do meanwhile, and an
 * asynchronous file write goes through a thread pool, whose threads cost
 * memory and a hop per write.
 */
function syncSink(out: { writeSync(p: Uint8Array): number }): BodySink {
  return { write: (p) => Promise.resolve(out.writeSync(p)) };
}

/** The buffer a download goes through: large writes to a file, little memory. */
const DOWNLOAD_BUFFER = 1 << 20;
/** The buffer an upload is read into from its file. */
const UPLOAD_BUFFER = 1 << 20;

async function main(args: string[]): Promise<number> {
  const parsed = parseOrHelp(args, OPTIONS, HELP);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new CliError("no URL specified (try --help)");
  const seconds = (name: string, text: string | undefined) =>
    text === undefined ? undefined : parseNumber(name, text, { min: 0.001 }) * 1000;
  const maxTime = seconds("--max-time", values["max-time"]);
  const connectTimeout = seconds("--connect-timeout", values["connect-timeout"]);
  const maxRedirs = values["max-redirs"] === undefined
    ? 50
    : parseNumber("--max-redirs", values["max-redirs"], { min: 0, integer: true });
  const headers: [string, string][] = [];
  const omitHeaders: string[] = [];
  for (const h of (values.header ?? []).map(parseHeaderOption)) {
    if ("omit" in h) omitHeaders.push(h.omit);
    else headers.push(h.field);
  }
  const data = [...values.data ?? [], ...values["data-binary"] ?? []];
  const uploadFile = values["upload-file"];
  if (uploadFile !== undefined && data.length > 0) {
    throw new CliError("-T and -d/--data-binary cannot be combined: one body per request");
  }
  using upload = uploadFile !== undefined
    ? await openUpload([`@${uploadFile}`], "")
    : data.length > 0
    ? await openUpload(data, "&")
    : undefined;
  const method = values.request ??
    (values.head ? "HEAD" : uploadFile !== undefined ? "PUT" : upload ? "POST" : "GET");
  const named = (name: string) =>
    [...headers.map(([n]) => n), ...omitHeaders].some((n) => n.toLowerCase() === name);
  if (data.length > 0 && upload!.parts.some((p) => "file" in p) && !named("content-type")) {
    // The client adds this default to a body of bytes only; -d sends it either way, as curl.
    headers.push(["Content-Type", "application/x-www-form-urlencoded"]);
  }
  let caCerts: string[] | undefined;
  if (values.cacert !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(userPath(values.cacert))];
    } catch (err) {
      throw new CliError(
        `Cannot read CA file ${describePath(values.cacert)}: ${(err as Error).message}`,
        77,
      );
    }
  }
  const stderrTty = Deno.stderr.isTerminal();
  const errLine = (line: string) => Deno.stderr.writeSync(encoder.encode(line + "\n"));
  await using client = new HttpClient({
    ...(caCerts !== undefined ? { caCerts } : {}),
    ...(connectTimeout !== undefined ? { connectTimeout } : {}),
    ...(values.verbose ? { trace: errLine } : {}),
    ...(values["user-agent"] !== undefined ? { userAgent: values["user-agent"] } : {}),
  });
  const outputs = values.output ?? [];
  let exitCode = 0;
  for (const [i, given] of positionals.entries()) {
    const outFile = outputs[i];
    const url = uploadFile !== undefined ? uploadUrl(given, uploadFile) : given;
    const body = upload !== undefined ? uploadBody(upload) : undefined;
    try {
      const res = await client.request(url, {
        method,
        headers,
        omitHeaders,
        ...body,
        // A streamed body cannot be sent again if a kept connection turns out dead.
        ...(body !== undefined && !(body.body instanceof Uint8Array) && i > 0
          ? { fresh: true }
          : {}),
        ...(maxTime !== undefined ? { timeout: maxTime } : {}),
        maxRedirects: values.location ? maxRedirs : 0,
        onRedirect: (r) => {
          if (values.head || values.include) {
            writeStdout(encoder.encode(headText(r)));
          }
        },
      });
      if (values.fail && res.status >= 400) {
        await res.discard().catch(() => {});
        throw new HttpClientError("http", `The requested URL returned error: ${res.status}`);
      }
      if (values.head || values.include) await writeOut(undefined, encoder.encode(headText(res)));
      const toFile = outFile !== undefined && outFile !== "-";
      const kind = res.bodyKind;
      const total = kind.type === "length" ? kind.length : null;
      const progress = stderrTty && !values.silent && !values.verbose &&
          (toFile || !Deno.stdout.isTerminal())
        ? new ProgressMeter(Deno.stderr, total)
        : undefined;
      const onWrite = (n: number) => progress?.update(n);
      try {
        if (toFile) {
          await download(res, outFile, {
            removeOnError: values["remove-on-error"] ?? false,
            onWrite,
          });
        } else {
          // stdout may feed another program: each read is passed on as it comes.
          await res.writeTo(syncSink(Deno.stdout), { bufferSize: DOWNLOAD_BUFFER, onWrite });
        }
      } finally {
        progress?.end();
      }
      if (values.timing) {
        for (const line of formatTiming(res.timing, res.reused)) errLine(line);
      }
    } catch (caught) {
      // The client checks a file's bytes against the size announced: one that
      // changed while being sent cannot be read as it was measured.
      const err = caught instanceof RangeError && upload !== undefined
        ? new HttpClientError("read", caught.message, { cause: caught })
        : caught;
      if (!(err instanceof HttpClientError)) throw err;
      errLine(`webclient: ${err.message}`);
      exitCode = err.exitCode;
    }
  }
  return exitCode;
}

/**
 * Saves a body to a file through one buffer filled before each write (few,
 * large writes), the file pre-sized when the length is known. A failed
 * transfer leaves the bytes received (curl's behaviour), or no file with
 * `removeOnError` (curl's `--remove-on-error`).
 */
async function download(
  res: ClientResponse,
  typed: string,
  options: { removeOnError: boolean; onWrite: (n: number) => void },
): Promise<void> {
  const path = userPath(typed);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (err) {
    await res.discard().catch(() => {});
    throw new HttpClientError(
      "write",
      `Cannot open output file ${describePath(typed)}: ${(err as Error).message}`,
    );
  }
  let written = 0;
  let presized = false;
  try {
    const kind = res.bodyKind;
    if (kind.type === "length" && kind.length > 0 && (await file.stat()).isFile) {
      // The file system can lay the file out at once instead of growing it per write.
      await file.truncate(kind.length);
      presized = true;
    }
    await res.writeTo(syncSink(file), {
      bufferSize: DOWNLOAD_BUFFER,
      fill: true,
      onWrite: (n) => {
        written = n;
        options.onWrite(n);
      },
    });
  } catch (err) {
    if (options.removeOnError) {
      file.close();
      await Deno.remove(path).catch(() => {});
    } else if (presized) {
      // What was received, not the announced size padded with zeros.
      await file.truncate(written).catch(() => {});
    }
    throw err instanceof HttpClientError ? err : new HttpClientError(
      "write",
      `Cannot write output file ${describePath(typed)}: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    try {
      file.close();
    } catch {
      // Closed above, before removing it.
    }
  }
}

function writeStdout(data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));
}

async function writeOut(file: Deno.FsFile | undefined, data: Uint8Array): Promise<void> {
  try {
    await writeAll(file ?? Deno.stdout, data);
  } catch (err) {
    throw new HttpClientError("write", `Cannot write output: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

if (import.meta.main) {
  await runMain("webclient", () => main(Deno.args));
}
