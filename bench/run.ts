/**
 * `deno task bench [NAME...]`: runs the micro-benchmarks (`deno bench` over
 * the `*_bench.ts` files) and then the end-to-end comparisons in `bench/`,
 * each of which runs our tool and its reference tool in the same process
 * tree and prints medians and ratios. With names, runs only those suites.
 *
 * Suites: micro, ping, startup, traceroute, traceroute_live, udp, web, client, proxy, proxy_shared, cache_conformance, smtp.
 * The network ones need root (raw sockets, network namespaces) and the Debian
 * peers that `.ci/run` installs (iputils, traceroute, irtt, nginx, squid, wrk,
 * swaks, redis-server; node and npm for the HTTP cache conformance suite, which is looked for
 * in `../shared/cache-tests`).
 *
 * @module
 */
const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

const SUITES: Record<string, string[]> = {
  micro: ["bench", "-A", "--no-check=remote"],
  ping: ["run", "-A", `${here}ping.ts`, "11"],
  startup: ["run", "-A", `${here}startup.ts`, "21"],
  traceroute: ["run", "-A", `${here}traceroute.ts`, "9"],
  traceroute_live: ["run", "-A", `${here}traceroute_live.ts`],
  udp: ["run", "-A", `${here}udp.ts`],
  web: ["run", "-A", `${here}web.ts`, "--duration", "4", "--rounds", "3"],
  client: ["run", "-A", `${here}client.ts`, "--rounds", "7"],
  proxy: ["run", "-A", `${here}proxy.ts`, "--duration", "5"],
  proxy_shared: ["run", "-A", `${here}proxy_shared.ts`, "--duration", "5", "--rounds", "5"],
  cache_conformance: ["run", "-A", `${here}cache_conformance.ts`],
  smtp: ["run", "-A", `${here}smtp.ts`],
};

const names = Deno.args.length > 0 ? Deno.args : Object.keys(SUITES);
const unknown = names.filter((name) => !(name in SUITES));
if (unknown.length > 0) {
  console.error(
    `bench: unknown suite ${unknown.join(", ")}; known: ${Object.keys(SUITES).join(", ")}`,
  );
  Deno.exit(2);
}
const failed: string[] = [];
for (const name of names) {
  console.log(`\n=== ${name} ===`);
  const { code } = await new Deno.Command(Deno.execPath(), { args: SUITES[name]!, cwd: root })
    .spawn().status;
  if (code !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nbench: ${failed.join(", ")} failed`);
  Deno.exit(1);
}
