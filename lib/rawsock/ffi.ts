/**
 * The libc bindings: the project's only `Deno.dlopen`s. One symbol table
 * with the C prototypes, `libc.so.6` loaded once, and a clear error off
 * Linux.
 * Internal to `lib/rawsock/`: tools use the socket, clock and lookup APIs.
 *
 * - `errno` is read through `__errno_location()` right after each
 *   synchronous call, on the thread that made it ({@linkcode errnoCell}).
 * - Calls that may block (`poll` with a timeout, `getaddrinfo`) are declared
 *   `nonblocking: true` and run on a worker thread.
 *
 * @module
 */

/**
 * The libc symbols used by the project, with their C prototypes. Loaded once,
 * on first use.
 */
const SYMBOLS = {
  // int socket(int domain, int type, int protocol);
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len);
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len);
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int setsockopt(int fd, int level, int name, const void *val, socklen_t len);
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // int getsockopt(int fd, int level, int name, void *val, socklen_t *len);
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // int getsockname(int fd, struct sockaddr *addr, socklen_t *len);
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int getpeername(int fd, struct sockaddr *addr, socklen_t *len);
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t len);
  // The result is read as its low 32 bits (a datagram is at most 65,535
  // bytes, and -1 stays -1), so no BigInt is allocated per call.
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  // ssize_t recvmsg(int fd, struct msghdr *msg, int flags);  (result as sendto's)
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout);  (runs on a worker thread)
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout);  (timeout 0, never blocking)
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
  //           const sigset_t *sigmask);  (by Socket.waitSync() only, on a worker thread
  // that serves nothing but its socket: it blocks that thread)
  ppoll: { parameters: ["buffer", "u64", "buffer", "pointer"], result: "i32" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
  // char *strerror(int errnum);
  strerror: { parameters: ["i32"], result: "pointer" },
  // int eventfd(unsigned int initval, int flags);
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t n);
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ssize_t read(int fd, void *buf, size_t n);
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // int open(const char *path, int flags);
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int setns(int fd, int nstype);
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // int clock_gettime(clockid_t clk, struct timespec *tp);
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  // int clock_nanosleep(clockid_t clk, int flags, const struct timespec *t,
  //                     struct timespec *remain);  (blocks the calling thread: by
  // sleepUntil() only, on a worker thread that does nothing else meanwhile)
  clock_nanosleep: { parameters: ["i32", "i32", "buffer", "pointer"], result: "i32" },
  // int prctl(int option, unsigned long arg2, ...);  (declared with the
  // integer arguments of PR_SET_TIMERSLACK: variadic integers pass as fixed
  // ones on x86-64 and aarch64)
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  // long syscall(long number, ...);  (declared with the integer arguments
  // of sched_getattr() and sched_setattr(): variadic integers pass as fixed
  // ones on x86-64 and aarch64)
  syscall: { parameters: ["i64", "i64", "buffer", "i64", "i64"], result: "i64" },
  // long syscall(SYS_io_uring_setup, u32 entries, struct io_uring_params *p);
  // (the u32 passes in a 64-bit register; the kernel truncates it, as declared)
  io_uring_setup: { name: "syscall", parameters: ["i64", "u32", "buffer"], result: "i32" },
  // long syscall(SYS_io_uring_enter, unsigned fd, u32 to_submit, u32 min_complete,
  //              u32 flags, const void *arg, size_t argsz);  (never waits: min_complete 0)
  io_uring_enter: {
    name: "syscall",
    parameters: ["i64", "i32", "u32", "u32", "u32", "pointer", "usize"],
    result: "i32",
  },
  // The same call waiting for a completion (min_complete 1): on a worker thread.
  io_uring_wait: {
    name: "syscall",
    parameters: ["i64", "i32", "u32", "u32", "u32", "pointer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  // void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  // int listen(int fd, int backlog);
  listen: { parameters: ["i32", "i32"], result: "i32" },
  // int shutdown(int fd, int how);
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // void *dlsym(void *handle, const char *symbol);
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  // int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
  //                 struct addrinfo **res);  (may block on DNS: runs on a worker thread)
  getaddrinfo: {
    parameters: ["buffer", "pointer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  // void freeaddrinfo(struct addrinfo *res);
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
  // int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
  //                 char *serv, socklen_t servlen, int flags);  (may block: worker thread)
  getnameinfo: {
    parameters: ["buffer", "u32", "buffer", "u32", "pointer", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * Looked up when this module loads: the address of `dlsym` (`Deno.dlopen`
 * with it as a data symbol), through which every other symbol is looked up
 * on first use (about 0.04 ms); each is called through
 * `Deno.UnsafeFnPointer` (about 2 µs per call). Binding functions with
 * `Deno.dlopen` costs start-up time (measured: 0.9 ms for `dlsym` alone,
 * 1.5 ms with the three of `FAST`, against 0.4 ms for `dlsym`'s address),
 * so a hot loop binds its calls itself ({@linkcode bindFastCalls}), and a
 * tool that has none (traceroute, a single ping) never does. (Deno's test
 * sanitizers do not count a library opened during a test, checked.)
 */
const CORE = { dlsym: { type: "pointer" } } as const satisfies Deno.ForeignLibraryInterface;

/**
 * The symbols called per datagram in a hot loop, bound by
 * {@linkcode bindFastCalls}: only symbols bound with `Deno.dlopen` get V8's
 * fast calls (a few hundred nanoseconds each). (`poll` for `ready()` is not
 * among them: a caller checks readiness while idle, not per datagram, so
 * 2 µs per call do not matter there, and binding it would cost 0.4 ms of
 * start-up, measured.)
 */
const FAST = [
  "sendto",
  "recvmsg",
  "clock_gettime",
] as const satisfies readonly (keyof typeof SYMBOLS)[];

let libc: Libc | undefined;
let loadError: Error | undefined;
/**
 * This thread's `errno`, read in place. Read `errnoCell[0]` right after the
 * libc call that failed, in the same function and before calling or
 * returning from any: V8 may do its own work at those points (installing
 * optimized code, for one), and that work can change errno (seen: a
 * failed recvmsg() read back as ENOENT about once in 60 runs).
 */
export let errnoCell: Int32Array = new Int32Array(1);

/** The C function at `ptr`, callable as JavaScript through `Deno.UnsafeFnPointer`. */
function callThrough(
  ptr: Deno.PointerObject,
  definition: Deno.UnsafeCallbackDefinition,
): (...args: unknown[]) => unknown {
  const fn = new Deno.UnsafeFnPointer(
    ptr as Deno.PointerObject<typeof definition>,
    definition,
  ) as unknown as {
    call(...args: unknown[]): unknown;
  };
  return fn.call.bind(fn);
}

function loadCore(): void {
  if (Deno.build.os !== "linux") {
    loadError = new Error(
      `Raw sockets are not supported on ${Deno.build.os}: this module binds Linux glibc`,
    );
    return;
  }
  let dlsymAddress: Deno.PointerValue;
  try {
    dlsymAddress = Deno.dlopen("libc.so.6", CORE).symbols.dlsym;
  } catch (err) {
    loadError = err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? new Error(`Raw sockets need FFI permission: run Deno with --allow-ffi (or -A)`)
      : new Error(
        `Raw sockets are not supported here: cannot load glibc "libc.so.6" (${
          err instanceof Error ? err.message : String(err)
        }); a Linux system with glibc is required`,
      );
    return;
  }
  if (dlsymAddress === null) {
    loadError = new Error(`Cannot find "dlsym" in glibc "libc.so.6"`);
    return;
  }
  const dlsym = callThrough(dlsymAddress, SYMBOLS.dlsym) as Libc["dlsym"];
  const table = { dlsym } as Libc;
  for (const name of Object.keys(SYMBOLS) as (keyof typeof SYMBOLS)[]) {
    if (name === "dlsym") continue;
    Object.defineProperty(table, name, {
      configurable: true,
      enumerable: true,
      get() {
        const definition: Deno.UnsafeCallbackDefinition & { name?: string } = SYMBOLS[name];
        const ptr = dlsym(null, cString(definition.name ?? name));
        if (ptr === null) throw new Error(`Cannot find "${name}" in glibc "libc.so.6"`);
        const call = callThrough(ptr, definition);
        Object.defineProperty(table, name, { value: call, enumerable: true });
        return call;
      },
    });
  }
  const ptr = table.__errno_location();
  if (ptr === null) {
    loadError = new Error("Cannot locate errno: __errno_location() returned NULL");
    return;
  }
  errnoCell = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(ptr, 4));
  libc = table;
}
loadCore();

/** The symbols bound for fast calls so far. */
const fastBound = new Set<string>();

/**
 * Binds the libc calls made per datagram (`sendto`, `recvmsg`,
 * `clock_gettime`) with `Deno.dlopen`, so that code V8 has optimized calls
 * them directly (a few hundred nanoseconds each, against about 2 µs through
 * a pointer looked up with `dlsym`). Call it before a loop that handles more
 * than a few datagrams, and before that loop runs: a binding changed under
 * code already optimized throws that code away. A single request need not
 * pay its start-up cost (about 0.6 ms, measured). Binding twice does
 * nothing; without bindings (off Linux, no FFI permission) neither does
 * this, and the first call says why.
 *
 * @param options With `poll`, also `ppoll()` (for a thread that blocks
 *   in it per datagram, as a server's receive loop does in
 *   `Socket.waitSync()`: `poll()` called through the pointer allocated 72
 *   bytes, so that a scavenge came every few thousand datagrams).
 *   With `sleep`, also `clock_nanosleep()` (for a thread that sleeps in
 *   it before each of its sends, as the UDP pinger's sender does).
 *   With `uring`, also `io_uring_enter()` (for an event loop on an io_uring
 *   ring, which submits through it after every batch).
 *
 * @example Before a hot loop
 * ```ts
 * import { bindFastCalls } from "./mod.ts";
 * bindFastCalls();
 * ```
 */
export function bindFastCalls(
  options: { poll?: boolean; sleep?: boolean; uring?: boolean } = {},
): void {
  if (!libc) return;
  const names: (keyof typeof SYMBOLS)[] = [...FAST];
  if (options.poll) names.push("ppoll");
  if (options.sleep) names.push("clock_nanosleep");
  if (options.uring) names.push("io_uring_enter");
  const wanted = Object.fromEntries(
    names.filter((name) => !fastBound.has(name)).map((name) => [name, SYMBOLS[name]]),
  );
  if (Object.keys(wanted).length === 0) return;
  const fast = Deno.dlopen("libc.so.6", wanted).symbols as Record<string, unknown>;
  for (const name of Object.keys(wanted)) {
    fastBound.add(name);
    Object.defineProperty(libc, name, { value: fast[name], enumerable: true });
  }
}

/** The libc bindings, or the reason there are none. */
export function lib(): Libc {
  if (libc) return libc;
  throw loadError ?? new Error("Raw sockets are not supported here");
}

/** `value` as a C `int`, for setsockopt() and the like. */
export function int32(value: number): Uint8Array {
  const buf = new Uint8Array(4);
  new DataView(buf.buffer).setInt32(0, value, true);
  return buf;
}

/** `text` as a NUL-terminated C string. */
export function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

/** The address of `buf`'s bytes, for a C struct that points at it. */
export function pointerValue(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
