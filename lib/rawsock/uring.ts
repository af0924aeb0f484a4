/**
 * TCP listeners and connections on an io_uring ring: the HTTP server core's
 * transport for plain TCP where the kernel has io_uring.
 *
 * Deno's sockets cost two system calls per request and response (one
 * `recvfrom`, one `sendto`) plus the runtime's work for each async op. On a
 * ring, reads and writes are entries in memory shared with the kernel: the
 * requests a batch of handlers makes go in with one `io_uring_enter()`, and
 * their completions are read from memory. A bare keep-alive responder under
 * wrk (1 KiB answers, 64 connections, this VM) spent 12.5–14.5 µs of CPU per
 * request on Deno's sockets and 8.6–9.6 µs on this ring.
 *
 * One ring per thread (each Web Worker has its own), made by
 * {@linkcode prepareUring} or the first {@linkcode listenUring}: both await
 * the notify socket's connect, so a Web Worker that loads this module must
 * set its message handler first (a worker drops the messages that come
 * while its entry module is still loading). Entries go in together once the
 * microtask queue has gone quiet, so every handler that a batch of
 * completions woke adds its reads and writes to one `io_uring_enter()`. The event loop is woken through a Unix socket whose
 * one end is Deno's (watched by its poller like any socket) and whose other
 * end the ring writes: when there is nothing to reap, a poll of the ring's
 * own descriptor is armed, linked to a one-byte send there, so the first
 * completion wakes Deno with no thread in between. Timers, Deno's own
 * sockets and messages go on as usual. Where that socket cannot be made, a
 * wait on a worker thread (a `nonblocking` FFI call, tens of µs) does it.
 *
 * The kernel does a receive's completion work on the ring's thread as soon
 * as the data comes, interrupting it, while its receive path on another
 * core may still hold the socket's lock: with two loops and the client on
 * two cores the loops spent a sixth of their time spinning on that lock,
 * and two ring loops served fewer requests than one. The server core
 * therefore uses the ring, by default, only where one loop serves a port.
 *
 * If the ring fails (an error of `io_uring_enter()` it cannot go on from),
 * every connection on it is closed, its operations and its listeners'
 * `accept()` reject with a {@linkcode UringFailure}, and the thread's later
 * listeners are Deno's; the server core then listens again on Deno's sockets.
 *
 * {@linkcode listenUring} returns `undefined` where the ring cannot be had
 * (not Linux, no FFI permission, io_uring disabled or too old, a host name
 * rather than an address): the caller then uses `Deno.listen`.
 *
 * @module
 */
import { decodeSockaddr, encodeSockaddr, ipFamily } from "../sockaddr.ts";
import { errnoName, strerror } from "./errno.ts";

type Libc = ReturnType<typeof import("./ffi.ts").lib>;

const SYS_IO_URING_SETUP = 425n;
const SYS_IO_URING_ENTER = 426n;
const IORING_SETUP_CQSIZE = 1 << 3;
const IORING_SETUP_SUBMIT_ALL = 1 << 7;
const IORING_FEAT_NODROP = 1 << 1;
const IORING_ENTER_GETEVENTS = 1;
const IORING_OFF_SQES = 0x10000000n;
const OP_NOP = 0;
const OP_POLL_ADD = 6;
const OP_SEND = 26;
const OP_RECV = 27;
const PROT_READ_WRITE = 3;
const MAP_SHARED_POPULATE = 0x8001;
const MSG_NOSIGNAL = 0x4000;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const SOCK_STREAM_CLOEXEC = 1 | SOCK_CLOEXEC;
const EFD_CLOEXEC_NONBLOCK = 0o2000000 | 0o4000;
const POLLIN = 1;
const ECONNABORTED = 103;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_WR = 1;
const SHUT_RDWR = 2;
const ECANCELED = 125;
const EBUSY = 16;
const EAGAIN = 11;
const EINTR = 4;
const AF_UNIX = 1;
const IOSQE_IO_LINK = 1 << 2;
const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

