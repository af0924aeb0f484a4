/**
 * The shared tier's link to Redis: the `--shared-cache` URL, one command
 * connection (one per master on a cluster, routed by key slot) and one
 * subscriber, every operation under a short deadline, detection of a Redis
 * that stops answering, reconnection with back-off, and one log line per
 * change of state. Redis being down or slow must never fail a client
 * request, so every operation here resolves to `undefined` instead of
 * throwing. It speaks RESP itself (`_resp.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Deadline } from "../lib/deadline.ts";
import { keySlot, RespConnection, RespError, type RespValue } from "./_resp.ts";

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
  /**
   * A PEM file of CA certificates to trust for TLS besides the system roots
   * (`?ca=FILE`); when absent, the link reads `REDIS_CA`.
   */
  ca?: string;
}

/**
 * Parses a `--shared-cache` URL: `redis://[user:pass@]host:port[/db]`,
 * `rediss://…[?ca=FILE]` for TLS, or `redis-cluster://host:port,host:port,…`
 * (`rediss-cluster://` for TLS).
 *
 * @param text The URL.
 * @param env The password to use when the URL has none (`REDIS_PASSWORD`).
 * @returns The parsed URL.
 * @throws {TypeError} When the URL is not one of those forms.
 */
export function parseSharedCacheUrl(text: string, env?: string): SharedCacheUrl {
  const m =
    /^(rediss?)(-cluster)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+?)(?:\/(\d+))?\/?(?:\?ca=([^&]+))?$/
      .exec(text);
  if (m === null) {
    throw new TypeError(
      `Cannot use shared cache "${text}": expected redis://[user:pass@]host:port[/db] or ` +
        "redis-cluster://host:port,host:port,…",
    );
  }
  const [, scheme, cluster, user, pass, hosts, db, ca] = m;
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
    ...(ca !== undefined ? { ca: decodeURIComponent(ca) } : {}),
  };
}

/** A value Redis returns through the link: bytes for strings, arrays, integers or nil. */
export type Reply = Uint8Array | number | null | Reply[];

/** Options of {@linkcode RedisLink}. */
export interface RedisLinkOptions {
  /** Milliseconds each operation may take before it counts as failed. */
  timeout: number;
  /** Receives one line per change of state (up, down). */
  log: (line: string) => void;
  /** Called when the link goes down (lost, or silent) or comes back. */
  onState: (up: boolean) => void;
  /** Receives every message on the subscribed channels. */
  onMessage: (channel: string, message: string) => void;
  /** The channels to subscribe to. */
  channels: string[];
}

/** One server: the standalone Redis, or a cluster master. */
interface Server {
  host: string;
  port: number;
  /** The command connection, while it is up. */
  conn: RespConnection | undefined;
  opening: Promise<void> | undefined;
  attempt: number;
  retry: ReturnType<typeof setTimeout> | undefined;
}

/** Milliseconds a connection (TCP, TLS handshake, AUTH and SELECT) may take. */
const CONNECT_TIMEOUT = 1000;
const SLOTS = 16384;
const LATE = new RespError("deadline");

/**
 * One command connection (one per master on a cluster) and one subscriber
 * to a Redis or a Redis Cluster. Commands are never queued while a server
 * is down (they fail at once); each server reconnects with exponential
 * back-off (50 ms doubling to 2 s). A Redis that is connected but stops
 * answering (stopped, or a network that drops everything) is taken as down
 * after a run of missed deadlines, until a probe is answered, so its users
 * only ever see an operation answered or failed. On a cluster, commands go
 * to the master of their key's slot (following MOVED and ASK), so a master
 * that is down takes only its own slots down.
 */
export class RedisLink {
  #url: SharedCacheUrl;
  #options: RedisLinkOptions;
  #servers = new Map<string, Server>();
  /** The standalone server; undefined on a cluster. */
  #single: Server | undefined;
  /** On a cluster: the master of each slot, as `host:port`. */
  #slots: Array<string | undefined> = new Array(SLOTS);
  #mapped = false;
  #mapping: Promise<boolean> | undefined;
  #mappedAt = 0;
  #mapAttempt = 0;
  #sub: RespConnection | undefined;
  #subOpening = false;
  #subUp = false;
  #subAttempt = 0;
  /** Unknown until the first connect succeeds or fails, so that both are logged. */
  #up: boolean | undefined;
  #closed = false;
  #lastError = "";
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #ca: Promise<string[] | undefined> | undefined;
  #shas = new Map<string, string>();
  /** Operations under the link's own deadline, in the order they were sent (so by due time). */
  #due: Op[] = [];
  #dueHead = 0;
  #dueTimer: ReturnType<typeof setTimeout> | undefined;
  /** The state the log last reported. */
  #said: boolean | undefined;
  /** Connected, but Redis answers nothing: operations fail at once until a probe is answered. */
  #silent = false;
  /** The length of the current run of missed deadlines (no answer since), and when it began. */
  #silentOps = 0;
  #silentSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  /** Operations that failed (error or deadline), or were not sent (down or silent). */
  errors = 0;

