/**
 * Which fix applies when a socket needs privilege the process lacks: widen
 * `net.ipv4.ping_group_range` when an ICMP datagram socket would do and the
 * user's groups are outside it, else give Deno the `cap_net_raw` capability.
 * Tools print the reference tool's lines first, then {@linkcode privilegeFix}'s
 * one line.
 *
 * Only error paths load this module, so it costs a plain run nothing.
 *
 * @module
 */

/**
 * What the socket needs: `"raw"` for raw sockets only (TCP probes), `"icmp"`
 * for ICMP echo, which an ICMP datagram socket also carries where
 * `net.ipv4.ping_group_range` admits one of the user's groups.
 */
export type Need = "raw" | "icmp";

/** The facts {@linkcode privilegeFix} decides on. */
export interface PrivilegeFacts {
  /** The process's groups: the real group and the supplementary ones. */
  groups: readonly number[];
  /** `net.ipv4.ping_group_range` of this network namespace, or `undefined` when unreadable. */
  pingGroupRange: readonly [number, number] | undefined;
  /** The Deno executable that `setcap` must mark. */
  deno: string;
}

/** The range a widened `ping_group_range` admits: every group, as systemd sets it. */
const ALL_GROUPS = "0 2147483647";

/**
 * Reads the facts {@linkcode privilegeFix} needs from `/proc` and the
 * runtime; what cannot be read (no `--allow-read`) is left out, and the
 * advice falls back to `setcap`.
 *
 * @returns The process's groups, this namespace's `ping_group_range` and Deno's path.
 *
 * @example
 * ```ts
 * import { readPrivilegeFacts } from "./privilege.ts";
 * import { assert } from "./testing/assert.ts";
 * const facts = readPrivilegeFacts();
 * assert(facts.groups.length > 0);
 * ```
 */
export function readPrivilegeFacts(): PrivilegeFacts {
  const groups = new Set<number>();
  let pingGroupRange: [number, number] | undefined;
  let deno = '"$(which deno)"';
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const gid = /^Gid:\s+(\d+)/m.exec(status);
    if (gid) groups.add(Number(gid[1]));
    const extra = /^Groups:(.*)$/m.exec(status);
    for (const g of extra?.[1]?.trim().split(/\s+/) ?? []) if (g !== "") groups.add(Number(g));
  } catch {
    // No /proc or no read permission: the group is unknown.
  }
  try {
    const [low, high] = Deno.readTextFileSync("/proc/sys/net/ipv4/ping_group_range")
      .trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) pingGroupRange = [low!, high!];
  } catch {
    pingGroupRange = undefined;
  }
  try {
    deno = shellWord(Deno.execPath());
  } catch {
    // Without read permission the runtime's path is hidden; let the shell find it.
  }
  return { groups: [...groups], pingGroupRange, deno };
}

/**
 * Says in one line how to get the privilege a socket needs: widen
 * `net.ipv4.ping_group_range` when an ICMP datagram socket would do and none
 * of the user's groups is in the range, else grant `cap_net_raw` with
 * `setcap` (the only fix for raw sockets, and for ICMP when the range
 * already admits the user, so widening would change nothing).
 *
 * @param need What the socket needs.
 * @param facts The user's groups, the range and Deno's path.
 * @returns The advice, e.g. `to fix, as root: sysctl -w net.ipv4.ping_group_range="0 2147483647" (admits group 65534; now "1 0")`.
 *
 * @example Widening helps a user outside the range
 * ```ts
 * import { privilegeFix } from "./privilege.ts";
 * import { assert } from "./testing/assert.ts";
 * const fix = privilegeFix("icmp", { groups: [65534], pingGroupRange: [1, 0], deno: "/usr/bin/deno" });
 * assert(fix.includes('sysctl -w net.ipv4.ping_group_range="0 2147483647"'));
 * ```
 *
 * @example Raw sockets need the capability
 * ```ts
 * import { privilegeFix } from "./privilege.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * const fix = privilegeFix("raw", { groups: [65534], pingGroupRange: [1, 0], deno: "/usr/bin/deno" });
 * assertEquals(fix, "to fix, as root: setcap cap_net_raw+ep /usr/bin/deno (raw sockets need it)");
 * ```
 */
export function privilegeFix(need: Need, facts: PrivilegeFacts = readPrivilegeFacts()): string {
  const range = facts.pingGroupRange;
  if (need === "icmp" && range !== undefined) {
    const [low, high] = range;
    const admitted = facts.groups.some((g) => g >= low && g <= high);
    if (!admitted) {
      const group = facts.groups[0];
      return `to fix, as root: sysctl -w net.ipv4.ping_group_range="${ALL_GROUPS}" (admits ${
        group === undefined ? "every group" : `group ${group}`
      }; now "${low} ${high}")`;
    }
  }
  const why = need === "raw" ? "raw sockets need it" : "ICMP sockets need it";
  return `to fix, as root: setcap cap_net_raw+ep ${facts.deno} (${why})`;
}

/** Quotes a path for a shell command line when it holds anything but plain characters. */
function shellWord(path: string): string {
  return /^[\w./+-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/**
 * Words a failed system call as C's `perror()` does, `socket: Operation not
 * permitted`: the reference tools print that line, and parity tests compare it.
 *
 * @param err The failed call: a `SocketError`, or its syscall and reason.
 * @returns `syscall: reason`.
 *
 * @example
 * ```ts
 * import { perror } from "./privilege.ts";
 * import { assertEquals } from "./testing/assert.ts";
 * assertEquals(perror({ syscall: "socket", reason: "Operation not permitted" }), "socket: Operation not permitted");
 * ```
 */
export function perror(err: { syscall: string; reason: string }): string {
  return `${err.syscall}: ${err.reason}`;
}