/** Entries of the submission queue; a full queue is submitted before more are added. */
const SQ_ENTRIES = 1024;
/** Entries of the completion queue (the kernel keeps overflow, `IORING_FEAT_NODROP`). */
const CQ_ENTRIES = 8192;
/** Kinds of operation, in the low bits of an entry's `user_data`. */
const READ = 0, WRITE = 1, OTHER = 2;
/** The slot of the ring's own no-op entries. */
const WAKE_SLOT = 0;
/** Microtask hops with no new entry after which a submission goes in. */
const QUIET_HOPS = 8;
/** Most microtask hops a submission waits. */
const MAX_HOPS = 1024;
/** Reaps the submissions of one batch may make before the driver's next turn. */
const FLUSH_REAPS = 4;
/** Buffers this small may live inside V8's heap, which moves them: copied through a fixed one. */
const SMALL = 64;
/** The backlog Deno's listeners use. */
const BACKLOG = 511;

/** What a ring entry's completion goes to. */
interface Owner {
  /** Called with the result and flags of each completion of this owner. */
  complete(kind: number, res: number, flags: number): void;
  /** Called once if the ring fails: end every operation with `err`. */
  fail?(err: UringFailure): void;
}

/**
 * The ring of this thread failed (`io_uring_enter()` returned an error it
 * cannot go on from): the connections on it were closed, its listeners'
 * `accept()` rejects with this, and new listeners go to Deno's sockets.
 */
export class UringFailure extends Error {
  /**
   * @param message What failed.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UringFailure";
  }
}

/**
 * Buffers of operations a failed ring may still hold in the kernel: kept
 * alive for the life of the process, so the kernel never writes into freed memory.
 */
const retained: Uint8Array[] = [];

/** The ring of this thread, or why there is none. */
let shared: Ring | Error | undefined;

function ring(): Ring | undefined {
  if (shared === undefined) {
    try {
      shared = Ring.open();
    } catch (err) {
      shared = err instanceof Error ? err : new Error(String(err));
    }
  }
  return shared instanceof Ring && shared.failed === null ? shared : undefined;
}

/**
 * An io_uring instance: its queues mapped into this process, the owners of
 * its operations by slot, and the loop that reaps completions.
 */
class Ring {
  readonly libc: Libc;
  readonly errno: Int32Array;
  readonly #fd: number;
  readonly #u32: Uint32Array;
  readonly #cq: DataView;
  readonly #sqes: DataView;
  readonly #sqTail: number;
  readonly #sqMask: number;
  readonly #cqHead: number;
  readonly #cqTail: number;
  readonly #cqMask: number;
  readonly #cqes: number;
  #tail: number;
  /** Entries written and not yet submitted. */
  #pending = 0;
  #flushQueued = false;
  /** Microtask hops the queued submission has waited, in all and with nothing new. */
  #hops = 0;
  #quiet = 0;
  #seenPending = -1;
  /** Operations submitted or pending whose last completion has not come. */
  #outstanding = 0;
  #driving = false;
  /** Whether the driver waits on the worker thread now. */
  #waiting = false;
  /** Whether a wake-up no-op is in flight. */
  #wake = false;
  /** Reaps made by submissions since the driver last woke. */
  #flushReaps = 0;
  /** Deno's end of the notify socket, whose readiness wakes the event loop; null: the worker-thread wait. */
  #notify: Deno.UnixConn | null = null;
  /** This end of the notify socket, written by the ring. */
  #notifyFd = -1;
  #notifySlot = -1;
  /** The connect of the notify socket, once begun. */
  #notifyReady: Promise<void> | null = null;
  /** Whether a poll of the ring that writes to the notify socket is armed. */
  #armed = false;
  /** The byte the ring sends (off V8's heap), and where Deno reads them. */
  readonly #byte = new Uint8Array(new ArrayBuffer(8)).fill(1);
  readonly #sink = new Uint8Array(256);
  readonly #owners: (Owner | undefined)[] = [];
  readonly #free: number[] = [];
  /** Why the ring failed, once it has. */
  #failed: UringFailure | null = null;
  /** Woken when the ring fails (listeners waiting for a connection). */
  readonly #onFail = new Set<() => void>();

