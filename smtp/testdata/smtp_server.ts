/**
 * Test fixture: nodemailer's `smtp-server` (under Deno's Node compatibility)
 * on a free loopback port, configured by a JSON argument.
 *
 * Prints `READY <port>`, then one JSON line per event (`auth`, `mail`,
 * `rcpt`, `data`, `pipelined`). Exits when its stdin closes.
 *
 * Run: deno run -A smtp/testdata/smtp_server.ts '{"size":1000}'
 *
 * @module
 */
import { SMTPServer } from "smtp-server";
import type { SmtpServerConfig as Config } from "../_testing.ts";

const config: Config = JSON.parse(Deno.args[0] ?? "{}");
const emit = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

function refusal(phase: string): Error & { responseCode?: number } | null {
  if (config.refuse?.phase !== phase) return null;
  const err: Error & { responseCode?: number } = new Error(config.refuse.message);
  err.responseCode = config.refuse.code;
  return err;
}

const server = new SMTPServer({
  secure: false,
  disabledCommands: ["STARTTLS", ...(config.authMethods ? [] : ["AUTH"])],
  authMethods: config.authMethods ?? [],
  authOptional: true,
  allowInsecureAuth: true,
  size: config.size ?? 0,
  hideSize: config.hideSize ?? false,
  hideDSN: !config.dsn,
  hidePIPELINING: config.hidePipelining ?? false,
  hideENHANCEDSTATUSCODES: !config.enhanced,
  logger: false,
  // A reverse lookup of 127.0.0.1 per connection would add its delay to every client run.
  disableReverseLookup: true,
  onConnect(_session, callback) {
    callback(refusal("connect"));
  },
  onAuth(auth, _session, callback) {
    emit({ event: "auth", method: auth.method, username: auth.username ?? null });
    const refused = refusal("auth");
    if (refused) return callback(refused);
    const secret = config.users?.[auth.username ?? ""];
    let ok = false;
    if (secret !== undefined) {
      if (auth.method === "XOAUTH2") ok = auth.accessToken === secret;
      else if (auth.method === "CRAM-MD5") ok = auth.validatePassword(secret);
      else ok = auth.password === secret;
    }
    if (ok) return callback(null, { user: auth.username });
    if (auth.method === "XOAUTH2") {
      return callback(null, { data: { status: "401", schemes: "bearer", scope: "mail" } });
    }
    const err: Error & { responseCode?: number } = new Error("Invalid username or password");
    err.responseCode = 535;
    callback(err);
  },
  onMailFrom(address, _session, callback) {
    emit({ event: "mail", address: address.address, args: address.args });
    callback(refusal("mail"));
  },
  onRcptTo(address, _session, callback) {
    emit({ event: "rcpt", address: address.address, args: address.args, dsn: address.dsn ?? null });
    if (config.refuseRecipients?.includes(address.address)) {
      const err: Error & { responseCode?: number } = new Error("No such user here");
      err.responseCode = 550;
      return callback(err);
    }
    callback(refusal("rcpt"));
  },
  onData(stream, session, callback) {
    const chunks: Uint8Array[] = [];
    let size = 0;
    stream.on("data", (chunk: Uint8Array) => {
      size += chunk.length;
      if (size < 1 << 20) chunks.push(chunk);
    });
    stream.on("end", () => {
      const envelope = session.envelope;
      const data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const c of chunks) {
        data.set(c, offset);
        offset += c.length;
      }
      emit({
        event: "data",
        size,
        text: size < 1 << 20 ? new TextDecoder().decode(data) : null,
        rcpt: envelope.rcptTo.map((r) => r.address),
        dsn: (envelope as { dsn?: unknown }).dsn ?? null,
      });
      if ((stream as { sizeExceeded?: boolean }).sizeExceeded) {
        const err: Error & { responseCode?: number } = new Error("Message exceeds the size limit");
        err.responseCode = 552;
        return callback(err);
      }
      callback(refusal("data"));
    });
  },
});

server.listen(0, "127.0.0.1", () => {
  const address = (server as unknown as { server: { address(): { port: number } } }).server
    .address();
  console.log(`READY ${address.port}`);
});

// Stop when the test closes our stdin.
for await (const _ of Deno.stdin.readable) { /* drain */ }
server.close(() => Deno.exit(0));
