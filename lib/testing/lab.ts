/**
 * The network lab: a chain of Linux network namespaces joined by veth pairs,
 *
 * ```
 * client -- r1 -- r2 -- r3 -- target
 * ```
 *
 * with IPv4 and IPv6 on every link, static routes both ways, forwarding
 * routers, no ICMP rate limits, and nftables tables in which tests add loss,
 * duplicates, silent routers and rejections, then read the rules' counters.
 *
 * Addressing: link `i` (0 = client side) is `10.0.i.0/24` and `fd00:0:i::/64`
 * (`fd00::/64` for link 0);
 * the host on the client side of the link has `.1` / `::1`, the other `.2` /
 * `::2`. Namespaces are named `nk<random>-<host>`, so labs in parallel tests
 * do not collide; interfaces are named `to-<neighbour>` inside each namespace.
 *
 * Needs root, `ip` (iproute2) and `nft` (nftables).
 *
 * @example A lab test
 * ```ts ignore
 * import { labTest } from "./lab.ts";
 * labTest("the client reaches the target", async (_t, lab) => {
 *   const { code } = await lab.exec("client", ["ping", "-c", "1", lab.host("target").v4]);
 *   if (code !== 0) throw new Error("no reply");
 * });
 * ```
 *
 * @module
 */

/** Options of {@linkcode Lab.create}. */
export interface LabOptions {
  /**
   * Number of routers between the client and the target (0 to 20).
   *
   * @default {3}
   */
  routers?: number;
}

/** One host of the lab. */
export interface Host {
  /** The host's name: `"client"`, `"r1"` … `"rN"` or `"target"`. */
  name: string;
  /** The network namespace the host lives in (usable with `ip netns exec`). */
  ns: string;
  /**
   * The host's IPv4 address facing the client: for a router, the address of
   * its interface towards the client, which is the source of the ICMP errors
   * it sends to the client; for the client, its only address.
   */
  v4: string;
  /** The host's IPv6 address facing the client (see {@linkcode Host.v4}). */
  v6: string;
}

/** The result of {@linkcode Lab.exec}. */
export interface ExecResult {
  /** The exit code of the command. */
  code: number;
  /** What the command wrote to stdout. */
  stdout: string;
  /** What the command wrote to stderr. */
  stderr: string;
}

/** Options of {@linkcode Lab.exec}. */
export interface ExecOptions {
  /**
   * Text written to the command's stdin.
   *
   * @default {undefined} (stdin is closed)
   */
  stdin?: string;
  /**
   * Kill the command and reject with `Deno.errors.TimedOut` after this many milliseconds.
   *
   * @default {30000}
   */
  timeoutMs?: number;
  /**
   * Run as this unprivileged user instead of root (`nobody` is uid/gid 65534,
   * through `setpriv --reuid=65534 --regid=65534 --clear-groups`).
   *
   * @default {undefined} (root)
   */
  user?: "nobody";
}

/** Options of {@linkcode Lab.spawn}. */
export interface SpawnOptions {
  /**
   * Run as this unprivileged user instead of root.
   *
   * @default {undefined} (root)
   */
  user?: "nobody";
  /**
   * How stdin is connected; with `"piped"`, close `child.stdin` when done.
   *
   * @default {"null"}
   */
  stdin?: "piped" | "null";
}

/** An nftables chain of the lab's tables. */
export type Chain = "input" | "forward" | "output";

/** An IP family selection: 4, 6 or both. */
export type Families = 4 | 6 | "both";

/** Packet and byte counts of an nftables rule. */
export interface Counters {
  /** Packets that matched the rule. */
  packets: number;
  /** Bytes of those packets. */
  bytes: number;
}

/**
 * One logical nftables rule added by the lab. It may stand for several
 * kernel rules (one per IP family); its counters are their sums.
 */
export interface Rule {
  /** The nftables handle of the (first) kernel rule. */
  readonly handle: number;
  /** The nftables handles of every kernel rule this rule stands for. */
  readonly handles: readonly number[];
  /**
   * Reads the rule's counters from the kernel.
   *
   * @returns The packets and bytes that matched, summed over the kernel rules.
   */
  counters(): Promise<Counters>;
  /**
   * Removes the rule from the kernel. A second call does nothing.
   *
   * @returns Once removed.
   */
  delete(): Promise<void>;
}

/** Options of {@linkcode Lab.drop}. */
export interface DropOptions {
  /**
   * Percentage of matching packets to drop, chosen at random per packet
   * (`numgen random mod 100 < N`); 100 drops all.
   *
   * @default {100}
   */
  percent?: number;
  /**
   * The chain: `forward` sees packets a router forwards.
   *
   * @default {"forward"} on routers, `"input"` on the client and the target
   */
  chain?: Chain;
  /**
   * Extra nftables match expression, e.g. `"ip protocol icmp"` or `'iifname "to-r2"'`.
   *
   * @default {""} (every packet)
   */
  match?: string;
}

