// Run by lib/resolve_test.ts inside a lab namespace: resolves each argument
// (a name, or "-x ADDRESS" for a reverse lookup) and prints one JSON line.
import { resolveAll, ResolveError, reverseLookup } from "../resolve.ts";

const results: unknown[] = [];
for (let i = 0; i < Deno.args.length; i++) {
  const arg = Deno.args[i]!;
  if (arg === "-x") {
    const address = Deno.args[++i]!;
    results.push({ reverse: address, name: (await reverseLookup(address)) ?? null });
    continue;
  }
  try {
    const all = await resolveAll(arg);
    const all4 = all.map((r) => `${r.address}/${r.family}`);
    results.push({ host: arg, address: all[0]!.address, family: all[0]!.family, all: all4 });
  } catch (err) {
    if (!(err instanceof ResolveError)) throw err;
    results.push({ host: arg, error: err.code, message: err.message });
  }
}
console.log(JSON.stringify(results));
