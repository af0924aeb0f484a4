/**
 * Throw-away TLS certificates for tests: a private CA and server
 * certificates it signs, made with openssl (Debian `openssl`), so TLS peers
 * (Deno.listenTls, aiosmtpd, curl) can be verified without touching the
 * system trust store.
 *
 * @module
 */

const decoder = new TextDecoder();

/** A server certificate and its private key, as PEM text and as files. */
export interface TestCert {
  /** The certificate, PEM. */
  cert: string;
  /** The private key, PEM (unencrypted). */
  key: string;
  /** The certificate's file. */
  certPath: string;
  /** The private key's file. */
  keyPath: string;
}

/** A test CA with a first server certificate; disposing of it removes the files. */
export interface TestCa extends TestCert, AsyncDisposable {
  /** The directory that holds every file. */
  dir: string;
  /** The CA certificate, PEM: what a client trusts. */
  caCert: string;
  /** The CA certificate's file (for `--cacert`, `--tls-ca`). */
  caPath: string;
  /**
   * Issues another server certificate signed by this CA.
   *
   * @param hosts DNS names and IP addresses for the subjectAltName.
   * @returns The certificate and key.
   */
  issue(hosts: readonly string[]): Promise<TestCert>;
}

/** Options of {@linkcode makeTestCa}. */
export interface MakeTestCaOptions {
  /**
   * DNS names and IP addresses the first server certificate is valid for.
   * @default {["localhost", "127.0.0.1"]}
   */
  hosts?: readonly string[];
  /**
   * Prefix of the temporary directory.
   * @default {"netkit_tls_"}
   */
  prefix?: string;
}

/**
 * Makes a throw-away CA (EC P-256, valid two days) in a temporary directory
 * and a server certificate it signs for the given hosts.
 *
 * @param options The hosts of the first certificate, the directory prefix.
 * @returns The CA and its first certificate; dispose of it to remove the files.
 *
 * @example
 * ```ts
 * import { makeTestCa } from "./tls.ts";
 * import { assert } from "./assert.ts";
 * await using ca = await makeTestCa({ hosts: ["localhost"] });
 * assert(ca.caCert.startsWith("-----BEGIN CERTIFICATE-----"));
 * const other = await ca.issue(["mismatch.invalid"]);
 * assert(other.key.includes("PRIVATE KEY"));
 * ```
 */
export async function makeTestCa(options: MakeTestCaOptions = {}): Promise<TestCa> {
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "netkit_tls_" });
  const remove = () => Deno.remove(dir, { recursive: true });
  try {
    await openssl(dir, [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=netkit test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    ]);
    let issued = 0;
    const issue = (hosts: readonly string[]) => issueCert(dir, `leaf${++issued}`, hosts);
    const first = await issue(options.hosts ?? ["localhost", "127.0.0.1"]);
    const caPath = `${dir}/ca.pem`;
    return {
      ...first,
      dir,
      caCert: await Deno.readTextFile(caPath),
      caPath,
      issue,
      [Symbol.asyncDispose]: remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function issueCert(dir: string, name: string, hosts: readonly string[]): Promise<TestCert> {
  if (hosts.length === 0) throw new RangeError("Cannot issue a certificate: no hosts given");
  // Clients check the subjectAltName, not the CN (RFC 6125 §6.4.4).
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  await openssl(dir, [
    "req",
    ...EC_KEY,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${hosts[0]}`,
  ]);
  await Deno.writeTextFile(
    `${dir}/${name}.ext`,
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
  const certPath = `${dir}/${name}.pem`;
  const keyPath = `${dir}/${name}.key`;
  return {
    cert: await Deno.readTextFile(certPath),
    key: await Deno.readTextFile(keyPath),
    certPath,
    keyPath,
  };
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `Cannot make a test certificate: openssl ${args[0]} failed: ${
        decoder.decode(out.stderr).trim()
      }`,
    );
  }
}
