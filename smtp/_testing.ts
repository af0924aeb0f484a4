/**
 * Test helpers for smtp/: real servers (aiosmtpd, smtp-server) on loopback,
 * throw-away certificates made with openssl, and a CLI runner.
 *
 * @module
 */
import { makeTestCa } from "../lib/testing/tls.ts";
import { freePort } from "../lib/testing/ports.ts";

const here = new URL(".", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A server child process that prints `READY <port>` and stops when its stdin closes. */
class ServerProcess implements AsyncDisposable {
  readonly port: number;
  readonly #child: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #events: string[] = [];
  #pump: Promise<void>;
  readonly #cleanup: () => Promise<void>;

  private constructor(
    child: Deno.ChildProcess,
    lines: ReadableStreamDefaultReader<string>,
    port: number,
    cleanup: () => Promise<void>,
  ) {
    this.#child = child;
    this.#lines = lines;
    this.port = port;
    this.#cleanup = cleanup;
    this.#pump = this.#drain();
  }

  static async start(
    command: string,
    args: string[],
    cleanup: () => Promise<void> = async () => {},
  ): Promise<ServerProcess> {
    const child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())
      .getReader();
    while (true) {
      const { done, value } = await lines.read();
      if (done) {
        await child.stdin.close();
        await child.status;
        throw new Error(`Cannot start test server ${args.join(" ")}: it exited`);
      }
      const match = /^READY (\d+)$/.exec(value);
      if (match) return new ServerProcess(child, lines, Number(match[1]), cleanup);
    }
  }

  async #drain(): Promise<void> {
    while (true) {
      const { done, value } = await this.#lines.read();
      if (done) return;
      this.#events.push(value);
    }
  }

  /** The JSON event lines seen so far. */
  events(): Array<Record<string, unknown>> {
    return this.#events.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  }

  /** Waits until an event matches, or fails after `ms`. */
  async waitFor(
    predicate: (event: Record<string, unknown>) => boolean,
    ms = 5000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const found = this.events().find(predicate);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error("test server: expected event did not come");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#child.stdin.close();
    await this.#pump;
    await this.#child.status;
    await this.#cleanup();
  }
}

function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) controller.enqueue(p);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}

/** A running aiosmtpd fixture, with the messages it delivered. */
export interface Aiosmtpd extends AsyncDisposable {
  /** The port on 127.0.0.1. */
  port: number;
  /** Paths of the delivered `.eml` files, in order. */
  delivered(): Promise<string[]>;
  /** The envelope of delivered message `n` (1-based). */
  envelope(n: number): Promise<Record<string, unknown>>;
  /** Each AUTH attempt the server saw, in order, as `"<mechanism> <ok|refused>"`. */
  authAttempts(): Promise<string[]>;
}

/** Starts aiosmtpd (Debian python3-aiosmtpd) through smtp/testdata/aiosmtpd_server.py. */
export async function startAiosmtpd(
  options: {
    mode?: "plain" | "starttls" | "implicit";
    certs?: Certs | KeyPair;
    cert?: "good" | "wrong";
    user?: string;
    password?: string;
  } = {},
): Promise<Aiosmtpd> {
  const dir = await Deno.makeTempDir({ prefix: "smtp_aiosmtpd_" });
  const args = [
    `${here}testdata/aiosmtpd_server.py`,
    "--dir",
    dir,
    "--mode",
    options.mode ?? "plain",
  ];
  if (options.certs) {
    const certs = options.certs;
    const which = "good" in certs ? (options.cert === "wrong" ? certs.wrong : certs.good) : certs;
    args.push("--cert", which.cert, "--key", which.key);
  }
  if (options.user !== undefined) args.push("--user", options.user);
  if (options.password !== undefined) args.push("--password", options.password);
  const server = await ServerProcess.start(
    "/usr/bin/python3",
    args,
    () => Deno.remove(dir, { recursive: true }),
  );
  return {
    port: server.port,
    async delivered() {
      const names: string[] = [];
      for await (const entry of Deno.readDir(dir)) {
        if (entry.name.endsWith(".eml")) names.push(entry.name);
      }
      return names.sort((a, b) => parseInt(a) - parseInt(b)).map((n) => `${dir}/${n}`);
    },
    async envelope(n: number) {
      return JSON.parse(await Deno.readTextFile(`${dir}/${n}.json`));
    },
    async authAttempts() {
      const text = await Deno.readTextFile(`${dir}/auth.log`).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return "";
        throw e;
      });
      return text.split("\n").filter((line) => line !== "");
    },
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

