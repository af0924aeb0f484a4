// Cost of a lab: create (namespaces, veths, addresses, routes, sysctls,
// nftables tables) and dispose, for the default three routers and for one.
import { Lab, labAvailable } from "./lab.ts";

if (labAvailable().ok) {
  Deno.bench("lab create + dispose, 3 routers", { n: 30, warmup: 3 }, async () => {
    await using _lab = await Lab.create();
  });
  Deno.bench("lab create + dispose, 1 router", { n: 30, warmup: 3 }, async () => {
    await using _lab = await Lab.create({ routers: 1 });
  });
  Deno.bench("lab exec (ip netns exec true)", { n: 50, warmup: 3 }, async (b) => {
    await using lab = await Lab.create({ routers: 0 });
    b.start();
    await lab.exec("client", ["true"]);
    b.end();
  });
}