  private constructor(libc: Libc, errno: Int32Array, fd: number, params: DataView) {
    this.libc = libc;
    this.errno = errno;
    this.#fd = fd;
    const sqEntries = params.getUint32(0, true), cqEntries = params.getUint32(4, true);
    const sq = (i: number) => params.getUint32(40 + i * 4, true);
    const cq = (i: number) => params.getUint32(80 + i * 4, true);
    const size = Math.max(sq(6) + sqEntries * 4, cq(5) + cqEntries * 16);
    const ringPtr = libc.mmap(null, BigInt(size), PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, 0n);
    const sqePtr = libc.mmap(
      null,
      BigInt(sqEntries * 64),
      PROT_READ_WRITE,
      MAP_SHARED_POPULATE,
      fd,
      IORING_OFF_SQES,
    );
    if (ringPtr === null || sqePtr === null || Deno.UnsafePointer.value(ringPtr) === -1n) {
      throw new Error("Cannot map the io_uring queues");
    }
    const memory = Deno.UnsafePointerView.getArrayBuffer(ringPtr, size);
    this.#u32 = new Uint32Array(memory);
    this.#cq = new DataView(memory);
    this.#sqes = new DataView(Deno.UnsafePointerView.getArrayBuffer(sqePtr, sqEntries * 64));
    this.#sqTail = sq(1) / 4;
    this.#sqMask = this.#u32[sq(2) / 4]!;
    const array = sq(6) / 4;
    for (let i = 0; i < sqEntries; i++) this.#u32[array + i] = i;
    this.#cqHead = cq(0) / 4;
    this.#cqTail = cq(1) / 4;
    this.#cqMask = this.#u32[cq(2) / 4]!;
    this.#cqes = cq(5);
    this.#tail = this.#u32[this.#sqTail]!;
    this.attach({
      complete: () => {
        this.#wake = false;
        this.#outstanding--;
      },
    });
  }

  /** Sets up a ring; throws where there can be none. */
  static open(): Ring {
    if (Deno.build.os !== "linux") throw new Error("io_uring is Linux only");
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("io_uring needs FFI permission");
    }
    if (ffi === undefined) throw new Error("io_uring bindings not loaded");
    const libc = ffi.lib();
    const params = new Uint8Array(120);
    const view = new DataView(params.buffer);
    view.setUint32(4, CQ_ENTRIES, true);
    view.setUint32(8, IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL, true);
    const fd = libc.io_uring_setup(SYS_IO_URING_SETUP, SQ_ENTRIES, params);
    if (fd < 0) throw new Error(`io_uring_setup failed: ${errnoName(ffi.errnoCell[0]!)}`);
    if ((view.getUint32(20, true) & IORING_FEAT_NODROP) === 0) {
      libc.close(fd);
      throw new Error("io_uring without IORING_FEAT_NODROP (kernel older than 5.5)");
    }
    ffi.bindFastCalls({ uring: true });
    return new Ring(libc, ffi.errnoCell, fd, view);
  }

  /** Why the ring failed, or `null`. */
  get failed(): UringFailure | null {
    return this.#failed;
  }

  /** Calls `f` if the ring fails; returns the function that stops that. */
  watchFailure(f: () => void): () => void {
    this.#onFail.add(f);
    return () => this.#onFail.delete(f);
  }

