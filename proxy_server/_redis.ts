/**
 * The shared tier's link to Redis: the `--shared-cache` URL, one command
 * connection (or a cluster client) and one subscriber, every operation under
 * a short deadline, reconnection with back-off, and one log line per change
 * of state. Redis being down or slow must never fail a client request, so
 * every operation here resolves to `undefined` instead of throwing.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

type Client = typeof import("@redis/client");
let client: Promise<Client> | undefined;

/** Loads the Redis client when a link is first made: only a proxy with a shared tier needs it. */
function loadClient(): Promise<Client> {
  return client ??= import("@redis/client");
}
import { Deadline } from "../lib/deadline.ts";

/** Where the shared tier lives, from `--shared-cache`. */
export interface SharedCacheUrl {
  /** One Redis, or a Redis Cluster reached through any of `nodes`. */
  kind: "redis" | "cluster";
  /** Host and port of the server (one) or of the cluster's seed nodes. */
  nodes: Array<{ host: string; port: number }>;
  /** TLS (`rediss://`). */
  tls: boolean;
  /** ACL user, when the URL names one. */
  username?: string;
  /** Password from the URL, else `REDIS_PASSWORD`. */
  password?: string;
  /** Database number (`/db`); always 0 for a cluster. */
  db: number;
}

/**
 * Parses a `--shared-cache` URL: `redis://[user:pass@]host:port[/db]`,
 * `rediss://…` for TLS, or `redis-cluster://host:port,host:port,…`
 * (`rediss-cluster://` for TLS).
 *
 * @param text The URL.
 * @param env The password to use when the URL has none (`REDIS_PASSWORD`).
 * @returns The parsed URL.
 * @throws {TypeError} When the URL is not one of those forms.
 */
export function parseSharedCacheUrl(text: string, env?: string): SharedCacheUrl {
  const m = /^(rediss?)(-cluster)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]+?)(?:\/(\d+))?\/?$/
    .exec(text);
  if (m === null) {
    throw new TypeError(
      `Cannot use shared cache "${text}": expected redis://[user:pass@]host:port[/db] or ` +
        "redis-cluster://host:port,host:port,…",
    );
  }
  const [, scheme, cluster, user, pass, hosts, db] = m;
  const nodes = hosts!.split(",").map((hp) => {
    const n = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})$/.exec(hp);
    const port = Number(n?.[2]);
    if (n === null || port < 1 || port > 65535) {
      throw new TypeError(`Cannot use shared cache "${text}": "${hp}" is not host:port`);
    }
    return { host: n[1]!.replace(/^\[|\]$/g, ""), port };
  });
  if (cluster === undefined && nodes.length > 1) {
    throw new TypeError(
      `Cannot use shared cache "${text}": several hosts need redis-cluster://`,
    );
  }
  if (cluster !== undefined && db !== undefined && db !== "0") {
    throw new TypeError(`Cannot use shared cache "${text}": a cluster has only database 0`);
  }
  const password = pass !== undefined ? decodeURIComponent(pass) : env;
  return {
    kind: cluster === undefined ? "redis" : "cluster",
    nodes,
    tls: scheme === "rediss",
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(password !== undefined && password !== "" ? { password } : {}),
    db: Number(db ?? 0),
  };
}

/** A value Redis returns through the link: bytes for strings, arrays, integers or nil. */
export type Reply = Uint8Array | number | null | Reply[];

/** The commands the shared tier sends; a standalone client and a cluster client both have them. */
interface Commands {
  evalSha(sha: string, options: { keys: string[]; arguments: Array<string | Uint8Array> }): Promise<
    unknown
  >;
  eval(script: string, options: { keys: string[]; arguments: Array<string | Uint8Array> }): Promise<
    unknown
  >;
  publish(channel: string, message: string): Promise<unknown>;
}

interface Connection extends Commands {
  on(event: string, fn: (arg: unknown) => void): unknown;
  connect(): Promise<unknown>;
  destroy?(): void;
  close?(): Promise<void>;
  duplicate(): Connection;
  subscribe(channel: string, fn: (message: string) => void): Promise<void>;
  withTypeMapping(mapping: Record<number, unknown>): Commands;
}

