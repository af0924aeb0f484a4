/**
 * A headless Chromium (Debian `chromium`) driven by playwright-core, for
 * tests that load pages from our servers, and the directory where such tests
 * leave screenshots.
 *
 * Not re-exported from mod.ts: its API is playwright-core's types, and
 * playwright-core is loaded only when a browser is launched, so lab tests
 * never pull it in.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";

/** Options of {@linkcode launchChromium}. */
export interface LaunchChromiumOptions {
  /**
   * An HTTP proxy for every request, loopback included (e.g.
   * `"http://127.0.0.1:3128"`); none when absent.
   */
  proxy?: string;
  /**
   * The Chromium binary.
   * @default {"/usr/bin/chromium"}
   */
  executablePath?: string;
}

/**
 * Launches a headless Chromium with the flags this machine needs: no sandbox
 * (tests run as root), no GPU, and none of the background traffic (QUIC,
 * updates, sync) that would leave loopback.
 *
 * @param options A proxy to send all traffic through, the binary.
 * @returns The browser; close it (or dispose of it) when done.
 *
 * @example
 * ```ts ignore
 * import { launchChromium } from "./browser.ts";
 * await using browser = await launchChromium();
 * const page = await browser.newPage();
 * ```
 */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ];
  if (options.proxy !== undefined) {
    // Chromium bypasses the proxy for loopback unless "<-loopback>" removes that rule.
    args.push(`--proxy-server=${options.proxy}`, "--proxy-bypass-list=<-loopback>");
  }
  return await chromium.launch({
    executablePath: options.executablePath ?? "/usr/bin/chromium",
    args,
  });
}

/**
 * Makes sure the repository's `test-artifacts/` directory exists and returns
 * the path of a file in it (screenshots that CI keeps).
 *
 * @param name The file name, e.g. `"web_server_index.png"`.
 * @returns The absolute path.
 *
 * @example
 * ```ts
 * import { artifactPath } from "./browser.ts";
 * import { assert } from "./assert.ts";
 * const path = await artifactPath("example.png");
 * assert(path.endsWith("/test-artifacts/example.png"));
 * ```
 */
export async function artifactPath(name: string): Promise<string> {
  const dir = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
  await Deno.mkdir(dir, { recursive: true });
  return `${dir}${name}`;
}
