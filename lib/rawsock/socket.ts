/**
 * Sockets over libc descriptors: {@linkcode openSocket} and
 * {@linkcode Socket}.
 *
 * - Waiting never blocks the event loop: a receive first tries `recvmsg` with
 *   `MSG_DONTWAIT`, and only when nothing is queued waits in `poll()` declared
 *   `nonblocking: true` (on a worker thread), together with an `eventfd` that
 *   `close()` signals so a pending wait ends at once.
 * - Receive times come from the kernel (`SO_TIMESTAMPNS`), so a busy event
 *   loop does not inflate a measured round trip.
 * - ICMP errors for datagram sockets are read from the error queue
 *   (`IP_RECVERR` / `IPV6_RECVERR`, `MSG_ERRQUEUE`), which is what lets
 *   unprivileged ping and traceroute work.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  decodeSockaddr,
  encodeSockaddr,
  type Family,
  SOCKADDR_STORAGE_SIZE,
  type SocketAddress,
} from "../sockaddr.ts";
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  ICMP6_FILTER,
  ICMP_FILTER,
  IP_RECVERR,
  IP_RECVTTL,
  IP_TTL,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV6_HOPLIMIT,
  IPV6_RECVERR,
  IPV6_RECVHOPLIMIT,
  IPV6_UNICAST_HOPS,
  MSG_DONTWAIT,
  MSG_ERRQUEUE,
  MSG_TRUNC,
  POLLERR,
  POLLIN,
  SO_ATTACH_FILTER,
  SO_BINDTODEVICE,
  SO_RCVBUF,
  SO_REUSEPORT,
  SO_TIMESTAMPNS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_RAW,
  SOL_SOCKET,
} from "./constants.ts";
import { check, EAGAIN, EINTR, errnoName, SocketError } from "./errno.ts";
import { privilegeFix } from "../privilege.ts";
import { cString, errnoCell, int32, lib, pointerValue } from "./ffi.ts";
import { inNetns } from "./netns.ts";

/** The kinds of socket this module opens. */
export type SocketKind = "icmp" | "icmp-raw" | "tcp-raw" | "udp-raw" | "udp";

/** Options for {@linkcode openSocket}. */
export interface OpenOptions {
  /** The kind of socket: an ICMP datagram socket ("ping socket", no root needed where `ping_group_range` allows), raw ICMP, raw TCP or UDP (IP header supplied by the kernel), or a plain UDP socket. */
  kind: SocketKind;
  /** The IP version. */
  family: Family;
  /**
   * Queue ICMP errors about this socket's packets (`IP_RECVERR` /
   * `IPV6_RECVERR`) so {@linkcode Socket.receiveError} and
   * {@linkcode Socket.receive} report them.
   * @default {true for "icmp" and "udp", false for raw kinds (they receive ICMP errors as data)}
   */
  receiveErrors?: boolean;
  /** Ask the kernel for receive timestamps (`SO_TIMESTAMPNS`). @default {true} */
  timestamps?: boolean;
  /** Report the TTL / hop limit of received packets. @default {true} */
  receiveTtl?: boolean;
  /** Create the socket inside this network namespace (a name under `/run/netns`, as `ip netns` makes). @default {undefined (the current one)} */
  netns?: string;
  /** Receive buffer size in bytes (`SO_RCVBUF`). @default {undefined (the system default)} */
  receiveBufferSize?: number;
  /**
   * Let several sockets bind the same address and port (`SO_REUSEPORT`):
   * the kernel then spreads incoming datagrams over them by a hash of the
   * sender's address and port, so one sender always reaches the same socket.
   * @default {false}
   */
  reusePort?: boolean;
}

/** A datagram received by {@linkcode Socket.receive}. */
export interface Datagram {
  /** Discriminates data from an error report. */
  type: "data";
  /** The bytes. For raw IPv4 sockets they start with the IP header. */
  data: Uint8Array;
  /** The sender. */
  from: SocketAddress;
  /** The kernel's receive time (`SO_TIMESTAMPNS`, CLOCK_REALTIME) in nanoseconds, when available. */
  timestampNs?: bigint;
  /** The TTL (IPv4) or hop limit (IPv6) the packet arrived with, when available. */
  ttl?: number;
  /** The datagram was larger than the receive buffer and was cut. */
  truncated: boolean;
}

/**
 * What {@linkcode Socket.receiveInto} learned about a datagram. One object is
 * meant to be reused for every receive, so a hot loop allocates nothing.
 *
 * @example
 * ```ts
 * import { DatagramInfo } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const info = new DatagramInfo();
 * assertEquals(info.length, -1);
 * assertEquals(info.ttl, -1);
 * ```
 */
export class DatagramInfo {
  /** The bytes written into the buffer (at most its size), or -1 before any receive. */
  length: number = -1;
  /** The datagram was longer than the buffer and was cut. */
  truncated: boolean = false;
  /** The kernel's receive time (`SO_TIMESTAMPNS`, CLOCK_REALTIME): whole seconds, or -1 when none came. */
  timestampSec: number = -1;
  /** The nanoseconds part of the receive time. */
  timestampNsec: number = 0;
  /** The TTL (IPv4) or hop limit (IPv6) the packet arrived with, or -1 when unknown. */
  ttl: number = -1;
}

/** Where an error-queue report came from (`SO_EE_ORIGIN_*`). */
export type ErrorOrigin = "none" | "local" | "icmp" | "icmp6" | "txstatus" | "zerocopy";