/** Options of {@linkcode RedisLink}. */
export interface RedisLinkOptions {
  /** Milliseconds each operation may take before it counts as failed. */
  timeout: number;
  /** Receives one line per change of state (up, down). */
  log: (line: string) => void;
  /** Called when the link goes down or comes back. */
  onState: (up: boolean) => void;
  /** Receives every message on the subscribed channels. */
  onMessage: (channel: string, message: string) => void;
  /** The channels to subscribe to. */
  channels: string[];
}

/**
 * One command connection and one subscriber to a Redis or a Redis Cluster.
 * Commands are never queued while the link is down (they fail at once), and
 * the client reconnects with exponential back-off (50 ms doubling to 2 s).
 */
export class RedisLink {
  #url: SharedCacheUrl;
  #options: RedisLinkOptions;
  #main: Connection | undefined;
  #commands: Commands | undefined;
  #sub: Connection | undefined;
  /** Unknown until the first connect succeeds or fails, so that both are logged. */
  #up: boolean | undefined;
  #subUp = false;
  #closed = false;
  #lastError = "";
  #retry: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #connected = false;
  #shas = new Map<string, string>();
  /** Operations that failed (error or deadline). */
  errors = 0;

  constructor(url: SharedCacheUrl, options: RedisLinkOptions) {
    this.#url = url;
    this.#options = options;
    void this.#start();
  }

  /** Whether commands can be sent now. */
  get up(): boolean {
    return this.#up === true && !this.#closed;
  }

  /** A description for log lines: the URL without its password. */
  get name(): string {
    const scheme = (this.#url.tls ? "rediss" : "redis") +
      (this.#url.kind === "cluster" ? "-cluster" : "");
    return `${scheme}://${this.#url.nodes.map((n) => `${n.host}:${n.port}`).join(",")}`;
  }

  #create(lib: Client): Connection {
    const u = this.#url;
    const socket = {
      connectTimeout: 1000,
      ...(u.tls ? { tls: true as const } : {}),
      reconnectStrategy: backoff,
    };
    const auth = {
      ...(u.username !== undefined ? { username: u.username } : {}),
      ...(u.password !== undefined ? { password: u.password } : {}),
    };
    if (u.kind === "redis") {
      const n = u.nodes[0]!;
      return lib.createClient({
        socket: { host: n.host, port: n.port, ...socket } as never,
        ...auth,
        database: u.db,
        // A command sent while disconnected fails at once instead of waiting.
        disableOfflineQueue: true,
      }) as unknown as Connection;
    }
    return lib.createCluster({
      rootNodes: u.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
      defaults: { socket: socket as never, ...auth, disableOfflineQueue: true },
    }) as unknown as Connection;
  }

  #watch(conn: Connection, set: (up: boolean) => void): void {
    const down = (err?: unknown) => {
      if (err !== undefined) this.#lastError = err instanceof Error ? err.message : String(err);
      set(false);
    };
    conn.on("error", down);
    if (this.#url.kind === "redis") {
      conn.on("end", () => down());
      conn.on("reconnecting", () => down());
      conn.on("ready", () => set(true));
      return;
    }
    // A cluster client reports each node's state: a master without a replica
    // takes its slots down with it, and the cluster refuses until it is back.
    conn.on("node-error", down);
    conn.on("node-disconnect", () => down());
    // The first node is ready before the others are known: up only once connect() has resolved.
    conn.on("node-ready", () => {
      if (this.#connected) set(true);
    });
  }

  /** Connects (a cluster client gives up on a failed first connect: retry it here). */
  async #start(): Promise<void> {
    const lib = await loadClient();
    if (this.#closed) return;
    const main = this.#create(lib);
    this.#main = main;
    this.#commands = main.withTypeMapping({ [lib.RESP_TYPES.BLOB_STRING]: Buffer });
    this.#watch(main, (up) => this.#setUp(up));
    try {
      await main.connect();
    } catch (err) {
      this.#lastError = err instanceof Error ? err.message : String(err);
      this.#setUp(false);
      // A client whose first connect failed (refused AUTH, no cluster yet)
      // does not retry on its own: start again with a new one, backing off.
      try {
        main.destroy?.();
      } catch {
        // Never connected.
      }
      if (!this.#closed) {
        this.#retry = setTimeout(() => this.#start(), backoff(this.#attempt++));
      }
      return;
    }
    this.#attempt = 0;
    this.#connected = true;
    this.#setUp(true);
    this.#subscribe(main);
  }

  #subscribe(main: Connection): void {
    if (this.#closed || this.#sub !== undefined) return;
    const sub = main.duplicate();
    this.#sub = sub;
    this.#watch(sub, (up) => {
      this.#subUp = up;
    });
    sub.connect().then(async () => {
      for (const channel of this.#options.channels) {
        await sub.subscribe(channel, (message) => this.#options.onMessage(channel, message));
      }
      this.#subUp = true;
    }, () => {});
  }