/** Options of {@linkcode Lab.duplicate}. */
export interface DuplicateOptions {
  /**
   * Extra nftables match expression; it must be valid in an `ip` table and in an
   * `ip6` table when `family` is `"both"` (e.g. `"meta l4proto icmp"`).
   *
   * @default {""} (every packet leaving towards `towards`)
   */
  match?: string;
  /**
   * The chain.
   *
   * @default {"forward"} on routers, `"output"` on the client and the target
   */
  chain?: Chain;
  /**
   * The neighbour to which the copies are sent (originals going that way are duplicated).
   *
   * @default the neighbour towards the client (for the client: r1)
   */
  towards?: string;
  /**
   * IP families whose packets are duplicated.
   *
   * @default {"both"}
   */
  family?: Families;
}

/** Options of {@linkcode Lab.silence}. */
export interface SilenceOptions {
  /**
   * IP families whose ICMP time-exceeded messages are dropped.
   *
   * @default {"both"}
   */
  family?: Families;
}

/**
 * ICMP codes a router can reject with. IPv6 equivalents: net-unreachable →
 * no route (code 0), host-unreachable → address unreachable (3),
 * admin-prohibited → administratively prohibited (1), port-unreachable → (4).
 * The others exist only in ICMPv4.
 */
export type RejectCode =
  | "net-unreachable"
  | "host-unreachable"
  | "protocol-unreachable"
  | "port-unreachable"
  | "net-prohibited"
  | "host-prohibited"
  | "admin-prohibited";

/** Options of {@linkcode Lab.reject}. */
export interface RejectOptions {
  /** The ICMP code of the rejection. */
  code: RejectCode;
  /**
   * IP families to reject; `"both"` needs a code that exists in ICMPv6.
   *
   * @default {"both"}
   */
  family?: Families;
  /**
   * Extra nftables match expression.
   *
   * @default {""} (every packet)
   */
  match?: string;
  /**
   * The chain.
   *
   * @default {"forward"} on routers, `"input"` on the client and the target
   */
  chain?: Chain;
}

/** Options of {@linkcode Lab.counter}. */
export interface CounterOptions {
  /** The chain. */
  chain: Chain;
  /** The nftables match expression of the packets to count. */
  match: string;
}

/** Options of {@linkcode labTest}. */
export interface LabTestOptions extends LabOptions {
  /**
   * Deno's resource sanitizer for the test.
   *
   * @default {true}
   */
  sanitizeResources?: boolean;
  /**
   * Deno's async-op sanitizer for the test.
   *
   * @default {true}
   */
  sanitizeOps?: boolean;
}

const V4_REJECT: Record<RejectCode, string> = {
  "net-unreachable": "net-unreachable",
  "host-unreachable": "host-unreachable",
  "protocol-unreachable": "prot-unreachable",
  "port-unreachable": "port-unreachable",
  "net-prohibited": "net-prohibited",
  "host-prohibited": "host-prohibited",
  "admin-prohibited": "admin-prohibited",
};

// RFC 4443 section 3.1 codes, by their nftables names.
const V6_REJECT: Partial<Record<RejectCode, string>> = {
  "net-unreachable": "no-route",
  "host-unreachable": "addr-unreachable",
  "port-unreachable": "port-unreachable",
  "admin-prohibited": "admin-prohibited",
};

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_ROUTERS = 20;
const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
const RUNNER = new URL("./_runner.ts", import.meta.url);

interface RuleRef {
  table: string; // "inet lab", "ip labdup", "ip6 labdup"
  chain: Chain;
  handle: number;
}

/** Labs not yet disposed, removed synchronously if the process exits first. */
const liveLabs = new Set<Lab>();
let unloadHookInstalled = false;

function installUnloadHook(): void {
  if (unloadHookInstalled) return;
  unloadHookInstalled = true;
  // A test that forgets `await using`, or a process that ends early, must not
  // leave namespaces behind: "unload" still allows synchronous subprocesses.
  globalThis.addEventListener("unload", () => {
    const names = [...liveLabs].flatMap((lab) => Object.values(lab.hosts).map((h) => h.ns));
    if (names.length === 0) return;
    for (const ns of names) {
      try {
        new Deno.Command("ip", { args: ["netns", "del", ns], stdout: "null", stderr: "null" })
          .outputSync();
      } catch {
        // Best effort, as above.
      }
    }
  });
}

const REPO = new URL("../../", import.meta.url).pathname;
let nobodyRepo: string | undefined;

/** Whether user nobody can reach files under `dir`: every directory up to it lets others search it. */
function searchableByOthers(dir: string): boolean {
  for (let d = dir.replace(/\/+$/, ""); d !== ""; d = d.slice(0, d.lastIndexOf("/"))) {
    if (((Deno.statSync(d).mode ?? 0) & 0o001) === 0) return false;
  }
  return true;
}