  /**
   * @internal Ends the ring: every connection on it is closed and its
   * operations reject with a {@linkcode UringFailure}; later listeners of
   * this thread use Deno's sockets.
   */
  fail(cause: unknown): void {
    if (this.#failed !== null) return;
    const why = cause instanceof Error ? cause.message : String(cause);
    this.#failed = new UringFailure(`io_uring failed: ${why}`, { cause });
    for (const owner of this.#owners) owner?.fail?.(this.#failed);
    for (const f of this.#onFail) f();
    // Ends the driver's wait: a read left pending would keep the process alive.
    try {
      this.#notify?.close();
    } catch {
      // Closed already.
    }
  }

  /** A slot for an owner's operations. */
  attach(owner: Owner): number {
    const slot = this.#free.pop() ?? this.#owners.length;
    this.#owners[slot] = owner;
    return slot;
  }

  /** Frees a slot once its owner has no operation left. */
  detach(slot: number): void {
    this.#owners[slot] = undefined;
    this.#free.push(slot);
  }

  /**
   * Connects the notify socket: a Unix stream socket with Deno's end watched
   * by Deno's event loop and this end written by the ring. When the driver
   * has nothing to reap it arms a poll of the ring's own descriptor linked to
   * a one-byte send here: the first completion wakes the event loop as any
   * socket of Deno's does, with no thread in between.
   */
  connectNotify(): Promise<void> {
    return this.#notifyReady ??= this.#connect();
  }

  async #connect(): Promise<void> {
    const { libc } = this;
    const name = `\0deno-uring-${Deno.pid}-${crypto.randomUUID()}`;
    const path = new TextEncoder().encode(name);
    const sa = new Uint8Array(2 + path.length);
    sa[0] = AF_UNIX;
    sa.set(path, 2);
    const listener = libc.socket(AF_UNIX, SOCK_STREAM_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) return;
    try {
      if (libc.bind(listener, sa, sa.length) !== 0 || libc.listen(listener, 1) !== 0) return;
      let conn: Deno.UnixConn;
      try {
        conn = await Deno.connect({ transport: "unix", path: name });
      } catch {
        return;
      }
      const fd = libc.accept4(listener, null, null, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        conn.close();
        return;
      }
      this.#notify = conn;
      this.#notifyFd = fd;
      this.#notifySlot = this.attach({ complete: () => this.#armed = false });
    } finally {
      libc.close(listener);
    }
  }

  /** How completions wake the event loop. */
  get wake(): "socket" | "thread" {
    return this.#notify !== null ? "socket" : "thread";
  }

  /** Arms the poll of the ring that writes to the notify socket. */
  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    const data = this.#notifySlot * 4 + OTHER;
    this.push(OP_POLL_ADD, this.#fd, 0, 0, POLLIN, data, 0, IOSQE_IO_LINK, false);
    this.push(
      OP_SEND,
      this.#notifyFd,
      address(this.#byte),
      1,
      MSG_NOSIGNAL,
      data,
      0,
      IOSQE_CQE_SKIP_SUCCESS,
      false,
    );
  }

  /**
   * Adds an entry; it goes in with the next submission (a microtask queued
   * now, or sooner when the queue is full).
   */
  push(
    op: number,
    fd: number,
    address: number,
    length: number,
    opFlags: number,
    userData: number,
    ioprio = 0,
    sqeFlags = 0,
    counted = true,
  ): void {
    if (this.#failed !== null) throw this.#failed;
    if (this.#pending >= SQ_ENTRIES && !this.#submitOrFail()) throw this.#failed;
    const v = this.#sqes;
    const o = (this.#tail & this.#sqMask) * 64;
    for (let i = 0; i < 64; i += 8) v.setBigUint64(o + i, 0n);
    v.setUint8(o, op);
    v.setUint8(o + 1, sqeFlags);
    v.setUint16(o + 2, ioprio, true);
    v.setInt32(o + 4, fd, true);
    v.setUint32(o + 16, address >>> 0, true);
    v.setUint32(o + 20, Math.floor(address / 0x100000000), true);
    v.setUint32(o + 24, length, true);
    v.setUint32(o + 28, opFlags, true);
    v.setUint32(o + 32, userData, true);
    this.#tail = (this.#tail + 1) >>> 0;
    Atomics.store(this.#u32, this.#sqTail, this.#tail);
    this.#pending++;
    if (counted && this.#outstanding++ === 0) this.#notify?.ref();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    if (!this.#driving) this.#drive();
  }

  /** Counts a completion that ends an operation (a multishot one ends once). */
  done(): void {
    if (--this.#outstanding > 0) return;
    // Nothing outstanding: the driver's read of the notify socket must not keep the process alive.
    if (this.#notify !== null) {
      this.#notify.unref();
      return;
    }
    // The last completion reaped outside the driver while it waits on the
    // worker thread: a no-op entry wakes that wait, so nothing is left pending.
    if (this.#waiting && !this.#wake) {
      this.#wake = true;
      this.push(OP_NOP, -1, 0, 0, 0, WAKE_SLOT * 4 + OTHER);
    }
  }

  readonly #flush = (): void => {
    // Waits for the microtask queue to go quiet, so that every handler a
    // batch woke adds its entries before the one submission.
    if (this.#pending !== this.#seenPending || this.#quiet < QUIET_HOPS) {
      if (this.#pending !== this.#seenPending) this.#quiet = 0;
      else this.#quiet++;
      this.#seenPending = this.#pending;
      if (++this.#hops < MAX_HOPS) {
        queueMicrotask(this.#flush);
        return;
      }
    }
    this.#hops = 0;
    this.#quiet = 0;
    this.#seenPending = -1;
    this.#flushQueued = false;
    if (!this.#submitOrFail()) return;
    // A send to a socket with room completes within the submission: its
    // completion is taken now, so the writer goes on in this same batch.
    // Bounded, so that a busy ring never holds off timers and other I/O.
    if (this.#flushReaps < FLUSH_REAPS) {
      this.#flushReaps++;
      this.#reap();
    }
  };

  /** Submits the entries written so far, failing the ring on an error; returns whether it went in. */
  #submitOrFail(): boolean {
    if (this.#failed !== null) return false;
    try {
      this.#submit();
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** Submits the entries written so far; never waits. */
  #submit(): void {
    while (this.#pending > 0) {
      const n = this.libc.io_uring_enter(
        SYS_IO_URING_ENTER,
        this.#fd,
        this.#pending,
        0,
        0,
        null,
        0n,
      );
      if (n > 0) {
        this.#pending -= n;
        continue;
      }
      const errno = this.errno[0]!;
      if (n < 0 && errno === EINTR) continue;
      // EBUSY, EAGAIN: completions the kernel holds over; the reaper takes them, then retries.
      if (n < 0 && (errno === EBUSY || errno === EAGAIN)) {
        this.#reap();
        continue;
      }
      throw new Error(`io_uring_enter failed: ${errnoName(errno)}`);
    }
  }

  /** Takes every completion there is; returns how many. */
  #reap(): number {
    const u32 = this.#u32, cq = this.#cq;
    let head = u32[this.#cqHead]!;
    const tail = Atomics.load(u32, this.#cqTail);
    const count = (tail - head) >>> 0;
    while (head !== tail) {
      const o = this.#cqes + (head & this.#cqMask) * 16;
      const data = cq.getUint32(o, true);
      const res = cq.getInt32(o + 8, true);
      const flags = cq.getUint32(o + 12, true);
      head = (head + 1) >>> 0;
      // Released before the owner runs: it may push entries, which may reap.
      Atomics.store(u32, this.#cqHead, head);
      this.#owners[data >>> 2]?.complete(data & 3, res, flags);
    }
    return count;
  }

  /**
   * Reaps while operations are outstanding, each time the event loop is
   * woken through the notify socket (or, without one, by the wait on a
   * worker thread).
   */
  async #drive(): Promise<void> {
    this.#driving = true;
    try {
      // Made by prepareUring() or listenUring() before, as a rule.
      await this.connectNotify();
      // Entries are submitted by the flush; the driver only waits and reaps.
      while (this.#outstanding > 0 && this.#failed === null) {
        if (this.#notify !== null) {
          // The handlers the last reap woke run (and submit) meanwhile; the
          // read ends at the first completion after.
          this.#arm();
          await this.#notify.read(this.#sink);
        } else {
          if (this.#pending > 0 && !this.#submitOrFail()) break;
          this.#waiting = true;
          await this.libc.io_uring_wait(
            SYS_IO_URING_ENTER,
            this.#fd,
            0,
            1,
            IORING_ENTER_GETEVENTS,
            null,
            0n,
          );
          this.#waiting = false;
        }
        this.#flushReaps = 0;
        this.#reap();
      }
    } catch (err) {
      // The notify socket broke, or an entry could not be pushed: nothing
      // would wake this ring again.
      this.fail(err);
    } finally {
      this.#waiting = false;
      this.#driving = false;
    }
  }
}

/**
 * The bindings, loaded by the first {@linkcode listenUring} or
 * {@linkcode prepareUring}: importing this module never loads libc, so it
 * asks for no FFI permission.
 */
let ffi: typeof import("./ffi.ts") | undefined;

async function loadBindings(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return false;
  ffi ??= await import("./ffi.ts");
  return true;
}

/** An error as Deno's sockets report it, for an errno from a completion. */
function socketError(errno: number, what: string): Error {
  const text = `${what}: ${strerror(errno)} (${errnoName(errno)})`;
  switch (errno) {
    case 104:
      return new Deno.errors.ConnectionReset(text);
    case 32:
      return new Deno.errors.BrokenPipe(text);
    case 110:
      return new Deno.errors.TimedOut(text);
    case ECANCELED:
      return new Deno.errors.Interrupted(text);
    default:
      return new Error(text);
  }
}

/** The address of `buf`'s first byte. */
function address(buf: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** Options of {@linkcode listenUring}, as `Deno.listen`'s. */
export interface UringListenOptions {
  /** An IPv4 or IPv6 address (a name falls back to `Deno.listen`). Default `0.0.0.0`. */
  hostname?: string;
  /** The port; 0 (the default) picks a free one. */
  port?: number;
  /** Set `SO_REUSEPORT`, so several loops share the port. */
  reusePort?: boolean;
}

/**
 * Opens a TCP listener on this thread's io_uring ring, or returns
 * `undefined` where there is none (the caller then uses `Deno.listen`).
 * Connections it accepts have `TCP_NODELAY` set.
 *
 * @param options Address, port, `SO_REUSEPORT`.
 * @returns The listener, or `undefined`.
 * @throws {Deno.errors.AddrInUse} and the like, as `Deno.listen` does.
 *
 * @example
 * ```ts ignore
 * import { listenUring } from "./uring.ts";
 * const listener = await listenUring({ hostname: "127.0.0.1", port: 0 }) ??
 *   Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * listener.close();
 * ```
 */
export async function listenUring(
  options: UringListenOptions,
): Promise<UringListener | undefined> {
  const hostname = options.hostname ?? "0.0.0.0";
  const family = ipFamily(hostname);
  if (family === undefined || !(await loadBindings())) return undefined;
  const r = ring();
  if (r === undefined) return undefined;
  await r.connectNotify();
  return UringListener.open(r, family, hostname, options);
}

/**
 * Like {@linkcode listenUring}, for a caller that cannot wait: it works once
 * {@linkcode prepareUring} has resolved in this thread.
 *
 * @param options Address, port, `SO_REUSEPORT`.
 * @returns The listener, or `undefined`.
 */
export function listenUringSync(options: UringListenOptions): UringListener | undefined {
  const hostname = options.hostname ?? "0.0.0.0";
  const family = ipFamily(hostname);
  if (family === undefined || ffi === undefined) return undefined;
  const r = ring();
  if (r === undefined) return undefined;
  return UringListener.open(r, family, hostname, options);
}

/**
 * Loads the bindings and sets up this thread's ring, so that
 * {@linkcode listenUringSync} can open listeners on it.
 *
 * @returns Whether there is a ring.
 */
export async function prepareUring(): Promise<boolean> {
  if (!(await loadBindings())) return false;
  const r = ring();
  await r?.connectNotify();
  return r !== undefined;
}

/**
 * Fails this thread's ring as an error of `io_uring_enter()` would: for
 * tests of what the connections and listeners on it, and the server core
 * above them, do then. The ring cannot be used again in this thread.
 *
 * @param reason The error's message.
 * @returns Whether there was a ring to fail.
 */
export function failUringForTesting(reason: string): boolean {
  if (!(shared instanceof Ring)) return false;
  shared.fail(new Error(reason));
  return true;
}

/**
 * How this thread's ring wakes the event loop, once {@linkcode prepareUring}
 * or {@linkcode listenUring} has set it up: `"socket"` through the notify
 * socket, `"thread"` through a wait on a worker thread (where a Unix socket
 * cannot be made), `undefined` without a ring.
 *
 * @returns The way, or `undefined`.
 */
export function uringWake(): "socket" | "thread" | undefined {
  return shared instanceof Ring ? shared.wake : undefined;
}

/**
 * A TCP listener whose connections are served on the ring; the subset of
 * `Deno.Listener` servers use. Accepting is not a ring operation: a pending
 * accept on the ring would hold the listening socket, which then outlives
 * the process by the ring's asynchronous teardown after a `kill -9` (a few
 * milliseconds in which clients connect to a dead server and a restarted one
 * finds the port taken). `accept4()` runs on this thread until the backlog
 * is empty, and `poll()` on a worker thread waits for the next connection.
 */
export class UringListener implements AsyncIterable<UringConn> {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  readonly #ring: Ring;
  readonly #fd: number;
  /** An eventfd that wakes the poll when the listener closes. */
  readonly #wake: number;
  /** `struct pollfd[2]`: the listener and the eventfd. */
  readonly #pollfds = new Uint8Array(16);
  #polling: Promise<number> | null = null;
  #closed = false;
  /** Stops waking the poll when the ring fails. */
  readonly #unwatch: () => void;

  private constructor(r: Ring, fd: number, wake: number, addr: Deno.NetAddr) {
    this.#ring = r;
    this.#fd = fd;
    this.#wake = wake;
    this.addr = addr;
    this.#unwatch = r.watchFailure(() => {
      if (this.#polling !== null) this.#signal();
    });
    const v = new DataView(this.#pollfds.buffer);
    v.setInt32(0, fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt32(8, wake, true);
    v.setInt16(12, POLLIN, true);
  }

  /** @internal Binds and listens. */
  static open(
    r: Ring,
    family: 4 | 6,
    hostname: string,
    options: UringListenOptions,
  ): UringListener {
    const { libc, errno } = r;
    const fd = libc.socket(family === 4 ? 2 : 10, SOCK_STREAM_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw socketError(errno[0]!, "socket()");
    const one = new Uint8Array(new Int32Array([1]).buffer);
    try {
      libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
      if (options.reusePort) libc.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4);
      // Copied by Linux to every accepted connection.
      libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
      const sa = encodeSockaddr({ family, address: hostname, port: options.port ?? 0 });
      if (libc.bind(fd, sa, sa.length) !== 0) {
        const e = errno[0]!;
        throw e === 98
          ? new Deno.errors.AddrInUse(
            `Address already in use (os error 98): ${hostname}:${options.port}`,
          )
          : e === 99
          ? new Deno.errors.AddrNotAvailable(`Cannot assign requested address: ${hostname}`)
          : socketError(e, "bind()");
      }
      if (libc.listen(fd, BACKLOG) !== 0) throw socketError(errno[0]!, "listen()");
      const wake = libc.eventfd(0, EFD_CLOEXEC_NONBLOCK);
      if (wake < 0) throw socketError(errno[0]!, "eventfd()");
      const local = sockName(libc, fd, "getsockname");
      return new UringListener(r, fd, wake, {
        transport: "tcp",
        hostname: local?.address ?? hostname,
        port: local?.port ?? options.port ?? 0,
      });
    } catch (err) {
      libc.close(fd);
      throw err;
    }
  }

  /**
   * The next connection.
   *
   * @returns The connection; rejects with `Deno.errors.BadResource` once
   *   closed, with the error of `accept4()` (EMFILE, say), after which the
   *   next call accepts again, or with a {@linkcode UringFailure} once the
   *   ring has failed (the listener is then closed, its port free to listen
   *   on again).
   */
  async accept(): Promise<UringConn> {
    const { libc, errno } = this.#ring;
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("Listener has been closed");
      const failed = this.#ring.failed;
      if (failed !== null) {
        this.#closed = true;
        this.#release();
        throw failed;
      }
      const fd = libc.accept4(this.#fd, null, null, SOCK_CLOEXEC);
      if (fd >= 0) return new UringConn(this.#ring, fd, this.addr);
      const e = errno[0]!;
      if (e === EINTR || e === ECONNABORTED) continue;
      if (e !== EAGAIN) throw socketError(e, "accept()");
      this.#polling = libc.poll_wait(this.#pollfds, 2n, -1);
      await this.#polling;
      this.#polling = null;
      if (this.#closed) this.#release();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<UringConn> {
    for (;;) {
      try {
        yield await this.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource) return;
        throw err;
      }
    }
  }

  /** Stops accepting; connections already accepted stay open. */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Listener has been closed");
    this.#closed = true;
    // The descriptors are closed once the poll has returned (closing one does not end a poll).
    if (this.#polling !== null) this.#signal();
    else this.#release();
  }

  /** Ends the poll on the worker thread. */
  #signal(): void {
    this.#ring.libc.write(this.#wake, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
  }

  #release(): void {
    this.#unwatch();
    this.#ring.libc.close(this.#fd);
    this.#ring.libc.close(this.#wake);
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }
}

/** A sockaddr's decoded address from getsockname() or getpeername(). */
function sockName(
  libc: Libc,
  fd: number,
  call: "getsockname" | "getpeername",
): { address: string; port: number } | undefined {
  const sa = new Uint8Array(28);
  const len = new Uint8Array(new Uint32Array([28]).buffer);
  if (libc[call](fd, sa, len) !== 0) return undefined;
  return decodeSockaddr(sa, new Uint32Array(len.buffer)[0]);
}

/** A pending read or write. */
interface Pending {
  buf: Uint8Array;
  /** The caller's buffer when `buf` is the fixed copy of a small one. */
  into: Uint8Array | null;
  resolve(n: number): void;
  reject(err: Error): void;
}

/** A TCP connection on the ring; the subset of `Deno.Conn` servers use. */
export class UringConn implements Owner {
  /** This end's address. */
  readonly localAddr: Deno.NetAddr;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  readonly #ring: Ring;
  readonly #fd: number;
  readonly #slot: number;
  #read: Pending | null = null;
  #write: Pending | null = null;
  /** Operations pushed whose completion has not come. */
  #inFlight = 0;
  #closed = false;
  /** Whether the ring failed under this connection (its descriptor is closed). */
  #failed = false;
  /** Off V8's heap: small reads go through the first half, small writes the second. */
  #small: Uint8Array | null = null;

  /** @internal Made by {@linkcode UringListener}. */
  constructor(r: Ring, fd: number, local: Deno.NetAddr) {
    this.#ring = r;
    this.#fd = fd;
    this.#slot = r.attach(this);
    const peer = sockName(r.libc, fd, "getpeername");
    this.remoteAddr = { transport: "tcp", hostname: peer?.address ?? "", port: peer?.port ?? 0 };
    this.localAddr = local;
  }

  #fixed(buf: Uint8Array, kind: number): Uint8Array {
    this.#small ??= new Uint8Array(new ArrayBuffer(2 * SMALL));
    const at = kind === READ ? 0 : SMALL;
    return this.#small.subarray(at, at + buf.length);
  }

  /**
   * Reads into `p`.
   *
   * @param p Where to read.
   * @returns The count, or `null` at the end of input.
   */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    if (this.#read !== null) return Promise.reject(new Deno.errors.Busy("A read is in progress"));
    if (p.length === 0) return Promise.resolve(0);
    const small = p.length <= SMALL;
    const buf = small ? this.#fixed(p, READ) : p;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#read = { buf, into: small ? p : null, resolve, reject };
    this.#inFlight++;
    try {
      this.#ring.push(OP_RECV, this.#fd, address(buf), buf.length, 0, this.#slot * 4 + READ);
    } catch {
      // The ring failed: fail() has rejected this read.
    }
    return promise.then(eofAsNull);
  }

  /**
   * Writes some of `p`.
   *
   * @param p The bytes.
   * @returns How many the kernel took.
   */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    if (this.#write !== null) return Promise.reject(new Deno.errors.Busy("A write is in progress"));
    if (p.length === 0) return Promise.resolve(0);
    let buf = p;
    if (p.length <= SMALL) {
      buf = this.#fixed(p, WRITE);
      buf.set(p);
    }
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#write = { buf, into: null, resolve, reject };
    this.#inFlight++;
    try {
      this.#ring.push(
        OP_SEND,
        this.#fd,
        address(buf),
        buf.length,
        MSG_NOSIGNAL,
        this.#slot * 4 + WRITE,
      );
    } catch {
      // The ring failed: fail() has rejected this write.
    }
    return promise;
  }

  /** @internal A completion of this connection's read or write. */
  complete(kind: number, res: number): void {
    if (this.#failed) return;
    this.#ring.done();
    this.#inFlight--;
    const op = kind === READ ? this.#read : kind === WRITE ? this.#write : null;
    if (kind === READ) this.#read = null;
    else if (kind === WRITE) this.#write = null;
    if (op !== null) {
      if (this.#closed) op.reject(new Deno.errors.Interrupted("operation canceled"));
      else if (res < 0) op.reject(socketError(-res, kind === READ ? "recv()" : "send()"));
      else {
        if (op.into !== null && res > 0) op.into.set(op.buf.subarray(0, res));
        op.resolve(res);
      }
    }
    if (this.#closed && this.#inFlight === 0) this.#release();
  }

  /**
   * @internal The ring failed: the operations in flight reject with `err`
   * (their buffers kept alive, as the kernel may still hold them), and the
   * connection is closed.
   */
  fail(err: UringFailure): void {
    if (this.#failed) return;
    this.#failed = true;
    for (const op of [this.#read, this.#write]) {
      if (op === null) continue;
      retained.push(op.buf);
      op.reject(err);
    }
    this.#read = this.#write = null;
    this.#closed = true;
    this.#ring.libc.shutdown(this.#fd, SHUT_RDWR);
    this.#ring.libc.close(this.#fd);
  }

  /** Shuts the write side: the peer reads the end of input. */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("Bad resource ID"));
    this.#ring.libc.shutdown(this.#fd, SHUT_WR);
    return Promise.resolve();
  }

  /**
   * Closes the connection: a read or write in progress rejects with
   * `Deno.errors.Interrupted`, and the descriptor is closed once the kernel
   * has finished with it.
   */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("Bad resource ID");
    this.#closed = true;
    if (this.#inFlight === 0) {
      this.#release();
      return;
    }
    // Ends the operations in flight at once; the descriptor is closed when the last completes.
    this.#ring.libc.shutdown(this.#fd, SHUT_RDWR);
  }

  #release(): void {
    this.#ring.libc.close(this.#fd);
    this.#ring.detach(this.#slot);
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }
}

function eofAsNull(n: number): number | null {
  return n === 0 ? null : n;
}