  constructor(url: SharedCacheUrl, options: RedisLinkOptions) {
    this.#url = url;
    this.#options = options;
    if (url.kind === "redis") {
      const n = url.nodes[0]!;
      this.#single = this.#server(n.host, n.port);
    } else {
      void this.#map();
    }
  }

  /**
   * Whether commands can be sent now (on a cluster: to at least one master),
   * and Redis answers them.
   */
  get up(): boolean {
    return !this.#closed && !this.#silent && this.#connected();
  }

  /** Whether a connection is up (on a cluster: to at least one master). */
  #connected(): boolean {
    if (this.#single !== undefined) return this.#single.conn !== undefined;
    return this.#up === true || (this.#mapped && this.#anyConn() !== undefined);
  }

  /** A description for log lines: the URL without its password. */
  get name(): string {
    const scheme = (this.#url.tls ? "rediss" : "redis") +
      (this.#url.kind === "cluster" ? "-cluster" : "");
    return `${scheme}://${this.#url.nodes.map((n) => `${n.host}:${n.port}`).join(",")}`;
  }

  /** Whether the subscriber is connected (so publishes reach this node). */
  get subscribed(): boolean {
    return this.#subUp;
  }

  #later(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }

  /** The server at `host:port`, connecting (and reconnecting) to it. */
  #server(host: string, port: number): Server {
    const addr = `${host}:${port}`;
    let s = this.#servers.get(addr);
    if (s === undefined) {
      s = { host, port, conn: undefined, opening: undefined, attempt: 0, retry: undefined };
      this.#servers.set(addr, s);
      this.#connect(s);
    }
    return s;
  }

  #connect(s: Server): void {
    if (this.#closed || s.opening !== undefined || s.conn !== undefined) return;
    const addr = `${s.host}:${s.port}`;
    s.opening = this.#open(s.host, s.port, {}).then((conn) => {
      s.opening = undefined;
      if (this.#closed || this.#servers.get(addr) !== s) return conn.close();
      s.attempt = 0;
      s.conn = conn;
      conn.onClose = (reason) => {
        s.conn = undefined;
        this.#lastError = this.#where(addr, reason.message);
        this.#state();
        this.#retry(s);
      };
      this.#state();
      this.#subscribe();
    }, (err) => {
      s.opening = undefined;
      this.#lastError = this.#where(addr, message(err));
      this.#state();
      this.#retry(s);
    });
  }