/** What the smtp-server fixture (testdata/smtp_server.ts) can be told to do. */
export interface SmtpServerConfig {
  /** SIZE limit to advertise and enforce (0: none). */
  size?: number;
  /** Advertise SIZE without a limit, and refuse oversized data only after DATA. */
  hideSize?: boolean;
  /** Offer DSN. */
  dsn?: boolean;
  /** Hide PIPELINING. */
  hidePipelining?: boolean;
  /** Offer these SASL mechanisms; none: no AUTH. */
  authMethods?: string[];
  /** Accepted user → password (or XOAUTH2 token). */
  users?: Record<string, string>;
  /** Refuse at a phase: connect, auth, mail, rcpt, data. */
  refuse?: { phase: string; code: number; message: string };
  /** Recipients to refuse with 550. */
  refuseRecipients?: string[];
  /** Enhanced status codes on replies. */
  enhanced?: boolean;
}

/** A running smtp-server fixture. */
export type NodemailerServer = ServerProcess;

/** Starts nodemailer's smtp-server (npm:smtp-server under Deno) with a configuration. */
export function startSmtpServer(config: SmtpServerConfig = {}): Promise<NodemailerServer> {
  return ServerProcess.start(Deno.execPath(), [
    "run",
    "-A",
    "--quiet",
    `${here}testdata/smtp_server.ts`,
    JSON.stringify(config),
  ]);
}

/** What Python's `email` package makes of a message (testdata/parse_message.py). */
export interface ParsedMessage {
  headers: Record<string, string[]>;
  defects: string[];
  tree: MimeNode;
}

/** One MIME part as parse_message.py reports it. */
export interface MimeNode {
  content_type: string;
  filename: string | null;
  disposition: string | null;
  transfer_encoding: string | null;
  parts?: MimeNode[];
  sha256?: string;
  size?: number;
  text?: string;
}

/** Parses a message file with Python's `email` package. */
export async function parseWithPython(path: string): Promise<ParsedMessage> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${here}testdata/parse_message.py`, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`parse_message.py failed: ${decoder.decode(out.stderr)}`);
  return JSON.parse(decoder.decode(out.stdout));
}

/** A key pair in PEM files. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** A test CA and two server certificates: one for 127.0.0.1, one for another name. */
export interface Certs extends AsyncDisposable {
  /** The CA certificate (PEM file) to pass to --tls-ca. */
  ca: string;
  /** Valid for IP 127.0.0.1 and DNS localhost. */
  good: KeyPair;
  /** Valid only for DNS mismatch.invalid. */
  wrong: KeyPair;
}

/** Makes a throw-away CA and server certificates with openssl (lib/testing/tls.ts). */
export async function makeCerts(): Promise<Certs> {
  const ca = await makeTestCa({ hosts: ["127.0.0.1", "localhost"], prefix: "smtp_certs_" });
  try {
    const wrong = await ca.issue(["mismatch.invalid"]);
    return {
      ca: ca.caPath,
      good: { cert: ca.certPath, key: ca.keyPath },
      wrong: { cert: wrong.certPath, key: wrong.keyPath },
      [Symbol.asyncDispose]: () => ca[Symbol.asyncDispose](),
    };
  } catch (err) {
    await ca[Symbol.asyncDispose]();
    throw err;
  }
}

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A smtp/main.ts ...args`. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${here}main.ts`, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A self-signed certificate as `openssl req -x509` makes it by default (`CA:TRUE`). */
export interface SelfSigned extends KeyPair, AsyncDisposable {
  /** Its SHA-256 fingerprint as openssl prints it: `SHA256:AB:CD:…`. */
  fingerprint: string;
}

/**
 * Makes the certificate most small mail servers have: `openssl req -x509
 * -newkey rsa:2048 -nodes -subj /CN=localhost -addext
 * subjectAltName=DNS:localhost`, a `CA:TRUE` leaf.
 */
export async function makeSelfSigned(): Promise<SelfSigned> {
  const dir = await Deno.makeTempDir({ prefix: "smtp_selfsigned_" });
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(`openssl ${args[0]} failed: ${decoder.decode(out.stderr)}`);
    return decoder.decode(out.stdout);
  };
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost",
    "-days",
    "2",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  const printed = await run(["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]);
  return {
    cert,
    key,
    fingerprint: `SHA256:${printed.trim().split("=")[1]}`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Runs the `smtp/sendmail` wrapper (sendmail mode) with `stdin` as the message. */
export async function runSendmail(
  args: string[],
  stdin: string,
  env: Record<string, string> = {},
): Promise<CliResult> {
  const child = new Deno.Command(`${here}sendmail`, {
    args,
    // The wrapper finds deno on the PATH, as it would when installed.
    env: {
      PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`,
      ...env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A running Postfix instance of its own (Debian `postfix`), configured by the test. */
