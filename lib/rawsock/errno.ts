/**
 * errno values by name, their text, and {@linkcode SocketError}, the one
 * error a failed socket call raises.
 *
 * @module
 */
import { lib } from "./ffi.ts";

/** `EAGAIN`: nothing queued, or no room to send, right now. */
export const EAGAIN = 11;
/** `EINTR`: interrupted by a signal. */
export const EINTR = 4;
/** `ENOBUFS`: the kernel had no buffer for the datagram. */
export const ENOBUFS = 105;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  64: "ENONET",
  71: "EPROTO",
  88: "ENOTSOCK",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  94: "ESOCKTNOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  106: "EISCONN",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  112: "EHOSTDOWN",
  113: "EHOSTUNREACH",
};

/**
 * The name of an errno value, e.g. `errnoName(13) === "EACCES"`.
 *
 * @param code The errno value.
 * @returns Its symbolic name, or `"E<code>"` for an unknown one.
 *
 * @example
 * ```ts
 * import { errnoName } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(errnoName(113), "EHOSTUNREACH");
 * ```
 */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `E${code}`;
}

/**
 * Whether a failed send only found no room in the kernel right now (EAGAIN,
 * ENOBUFS), so the datagram may be sent again later, rather than a hard
 * error.
 *
 * @param errno The errno of the failed send.
 * @returns `true` for EAGAIN and ENOBUFS.
 *
 * @example
 * ```ts
 * import { noRoomToSend } from "./mod.ts";
 * import { assert } from "../testing/assert.ts";
 * assert(noRoomToSend(11));
 * assert(!noRoomToSend(101));
 * ```
 */
export function noRoomToSend(errno: number): boolean {
  return errno === EAGAIN || errno === ENOBUFS;
}

/**
 * The C library's text for an errno value, e.g. `"Permission denied"`.
 *
 * @param code The errno value.
 * @returns The text, or the errno name when libc is not available.
 *
 * @example
 * ```ts
 * import { strerror } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * assertEquals(strerror(13), "Permission denied");
 * ```
 */
export function strerror(code: number): string {
  try {
    const ptr = lib().strerror(code);
    if (ptr !== null) return Deno.UnsafePointerView.getCString(ptr);
  } catch {
    // Fall through to the bare name.
  }
  return errnoName(code);
}

/**
 * A failed socket system call, with the errno name and the call.
 *
 * @example Telling a permission problem apart
 * ```ts
 * import { SocketError } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const err = new SocketError(13, "socket");
 * assertEquals(err.code, "EACCES");
 * assertEquals(err.syscall, "socket");
 * ```
 */
export class SocketError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** The errno name, such as `"EPERM"`. */
  readonly code: string;
  /** The system call that failed, such as `"sendto"`. */
  readonly syscall: string;
  /** The C library's words for the errno, as `perror()` prints them: `"Operation not permitted"`. */
  readonly reason: string;

  /**
   * Creates the error; the message is `syscall: strerror (CODE)` plus a hint
   * when one helps.
   *
   * @param errnoValue The errno value.
   * @param syscall The failing call.
   * @param hint Extra advice appended to the message.
   */
  constructor(errnoValue: number, syscall: string, hint?: string) {
    const code = errnoName(errnoValue);
    super(`${syscall}: ${strerror(errnoValue)} (${code})${hint ? `. ${hint}` : ""}`);
    this.name = "SocketError";
    this.errno = errnoValue;
    this.code = code;
    this.syscall = syscall;
    this.reason = strerror(errnoValue);
  }
}

/**
 * `result`, or a SocketError for `e` when it is negative. Pass errno read
 * right after the call, as `check(c.f(), errnoCell[0]!, "f")`: the
 * arguments are evaluated before V8 enters this function.
 */
export function check(result: number | bigint, e: number, syscall: string, hint?: string): number {
  const n = Number(result);
  if (n < 0) throw new SocketError(e, syscall, hint);
  return n;
}
