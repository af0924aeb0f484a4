/**
 * The cache's storage: a byte-bounded LRU memory tier over an optional
 * byte-bounded LRU disk tier.
 *
 * Disk entries are written to a temporary file, synced, then renamed into
 * place, so a crash (even `kill -9`) leaves either the old entry, the new one,
 * or a stray `*.tmp` file that the next start deletes. Each entry file
 * carries its lengths and a CRC-32 of its content; a file whose lengths do
 * not match is discarded when the index is rebuilt, and one whose checksum
 * does not match is discarded when read, so it is never served.
 *
 * Entry file layout (little-endian):
 * `"NKC1"` · meta length u32 · body length u64 · CRC-32 of body+meta u32 · 0 u32 · body · meta JSON.
 * The body streams straight into place; the metadata (which holds the final
 * length) and the header are written when the body is complete.
 *
 * @module
 */
import { readFull, writeAll } from "../lib/bytes.ts";

/** What the cache keeps about a stored response besides its body. */
export interface EntryMeta {
  /** The full cache key: the URI and the secondary (Vary) key. */
  key: string;
  /** The absolute target URI (the primary key). */
  url: string;
  /** Status code. */
  status: number;
  /** Reason phrase. */
  reason: string;
  /** Stored response fields, lower-case names, hop-by-hop fields removed. */
  fields: Array<[string, string]>;
  /** When the request was sent (ms since the epoch). */
  requestTime: number;
  /** When the response head arrived (ms since the epoch). */
  responseTime: number;
  /** The body's length in bytes. */
  bodyLength: number;
}

/** A stored entry, as {@linkcode CacheStore.get} returns it. */
export interface Entry {
  /** The entry's metadata. */
  meta: EntryMeta;
  /** The whole body when it is held in memory, else `null` (stream it with {@linkcode CacheStore.openBody}). */
  body: Uint8Array | null;
  /** Scratch space for the proxy (such as a serialised head); cleared when the entry changes. */
  memo: unknown;
}

/** Options of {@linkcode CacheStore.open}. */
export interface StoreOptions {
  /**
   * Directory of the disk tier; without it the cache lives in memory only.
   * @default {undefined}
   */
  dir?: string;
  /**
   * Bytes the disk tier may use.
   * @default {1073741824}
   */
  diskSize?: number;
  /**
   * Bytes the memory tier may use (bodies plus an estimate of metadata).
   * @default {67108864}
   */
  memorySize?: number;
  /**
   * The largest body kept in the memory tier.
   * @default {1048576}
   */
  memoryObjectSize?: number;
  /**
   * The largest body stored at all; a larger response is passed through unstored.
   * @default {67108864}
   */
  maxObjectSize?: number;
}

const MAGIC = 0x31434b4e; // "NKC1" read little-endian
const HEADER = 24;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * Continues a CRC-32 (IEEE 802.3) over more bytes.
 *
 * @param crc The running value; start with 0.
 * @param bytes The bytes.
 * @returns The updated value.
 *
 * @example
 * ```ts
 * import { crc32 } from "./store.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(crc32(0, new TextEncoder().encode("123456789")), 0xcbf43926);
 * ```
 */