const ORIGINS: ErrorOrigin[] = ["none", "local", "icmp", "icmp6", "txstatus", "zerocopy"];

/** An error report from the socket's error queue (`struct sock_extended_err`). */
export interface ErrorReport {
  /** Discriminates an error report from data. */
  type: "error";
  /** The errno the error maps to, e.g. 113 (EHOSTUNREACH) for a host unreachable. */
  errno: number;
  /** The errno name. */
  code: string;
  /** Who produced the error. */
  origin: ErrorOrigin;
  /** The ICMP type (for ICMP origins). */
  icmpType: number;
  /** The ICMP code (for ICMP origins). */
  icmpCode: number;
  /** `ee_info`: the MTU for "fragmentation needed" / "packet too big". */
  info: number;
  /** `ee_data`. */
  data: number;
  /** The node that sent the ICMP error (`SO_EE_OFFENDER`). */
  offender?: SocketAddress;
  /** The quoted original: the payload of the packet that caused the error, as this socket sent it (the ICMP message for ICMP sockets, the UDP payload for UDP ones). */
  original: Uint8Array;
  /** The destination the original packet was sent to (the `msg_name` of the report). */
  destination?: SocketAddress;
  /** The kernel's time of the error in nanoseconds, when available. */
  timestampNs?: bigint;
}

/** Options for {@linkcode Socket.receive}. */
export interface ReceiveOptions {
  /** How long to wait, in milliseconds. @default {Infinity} */
  timeoutMs?: number;
  /** Stop waiting when aborted (the promise then resolves to `null`). @default {undefined} */
  signal?: AbortSignal;
}

const MAX_DATAGRAM = 65535;
const CONTROL_SIZE = 512;

/**
 * One classic BPF instruction (`struct sock_filter`, see
 * {@linkcode Socket.attachFilter}): the opcode, the jumps when a comparison
 * holds and when it fails (counted in instructions after this one), and
 * the constant.
 */
export type BpfInstruction = readonly [code: number, jt: number, jf: number, k: number];

/**
 * A socket's own `struct msghdr`, aimed at a caller's buffer, for a batched
 * loop in this folder that calls `recvmsg()` itself (see `echo.ts`): from
 * {@linkcode Socket.directReceive}. Call {@linkcode DirectReceive.rearm}
 * before each call; afterwards, read the details with
 * {@linkcode Socket.readControl}, or just the receive time with
 * {@linkcode DirectReceive.timestampUs}.
 */
export interface DirectReceive {
  /** The `struct msghdr` to pass to `recvmsg`. */
  readonly message: Uint8Array;
  /** Sets the header's lengths and flags, which the kernel overwrites, back for the next call. */
  rearm(): void;
  /**
   * The kernel's receive time (`SO_TIMESTAMPNS`) of the datagram last
   * received, in whole microseconds since the epoch, when it came first in
   * the control data (the kernel puts it ahead of the others); otherwise
   * -1: read it with {@linkcode Socket.readControl} then.
   */
  timestampUs(): number;
}

/**
 * Opens a socket.
 *
 * @param options The kind, the family and the receive options.
 * @returns The socket; close it with `close()` or `using`.
 * @throws {SocketError} When the kernel refuses; EPERM/EACCES explain how to get the permission.
 *
 * @example A ping socket to the loopback address
 * ```ts ignore
 * import { openSocket } from "./mod.ts";
 * using sock = openSocket({ kind: "icmp", family: 6 });
 * ```
 */
