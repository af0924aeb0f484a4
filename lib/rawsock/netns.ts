/**
 * Network namespaces: create a socket inside another one (`setns`).
 *
 * @module
 */
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from "./constants.ts";
import { check, SocketError } from "./errno.ts";
import { cString, errnoCell, lib } from "./ffi.ts";

/**
 * Runs `fn` with this thread in the network namespace `name`, then returns
 * to the original one. Sockets keep the namespace they were created in.
 */
export function inNetns<T>(name: string, fn: () => T): T {
  const c = lib();
  if (name.includes("/")) throw new TypeError(`Invalid network namespace name "${name}"`);
  const path = cString("/proc/thread-self/ns/net");
  const original = check(c.open(path, O_RDONLY | O_CLOEXEC), errnoCell[0]!, "open");
  try {
    const target = c.open(cString(`/run/netns/${name}`), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      throw new SocketError(errnoCell[0]!, "open", `network namespace "${name}" does not exist`);
    }
    try {
      check(c.setns(target, CLONE_NEWNET), errnoCell[0]!, "setns");
    } finally {
      c.close(target);
    }
    try {
      return fn();
    } finally {
      check(c.setns(original, CLONE_NEWNET), errnoCell[0]!, "setns");
    }
  } finally {
    c.close(original);
  }
}
