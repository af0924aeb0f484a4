// Run by lib/resolve_test.ts inside a lab namespace: resolves each argument
// (a name, or "-x ADDRESS" for a reverse lookup) and prints one JSON line.
import { ResolveError, resolveHost, reverseLookup } from "../resolve.ts";

const results: unknown[] = [];
for (let i = 0; i < Deno.args.length; i++) {
  const arg = Deno.args[i]!;
  if (arg === "-x") {
    const address = Deno.args[++i]!;
    results.push({ reverse: address, name: (await reverseLookup(address)) ?? null });
    continue;
  }
  try {
    const r = await resolveHost(arg);
    results.push({ host: arg, address: r.address, family: r.family });
  } catch (err) {
    if (!(err instanceof ResolveError)) throw err;
    results.push({ host: arg, error: err.code, message: err.message });
  }
}
console.log(JSON.stringify(results));