/**
 * Rewrites a command so that user nobody can read the project files it
 * names. A clone in a private directory (a root user's home is mode 0700)
 * is out of nobody's reach; then the sources are copied once per process
 * into a world-readable temporary directory, removed at exit, and paths
 * into the clone point there instead.
 */
function readableByNobody(cmd: string[]): string[] {
  if (!cmd.some((arg) => arg.includes(REPO))) return cmd;
  if (nobodyRepo === undefined) {
    if (searchableByOthers(REPO)) {
      nobodyRepo = REPO;
    } else {
      const copy = Deno.makeTempDirSync({ prefix: "netkit_nobody_" });
      const out = new Deno.Command("cp", {
        args: [
          "-a",
          ...[...Deno.readDirSync(REPO)]
            .filter((e) => e.name !== ".git" && e.name !== "node_modules")
            .map((e) => `${REPO}${e.name}`),
          copy,
        ],
      }).outputSync();
      if (!out.success) {
        throw new Error(
          `Cannot copy the project for user nobody: ${new TextDecoder().decode(out.stderr)}`,
        );
      }
      new Deno.Command("chmod", { args: ["-R", "a+rX", copy] }).outputSync();
      Deno.chmodSync(copy, 0o755);
      globalThis.addEventListener("unload", () => {
        try {
          Deno.removeSync(copy, { recursive: true });
        } catch {
          // Best effort.
        }
      });
      nobodyRepo = `${copy}/`;
    }
  }
  const to = nobodyRepo;
  return to === REPO ? cmd : cmd.map((arg) => arg.replaceAll(REPO, to));
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function runCommand(
  cmd: string,
  args: string[],
  stdin: string | undefined,
  timeoutMs: number,
): Promise<ExecResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    } catch {
      // The command may exit without reading its stdin; its status tells the story.
    }
  }
  const out = await child.output();
  if (signal.aborted) {
    throw new Deno.errors.TimedOut(
      `Command "${[cmd, ...args].join(" ")}" did not finish: timed out after ${timeoutMs} ms`,
    );
  }
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

async function mustRun(cmd: string, args: string[], stdin?: string): Promise<string> {
  const r = await runCommand(cmd, args, stdin, DEFAULT_TIMEOUT_MS);
  if (r.code !== 0) {
    throw new Error(
      `Command "${[cmd, ...args].join(" ")}" failed: exit code ${r.code}: ${r.stderr.trim()}`,
    );
  }
  return r.stdout;
}

function findExecutable(name: string): boolean {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const dir of dirs) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/**
 * Tells whether labs can be created here: it needs root, `ip` and `nft`.
 *
 * @returns `{ ok: true }`, or `{ ok: false, reason }` saying what is missing.
 *
 * @example Checking before creating a lab
 * ```ts
 * import { labAvailable } from "./lab.ts";
 * import { assertEquals } from "./assert.ts";
 * const { ok, reason } = labAvailable();
 * assertEquals(ok, reason === undefined); // a reason exactly when labs cannot run
 * ```
 */
export function labAvailable(): { ok: boolean; reason?: string } {
  if (Deno.build.os !== "linux") {
    return { ok: false, reason: `network namespaces need Linux, not ${Deno.build.os}` };
  }
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    return { ok: false, reason: "cannot read the user id (run with --allow-sys or -A)" };
  }
  if (uid !== 0) {
    return { ok: false, reason: `network namespaces need root (running as uid ${uid})` };
  }
  for (const [tool, pkg] of [["ip", "iproute2"], ["nft", "nftables"]] as const) {
    if (!findExecutable(tool)) {
      return { ok: false, reason: `"${tool}" is not installed (Debian package ${pkg})` };
    }
  }
  return { ok: true };
}

interface Link {
  index: number;
  left: number; // node index on the client side
  right: number;
}

/**
 * A running lab: namespaces, links, routes and nftables tables. Create it with
 * {@linkcode Lab.create} and dispose of it (`await using`) to remove it all.
 *
 * @example Creating, using and removing a lab (needs root)
 * ```ts
 * import { Lab } from "./lab.ts";
 * import { assert, assertEquals } from "./assert.ts";
 * await using lab = await Lab.create({ routers: 2 });
 * const r = await lab.exec("client", ["ping", "-c", "1", "-W", "2", lab.host("target").v6]);
 * assertEquals(r.code, 0);
 * assert(r.stdout.includes("ttl=62"));
 * ```
 */
export class Lab implements AsyncDisposable {
  /** The hosts by name: `client`, `r1` … `rN`, `target`. */
  readonly hosts: Readonly<Record<string, Host>>;
  /** Host names in path order, from the client to the target. */
  readonly path: readonly string[];
  #children = new Set<Deno.ChildProcess>();
  #disposed = false;