export function crc32(crc: number, bytes: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * SHA-256 in hex, loaded by {@linkcode CacheStore.open} for a disk tier only:
 * a memory-only store does without node:crypto, about 5 MiB of resident memory.
 */
let sha256Hex: ((text: string) => string) | undefined;

function fileName(key: string): string {
  return sha256Hex!(key).slice(0, 40);
}

/**
 * Estimates the memory an entry costs besides its body: the metadata, its
 * map slots, and the proxy's memo (a parsed field list and a serialised copy
 * of head and body for the hit path, hence the body counted once more).
 */
function metaCost(meta: EntryMeta): number {
  let n = 1024 + meta.key.length * 4 + meta.bodyLength;
  for (const [a, b] of meta.fields) n += (a.length + b.length) * 4 + 96;
  return n;
}

/**
 * The keys stored under one URI: most URIs have one (no Vary), kept as a
 * plain string, since a `Set` per URI costs about 150 bytes. A URI whose one
 * key was stored without Vary is indexed by that key alone (see {@linkcode UrlIndex}).
 */
interface UrlKeys {
  /** The field names the latest stored response varies on ("" for none). */
  vary: string;
  /** The full keys. */
  keys: string | Set<string>;
}

/** What the store indexes under a URI: its one key (stored without Vary), or its {@linkcode UrlKeys}. */
type UrlIndex = string | UrlKeys;

/** Canonical copies of stored field names and values (see {@linkcode intern}). */
const interned = new Map<string, string>();
const INTERN_MAX = 4096;

/**
 * One copy of each name and value that many entries share (`content-type`,
 * `cache-control: public, max-age=3600`), detached from the response head it
 * was parsed from: a parsed value of 13 or more characters is a V8 sliced
 * string, which keeps the whole head alive for as long as the entry lives.
 */
function intern(s: string): string {
  let c = interned.get(s);
  if (c !== undefined) return c;
  // A fresh flat string: it shares no memory with the head.
  c = s.length < 13 ? s : JSON.parse(JSON.stringify(s)) as string;
  if (s.length > 1024) return c;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(c, c);
  return c;
}

/** Canonical (frozen) field pairs, by interned name, then interned value (see {@linkcode internPair}). */
const pairs = new Map<string, Map<string, [string, string]>>();
let pairCount = 0;

/**
 * One shared, frozen `[name, value]` array for each pair that many entries
 * carry (`content-type: text/plain`, `cache-control: public, max-age=3600`):
 * a pair costs 64 bytes of heap, a third of a small entry's metadata.
 */
function internPair(name: string, value: string): [string, string] {
  const n = intern(name);
  const v = intern(value);
  // A long value is not interned, so it is kept in a pair of its own.
  if (value.length > 1024) return [n, v];
  let byValue = pairs.get(n);
  let pair = byValue?.get(v);
  if (pair !== undefined) return pair;
  if (pairCount >= INTERN_MAX) {
    pairs.clear();
    pairCount = 0;
    byValue = undefined;
  }
  if (byValue === undefined) pairs.set(n, byValue = new Map());
  pair = Object.freeze([n, v]) as unknown as [string, string];
  byValue.set(v, pair);
  pairCount++;
  return pair;
}

/**
 * The metadata as the store keeps it: names, values and reason interned, pairs
 * shared, and arrays of exactly their length (a field list built by pushing has
 * room for 17 pairs), so that 10,000 small objects cost the heap as little as
 * they can.
 */
function compactMeta(meta: EntryMeta, bodyLength: number): EntryMeta {
  return {
    key: meta.key,
    url: meta.url,
    status: meta.status,
    reason: intern(meta.reason),
    fields: meta.fields.map(([n, v]) => internPair(n, v)),
    requestTime: meta.requestTime,
    responseTime: meta.responseTime,
    bodyLength,
  };
}

interface DiskRecord {
  file: string;
  size: number;
  meta: EntryMeta;
}

/** A body being stored; {@linkcode CacheStore.beginWrite} returns it. */
export interface EntryWriter {
  /**
   * Appends body bytes; returns `false` once the object has grown too big to store.
   * The chunk may be reused by the caller once the returned promise settles.
   */
  write(chunk: Uint8Array): Promise<boolean>;
  /** Stores the entry, replacing any previous one with the same key. */
  commit(): Promise<void>;
  /** Drops the partial entry. */
  abort(): Promise<void>;
}

/**
 * The two-tier store. Lookups in the memory tier are synchronous, so a
 * cache hit costs no promise and no I/O.
 *
 * @example A memory-only store
 * ```ts
 * import { CacheStore } from "./store.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * const store = await CacheStore.open();
 * const w = store.beginWrite({
 *   key: "http://a.test/\n", url: "http://a.test/", status: 200, reason: "OK",
 *   fields: [["content-length", "2"]], requestTime: 0, responseTime: 0, bodyLength: 0,
 * });
 * await w.write(new TextEncoder().encode("hi"));
 * await w.commit();
 * assertEquals(store.get("http://a.test/\n")?.meta.bodyLength, 2);
 * ```
 */
export class CacheStore {
  #dir: string | undefined;
  #diskSize: number;
  #memorySize: number;
  #memoryObjectSize: number;
  #maxObjectSize: number;
  #memory = new Map<string, Entry>();
  #memoryBytes = 0;
  #memoryInserts = 0;
  #disk = new Map<string, DiskRecord>();
  #diskBytes = 0;
  /** URI → what is stored under it. */
  #byUrl = new Map<string, UrlIndex>();
  /** Full key → its surrogate keys (from `Surrogate-Key` and `xkey`). */
  #tagsOf = new Map<string, string[]>();
  /** Surrogate key → the full keys whose response carried it. */
  #byTag = new Map<string, Set<string>>();
  /**
   * Called with a URI whenever what is stored under it may change: when a
   * write begins, when it commits (the new entry is visible), and after a
   * delete. Eviction does not call it: an evicted response is still correct.
   */
  onChange: ((url: string) => void) | undefined = undefined;

  private constructor(options: StoreOptions) {
    this.#dir = options.dir;
    this.#diskSize = options.diskSize ?? 1 << 30;
    this.#memorySize = options.memorySize ?? 64 << 20;
    this.#memoryObjectSize = Math.min(options.memoryObjectSize ?? 1 << 20, this.#memorySize);
    this.#maxObjectSize = options.maxObjectSize ?? 64 << 20;
  }

  /**
   * Opens a store, rebuilding the disk index from the entry files and
   * deleting stray temporary files and entries whose lengths do not add up.
   *
   * @param options Sizes and the disk directory.
   * @returns The store.
   *
   * @example
   * ```ts
   * import { CacheStore } from "./store.ts";
   * import { assertEquals } from "../lib/testing/assert.ts";
   * const dir = await Deno.makeTempDir();
   * const store = await CacheStore.open({ dir, diskSize: 1 << 20 });
   * assertEquals(store.size, 0);
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  static async open(options: StoreOptions = {}): Promise<CacheStore> {
    const store = new CacheStore(options);
    if (store.#dir !== undefined) {
      if (sha256Hex === undefined) {
        const { createHash } = await import("node:crypto");
        sha256Hex = (text) => createHash("sha256").update(text).digest("hex");
      }
      await store.#rebuild(store.#dir);
    }
    return store;
  }

  /** How many entries the store holds (both tiers, counted once). */
  get size(): number {
    if (this.#dir === undefined) return this.#memory.size;
    return this.#disk.size;
  }

  /** Entries in the memory tier. */
  get memoryObjects(): number {
    return this.#memory.size;
  }

  /** Entries in the disk tier (0 without a directory). */
  get diskObjects(): number {
    return this.#disk.size;
  }

  /** The memory tier's size (bytes). */
  get memorySize(): number {
    return this.#memorySize;
  }

  /** Bytes used by the memory tier. */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  /**
   * Entries the memory tier has taken under a key it did not hold, since the
   * store opened: filling the tier (and evicting to make room) is what leaves
   * garbage in the heap, where refreshing a stored entry leaves little.
   */
  get memoryInserts(): number {
    return this.#memoryInserts;
  }

  /** Bytes used by the disk tier. */
  get diskBytes(): number {
    return this.#diskBytes;
  }

  /** The largest body a write can store: `maxObjectSize`, or the memory tier's bound without a directory. */
  get storableSize(): number {
    return this.#dir === undefined ? this.#memoryObjectSize : this.#maxObjectSize;
  }

  async #rebuild(dir: string): Promise<void> {
    await Deno.mkdir(dir, { recursive: true });
    const found: Array<{ record: DiskRecord; mtime: number }> = [];
    for await (const item of Deno.readDir(dir)) {
      if (!item.isFile) continue;
      const path = `${dir}/${item.name}`;
      if (item.name.endsWith(".tmp")) {
        // A write that never finished (crash or kill -9 before the rename).
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!/^[0-9a-f]{40}$/.test(item.name)) continue;
      const record = await readRecord(path).catch(() => undefined);
      if (record === undefined) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      const stat = await Deno.stat(path);
      record.meta = compactMeta(record.meta, record.meta.bodyLength);
      found.push({ record, mtime: stat.mtime?.getTime() ?? 0 });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const { record } of found) this.#indexDisk(record);
    await this.#evictDisk();
  }

  #indexDisk(record: DiskRecord): void {
    const old = this.#disk.get(record.meta.key);
    if (old !== undefined) this.#diskBytes -= old.size;
    this.#disk.delete(record.meta.key);
    this.#disk.set(record.meta.key, record);
    this.#diskBytes += record.size;
    this.#noteKey(record.meta);
  }

  #noteKey(meta: EntryMeta): void {
    const vary = meta.fields.find(([n]) => n === "vary")?.[1] ?? "";
    const known = this.#byUrl.get(meta.url);
    if (known === undefined) {
      this.#byUrl.set(meta.url, vary === "" ? meta.key : { vary, keys: meta.key });
    } else if (typeof known === "string") {
      if (vary !== "" || known !== meta.key) {
        const keys = known === meta.key ? known : new Set([known, meta.key]);
        this.#byUrl.set(meta.url, { vary, keys });
      }
    } else {
      known.vary = vary;
      if (typeof known.keys === "string") {
        if (known.keys !== meta.key) known.keys = new Set([known.keys, meta.key]);
      } else known.keys.add(meta.key);
    }
    this.#forgetTags(meta.key);
    const tags = surrogateKeys(meta.fields);
    if (tags.length === 0) return;
    this.#tagsOf.set(meta.key, tags);
    for (const tag of tags) {
      let tagged = this.#byTag.get(tag);
      if (tagged === undefined) this.#byTag.set(tag, tagged = new Set());
      tagged.add(meta.key);
    }
  }

  #forgetTags(key: string): void {
    for (const tag of this.#tagsOf.get(key) ?? []) {
      const tagged = this.#byTag.get(tag);
      tagged?.delete(key);
      if (tagged?.size === 0) this.#byTag.delete(tag);
    }
    this.#tagsOf.delete(key);
  }

  #forgetKey(key: string, url: string): void {
    this.#forgetTags(key);
    const known = this.#byUrl.get(url);
    if (known === undefined) return;
    if (typeof known === "string") {
      if (known === key) this.#byUrl.delete(url);
      return;
    }
    if (typeof known.keys === "string") {
      if (known.keys === key) this.#byUrl.delete(url);
      return;
    }
    known.keys.delete(key);
    if (known.keys.size === 0) this.#byUrl.delete(url);
  }

  /**
   * Returns the Vary value of the latest response stored for a URI.
   *
   * @param url The absolute URI.
   * @returns The Vary value (`""` for none), or `undefined` when nothing is stored.
   */
  varyOf(url: string): string | undefined {
    const known = this.#byUrl.get(url);
    return typeof known === "string" ? "" : known?.vary;
  }

  /**
   * Looks an entry up in memory, falling back to the disk index.
   *
   * @param key The full cache key.
   * @returns The entry (its body is `null` when it lives on disk only), or `undefined`.
   */
  get(key: string): Entry | undefined {
    const mem = this.#memory.get(key);
    if (mem !== undefined) {
      // Map keeps insertion order; re-inserting marks the entry most recently used.
      this.#memory.delete(key);
      this.#memory.set(key, mem);
      return mem;
    }
    const rec = this.#disk.get(key);
    if (rec === undefined) return undefined;
    this.#disk.delete(key);
    this.#disk.set(key, rec);
    return { meta: rec.meta, body: null, memo: undefined };
  }

  /**
   * Reads a disk-only entry's body; a small body is verified against its
   * checksum and promoted to the memory tier, a large one is streamed and
   * checked as it goes (the stream errors on a mismatch and the entry is deleted).
   *
   * @param key The full cache key.
   * @returns The body as bytes or a stream, or `undefined` when the entry is gone or corrupt.
   */
  async openBody(key: string): Promise<Uint8Array | ReadableStream<Uint8Array> | undefined> {
    const mem = this.#memory.get(key);
    if (mem?.body) return mem.body;
    const rec = this.#disk.get(key);
    if (rec === undefined || this.#dir === undefined) return undefined;
    const path = `${this.#dir}/${rec.file}`;
    if (rec.meta.bodyLength <= this.#memoryObjectSize) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch {
        await this.delete(key);
        return undefined;
      }
      const parsed = parseEntryFile(bytes);
      if (parsed === undefined || parsed.meta.key !== key) {
        await this.delete(key);
        return undefined;
      }
      this.#putMemory({ meta: rec.meta, body: parsed.body, memo: undefined });
      return parsed.body;
    }
    return this.#streamBody(key, path, rec);
  }

  #streamBody(key: string, path: string, rec: DiskRecord): ReadableStream<Uint8Array> {
    // The checksum is verified against the metadata in the file itself: a
    // newer copy of the entry may have been renamed into place since `rec` was
    // indexed, and its metadata (times) differ while the body is just as good.
    let metaBytes = new Uint8Array(0);
    let file: Deno.FsFile | undefined;
    let crc = 0;
    let expected = 0;
    let left = rec.meta.bodyLength;
    return new ReadableStream<Uint8Array>({
      type: "bytes",
      start: async () => {
        file = await Deno.open(path, { read: true });
        const head = new Uint8Array(HEADER);
        await readFull(file, head);
        const dv = new DataView(head.buffer);
        expected = dv.getUint32(16, true);
        const bodyLen = Number(dv.getBigUint64(8, true));
        metaBytes = new Uint8Array(Math.min(dv.getUint32(4, true), 1 << 20));
        if (bodyLen !== left) {
          left = -1; // another body: fail on the first pull, as for a corrupt file
        } else {
          await file.seek(HEADER + bodyLen, Deno.SeekMode.Start);
          await readFull(file, metaBytes);
          await file.seek(HEADER, Deno.SeekMode.Start);
        }
      },
      pull: async (controller) => {
        const buf = new Uint8Array(Math.max(0, Math.min(left, 64 * 1024)));
        const n = left < 0 ? null : await file!.read(buf);
        if (n === null || n === 0) {
          file!.close();
          await this.delete(key);
          controller.error(
            new RangeError(`Cannot read cache entry ${rec.file}: file is truncated`),
          );
          return;
        }
        const chunk = buf.subarray(0, n);
        crc = crc32(crc, chunk);
        left -= n;
        if (left === 0 && crc32(crc, metaBytes) !== expected) {
          file!.close();
          await this.delete(key);
          controller.error(
            new RangeError(`Cannot read cache entry ${rec.file}: checksum mismatch`),
          );
          return;
        }
        controller.enqueue(chunk);
        if (left === 0) {
          file!.close();
          controller.close();
        }
      },
      cancel: () => {
        file?.close();
      },
    });
  }

  #putMemory(entry: Entry): void {
    const old = this.#memory.get(entry.meta.key);
    if (old !== undefined) {
      this.#memoryBytes -= (old.body?.length ?? 0) + metaCost(old.meta);
      this.#memory.delete(entry.meta.key);
    }
    if (entry.body === null || entry.body.length > this.#memoryObjectSize) return;
    if (old === undefined) this.#memoryInserts++;
    this.#memory.set(entry.meta.key, entry);
    this.#memoryBytes += entry.body.length + metaCost(entry.meta);
    for (const [k, e] of this.#memory) {
      if (this.#memoryBytes <= this.#memorySize) break;
      this.#memory.delete(k);
      this.#memoryBytes -= (e.body?.length ?? 0) + metaCost(e.meta);
      if (this.#dir === undefined) this.#forgetKey(k, e.meta.url);
    }
  }

  async #evictDisk(): Promise<void> {
    for (const [k, rec] of this.#disk) {
      if (this.#diskBytes <= this.#diskSize) break;
      await this.delete(k);
      void rec;
    }
  }

  /**
   * Stores a whole response at once. One without `Vary` (its key is its URI)
   * replaces every variant stored for that URI, as a new response does (RFC 9111 §4.1).
   *
   * @param meta The entry's metadata.
   * @param pieces The body, in order.
   * @returns Whether it was stored (not when larger than the store keeps).
   *
   * @example
   * ```ts
   * import { CacheStore } from "./store.ts";
   * import { assert, assertEquals } from "../lib/testing/assert.ts";
   * const store = await CacheStore.open();
   * const meta = {
   *   key: "http://a.test/", url: "http://a.test/", status: 200, reason: "OK",
   *   fields: [] as Array<[string, string]>, requestTime: 0, responseTime: 0, bodyLength: 0,
   * };
   * const te = new TextEncoder();
   * assert(await store.putWhole(meta, [te.encode("he"), te.encode("llo")]));
   * assertEquals(store.get("http://a.test/")?.meta.bodyLength, 5);
   * ```
   */
  async putWhole(meta: EntryMeta, pieces: readonly Uint8Array[]): Promise<boolean> {
    if (meta.key === meta.url && (this.varyOf(meta.url) ?? "") !== "") {
      await this.deleteUrl(meta.url);
    }
    const writer = this.beginWrite(meta);
    for (const piece of pieces) if (!(await writer.write(piece))) return false;
    await writer.commit();
    return true;
  }

  /**
   * Starts storing a response body. The metadata's `bodyLength` is filled
   * in on commit. Nothing is visible to readers until {@linkcode EntryWriter.commit}.
   *
   * @param meta The entry's metadata.
   * @returns The writer.
   */
  beginWrite(meta: EntryMeta): EntryWriter {
    this.onChange?.(meta.url);
    const chunks: Uint8Array[] = [];
    let length = 0;
    let tooBig = false;
    let done = false;
    const dir = this.#dir;
    const file = dir === undefined ? undefined : fileName(meta.key);
    const tmp = file === undefined ? undefined : `${dir}/${file}.${crypto.randomUUID()}.tmp`;
    let fh: Promise<Deno.FsFile> | undefined;
    let crc = 0;
    if (tmp !== undefined) {
      fh = (async () => {
        const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
        // Room for the header, which is written last, at commit.
        await writeAll(f, new Uint8Array(HEADER));
        return f;
      })();
    }
    const drop = async (): Promise<void> => {
      done = true;
      chunks.length = 0;
      if (fh !== undefined) {
        const f = await fh.catch(() => undefined);
        f?.close();
        await Deno.remove(tmp!).catch(() => {});
      }
    };
    return {
      write: async (chunk: Uint8Array): Promise<boolean> => {
        if (done || tooBig) return false;
        length += chunk.length;
        if (length > this.#maxObjectSize) {
          tooBig = true;
          await drop();
          return false;
        }
        if (length <= this.#memoryObjectSize) chunks.push(chunk.slice());
        else chunks.length = 0;
        if (fh !== undefined) {
          const f = await fh;
          crc = crc32(crc, chunk);
          await writeAll(f, chunk);
        }
        return true;
      },
      commit: async (): Promise<void> => {
        if (done || tooBig) return;
        done = true;
        const finalMeta = compactMeta(meta, length);
        let body: Uint8Array | null = null;
        if (length <= this.#memoryObjectSize) {
          // A body that came in one piece is kept as that copy: one allocation
          // per small object, not two, so less garbage and less fragmentation.
          if (chunks.length === 1) body = chunks[0]!;
          else {
            body = new Uint8Array(length);
            let off = 0;
            for (const c of chunks) {
              body.set(c, off);
              off += c.length;
            }
          }
        }
        if (fh !== undefined && dir !== undefined && file !== undefined) {
          const f = await fh;
          const metaBytes = encoder.encode(JSON.stringify(finalMeta));
          // The body's CRC was computed while streaming; the metadata follows it.
          const header = makeHeader(metaBytes.length, length, crc32(crc, metaBytes));
          try {
            await writeAll(f, metaBytes);
            await f.seek(0, Deno.SeekMode.Start);
            await writeAll(f, header);
            // Durable before visible: sync, then rename over any previous entry.
            await f.syncData();
            f.close();
            await Deno.rename(tmp!, `${dir}/${file}`);
          } catch (err) {
            try {
              f.close();
            } catch {
              // Already closed.
            }
            await Deno.remove(tmp!).catch(() => {});
            throw err;
          }
          this.#indexDisk({ file, size: HEADER + metaBytes.length + length, meta: finalMeta });
          await this.#evictDisk();
        }
        chunks.length = 0;
        // Memory only and too big for memory: nothing was stored.
        if (dir === undefined && body === null) return;
        const entry: Entry = { meta: finalMeta, body, memo: undefined };
        if (body !== null) this.#putMemory(entry);
        else {
          const old = this.#memory.get(finalMeta.key);
          if (old !== undefined) this.#putMemory({ ...old, body: null });
        }
        this.#noteKey(finalMeta);
        this.onChange?.(finalMeta.url);
      },
      abort: drop,
    };
  }

  /**
   * Replaces an entry's metadata (after a 304 updated its fields), keeping its body.
   *
   * @param key The full cache key.
   * @param meta The new metadata (same key and body length).
   */
  async updateMeta(key: string, meta: EntryMeta): Promise<void> {
    const mem = this.#memory.get(key);
    if (this.#dir === undefined && mem !== undefined && mem.body !== null) {
      // Memory only: the body stays where it is, and only the metadata is replaced
      // (a 304 per request would otherwise copy the body each time).
      this.onChange?.(meta.url);
      const finalMeta = compactMeta(meta, mem.body.length);
      this.#putMemory({ meta: finalMeta, body: mem.body, memo: undefined });
      this.#noteKey(finalMeta);
      return;
    }
    const body = await this.openBody(key);
    if (body === undefined) return;
    const w = this.beginWrite(meta);
    if (body instanceof Uint8Array) await w.write(body);
    else for await (const chunk of body) await w.write(chunk);
    await w.commit();
  }

  /**
   * Deletes one entry from both tiers.
   *
   * @param key The full cache key.
   */
  async delete(key: string): Promise<void> {
    const mem = this.#memory.get(key);
    let url = mem?.meta.url;
    if (mem !== undefined) {
      this.#memory.delete(key);
      this.#memoryBytes -= (mem.body?.length ?? 0) + metaCost(mem.meta);
    }
    const rec = this.#disk.get(key);
    if (rec !== undefined) {
      url = rec.meta.url;
      this.#disk.delete(key);
      this.#diskBytes -= rec.size;
      await Deno.remove(`${this.#dir}/${rec.file}`).catch(() => {});
    }
    if (url !== undefined) {
      this.#forgetKey(key, url);
      this.onChange?.(url);
    }
  }

  /**
   * Deletes every entry stored under a URI (all its Vary variants), as
   * invalidation after an unsafe method requires (RFC 9111 §4.4).
   *
   * @param url The absolute URI.
   * @returns How many entries were deleted.
   */
  async deleteUrl(url: string): Promise<number> {
    const known = this.#byUrl.get(url);
    if (known === undefined) return 0;
    const keys = typeof known === "string" ? known : known.keys;
    const victims = typeof keys === "string" ? [keys] : [...keys];
    for (const key of victims) await this.delete(key);
    return victims.length;
  }

  /**
   * Deletes every entry whose response carried one of these surrogate keys
   * in `Surrogate-Key` (Fastly) or `xkey` (Varnish): purge by tag.
   *
   * @param tags The surrogate keys.
   * @returns How many entries were deleted.
   *
   * @example
   * ```ts
   * import { CacheStore } from "./store.ts";
   * import { assertEquals } from "../lib/testing/assert.ts";
   * const store = await CacheStore.open();
   * const w = store.beginWrite({
   *   key: "http://a.test/", url: "http://a.test/", status: 200, reason: "OK",
   *   fields: [["surrogate-key", "news front"]], requestTime: 0, responseTime: 0, bodyLength: 0,
   * });
   * await w.commit();
   * assertEquals(await store.deleteTags(["front"]), 1);
   * assertEquals(store.size, 0);
   * ```
   */
  async deleteTags(tags: readonly string[]): Promise<number> {
    const victims = new Set<string>();
    for (const tag of tags) for (const key of this.#byTag.get(tag) ?? []) victims.add(key);
    for (const key of victims) await this.delete(key);
    return victims.size;
  }
}

/**
 * The surrogate keys of a stored response: the space-separated members of
 * its `Surrogate-Key` (Fastly) and `xkey` (Varnish; commas allowed) fields.
 *
 * @param fields The stored fields (lower-case names).
 * @returns The keys, each once.
 *
 * @example
 * ```ts
 * import { surrogateKeys } from "./store.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(surrogateKeys([["xkey", "a, b"], ["surrogate-key", "b c"]]), ["a", "b", "c"]);
 * ```
 */
export function surrogateKeys(fields: ReadonlyArray<readonly [string, string]>): string[] {
  const tags = new Set<string>();
  for (const [name, value] of fields) {
    if (name !== "surrogate-key" && name !== "xkey") continue;
    for (const tag of value.split(/[\s,]+/)) if (tag !== "") tags.add(tag);
  }
  return [...tags];
}

function makeHeader(metaLen: number, bodyLen: number, crc: number): Uint8Array {
  const header = new Uint8Array(HEADER);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, metaLen, true);
  dv.setBigUint64(8, BigInt(bodyLen), true);
  dv.setUint32(16, crc, true);
  return header;
}

/**
 * Parses and verifies a whole entry file.
 *
 * @param bytes The file's bytes.
 * @returns The metadata and body, or `undefined` when the file is corrupt or truncated.
 *
 * @example
 * ```ts
 * import { parseEntryFile } from "./store.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(parseEntryFile(new Uint8Array(10)), undefined);
 * ```
 */
export function parseEntryFile(
  bytes: Uint8Array,
): { meta: EntryMeta; body: Uint8Array } | undefined {
  if (bytes.length < HEADER) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) return undefined;
  const metaLen = dv.getUint32(4, true);
  const bodyLen = Number(dv.getBigUint64(8, true));
  if (bytes.length !== HEADER + metaLen + bodyLen) return undefined;
  const rest = bytes.subarray(HEADER);
  if (crc32(0, rest) !== dv.getUint32(16, true)) return undefined;
  let meta: EntryMeta;
  try {
    meta = JSON.parse(decoder.decode(rest.subarray(bodyLen)));
  } catch {
    return undefined;
  }
  if (meta.bodyLength !== bodyLen) return undefined;
  return { meta, body: rest.slice(0, bodyLen) };
}

async function readRecord(path: string): Promise<DiskRecord | undefined> {
  using f = await Deno.open(path, { read: true });
  const stat = await f.stat();
  const head = new Uint8Array(HEADER);
  if (await readFull(f, head) < head.length) return undefined;
  const dv = new DataView(head.buffer);
  if (dv.getUint32(0, true) !== MAGIC) return undefined;
  const metaLen = dv.getUint32(4, true);
  const bodyLen = Number(dv.getBigUint64(8, true));
  if (stat.size !== HEADER + metaLen + bodyLen || metaLen > 1 << 20) return undefined;
  const metaBytes = new Uint8Array(metaLen);
  await f.seek(HEADER + bodyLen, Deno.SeekMode.Start);
  if (await readFull(f, metaBytes) < metaBytes.length) return undefined;
  const meta = JSON.parse(decoder.decode(metaBytes)) as EntryMeta;
  if (meta.bodyLength !== bodyLen) return undefined;
  const file = path.slice(path.lastIndexOf("/") + 1);
  if (fileName(meta.key) !== file) return undefined;
  return { file, size: stat.size, meta };
}