  #setUp(up: boolean): void {
    if (up === this.#up || this.#closed) return;
    this.#up = up;
    this.#options.log(
      up
        ? `shared cache ${this.name} is up`
        : `shared cache ${this.name} is down (${this.#lastError || "connection lost"}); ` +
          "serving from the local cache and the origin",
    );
    this.#options.onState(up);
  }

  /**
   * Runs a Lua script on the node holding `keys` (one hash slot), within the deadline.
   *
   * @param script The script.
   * @param keys Its keys (one slot).
   * @param args Its arguments.
   * @param timeout The deadline in ms, if not the link's.
   * @returns The reply, or `undefined` when Redis is down, failed or was too slow.
   */
  async eval(
    script: string,
    keys: string[],
    args: Array<string | Uint8Array>,
    timeout = this.#options.timeout,
  ): Promise<Reply | undefined> {
    // The client takes strings and Buffers only: wrap bytes without copying them.
    const wrapped = args.map((a) =>
      typeof a === "string" ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength)
    );
    const options = { keys, arguments: wrapped };
    let sha = this.#shas.get(script);
    if (sha === undefined) {
      this.#shas.set(script, sha = createHash("sha1").update(script).digest("hex"));
    }
    // By digest: Redis keeps every script it has run, so the text goes over
    // the wire only the first time (and after a restart: NOSCRIPT).
    return await this.#run(
      () =>
        this.#commands!.evalSha(sha, options).catch((err) =>
          /NOSCRIPT/.test(String(err?.message ?? err))
            ? this.#commands!.eval(script, options)
            : Promise.reject(err)
        ),
      timeout,
    );
  }

  /**
   * Publishes a message to every node's subscriber.
   *
   * @param channel The channel.
   * @param message The message.
   * @returns Whether it was sent.
   */
  async publish(channel: string, message: string): Promise<boolean> {
    return (await this.#run(() => this.#commands!.publish(channel, message))) !== undefined;
  }

  async #run(fn: () => Promise<unknown>, timeout = this.#options.timeout) {
    if (!this.up || this.#commands === undefined) {
      this.errors++;
      return undefined;
    }
    using deadline = new Deadline(timeout);
    try {
      const p = fn();
      // A reply that comes after the deadline is dropped, its error too.
      p.catch(() => {});
      // Timers run before the event loop reads sockets: when the deadline
      // fires on a busy loop, give a reply that has already arrived one turn
      // of the loop (setImmediate runs after the reads) before giving up.
      const late = new Promise<never>((_, reject) => {
        deadline.on(() => setImmediate(() => reject(new Error("deadline"))));
      });
      late.catch(() => {});
      return await Promise.race([p, late]) as Reply;
    } catch {
      this.errors++;
      return undefined;
    }
  }

  /** Whether the subscriber is connected (so publishes reach this node). */
  get subscribed(): boolean {
    return this.#subUp;
  }

  /** Closes both connections. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const c of [this.#sub, this.#main]) {
      try {
        if (c?.close !== undefined) await c.close();
        else c?.destroy?.();
      } catch {
        // Already closed.
      }
    }
  }
}

/** Milliseconds before reconnect attempt `n`: from 50 ms up to 2 s, so a dead Redis costs little. */
function backoff(n: number): number {
  return Math.min(50 * 2 ** n, 2000);
}