  private constructor(suffix: string, routers: number) {
    const path = ["client"];
    for (let i = 1; i <= routers; i++) path.push(`r${i}`);
    path.push("target");
    this.path = path;
    const hosts: Record<string, Host> = {};
    path.forEach((name, k) => {
      // The client faces link 0 with .1; every other node faces link k-1 with .2.
      const link = k === 0 ? 0 : k - 1;
      const side = k === 0 ? 1 : 2;
      hosts[name] = {
        name,
        ns: `nk${suffix}-${name}`,
        v4: v4Address(link, side),
        v6: v6Address(link, side),
      };
    });
    this.hosts = hosts;
  }

  /**
   * Creates a lab: namespaces, veth links, addresses, routes, sysctls and
   * nftables tables. On failure, whatever was created is removed before the
   * error is thrown.
   *
   * @param options The topology.
   * @returns The running lab; dispose of it with `await using`.
   */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const routers = options.routers ?? 3;
    if (!Number.isInteger(routers) || routers < 0 || routers > MAX_ROUTERS) {
      throw new RangeError(
        `Cannot create a lab with ${routers} routers: expected an integer from 0 to ${MAX_ROUTERS}`,
      );
    }
    const available = labAvailable();
    if (!available.ok) throw new Error(`Cannot create a network lab: ${available.reason}`);
    const lab = new Lab(randomSuffix(), routers);
    liveLabs.add(lab);
    installUnloadHook();
    try {
      await lab.#build();
    } catch (error) {
      await lab[Symbol.asyncDispose]();
      throw error;
    }
    return lab;
  }

  #links(): Link[] {
    const links: Link[] = [];
    for (let i = 0; i < this.path.length - 1; i++) links.push({ index: i, left: i, right: i + 1 });
    return links;
  }

  async #build(): Promise<void> {
    const nodes = this.path.map((name) => this.host(name));
    // One `ip -batch` in the root namespace creates every namespace and every
    // veth pair, each end created directly inside its namespace (so the
    // interface names never meet in the root namespace).
    const root: string[] = nodes.map((h) => `netns add ${h.ns}`);
    for (const link of this.#links()) {
      const a = this.path[link.left]!;
      const b = this.path[link.right]!;
      root.push(
        `link add name to-${b} address ${mac(link.index, 1)} netns ${this.host(a).ns} type veth ` +
          `peer name to-${a} address ${mac(link.index, 2)} netns ${this.host(b).ns}`,
      );
    }
    await mustRun("ip", ["-batch", "-"], root.join("\n") + "\n");
    // Then one shell per namespace, all in parallel: sysctls, addresses and
    // routes, nftables tables.
    await Promise.all(this.path.map((name, k) => this.#configure(name, k)));
  }

  #neighbours(k: number): number[] {
    const n: number[] = [];
    if (k > 0) n.push(k - 1);
    if (k < this.path.length - 1) n.push(k + 1);
    return n;
  }

  async #configure(name: string, k: number): Promise<void> {
    const last = this.path.length - 1;
    const isRouter = k > 0 && k < last;
    const ifaces = this.#neighbours(k).map((j) => `to-${this.path[j]}`);
    const sysctls = [
      "net.ipv4.icmp_ratelimit=0",
      "net.ipv6.icmp.ratelimit=0",
      // The per-destination limits above leave the namespace's global bucket
      // for ICMP errors (1,000 a second, bursts of 50, randomised, shared by
      // IPv4 and IPv6): a test that drops ICMP uses nftables, never the kernel.
      "net.ipv4.icmp_msgs_per_sec=1000000",
      "net.ipv4.icmp_msgs_burst=1000000",
      `net.ipv4.ip_forward=${isRouter ? 1 : 0}`,
      `net.ipv6.conf.all.forwarding=${isRouter ? 1 : 0}`,
      // No duplicate address detection: addresses are usable at once (the
      // kernel skips DAD only when both "all" and the interface say so).
      "net.ipv6.conf.all.accept_dad=0",
      "net.ipv6.conf.default.accept_dad=0",
      ...ifaces.map((i) => `net.ipv6.conf.${i}.accept_dad=0`),
    ];
    const ip: string[] = ["link set lo up"];
    for (const j of this.#neighbours(k)) {
      const link = Math.min(j, k);
      const side = k < j ? 1 : 2;
      const dev = `to-${this.path[j]}`;
      ip.push(`addr add ${v4Address(link, side)}/24 dev ${dev}`);
      ip.push(`addr add ${v6Address(link, side)}/64 dev ${dev} nodad`);
      ip.push(`link set ${dev} up`);
      // Static neighbours: no ARP or neighbour discovery, so the first packet
      // goes out at once and nftables counters see only the tests' traffic.
      ip.push(
        `neigh replace ${v4Address(link, 3 - side)} lladdr ${mac(link, 3 - side)} dev ${dev}`,
      );
      ip.push(
        `neigh replace ${v6Address(link, 3 - side)} lladdr ${mac(link, 3 - side)} dev ${dev}`,
      );
    }
    if (k === 0 || k === last) {
      // End hosts: a default route through their only neighbour.
      const link = k === 0 ? 0 : last - 1;
      const side = k === 0 ? 2 : 1;
      ip.push(`route add 0.0.0.0/0 via ${v4Address(link, side)}`);
      ip.push(`route add ::/0 via ${v6Address(link, side)}`);
    } else {
      // Routers: every link that is not adjacent, through the neighbour on its side.
      for (const link of this.#links()) {
        if (link.index === k - 1 || link.index === k) continue;
        const viaLink = link.index < k ? k - 1 : k;
        const viaSide = link.index < k ? 1 : 2;
        ip.push(`route add 10.0.${link.index}.0/24 via ${v4Address(viaLink, viaSide)}`);
        ip.push(`route add fd00:0:${link.index}::/64 via ${v6Address(viaLink, viaSide)}`);
      }
    }
    const chains = ["input", "forward", "output"].map((c) =>
      `  chain ${c} {\n    type filter hook ${c} priority 0; policy accept;\n  }`
    ).join("\n");
    // `dup` exists only in the ip and ip6 families (nft 1.0.6 rejects it in
    // inet), hence the two extra tables.
    const nft = ["inet lab", "ip labdup", "ip6 labdup"].map((t) => `table ${t} {\n${chains}\n}`)
      .join("\n");
    const script = [
      // Written to /proc/sys directly: minimal systems lack procps' sysctl.
      ...sysctls.map((kv) => {
        const [key, value] = kv.split("=") as [string, string];
        return `echo ${value} > /proc/sys/${key.replaceAll(".", "/")}`;
      }),
      "ip -batch - <<'IP_EOF'",
      ...ip,
      "IP_EOF",
      "nft -f - <<'NFT_EOF'",
      nft,
      "NFT_EOF",
    ].join("\n") + "\n";
    await mustRun("ip", ["netns", "exec", this.host(name).ns, "sh", "-e"], script);
  }

  /**
   * Returns one host by name.
   *
   * @param name `client`, `r1` … `rN` or `target`.
   * @returns The host.
   * @throws {RangeError} When the lab has no such host.
   */
  host(name: string): Host {
    const h = this.hosts[name];
    if (h === undefined) {
      throw new RangeError(
        `Cannot find host "${name}" in the lab: it has ${this.path.join(", ")}`,
      );
    }
    return h;
  }

  #index(name: string): number {
    this.host(name);
    return this.path.indexOf(name);
  }

  /**
   * Names the interface of `host` that faces its neighbour `towards`.
   *
   * @param host The host that owns the interface.
   * @param towards An adjacent host.
   * @returns The interface name, e.g. `"to-r2"`.
   * @throws {RangeError} When the hosts are not neighbours.
   */
  iface(host: string, towards: string): string {
    const a = this.#index(host);
    const b = this.#index(towards);
    if (Math.abs(a - b) !== 1) {
      throw new RangeError(
        `Cannot name the interface of "${host}" towards "${towards}": they are not neighbours`,
      );
    }
    return `to-${towards}`;
  }

  /**
   * Returns the address of `host` on the link it shares with its neighbour `towards`.
   *
   * @param host The host that owns the address.
   * @param towards An adjacent host.
   * @param family 4 or 6.
   * @returns The address, without prefix length.
   * @throws {RangeError} When the hosts are not neighbours.
   */
  address(host: string, towards: string, family: 4 | 6 = 4): string {
    this.iface(host, towards);
    const a = this.#index(host);
    const b = this.#index(towards);
    const link = Math.min(a, b);
    const side = a < b ? 1 : 2;
    return family === 4 ? v4Address(link, side) : v6Address(link, side);
  }

  #command(host: string, cmd: string[], user: "nobody" | undefined): string[] {
    if (cmd.length === 0) throw new TypeError("Cannot run an empty command in the lab");
    if (user === "nobody") cmd = readableByNobody(cmd);
    return ["netns", "exec", this.host(host).ns, ...(user === "nobody" ? NOBODY : []), ...cmd];
  }

  /**
   * Runs a command inside a host's namespace (`ip netns exec`) and waits for it.
   *
   * @param host The host to run on.
   * @param cmd The program and its arguments.
   * @param opts Stdin, timeout and user.
   * @returns The exit code and the output; a non-zero exit code is not an error.
   * @throws {Deno.errors.TimedOut} When the command runs longer than `timeoutMs`.
   */
  exec(host: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return runCommand(
      "ip",
      this.#command(host, cmd, opts.user),
      opts.stdin,
      opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    );
  }

  /**
   * Starts a long-running command (a server) inside a host's namespace, with
   * piped stdout and stderr. The lab kills it when disposed, if still running.
   *
   * @param host The host to run on.
   * @param cmd The program and its arguments.
   * @param opts User and stdin.
   * @returns The child process.
   */
  spawn(host: string, cmd: string[], opts: SpawnOptions = {}): Deno.ChildProcess {
    const child = new Deno.Command("ip", {
      args: this.#command(host, cmd, opts.user),
      stdin: opts.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.add(child);
    child.status.then(() => this.#children.delete(child), () => this.#children.delete(child));
    return child;
  }

  /**
   * Calls an exported function of a module in a Deno process inside a host's
   * namespace and returns its (awaited) result, which must be JSON.
   *
   * @param host The host to run on.
   * @param module The module: a URL (e.g. `new URL("./probe.ts", import.meta.url)`)
   *   or a file path (relative paths are resolved against the working directory).
   * @param exportName The name of the exported function.
   * @param args JSON-serialisable arguments of the function.
   * @returns The function's result, through JSON.
   * @throws {Error} The child's error (same name and message) when the function throws.
   */
  async run<T>(
    host: string,
    module: string | URL,
    exportName: string,
    ...args: unknown[]
  ): Promise<T> {
    const url = moduleUrl(module);
    const resultPath = await Deno.makeTempFile({ prefix: "lab-run-", suffix: ".json" });
    try {
      const r = await this.exec(host, [
        Deno.execPath(),
        "run",
        "-A",
        "--unstable-net",
        RUNNER.href,
        url,
        exportName,
        JSON.stringify(args),
        resultPath,
      ], { timeoutMs: 120_000 });
      const text = await Deno.readTextFile(resultPath);
      if (text === "") {
        throw new Error(
          `Cannot run ${exportName}() of ${url} on "${host}": the runner exited with code ${r.code}: ${r.stderr.trim()}`,
        );
      }
      const outcome = JSON.parse(text) as
        | { ok: true; value: T }
        | { ok: false; name: string; message: string; stack?: string };
      if (outcome.ok) return outcome.value;
      const error = new Error(outcome.message);
      error.name = outcome.name;
      if (outcome.stack !== undefined) error.stack = `${outcome.stack}\n    (in lab host ${host})`;
      throw error;
    } finally {
      await Deno.remove(resultPath).catch(() => {});
    }
  }

  /**
   * Sets a sysctl inside a host's namespace.
   *
   * @param host The host.
   * @param key The sysctl, e.g. `"net.ipv4.ping_group_range"`.
   * @param value Its value, e.g. `"0 2147483647"`.
   * @returns Once set.
   * @throws {Error} When `sysctl` fails.
   */
  async sysctl(host: string, key: string, value: string): Promise<void> {
    // Interface names in keys may not contain dots (ours never do).
    const path = `/proc/sys/${key.replaceAll(".", "/")}`;
    const r = await this.exec(host, ["sh", "-c", 'printf "%s\n" "$1" > "$2"', "sh", value, path]);
    if (r.code !== 0) {
      throw new Error(`Cannot set ${key} on "${host}": ${r.stderr.trim() || `exit ${r.code}`}`);
    }
  }

  #defaultChain(host: string, endChain: Chain): Chain {
    const k = this.#index(host);
    return k > 0 && k < this.path.length - 1 ? "forward" : endChain;
  }

  async #addRules(host: string, rules: { table: string; chain: Chain; expr: string }[]) {
    const ns = this.host(host).ns;
    const text = rules.map((r) => `add rule ${r.table} ${r.chain} ${r.expr}`).join("\n") + "\n";
    const r = await this.exec(host, ["nft", "--echo", "--handle", "-f", "-"], { stdin: text });
    if (r.code !== 0) {
      throw new Error(`Cannot add nftables rule on "${host}": ${r.stderr.trim()}\n${text}`);
    }
    const handles = [...r.stdout.matchAll(/# handle (\d+)/g)].map((m) => Number(m[1]));
    if (handles.length !== rules.length) {
      throw new Error(`Cannot add nftables rule on "${host}": nft echoed ${r.stdout.trim()}`);
    }
    const refs = rules.map((rule, i) => ({
      table: rule.table,
      chain: rule.chain,
      handle: handles[i]!,
    }));
    return new LabRule(ns, refs, (cmd, stdin) => this.exec(host, cmd, stdin ? { stdin } : {}));
  }

  /**
   * Drops matching packets on a host, all of them or a random percentage, and counts them.
   *
   * @param host The host whose nftables drop.
   * @param opts Percentage, chain and match.
   * @returns The rule; its counter is the number of packets dropped.
   */
  drop(host: string, opts: DropOptions = {}): Promise<Rule> {
    const percent = opts.percent ?? 100;
    if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
      throw new RangeError(`Cannot drop ${percent}% of packets: expected an integer 0 to 100`);
    }
    const chain = opts.chain ?? this.#defaultChain(host, "input");
    const random = percent >= 100 ? "" : `numgen random mod 100 < ${percent} `;
    const expr = `${opts.match ?? ""} ${random}counter drop`.trim();
    return this.#addRules(host, [{ table: "inet lab", chain, expr }]);
  }

  /**
   * Duplicates matching packets: a copy of each is also sent to the neighbour
   * `towards` (nftables `dup to`), so it arrives twice.
   *
   * @param host The host whose nftables duplicate.
   * @param opts Match, chain, neighbour and families.
   * @returns The rule; its counter is the number of packets duplicated.
   */
  duplicate(host: string, opts: DuplicateOptions = {}): Promise<Rule> {
    const k = this.#index(host);
    const towards = opts.towards ?? this.path[k === 0 ? 1 : k - 1]!;
    const dev = this.iface(host, towards);
    const chain = opts.chain ?? this.#defaultChain(host, "output");
    const rules = families(opts.family ?? "both").map((f) => ({
      table: f === 4 ? "ip labdup" : "ip6 labdup",
      chain,
      expr: `oifname "${dev}" ${opts.match ?? ""} counter dup to ${
        this.address(towards, host, f)
      } device "${dev}"`,
    }));
    return this.#addRules(host, rules);
  }

  /**
   * Silences a router: drops the ICMP time-exceeded messages it sends, so
   * traceroute shows `*` for its hop.
   *
   * @param host The router.
   * @param opts Families.
   * @returns The rule; its counter is the number of messages suppressed.
   */
  silence(host: string, opts: SilenceOptions = {}): Promise<Rule> {
    const rules = families(opts.family ?? "both").map((f) => ({
      table: "inet lab",
      chain: "output" as const,
      expr: `${f === 4 ? "icmp" : "icmpv6"} type time-exceeded counter drop`,
    }));
    return this.#addRules(host, rules);
  }

  /**
   * Makes a host reject matching packets with an ICMP destination-unreachable code.
   *
   * @param host The host (usually a router, rejecting what it would forward).
   * @param opts The code, families, match and chain.
   * @returns The rule; its counter is the number of packets rejected.
   * @throws {TypeError} When the code has no ICMPv6 equivalent and IPv6 is selected.
   */
  reject(host: string, opts: RejectOptions): Promise<Rule> {
    const chain = opts.chain ?? this.#defaultChain(host, "input");
    const rules = families(opts.family ?? "both").map((f) => {
      const code = f === 4 ? V4_REJECT[opts.code] : V6_REJECT[opts.code];
      if (code === undefined) {
        throw new TypeError(
          `Cannot reject with "${opts.code}" over IPv6: ICMPv6 has no such code (use family: 4)`,
        );
      }
      const proto = f === 4 ? "ipv4" : "ipv6";
      const kind = f === 4 ? "icmp" : "icmpv6";
      return {
        table: "inet lab",
        chain,
        expr: `meta nfproto ${proto} ${opts.match ?? ""} counter reject with ${kind} type ${code}`,
      };
    });
    return this.#addRules(host, rules);
  }

  /**
   * Adds a rule that only counts matching packets.
   *
   * @param host The host.
   * @param opts Chain and match.
   * @returns The rule.
   */
  counter(host: string, opts: CounterOptions): Promise<Rule> {
    return this.#addRules(host, [{
      table: "inet lab",
      chain: opts.chain,
      expr: `${opts.match} counter`,
    }]);
  }

  /**
   * Removes the lab: kills processes still running in its namespaces, then
   * deletes the namespaces (and with them the veths, addresses and rules).
   * A second call does nothing.
   *
   * @returns Once removed.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const child of this.#children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await Promise.all([...this.#children].map(async (child) => {
      await child.status.catch(() => {});
      try {
        if (!child.stdin.locked) await child.stdin.close().catch(() => {});
      } catch {
        // stdin was not piped.
      }
      await Promise.all([child.stdout, child.stderr].map(async (s) => {
        if (!s.locked) await s.cancel().catch(() => {});
      }));
    }));
    this.#children.clear();
    const names = Object.values(this.hosts).map((h) => h.ns);
    // Anything else still inside (a daemon an exec'd command left behind)
    // would keep a namespace, and its veths, alive after `netns del`.
    const pids = await runCommand(
      "ip",
      ["-force", "-batch", "-"],
      names.map((ns) => `netns pids ${ns}`).join("\n") + "\n",
      DEFAULT_TIMEOUT_MS,
    ).catch(() => ({ stdout: "" }));
    for (const pid of pids.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await runCommand(
      "ip",
      ["-force", "-batch", "-"],
      names.map((ns) => `netns del ${ns}`).join("\n") + "\n",
      DEFAULT_TIMEOUT_MS,
    ).catch(() => {});
    liveLabs.delete(this);
  }
}

class LabRule implements Rule {
  readonly handle: number;
  readonly handles: readonly number[];
  #ns: string;
  #refs: RuleRef[];
  #exec: (cmd: string[], stdin?: string) => Promise<ExecResult>;
  #deleted = false;

  constructor(
    ns: string,
    refs: RuleRef[],
    exec: (cmd: string[], stdin?: string) => Promise<ExecResult>,
  ) {
    this.#ns = ns;
    this.#refs = refs;
    this.#exec = exec;
    this.handles = refs.map((r) => r.handle);
    this.handle = this.handles[0]!;
  }

  async counters(): Promise<Counters> {
    const total: Counters = { packets: 0, bytes: 0 };
    const chains = new Map<string, RuleRef[]>();
    for (const ref of this.#refs) {
      const key = `${ref.table} ${ref.chain}`;
      chains.set(key, [...(chains.get(key) ?? []), ref]);
    }
    for (const [key, refs] of chains) {
      const r = await this.#exec(["nft", "-j", "list", "chain", ...key.split(" ")]);
      if (r.code !== 0) {
        throw new Error(`Cannot read nftables counters in ${this.#ns}: ${r.stderr.trim()}`);
      }
      const doc = JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] };
      for (const ref of refs) {
        const rule = doc.nftables
          .map((o) => o.rule as { handle: number; expr: Record<string, unknown>[] } | undefined)
          .find((x) => x?.handle === ref.handle);
        if (rule === undefined) {
          throw new Error(
            `Cannot read nftables counters of rule ${ref.handle} in ${this.#ns}: it no longer exists`,
          );
        }
        for (const e of rule.expr) {
          const c = e.counter as Counters | undefined;
          if (c !== undefined) {
            total.packets += c.packets;
            total.bytes += c.bytes;
          }
        }
      }
    }
    return total;
  }

  async delete(): Promise<void> {
    if (this.#deleted) return;
    const text = this.#refs.map((r) => `delete rule ${r.table} ${r.chain} handle ${r.handle}`)
      .join("\n") + "\n";
    const r = await this.#exec(["nft", "-f", "-"], text);
    if (r.code !== 0) {
      throw new Error(`Cannot delete nftables rule in ${this.#ns}: ${r.stderr.trim()}`);
    }
    this.#deleted = true;
  }
}

function families(f: Families): (4 | 6)[] {
  return f === "both" ? [4, 6] : [f];
}

function mac(link: number, side: number): string {
  // Locally administered unicast (02:…), unique per link end within a lab.
  return `02:00:00:00:${link.toString(16).padStart(2, "0")}:0${side}`;
}

function v4Address(link: number, side: number): string {
  return `10.0.${link}.${side}`;
}

function v6Address(link: number, side: number): string {
  // Canonical text (RFC 5952), as tools print it: link 0 is fd00::/64.
  return link === 0 ? `fd00::${side}` : `fd00:0:${link}::${side}`;
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return new URL(module).href;
  const abs = module.startsWith("/") ? module : `${Deno.cwd()}/${module}`;
  return new URL(`file://${abs.split("/").map(encodeURIComponent).join("/")}`).href;
}

/**
 * Registers a Deno test that runs on a fresh lab, created before the test body
 * and removed after it, even when the body throws. Where labs cannot be
 * created (not root, no `ip` or `nft`), the test is ignored with the reason
 * printed, except under `CI=true`, where it fails with the reason.
 *
 * @param name The test's name (say the behaviour).
 * @param fn The test body; it receives the test context and the lab.
 * @param options Lab topology and the test's sanitizers.
 *
 * @example A test through three routers
 * ```ts ignore
 * import { labTest } from "./lab.ts";
 * labTest("ping reaches the target", async (_t, lab) => {
 *   const r = await lab.exec("client", ["ping", "-c", "1", lab.host("target").v4]);
 *   if (r.code !== 0) throw new Error(r.stdout);
 * });
 * ```
 */
export function labTest(
  name: string,
  fn: (t: Deno.TestContext, lab: Lab) => Promise<void>,
  options: LabTestOptions = {},
): void {
  const available = labAvailable();
  const ci = Deno.env.get("CI") === "true";
  if (!available.ok && !ci) {
    console.warn(`lab test "${name}" ignored: ${available.reason}`);
  }
  const labOptions: LabOptions = {};
  if (options.routers !== undefined) labOptions.routers = options.routers;
  Deno.test({
    name,
    ignore: !available.ok && !ci,
    sanitizeResources: options.sanitizeResources ?? true,
    sanitizeOps: options.sanitizeOps ?? true,
    async fn(t) {
      if (!available.ok) {
        throw new Error(`Cannot run lab test "${name}": ${available.reason}`);
      }
      await using lab = await Lab.create(labOptions);
      await fn(t, lab);
    },
  });
}