  #where(addr: string, why: string): string {
    return this.#single === undefined ? `${addr}: ${why}` : why;
  }

  #retry(s: Server): void {
    if (this.#closed || this.#servers.get(`${s.host}:${s.port}`) !== s) return;
    // A master that stays away may have been replaced: look at the slot map again.
    if (this.#single === undefined && s.attempt > 0) void this.#map();
    s.retry = this.#later(() => this.#connect(s), backoff(s.attempt++));
  }

  /** Logs and reports a change of state: up when every server is connected. */
  #state(): void {
    const up = this.#single !== undefined
      ? this.#single.conn !== undefined
      : this.#mapped && [...this.#servers.values()].every((s) => s.conn !== undefined);
    this.#setUp(up);
  }

  #setUp(up: boolean): void {
    if (up === this.#up || this.#closed) return;
    this.#up = up;
    // The connections' state supersedes silence: the link reconnects on its own.
    this.#setSilent(false);
    this.#say(
      up,
      up
        ? `shared cache ${this.name} is up`
        : `shared cache ${this.name} is down (${this.#lastError || "connection lost"}); ` +
          "serving from the local cache and the origin",
    );
    this.#options.onState(up);
  }

  /** Logs a state unless it is the one last logged (a silent link that then loses its connection). */
  #say(up: boolean, line: string): void {
    if (up === this.#said) return;
    this.#said = up;
    this.#options.log(line);
  }

  /** Reads the CA certificates to trust besides the system roots (`?ca=`, else `REDIS_CA`). */
  #caCerts(): Promise<string[] | undefined> {
    return this.#ca ??= (async () => {
      let file = this.#url.ca;
      if (file === undefined) {
        try {
          file = Deno.env.get("REDIS_CA") || undefined;
        } catch {
          // No permission to read the environment: no extra CA.
        }
      }
      if (file === undefined) return undefined;
      try {
        return [await Deno.readTextFile(file)];
      } catch (err) {
        this.#ca = undefined;
        throw new Error(`cannot read the CA file ${file}: ${message(err)}`);
      }
    })();
  }

  /** Connects, shakes hands (TLS), authenticates and selects the database. */
  async #open(
    host: string,
    port: number,
    events: { onPush?: (channel: string, message: string) => void },
  ): Promise<RespConnection> {
    using deadline = new Deadline(CONNECT_TIMEOUT);
    const late = () => new Error("connect timed out");
    const connecting: Promise<Deno.Conn> = this.#url.tls
      ? this.#caCerts().then((caCerts) =>
        Deno.connectTls({ hostname: host, port, ...(caCerts ? { caCerts } : {}) })
      )
      : Deno.connect({ hostname: host, port });
    let conn: Deno.Conn;
    try {
      conn = await deadline.race(connecting, late);
    } catch (err) {
      connecting.then((c) => c.close(), () => {});
      throw err;
    }
    let rc: RespConnection | undefined;
    try {
      // Commands are batched already: Nagle's delay would only add latency.
      if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
      if ("handshake" in conn) await deadline.race((conn as Deno.TlsConn).handshake(), late);
      rc = new RespConnection(conn, events);
      const u = this.#url;
      const hello: Array<Promise<RespValue>> = [];
      if (u.password !== undefined) {
        hello.push(
          rc.send(
            u.username !== undefined ? ["AUTH", u.username, u.password] : [
              "AUTH",
              u.password,
            ],
          ),
        );
      }
      if (u.db !== 0) hello.push(rc.send(["SELECT", String(u.db)]));
      for (const r of await deadline.race(Promise.all(hello), late)) {
        if (r instanceof RespError) throw r;
      }
    } catch (err) {
      if (rc !== undefined) rc.close();
      else conn.close();
      throw err;
    }
    return rc;
  }

  /** Any connected server (for PUBLISH and the subscriber). */
  #anyConn(): Server | undefined {
    for (const s of this.#servers.values()) if (s.conn !== undefined) return s;
    return undefined;
  }

  /**
   * Learns a cluster's slot map (CLUSTER SLOTS) from a connected master or,
   * failing that, from a seed, and connects to every master in it.
   */
  #map(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#mapping !== undefined) return this.#mapping;
    // After a MOVED storm or a lost master: at most one look per 200 ms.
    if (this.#mapped && Date.now() - this.#mappedAt < 200) return Promise.resolve(true);
    const done = this.#mapping = (async () => {
      const known = this.#anyConn();
      const sources: Array<{ host: string; port: number; conn?: RespConnection | undefined }> = [
        ...(known !== undefined ? [known] : []),
        ...this.#url.nodes,
        ...this.#servers.values(),
      ];
      for (const src of sources) {
        if (this.#closed) return false;
        let reply: RespValue;
        let conn: RespConnection | undefined;
        try {
          conn = src.conn ?? (await this.#open(src.host, src.port, {}));
          reply = await conn.send(["CLUSTER", "SLOTS"]);
        } catch (err) {
          this.#lastError = `${src.host}:${src.port}: ${message(err)}`;
          continue;
        } finally {
          if (conn !== undefined && conn !== src.conn) conn.close();
        }
        const map = slotMap(reply, src.host);
        if (map === undefined) {
          this.#lastError = `${src.host}:${src.port}: ${
            reply instanceof RespError ? reply.message : "no slot map"
          }`;
          continue;
        }
        this.#apply(map);
        return true;
      }
      return false;
    })().then((ok) => {
      this.#mapping = undefined;
      if (ok) {
        this.#mappedAt = Date.now();
        this.#mapAttempt = 0;
      } else if (!this.#mapped) {
        this.#setUp(false);
        this.#later(() => void this.#map(), backoff(this.#mapAttempt++));
      }
      return ok;
    });
    return done;
  }

  #apply(map: Array<{ from: number; to: number; host: string; port: number }>): void {
    const masters = new Set<string>();
    for (const r of map) {
      const addr = `${r.host}:${r.port}`;
      masters.add(addr);
      this.#server(r.host, r.port);
      this.#slots.fill(addr, r.from, r.to + 1);
    }
    // Servers that are no longer masters (failed over, removed) are dropped.
    for (const [addr, s] of this.#servers) {
      if (masters.has(addr)) continue;
      this.#servers.delete(addr);
      clearTimeout(s.retry);
      s.conn?.close();
    }
    this.#mapped = true;
    this.#state();
    this.#subscribe();
  }

  /**
   * Sends an operation's command to the server that holds its key (following
   * a cluster's redirections); the reply goes to the operation.
   */
  #send(op: Op): void {
    // The standalone case is every hit's path: no promise of its own.
    const single = this.#single;
    if (single !== undefined) {
      const conn = single.conn;
      if (conn === undefined) op.reply(DOWN);
      else conn.call(op.args, op.reply);
      return;
    }
    this.#route(op.key, op.args).then(op.reply, (err) => op.reply(new RespError(message(err))));
  }

  async #route(key: string | undefined, args: Array<string | Uint8Array>): Promise<RespValue> {
    const slot = key === undefined ? -1 : keySlot(key);
    let server = slot < 0 ? this.#anyConn() : this.#servers.get(this.#slots[slot] ?? "");
    let asking = false;
    for (let hop = 0;; hop++) {
      const conn = server?.conn;
      if (conn === undefined) return DOWN;
      let reply: RespValue;
      if (asking) {
        void conn.send(["ASKING"]);
        reply = await conn.send(args);
      } else {
        reply = await conn.send(args);
      }
      if (!(reply instanceof RespError) || hop >= 3) return reply;
      // MOVED: the slot has a new master for good; ASK: for this command only (RFC: cluster spec).
      const m = /^(MOVED|ASK) (\d+) (.*):(\d+)$/.exec(reply.message);
      if (m === null) return reply;
      const host = m[3] === "" || m[3] === "?" ? server!.host : m[3]!;
      const addr = `${host}:${m[4]}`;
      asking = m[1] === "ASK";
      if (!asking) {
        this.#slots[Number(m[2])] = addr;
        void this.#map();
      }
      server = this.#servers.get(addr) ?? this.#server(host, Number(m[4]));
      await server.opening;
    }
  }

  /** Opens the subscriber (on any master of a cluster: PUBLISH reaches every node). */
  #subscribe(): void {
    if (this.#closed || this.#sub !== undefined || this.#subOpening) return;
    const at = this.#single ?? this.#anyConn();
    if (at === undefined) return;
    this.#subOpening = true;
    const again = () => {
      this.#subOpening = false;
      this.#subUp = false;
      this.#sub = undefined;
      if (!this.#closed) this.#later(() => this.#subscribe(), backoff(this.#subAttempt++));
    };
    const onPush = (channel: string, text: string) => this.#options.onMessage(channel, text);
    this.#open(at.host, at.port, { onPush }).then(async (sub) => {
      if (this.#closed) return sub.close();
      this.#sub = sub;
      this.#subOpening = false;
      sub.onClose = again;
      const replies = await Promise.all(
        this.#options.channels.map((channel) => sub.send(["SUBSCRIBE", channel])),
      );
      if (replies.some((r) => r instanceof RespError)) return sub.close();
      this.#subAttempt = 0;
      this.#subUp = !sub.closed;
    }, again);
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
  eval(
    script: string,
    keys: string[],
    args: Array<string | Uint8Array>,
    timeout = this.#options.timeout,
  ): Promise<Reply | undefined> {
    let sha = this.#shas.get(script);
    if (sha === undefined) {
      this.#shas.set(script, sha = createHash("sha1").update(script).digest("hex"));
    }
    // By digest: Redis keeps every script it has run, so the text goes over
    // the wire only the first time (and after a restart: NOSCRIPT).
    const command = ["EVALSHA", sha, String(keys.length), ...keys, ...args];
    return this.#run(keys[0], command, timeout, WATCHED, script);
  }

  /**
   * Sends one command about `key` to the node holding it, within the deadline.
   *
   * @param key The key (it chooses the cluster node).
   * @param args The command and its arguments.
   * @param timeout The deadline in ms, if not the link's.
   * @returns The reply, or `undefined` when Redis is down, failed or was too slow.
   */
  command(
    key: string,
    args: Array<string | Uint8Array>,
    timeout = this.#options.timeout,
  ): Promise<Reply | undefined> {
    return this.#run(key, args, timeout, WATCHED);
  }

  /**
   * Publishes a message to every node's subscriber.
   *
   * @param channel The channel.
   * @param message The message.
   * @returns Whether it was sent.
   */
  async publish(channel: string, message: string): Promise<boolean> {
    const reply = await this.#run(
      undefined,
      ["PUBLISH", channel, message],
      this.#options.timeout,
      UNWATCHED,
    );
    return reply !== undefined;
  }

  /**
   * Sends an operation under a deadline. It fails at once while the link is
   * down or silent (a probe excepted); a watched one that misses its
   * deadline counts toward silence, and one that is answered ends it.
   */
  #run(
    key: string | undefined,
    args: Array<string | Uint8Array>,
    timeout: number,
    mode: Mode,
    script?: string,
  ): Promise<Reply | undefined> {
    if (this.#closed || !this.#connected() || (this.#silent && mode !== PROBE)) {
      this.errors++;
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      const start = performance.now();
      const op: Op = {
        at: start + timeout,
        start,
        mode,
        key,
        args,
        script,
        timer: undefined,
        resolve,
        reply: (reply) => this.#settle(op, reply),
      };
      if (timeout === this.#options.timeout) {
        // The link's own deadline: one timer for all of them, since they are
        // due in the order they were sent.
        this.#due.push(op);
        this.#arm();
      } else {
        op.timer = this.#later(() => this.#expire([op]), timeout);
      }
      this.#send(op);
    });
  }

  #settle(op: Op, reply: RespValue): void {
    const resolve = op.resolve;
    if (resolve === null) return;
    if (
      op.script !== undefined && reply instanceof RespError && reply.message.startsWith("NOSCRIPT")
    ) {
      // Once, with the script's text (Redis was restarted or flushed its scripts).
      op.args[0] = "EVAL";
      op.args[1] = op.script;
      op.script = undefined;
      return this.#send(op);
    }
    op.resolve = null;
    if (op.timer !== undefined) {
      clearTimeout(op.timer);
      this.#timers.delete(op.timer);
    }
    if (reply instanceof RespError) {
      this.errors++;
      if (reply === LATE && op.mode === WATCHED) this.#late(op.start);
      resolve(undefined);
    } else {
      if (op.mode === WATCHED) this.#silentOps = 0;
      resolve(reply as Reply);
    }
  }

  /**
   * Counts a watched operation that missed its deadline on a connected link:
   * a run of them, with no answer between them for five deadlines (at least
   * half a second), makes the link silent, so that requests stop paying a
   * deadline each while Redis is stopped or unreachable.
   */
  #late(start: number): void {
    if (this.#silent || this.#closed || !this.#connected()) return;
    if (this.#silentOps++ === 0) this.#silentSince = start;
    const after = Math.max(5 * this.#options.timeout, 500);
    if (this.#silentOps >= 3 && performance.now() - this.#silentSince >= after) {
      this.#setSilent(true);
    }
  }

  /** Enters or leaves silence; while silent, a probe with back-off looks for an answer. */
  #setSilent(silent: boolean): void {
    if (silent === this.#silent) return;
    this.#silent = silent;
    this.#silentOps = 0;
    if (this.#probe !== undefined) {
      clearTimeout(this.#probe);
      this.#timers.delete(this.#probe);
      this.#probe = undefined;
    }
    if (!silent) return;
    this.#say(
      false,
      `shared cache ${this.name} is down (no answer within ${this.#options.timeout} ms); ` +
        "serving from the local cache and the origin",
    );
    this.#options.onState(false);
    // Probe with back-off as the link reconnects: 50 ms doubling to 2 s.
    const probe = (attempt: number) => {
      this.#probe = undefined;
      void this.#run(undefined, ["PING"], this.#options.timeout, PROBE).then((reply) => {
        if (!this.#silent || this.#closed) return;
        if (reply === undefined) {
          this.#probe = this.#later(() => probe(attempt + 1), backoff(attempt));
          return;
        }
        this.#setSilent(false);
        this.#say(true, `shared cache ${this.name} is up`);
        this.#options.onState(true);
      });
    };
    this.#probe = this.#later(() => probe(0), 50);
  }

  /** Sets the timer for the first pending operation under the link's deadline. */
  #arm(): void {
    if (this.#dueTimer !== undefined) return;
    const due = this.#due;
    while (this.#dueHead < due.length && due[this.#dueHead]!.resolve === null) {
      due[this.#dueHead++] = undefined as never;
    }
    if (this.#dueHead >= due.length) {
      this.#due = [];
      this.#dueHead = 0;
      return;
    }
    if (this.#dueHead > 1024 && this.#dueHead * 2 > due.length) {
      this.#due = due.slice(this.#dueHead);
      this.#dueHead = 0;
    }
    const wait = Math.max(0, Math.ceil(this.#due[this.#dueHead]!.at - performance.now()));
    this.#dueTimer = setTimeout(this.#sweep, wait);
  }

  #sweep = (): void => {
    this.#dueTimer = undefined;
    const now = performance.now();
    const due = this.#due;
    const expired: Op[] = [];
    while (this.#dueHead < due.length && due[this.#dueHead]!.at <= now) {
      const op = due[this.#dueHead]!;
      due[this.#dueHead++] = undefined as never;
      if (op.resolve !== null) expired.push(op);
    }
    this.#expire(expired);
    if (!this.#closed) this.#arm();
  };

  /**
   * Fails operations past their deadline. Timers run before the event loop
   * reads sockets: when the deadline fires on a busy loop, a reply that has
   * already arrived gets one turn of the loop (setImmediate runs after the
   * reads) before the operation gives up. A reply that comes later is dropped.
   */
  #expire(ops: Op[]): void {
    if (ops.length === 0) return;
    setImmediate(() => {
      for (const op of ops) this.#settle(op, LATE);
    });
  }

  /** Closes every connection. */
  close(): Promise<void> {
    this.#closed = true;
    this.#silent = false;
    this.#probe = undefined;
    clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#sub?.close();
    for (const s of this.#servers.values()) s.conn?.close();
    return Promise.resolve();
  }
}

const DOWN = new RespError("down");

/** How an operation bears on silence (see {@linkcode RedisLink}). */
type Mode = 0 | 1 | 2;
/** Counts toward silence (a lookup, a write, a lease). */
const WATCHED: Mode = 0;
/** Skipped while silent, but does not count (a publish). */
const UNWATCHED: Mode = 1;
/** Sent even while silent: it looks for the answer that ends silence. */
const PROBE: Mode = 2;

/** One operation under a deadline; `resolve` is null once it settled. */
interface Op {
  /** When it is due (`performance.now()`). */
  at: number;
  /** When it was sent. */
  start: number;
  mode: Mode;
  key: string | undefined;
  args: Array<string | Uint8Array>;
  /** An EVALSHA's script text, sent once when the server does not know its digest. */
  script: string | undefined;
  /** Its own timer, when its deadline is not the link's. */
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: ((reply: Reply | undefined) => void) | null;
  /** Takes the server's reply (or the failure). */
  reply: (reply: RespValue) => void;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reads a CLUSTER SLOTS reply: each range's first and last slot and its master. */
function slotMap(
  reply: RespValue,
  asked: string,
): Array<{ from: number; to: number; host: string; port: number }> | undefined {
  if (!Array.isArray(reply) || reply.length === 0) return undefined;
  const out = [];
  const decoder = new TextDecoder();
  for (const range of reply) {
    if (!Array.isArray(range)) return undefined;
    const [from, to, master] = range;
    if (typeof from !== "number" || typeof to !== "number" || !Array.isArray(master)) {
      return undefined;
    }
    const [h, port] = master;
    if (!(h instanceof Uint8Array) || typeof port !== "number") return undefined;
    // An empty or unknown endpoint means "the address you reached me at".
    const host = decoder.decode(h);
    out.push({ from, to, host: host === "" || host === "?" ? asked : host, port });
  }
  return out;
}

/**
 * Milliseconds before reconnect attempt `n`: from 50 ms up to 2 s, so a dead Redis costs little.
 *
 * @param n The attempt, from 0.
 * @returns The wait in milliseconds.
 *
 * @example
 * ```ts
 * import { backoff } from "./_redis.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals([0, 1, 2, 10].map(backoff), [50, 100, 200, 2000]);
 * ```
 */
export function backoff(n: number): number {
  return Math.min(50 * 2 ** n, 2000);
}