export function openSocket(options: OpenOptions): Socket {
  const c = lib();
  const { kind, family } = options;
  if (family !== 4 && family !== 6) {
    throw new TypeError(`Invalid address family ${String(family)}: expected 4 or 6`);
  }
  const domain = family === 4 ? AF_INET : AF_INET6;
  const icmp = family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  const [type, protocol] = ({
    "icmp": [SOCK_DGRAM, icmp],
    "icmp-raw": [SOCK_RAW, icmp],
    "tcp-raw": [SOCK_RAW, IPPROTO_TCP],
    "udp-raw": [SOCK_RAW, IPPROTO_UDP],
    "udp": [SOCK_DGRAM, IPPROTO_UDP],
  } as const)[kind] ?? [undefined, undefined];
  if (type === undefined) throw new TypeError(`Invalid socket kind "${kind}"`);
  const create = () => c.socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  const fd = options.netns === undefined ? create() : inNetns(options.netns, create);
  if (fd < 0) {
    const e = errnoCell[0]!;
    // The same advice the tools print: widen ping_group_range or setcap, whichever applies.
    const hint = e === 1 || e === 13 ? privilegeFix(kind === "icmp" ? "icmp" : "raw") : undefined;
    throw new SocketError(e, "socket", hint);
  }
  const sock = new Socket(fd, family, kind);
  try {
    const raw = kind !== "icmp" && kind !== "udp";
    if (options.timestamps ?? true) sock.setOption(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    if (options.receiveTtl ?? true) {
      if (family === 4) sock.setOption(IPPROTO_IP, IP_RECVTTL, 1);
      else sock.setOption(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
    }
    if (options.receiveErrors ?? !raw) {
      sock.errorQueue = true;
      if (family === 4) sock.setOption(IPPROTO_IP, IP_RECVERR, 1);
      else sock.setOption(IPPROTO_IPV6, IPV6_RECVERR, 1);
    }
    if (options.receiveBufferSize !== undefined) {
      sock.setOption(SOL_SOCKET, SO_RCVBUF, options.receiveBufferSize);
    }
    if (options.reusePort) sock.setOption(SOL_SOCKET, SO_REUSEPORT, 1);
  } catch (err) {
    sock.close();
    throw err;
  }
  return sock;
}

/**
 * A socket over a libc file descriptor. Close it once done; `close()` may be
 * called twice, and `using` closes it.
 */
export class Socket implements Disposable {
  /** The IP version. */
  readonly family: Family;
  /** The kind of socket. */
  readonly kind: SocketKind;
  /** Whether ICMP errors are queued for this socket (set by {@linkcode openSocket}). */
  errorQueue = false;
  #fd: number;
  #wakeFd = -1;
  #pending: Promise<number> | undefined;
  // Buffers reused by every receive: kept referenced for as long as the socket lives.
  #data = new Uint8Array(MAX_DATAGRAM);
  #name = new Uint8Array(SOCKADDR_STORAGE_SIZE);
  #control = new Uint8Array(CONTROL_SIZE);
  #iov = new Uint8Array(16);
  #msg = new Uint8Array(56);
  #msgView = new DataView(this.#msg.buffer);
  #controlView = new DataView(this.#control.buffer);
  #direct: DirectReceive | undefined;
  /** errno after the last #recvmsg(), read there at once. */
  #recvErrno = 0;
  #pollFds = new Uint8Array(16);
  #pollView = new DataView(this.#pollFds.buffer);
  #readyFds = new Uint8Array(8);
  #readyView = new DataView(this.#readyFds.buffer);
  // waitSync()'s timeout, a struct timespec.
  #waitTimeout = new Uint8Array(16);
  #waitView = new DataView(this.#waitTimeout.buffer);
  #wakeBuf = new Uint8Array(8);
  #closedFd = -1;
  // The length last passed to sendto() as a BigInt: a usize parameter takes
  // V8's fast path only as a BigInt, and converting each time allocates.
  #sendLength = 0;
  #sendLengthBig = 0n;
  #sendAddress: SocketAddress | undefined;
  #sendSockaddr: Uint8Array | null = null;
  // The caller's buffer last given to receiveInto() and its iovec, whose
  // address (Deno.UnsafePointer.of costs about 1.5 µs) is kept with it.
  #intoBuffer: Uint8Array | undefined;
  #intoIov = new Uint8Array(16);
  #intoIovPointer: bigint;
  // A one-entry cache for lastSender(): the sockaddr bytes and their decoding.
  #senderName = new Uint8Array(SOCKADDR_STORAGE_SIZE);
  #senderLength = -1;
  #sender: SocketAddress | undefined;
  #iovPointer: bigint;

  /**
   * Wraps an open descriptor; use {@linkcode openSocket} instead.
   *
   * @param fd The descriptor, already non-blocking.
   * @param family The IP version.
   * @param kind The kind of socket.
   */
  constructor(fd: number, family: Family, kind: SocketKind) {
    this.#fd = fd;
    this.family = family;
    this.kind = kind;
    const iov = new DataView(this.#iov.buffer);
    iov.setBigUint64(0, pointerValue(this.#data), true);
    iov.setBigUint64(8, BigInt(this.#data.length), true);
    // The msghdr's pointers are set once: ArrayBuffer backing stores never
    // move, and the buffers live as long as the socket.
    this.#iovPointer = pointerValue(this.#iov);
    this.#intoIovPointer = pointerValue(this.#intoIov);
    const m = this.#msgView;
    m.setBigUint64(0, pointerValue(this.#name), true);
    m.setBigUint64(16, this.#iovPointer, true);
    m.setBigUint64(24, 1n, true);
    m.setBigUint64(32, pointerValue(this.#control), true);
    this.#readyView.setInt16(4, POLLIN, true);
  }

  /** The file descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  #open(syscall: string): number {
    if (this.#fd < 0) throw new SocketError(9, syscall, "the socket is closed");
    return this.#fd;
  }

  /**
   * Sets an integer or byte-string socket option (`setsockopt`).
   *
   * @param level The option level (`SOL_SOCKET`, `IPPROTO_IP`, …).
   * @param name The option name.
   * @param value An integer, or the raw option bytes.
   */
  setOption(level: number, name: number, value: number | Uint8Array): void {
    const fd = this.#open("setsockopt");
    const buf = typeof value === "number" ? int32(value) : value;
    check(lib().setsockopt(fd, level, name, buf, buf.length), errnoCell[0]!, "setsockopt");
  }

  /**
   * Reads an integer socket option (`getsockopt`).
   *
   * @param level The option level.
   * @param name The option name.
   * @returns The option's value.
   */
  getOption(level: number, name: number): number {
    const fd = this.#open("getsockopt");
    const buf = new Uint8Array(4);
    const len = int32(4);
    check(lib().getsockopt(fd, level, name, buf, len), errnoCell[0]!, "getsockopt");
    return new DataView(buf.buffer).getInt32(0, true);
  }

  /**
   * Sets the TTL of outgoing packets; on an IPv6 socket, the hop limit.
   *
   * @param ttl 1 to 255.
   */
  setTtl(ttl: number): void {
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) {
      throw new RangeError(`Invalid TTL ${ttl}: must be an integer from 1 to 255`);
    }
    if (this.family === 6) this.setHopLimit(ttl);
    else this.setOption(IPPROTO_IP, IP_TTL, ttl);
  }

  /**
   * Sets the hop limit of outgoing IPv6 packets; on an IPv4 socket, the TTL.
   *
   * @param hops 1 to 255.
   */
  setHopLimit(hops: number): void {
    if (!Number.isInteger(hops) || hops < 1 || hops > 255) {
      throw new RangeError(`Invalid hop limit ${hops}: must be an integer from 1 to 255`);
    }
    if (this.family === 4) this.setOption(IPPROTO_IP, IP_TTL, hops);
    else this.setOption(IPPROTO_IPV6, IPV6_UNICAST_HOPS, hops);
  }

  /**
   * Lets only the given ICMP types reach a raw ICMP socket (`ICMP_FILTER`,
   * `ICMP6_FILTER`), as iputils does: the kernel then drops, for example, the
   * copies of our own echo requests that loopback would otherwise deliver.
   *
   * @param types The ICMP (or ICMPv6) types to receive.
   */
  setIcmpFilter(types: readonly number[]): void {
    if (this.kind !== "icmp-raw") {
      throw new TypeError(`An ICMP filter needs a raw ICMP socket, not "${this.kind}"`);
    }
    if (this.family === 4) {
      // A set bit blocks that type (types 0–31 only).
      let mask = 0xffffffff;
      for (const t of types) if (t < 32) mask &= ~(1 << t);
      const buf = new Uint8Array(4);
      new DataView(buf.buffer).setUint32(0, mask >>> 0, true);
      this.setOption(SOL_RAW, ICMP_FILTER, buf);
    } else {
      const buf = new Uint8Array(32).fill(0xff);
      for (const t of types) buf[t >> 3] = (buf[t >> 3] ?? 0) & ~(1 << (t & 7));
      this.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, buf);
    }
  }

  /**
   * Binds the socket to a local address (`bind`).
   *
   * @param address The local address; port 0 lets the kernel choose.
   */
  bind(address: SocketAddress): void {
    const fd = this.#open("bind");
    const sa = this.#sockaddr(address);
    check(lib().bind(fd, sa, sa.length), errnoCell[0]!, "bind");
  }

  /**
   * Restricts the socket to one network interface (`SO_BINDTODEVICE`).
   *
   * @param name The interface name.
   */
  bindToDevice(name: string): void {
    this.setOption(SOL_SOCKET, SO_BINDTODEVICE, cString(name));
  }

  /**
   * Connects the socket (`connect`): sends default to that peer, and for
   * datagram sockets only its packets are received.
   *
   * @param address The peer.
   */
  connect(address: SocketAddress): void {
    const fd = this.#open("connect");
    const sa = this.#sockaddr(address);
    check(lib().connect(fd, sa, sa.length), errnoCell[0]!, "connect");
  }

  /**
   * The local address (`getsockname`). For an ICMP datagram socket the port
   * is the echo identifier the kernel uses.
   *
   * @returns The address.
   */
  localAddress(): SocketAddress {
    const fd = this.#open("getsockname");
    const buf = new Uint8Array(SOCKADDR_STORAGE_SIZE);
    const len = int32(buf.length);
    check(lib().getsockname(fd, buf, len), errnoCell[0]!, "getsockname");
    const addr = decodeSockaddr(buf, new DataView(len.buffer).getInt32(0, true));
    if (!addr) throw new SocketError(97, "getsockname", "unexpected address family");
    return addr;
  }

  #sockaddr(address: SocketAddress): Uint8Array {
    if (address.family !== this.family) {
      throw new TypeError(
        `Cannot use IPv${address.family} address ${address.address} on an IPv${this.family} socket`,
      );
    }
    return encodeSockaddr(address);
  }

  /**
   * Sends one datagram (`sendto` with `MSG_DONTWAIT`). Never waits.
   *
   * @param bytes The datagram: for ICMP an ICMP message, for raw TCP a TCP
   *   segment; at most 65,535 bytes.
   * @param address The destination; omit on a connected socket.
   * @returns The number of bytes sent.
   * @throws {SocketError} EAGAIN when the send buffer is full, EMSGSIZE, …
   */
  send(bytes: Uint8Array, address?: SocketAddress): number {
    const fd = this.#open("sendto");
    if (bytes.length > MAX_DATAGRAM) {
      throw new RangeError(`Cannot send ${bytes.length} bytes: a datagram holds at most 65535`);
    }
    let sa: Uint8Array | null = null;
    if (address) {
      // Sending to the same address again (a ping, a flood) reuses its
      // encoding instead of allocating a new one per datagram.
      const last = this.#sendAddress;
      if (
        last !== undefined && address.address === last.address && address.port === last.port &&
        address.family === last.family && address.scopeId === last.scopeId
      ) sa = this.#sendSockaddr;
      else {
        sa = this.#sockaddr(address);
        this.#sendAddress = { ...address };
        this.#sendSockaddr = sa;
      }
    }
    if (bytes.length !== this.#sendLength) {
      this.#sendLength = bytes.length;
      this.#sendLengthBig = BigInt(bytes.length);
    }
    const n = lib().sendto(fd, bytes, this.#sendLengthBig, MSG_DONTWAIT, sa, sa ? sa.length : 0);
    return n < 0 ? check(n, errnoCell[0]!, "sendto") : n;
  }

  /**
   * Looks up the C call behind {@linkcode Socket.send} now, so that the
   * first send, when its time is taken just before it, does not include the
   * lookup (each libc symbol is looked up on its first call, 20-40 µs).
   * Sends nothing.
   *
   * @example Before the first timed send
   * ```ts
   * import { openSocket } from "./mod.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * sock.prepareSend();
   * ```
   */
  prepareSend(): void {
    this.#open("sendto");
    void lib().sendto;
  }

  /**
   * Reads one queued datagram or error report without waiting.
   *
   * @returns The datagram, an error report (when error reporting is on), or
   *   `null` when nothing is queued.
   */
  tryReceive(): Datagram | ErrorReport | null {
    const fd = this.#open("recvmsg");
    const n = this.#recvmsg(fd, MSG_DONTWAIT);
    if (n >= 0) return this.#datagram(n);
    const e = this.#recvErrno;
    if (e === EAGAIN || e === EINTR) return this.errorQueue ? this.receiveError() : null;
    // A pending socket error (from an ICMP error with IP_RECVERR) surfaces
    // here; the details are in the error queue.
    const report = this.receiveError();
    if (report) return report;
    if (e === 111 || e === 113 || e === 101 || e === 90 || e === 112 || e === 64) return null;
    throw new SocketError(e, "recvmsg");
  }

  /**
   * Points {@linkcode Socket.receiveInto} at `buffer` ahead of time.
   * `receiveInto` does this itself whenever its buffer changes; a hot loop
   * calls this first, so that the branch never runs inside it (code the JIT
   * optimized without ever seeing that branch would be thrown away there).
   *
   * @param buffer The buffer later passed to `receiveInto`.
   *
   * @example
   * ```ts
   * import { DatagramInfo, openSocket } from "./mod.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * const buffer = new Uint8Array(2048);
   * sock.useReceiveBuffer(buffer);
   * assertEquals(sock.receiveInto(buffer, new DatagramInfo()), -1);
   * ```
   */
  useReceiveBuffer(buffer: Uint8Array): void {
    if (buffer === this.#intoBuffer) return;
    const iov = new DataView(this.#intoIov.buffer);
    iov.setBigUint64(0, pointerValue(buffer), true);
    iov.setBigUint64(8, BigInt(buffer.length), true);
    this.#intoBuffer = buffer;
  }

  /**
   * Attaches a classic BPF program (`SO_ATTACH_FILTER`): the kernel runs it
   * on each datagram before queueing it, and queues only what it accepts
   * (a return of 0 drops it; any other value keeps that many bytes). A raw
   * socket gets every packet of its protocol, so a filter is what keeps
   * other programs' traffic from filling its queue (iputils' ping filters
   * on its identifier so).
   *
   * @param program The instructions, at most 4,096.
   * @throws {SocketError} EINVAL for a program the kernel rejects.
   *
   * @example A socket that accepts nothing
   * ```ts
   * import { DatagramInfo, openSocket } from "./mod.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
   * sock.attachFilter([[0x06, 0, 0, 0]]); // BPF_RET | BPF_K, 0: drop
   * sock.send(new Uint8Array([1]), sock.localAddress());
   * assertEquals(sock.receiveInto(new Uint8Array(16), new DatagramInfo()), -1);
   * ```
   */
  attachFilter(program: readonly BpfInstruction[]): void {
    if (program.length === 0 || program.length > 4096) {
      throw new RangeError(`A BPF program has 1 to 4096 instructions, not ${program.length}`);
    }
    const instructions = new Uint8Array(program.length * 8);
    const v = new DataView(instructions.buffer);
    program.forEach(([code, jt, jf, k], i) => {
      v.setUint16(i * 8, code, true);
      v.setUint8(i * 8 + 2, jt);
      v.setUint8(i * 8 + 3, jf);
      v.setUint32(i * 8 + 4, k >>> 0, true);
    });
    // struct sock_fprog: the count, padding, then the pointer. The kernel
    // copies the program before setsockopt() returns.
    const fprog = new Uint8Array(16);
    const f = new DataView(fprog.buffer);
    f.setUint16(0, program.length, true);
    f.setBigUint64(8, pointerValue(instructions), true);
    this.setOption(SOL_SOCKET, SO_ATTACH_FILTER, fprog);
  }

  /**
   * Aims the socket's `struct msghdr` at `buffer` (as
   * {@linkcode Socket.useReceiveBuffer} does) for `recvmsg()` calls made
   * by a batched loop that calls libc itself (see `echo.ts`), and returns
   * it. Call it again before
   * each run of such calls: the socket's own receive methods aim the header
   * elsewhere.
   *
   * @param buffer Where datagrams go.
   * @returns The header, the same object every time.
   *
   * @example Reading a UDP datagram sent to ourselves, by hand
   * ```ts
   * import { DatagramInfo, openSocket } from "./mod.ts";
   * import { lib } from "./ffi.ts";
   * import { assert, assertEquals } from "../testing/assert.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
   * sock.send(new Uint8Array([1, 2, 3]), sock.localAddress());
   * const buffer = new Uint8Array(2048);
   * const direct = sock.directReceive(buffer);
   * direct.rearm();
   * const n = lib().recvmsg(sock.fd, direct.message, 0x40);
   * const info = new DatagramInfo();
   * sock.readControl(n, info);
   * assertEquals(n, 3);
   * assert(info.timestampSec > 0);
   * assertEquals(buffer[2], 3);
   * const us = info.timestampSec * 1e6 + Math.floor(info.timestampNsec / 1000);
   * assertEquals(direct.timestampUs(), us);
   * ```
   */
  directReceive(buffer: Uint8Array): DirectReceive {
    this.useReceiveBuffer(buffer);
    this.#msgView.setBigUint64(16, this.#intoIovPointer, true);
    return this.#header();
  }

  /** The socket's `struct msghdr` with its re-arm and timestamp readers, made once. */
  #header(): DirectReceive {
    let direct = this.#direct;
    if (direct === undefined) {
      const words = new Uint32Array(this.#msg.buffer);
      const control = new Uint32Array(this.#control.buffer);
      direct = this.#direct = {
        message: this.#msg,
        // msg_namelen, msg_controllen and msg_flags, as 32-bit words.
        rearm() {
          words[2] = SOCKADDR_STORAGE_SIZE;
          words[10] = CONTROL_SIZE;
          words[12] = 0;
        },
        timestampUs() {
          // struct cmsghdr: cmsg_len (8 bytes), level, type; then the
          // struct timespec (two 8-byte fields).
          if (words[10]! < 32 || control[2] !== SOL_SOCKET || control[3] !== SO_TIMESTAMPNS) {
            return -1;
          }
          return (control[4]! + control[5]! * 2 ** 32) * 1e6 + Math.floor(control[6]! / 1000);
        },
      };
    }
    return direct;
  }

  /**
   * Reads one queued datagram straight into `buffer`, without waiting and
   * without allocating: the lean path for hot loops such as a flood ping.
   * The kernel's receive time, the TTL and the truncation flag go into
   * `info`, which is reused from call to call; {@linkcode Socket.lastSender}
   * tells who sent it. Unlike {@linkcode Socket.tryReceive}, this never reads
   * the error queue: when it returns -1 on a socket with `errorQueue` set,
   * call {@linkcode Socket.receiveError} (or check {@linkcode Socket.ready}
   * first, which also reports a queued error).
   *
   * @param buffer Where the datagram goes; a longer datagram is cut and
   *   `info.truncated` set. Keep passing the same buffer: its address is
   *   looked up only when it changes.
   * @param info Receives the datagram's details.
   * @returns The number of bytes written to `buffer`, or -1 when no datagram
   *   is queued (or only an error is pending: read it with
   *   {@linkcode Socket.receiveError}).
   * @throws {SocketError} On an unexpected failure, such as a closed socket.
   *
   * @example Reading a UDP datagram sent to ourselves
   * ```ts
   * import { DatagramInfo, openSocket } from "./mod.ts";
   * import { assert, assertEquals } from "../testing/assert.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
   * sock.send(new Uint8Array([1, 2, 3]), sock.localAddress());
   * const buffer = new Uint8Array(2048);
   * const info = new DatagramInfo();
   * let n = -1;
   * while (n < 0) n = sock.receiveInto(buffer, info);
   * assertEquals(n, 3);
   * assert(info.timestampSec > 0);
   * assertEquals(sock.lastSender()?.address, "127.0.0.1");
   * ```
   */
  receiveInto(buffer: Uint8Array, info: DatagramInfo): number {
    const fd = this.#open("recvmsg");
    this.directReceive(buffer).rearm();
    const n = lib().recvmsg(fd, this.#msg, MSG_DONTWAIT);
    if (n < 0) {
      const e = errnoCell[0]!;
      // EAGAIN: nothing queued. Otherwise, with IP_RECVERR, the errno of an
      // ICMP error (EHOSTUNREACH, EACCES for "administratively prohibited",
      // EMSGSIZE, …) is pending, and its details wait in the error queue.
      if (
        e === EAGAIN || e === EINTR || (this.errorQueue && e !== 9 && e !== 14) || e === 111 ||
        e === 113 || e === 101 || e === 90 || e === 112 || e === 64
      ) return -1;
      throw new SocketError(e, "recvmsg");
    }
    return this.readControl(n, info);
  }

  /**
   * Fills `info` in from the last receive into the buffer given to
   * {@linkcode Socket.directReceive} (from the flags and control data it
   * left in the socket's header): what {@linkcode Socket.receiveInto} does
   * after its `recvmsg()`, for one a batched loop made itself.
   *
   * @param n What `recvmsg()` returned (not -1).
   * @param info Receives the details.
   * @returns The number of bytes in the buffer.
   */
  readControl(n: number, info: DatagramInfo): number {
    const m = this.#msgView;
    const size = this.#intoBuffer?.length ?? 0;
    info.length = n;
    info.truncated = (m.getInt32(48, true) & MSG_TRUNC) !== 0 || n > size;
    info.timestampSec = -1;
    info.timestampNsec = 0;
    info.ttl = -1;
    const total = m.getUint32(40, true);
    const v = this.#controlView;
    let off = 0;
    while (off + 16 <= total) {
      const len = v.getUint32(off, true);
      if (len < 16 || off + len > total) break;
      const level = v.getInt32(off + 8, true);
      const type = v.getInt32(off + 12, true);
      if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) {
        // Seconds since 1970 fit a double exactly; reading the low 32 bits
        // of each half would break in 2106, so read them as two halves.
        info.timestampSec = v.getUint32(off + 16, true) + v.getInt32(off + 20, true) * 2 ** 32;
        info.timestampNsec = v.getUint32(off + 24, true);
      } else if (
        (level === IPPROTO_IP && type === IP_TTL) ||
        (level === IPPROTO_IPV6 && type === IPV6_HOPLIMIT)
      ) info.ttl = v.getInt32(off + 16, true);
      off += (len + 7) & ~7;
    }
    return Math.min(n, size);
  }

  /**
   * The sender of the datagram last received (by any receive method), from
   * the `msg_name` that `recvmsg` filled in. While the sender stays the
   * same, the same object is returned: treat it as read-only.
   *
   * @returns The address, or `undefined` when the kernel gave none.
   */
  lastSender(): SocketAddress | undefined {
    const len = this.#msgView.getUint32(8, true);
    const name = this.#name;
    const cached = this.#senderName;
    let same = this.#sender !== undefined && len === this.#senderLength;
    for (let k = 0; same && k < len && k < cached.length; k++) same = name[k] === cached[k];
    if (same) return this.#sender;
    this.#sender = decodeSockaddr(name, len);
    this.#senderLength = len;
    cached.set(name.subarray(0, Math.min(len, cached.length)));
    return this.#sender;
  }

  /**
   * Reads one report from the error queue (`MSG_ERRQUEUE`), without waiting.
   *
   * @returns The report, or `null` when the queue is empty.
   */
  receiveError(): ErrorReport | null {
    const fd = this.#open("recvmsg");
    const n = this.#recvmsg(fd, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      const e = this.#recvErrno;
      if (e === EAGAIN || e === EINTR) return null;
      throw new SocketError(e, "recvmsg");
    }
    const destination = this.#msgName();
    const report: ErrorReport = {
      type: "error",
      errno: 0,
      code: "",
      origin: "none",
      icmpType: 0,
      icmpCode: 0,
      info: 0,
      data: 0,
      original: this.#data.slice(0, n),
    };
    if (destination) report.destination = destination;
    this.#eachCmsg((level, type, offset, length) => {
      const v = this.#controlView;
      if (
        (level === IPPROTO_IP && type === IP_RECVERR) ||
        (level === IPPROTO_IPV6 && type === IPV6_RECVERR)
      ) {
        report.errno = v.getUint32(offset, true);
        report.code = errnoName(report.errno);
        report.origin = ORIGINS[v.getUint8(offset + 4)] ?? "none";
        report.icmpType = v.getUint8(offset + 5);
        report.icmpCode = v.getUint8(offset + 6);
        report.info = v.getUint32(offset + 8, true);
        report.data = v.getUint32(offset + 12, true);
        if (length > 16) {
          const offender = decodeSockaddr(
            this.#control.subarray(offset + 16, offset + length),
            length - 16,
          );
          if (offender) report.offender = offender;
        }
      } else if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) {
        report.timestampNs = this.#timespec(offset);
      }
    });
    return report;
  }

  /**
   * Receives one datagram or error report, waiting up to `timeoutMs`.
   * The wait runs on a worker thread, so the event loop stays free.
   *
   * @param options The timeout and an abort signal.
   * @returns The datagram or error report, or `null` on timeout, abort or close.
   */
  async receive(options: ReceiveOptions = {}): Promise<Datagram | ErrorReport | null> {
    const timeoutMs = options.timeoutMs ?? Infinity;
    const deadline = performance.now() + timeoutMs;
    const signal = options.signal;
    for (;;) {
      if (this.#fd < 0 || signal?.aborted) return null;
      const got = this.tryReceive();
      if (got) return got;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return null;
      await this.wait({ timeoutMs: remaining, ...(signal ? { signal } : {}) });
    }
  }

  /**
   * Waits until the socket has a datagram or an error queued, the timeout
   * passes, the signal aborts or the socket closes.
   *
   * @param options The timeout and an abort signal.
   * @returns `true` when something is queued.
   */
  async wait(options: ReceiveOptions = {}): Promise<boolean> {
    const c = lib();
    const fd = this.#open("poll");
    if (this.#pending) throw new Error("Cannot wait on a socket twice at once");
    if (this.#wakeFd < 0) {
      this.#wakeFd = check(c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), errnoCell[0]!, "eventfd");
    }
    const timeoutMs = options.timeoutMs ?? Infinity;
    const v = this.#pollView;
    v.setInt32(0, fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt16(6, 0, true);
    v.setInt32(8, this.#wakeFd, true);
    v.setInt16(12, POLLIN, true);
    v.setInt16(14, 0, true);
    // Poll rounds up to whole milliseconds so that a short remainder still waits.
    const ms = Number.isFinite(timeoutMs)
      ? Math.min(Math.max(Math.ceil(timeoutMs), 0), 2 ** 31 - 1)
      : -1;
    const onAbort = () => this.#wake();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      this.#pending = c.poll_wait(this.#pollFds, 2n, ms);
      const n = await this.#pending;
      if (n < 0) return false;
      return (v.getInt16(6, true) & (POLLIN | POLLERR)) !== 0;
    } finally {
      this.#pending = undefined;
      options.signal?.removeEventListener("abort", onAbort);
      this.#drainWake();
      if (this.#fd < 0) this.#release();
    }
  }

  /**
   * Tells, without waiting, whether a datagram or an error is queued.
   *
   * @returns `true` when a receive would not wait.
   */
  ready(): boolean {
    const fd = this.#open("poll");
    this.#readyView.setInt32(0, fd, true);
    const n = lib().poll(this.#readyFds, 1n, 0);
    return n < 0 ? check(n, errnoCell[0]!, "poll") > 0 : n > 0;
  }

  /**
   * Blocks the calling thread in `ppoll()` until a datagram or an error is
   * queued or the timeout passes. Only for a worker thread whose whole job
   * is this socket (a server's receive loop): on any other thread, use
   * {@linkcode Socket.wait}, which never blocks the event loop. The worker
   * sees messages only between calls, so keep the timeout short.
   *
   * @param timeoutMs How long to wait at most, in milliseconds, to the
   *   nanosecond (`ppoll()`; the kernel's timer slack, 50 µs by default,
   *   may add to it).
   * @returns `true` when something is queued.
   *
   * @example
   * ```ts
   * import { openSocket } from "./mod.ts";
   * import { assertEquals } from "../testing/assert.ts";
   * using sock = openSocket({ kind: "udp", family: 4 });
   * sock.bind({ family: 4, address: "127.0.0.1", port: 0 });
   * assertEquals(sock.waitSync(1), false);
   * sock.send(new Uint8Array([1]), sock.localAddress());
   * assertEquals(sock.waitSync(1000), true);
   * ```
   */
  waitSync(timeoutMs: number): boolean {
    const fd = this.#open("poll");
    const v = this.#readyView;
    v.setInt32(0, fd, true);
    v.setInt16(6, 0, true);
    // No BigInt: seconds below 2^31 fit the low half of the 64-bit field.
    const ms = Math.min(Math.max(timeoutMs, 0), 2 ** 31 - 1);
    const seconds = Math.floor(ms / 1000);
    const t = this.#waitView;
    t.setUint32(0, seconds, true);
    t.setUint32(4, 0, true);
    t.setUint32(8, Math.min(Math.round((ms - seconds * 1000) * 1e6), 999_999_999), true);
    t.setUint32(12, 0, true);
    const n = lib().ppoll(this.#readyFds, 1n, this.#waitTimeout, null);
    if (n < 0) {
      const e = errnoCell[0]!;
      if (e === EINTR) return false;
      throw new SocketError(e, "poll");
    }
    return n > 0;
  }

  #wake(): void {
    if (this.#wakeFd >= 0) lib().write(this.#wakeFd, ONE_U64, 8n);
  }

  #drainWake(): void {
    // The eventfd is nonblocking: reading resets its counter, or fails with
    // EAGAIN when nothing woke us.
    if (this.#wakeFd >= 0) lib().read(this.#wakeFd, this.#wakeBuf, 8n);
  }

  #recvmsg(fd: number, flags: number): number {
    this.#msgView.setBigUint64(16, this.#iovPointer, true);
    // recvmsg() writes back the lengths and flags; the pointers stay.
    this.#header().rearm();
    const n = lib().recvmsg(fd, this.#msg, flags);
    this.#recvErrno = n < 0 ? errnoCell[0]! : 0;
    return n;
  }

  #msgName(): SocketAddress | undefined {
    return decodeSockaddr(this.#name, this.#msgView.getUint32(8, true));
  }

  #eachCmsg(fn: (level: number, type: number, offset: number, length: number) => void): void {
    // Lengths are size_t; the control buffer is far below 4 GiB, so the low
    // 32 bits are the value (and reading them allocates no BigInt).
    const total = this.#msgView.getUint32(40, true);
    const v = this.#controlView;
    let off = 0;
    while (off + 16 <= total) {
      const len = v.getUint32(off, true);
      if (len < 16 || off + len > total) break;
      fn(v.getInt32(off + 8, true), v.getInt32(off + 12, true), off + 16, len - 16);
      off += (len + 7) & ~7;
    }
  }

  #timespec(offset: number): bigint {
    const v = this.#controlView;
    return v.getBigInt64(offset, true) * 1_000_000_000n + v.getBigInt64(offset + 8, true);
  }

  #datagram(n: number): Datagram {
    const flags = this.#msgView.getInt32(48, true);
    const from = this.#msgName() ?? { family: this.family, address: "", port: 0 };
    const d: Datagram = {
      type: "data",
      data: this.#data.slice(0, Math.min(n, this.#data.length)),
      from,
      truncated: (flags & MSG_TRUNC) !== 0,
    };
    this.#eachCmsg((level, type, offset) => {
      if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) d.timestampNs = this.#timespec(offset);
      else if (
        (level === IPPROTO_IP && type === IP_TTL) ||
        (level === IPPROTO_IPV6 && type === IPV6_HOPLIMIT)
      ) d.ttl = this.#controlView.getInt32(offset, true);
    });
    return d;
  }

  /**
   * Closes the socket. Safe to call more than once; a pending wait ends.
   */
  close(): void {
    if (this.#fd < 0) return;
    // A wait on a worker thread may still be polling the descriptor: wake it
    // and let it close the descriptor when it returns, so the number is never
    // reused under a running poll().
    this.#closedFd = this.#fd;
    this.#fd = -1;
    if (this.#pending) this.#wake();
    else this.#release();
  }

  #release(): void {
    if (this.#closedFd >= 0) {
      lib().close(this.#closedFd);
      this.#closedFd = -1;
    }
    if (this.#wakeFd >= 0) {
      lib().close(this.#wakeFd);
      this.#wakeFd = -1;
    }
  }

  /** Closes the socket (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

const ONE_U64 = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
