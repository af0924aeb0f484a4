import { assert, assertEquals } from "./testing/assert.ts";
import { SocketError } from "./rawsock/errno.ts";
import { perror, type PrivilegeFacts, privilegeFix, readPrivilegeFacts } from "./privilege.ts";

const deno = "/opt/deno/bin/deno";

Deno.test("privilegeFix() widens ping_group_range only when that would let the user in", async (t) => {
  const widen = (group: number, range: string) =>
    `to fix, as root: sysctl -w net.ipv4.ping_group_range="0 2147483647" (admits group ${group}; now "${range}")`;
  const setcap = (why: string) => `to fix, as root: setcap cap_net_raw+ep ${deno} (${why})`;
  const cases: [string, "icmp" | "raw", Omit<PrivilegeFacts, "deno">, string][] = [
    [
      "ICMP, closed range",
      "icmp",
      { groups: [65534], pingGroupRange: [1, 0] },
      widen(65534, "1 0"),
    ],
    [
      "ICMP, range beside the groups",
      "icmp",
      { groups: [1000, 27], pingGroupRange: [0, 10] },
      widen(1000, "0 10"),
    ],
    [
      "ICMP, a supplementary group inside",
      "icmp",
      { groups: [1000, 5], pingGroupRange: [0, 10] },
      setcap("ICMP sockets need it"),
    ],
    [
      "ICMP, range unreadable",
      "icmp",
      { groups: [1000], pingGroupRange: undefined },
      setcap("ICMP sockets need it"),
    ],
    [
      "raw, closed range",
      "raw",
      { groups: [65534], pingGroupRange: [1, 0] },
      setcap("raw sockets need it"),
    ],
    [
      "raw, open range",
      "raw",
      { groups: [65534], pingGroupRange: [0, 2147483647] },
      setcap("raw sockets need it"),
    ],
  ];
  for (const [what, need, facts, fix] of cases) {
    await t.step(what, () => assertEquals(privilegeFix(need, { ...facts, deno }), fix));
  }
});

Deno.test("readPrivilegeFacts() reads this process's groups, the range and Deno's path", () => {
  const facts = readPrivilegeFacts();
  assert(facts.groups.includes(Deno.gid() ?? -1), String(facts.groups));
  const range = Deno.readTextFileSync("/proc/sys/net/ipv4/ping_group_range").trim().split(/\s+/);
  assertEquals(facts.pingGroupRange, [Number(range[0]), Number(range[1])]);
  assertEquals(facts.deno, Deno.execPath());
});

Deno.test("perror() words a SocketError as C's perror() does, advice and errno name left out", () => {
  const cases: [number, string, string][] = [
    [1, "socket", "socket: Operation not permitted"],
    [99, "bind", "bind: Cannot assign requested address"],
    [19, "SO_BINDTODEVICE", "SO_BINDTODEVICE: No such device"],
  ];
  for (const [errno, syscall, line] of cases) {
    const err = new SocketError(errno, syscall, "to fix, as root: setcap cap_net_raw+ep deno");
    assertEquals(perror(err), line);
  }
});