export interface Postfix extends AsyncDisposable {
  /** The STARTTLS submission port (smtpd, TLS offered). */
  starttlsPort: number;
  /** The implicit-TLS port (smtpd with `smtpd_tls_wrappermode`). */
  implicitPort: number;
}

/**
 * Starts Postfix with a private configuration directory, queue and log: two
 * smtpd listeners on loopback presenting `cert`, relaying everything for
 * 127.0.0.0/8 to `relayPort` (an aiosmtpd fixture, so the test sees what
 * Postfix delivered).
 */
export async function startPostfix(cert: KeyPair, relayPort: number): Promise<Postfix> {
  const dir = await Deno.makeTempDir({ prefix: "smtp_postfix_" });
  const conf = `${dir}/conf`;
  const [starttlsPort, implicitPort] = [freePort(), freePort()];
  const run = async (args: string[]) => {
    const out = await new Deno.Command("postfix", {
      args: ["-c", conf, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const log = await Deno.readTextFile(`${dir}/maillog`).catch(() => "");
      throw new Error(`postfix ${args.join(" ")} failed: ${decoder.decode(out.stderr)}${log}`);
    }
  };
  try {
    // Postfix's daemons run as user postfix: they must reach the data directory.
    await Deno.chmod(dir, 0o755);
    await Deno.mkdir(conf);
    await Deno.copyFile(cert.cert, `${conf}/cert.pem`);
    await Deno.copyFile(cert.key, `${conf}/key.pem`);
    await Deno.mkdir(`${dir}/data`);
    await Deno.mkdir(`${dir}/queue`);
    await Deno.chown(`${dir}/data`, await postfixUid(), null);
    // The stock master.cf without its port 25 listener, chroot off (the queue is no jail).
    const master = (await Deno.readTextFile("/etc/postfix/master.cf"))
      .split("\n").filter((line) => !/^smtp\s+inet\s/.test(line))
      .map((line) =>
        /^[a-z][\w-]*\s+(unix|unix-dgram|fifo|pass)\s/.test(line)
          ? line.replace(/^(\S+\s+\S+\s+\S+\s+\S+\s+)\S+/, "$1n")
          : line
      ).join("\n");
    await Deno.writeTextFile(
      `${conf}/master.cf`,
      `${master}\n127.0.0.1:${starttlsPort} inet n - n - - smtpd\n` +
        `127.0.0.1:${implicitPort} inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n`,
    );
    await Deno.writeTextFile(
      `${conf}/main.cf`,
      [
        "compatibility_level = 3.6",
        `queue_directory = ${dir}/queue`,
        `data_directory = ${dir}/data`,
        `maillog_file = ${dir}/maillog`,
        `maillog_file_prefixes = ${dir}`,
        "myhostname = postfix.test",
        "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4",
        "mydestination =",
        `relayhost = [127.0.0.1]:${relayPort}`,
        "mynetworks = 127.0.0.0/8",
        "smtpd_relay_restrictions = permit_mynetworks, reject",
        `smtpd_tls_cert_file = ${conf}/cert.pem`,
        `smtpd_tls_key_file = ${conf}/key.pem`,
        "smtpd_tls_security_level = may",
        "alias_maps =",
        "alias_database =",
        // Deliver at once: the test waits for the relayed message.
        "smtp_tls_security_level = none",
      ].join("\n") + "\n",
    );
    await run(["start"]);
    // Ready when both listeners accept.
    for (const port of [starttlsPort, implicitPort]) {
      for (let tries = 0;; tries++) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          break;
        } catch (err) {
          if (tries > 200) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  } catch (err) {
    await run(["abort"]).catch(() => {});
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return {
    starttlsPort,
    implicitPort,
    async [Symbol.asyncDispose]() {
      await run(["stop"]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function postfixUid(): Promise<number> {
  const out = await new Deno.Command("id", { args: ["-u", "postfix"], stdout: "piped" }).output();
  return Number(decoder.decode(out.stdout).trim());
}

/** Waits until `count` messages have been delivered to `server` (a relay's target). */
export async function waitForDelivered(server: Aiosmtpd, count: number): Promise<string[]> {
  for (let tries = 0; tries < 600; tries++) {
    const delivered = await server.delivered();
    if (delivered.length >= count) return delivered;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`expected ${count} delivered message(s) within 30 s`);
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "smtp_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
