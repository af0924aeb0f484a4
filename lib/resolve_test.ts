import { assert, assertEquals, assertRejects } from "./testing/assert.ts";
import { labTest } from "./testing/lab.ts";
import { resolveAll, ResolveError, resolveHost, ReverseCache, reverseLookup } from "./resolve.ts";

const PROBE = new URL("./testdata/resolve_probe.ts", import.meta.url).pathname;

Deno.test("resolveHost() takes addresses as they are, without a lookup", async () => {
  assertEquals(await resolveHost("192.0.2.1"), {
    address: "192.0.2.1",
    family: 4,
    host: "192.0.2.1",
    numeric: true,
  });
  assertEquals((await resolveHost("fe80::1%lo")).address, "fe80::1");
  const err = await assertRejects(() => resolveHost("::1", { family: 4 }), ResolveError);
  assertEquals(err.code, "EAI_ADDRFAMILY");
  assertEquals(err.message, 'Cannot resolve host "::1": no address of the requested family');
  assertEquals(await resolveAll("2001:db8::1"), [
    { address: "2001:db8::1", family: 6, host: "2001:db8::1", numeric: true },
  ]);
});

Deno.test("resolveHost() and reverseLookup() read the hosts file as the system does", async () => {
  // "localhost" is in /etc/hosts here; the hosts file answers before DNS.
  assertEquals(await resolveHost("localhost", { family: 4 }), {
    address: "127.0.0.1",
    family: 4,
    host: "localhost",
    numeric: false,
  });
  assertEquals(await reverseLookup("127.0.0.1"), "localhost");
});

Deno.test("ReverseCache looks each address up once and peek() never waits", async () => {
  const calls: string[] = [];
  const cache = new ReverseCache((address) => {
    calls.push(address);
    return Promise.resolve(address === "10.0.0.1" ? "one.example" : undefined);
  });
  assertEquals(cache.peek("10.0.0.1"), undefined); // starts the lookup
  await cache.settle();
  assertEquals(cache.peek("10.0.0.1"), "one.example");
  const [a, b] = await Promise.all([cache.get("10.0.0.2"), cache.get("10.0.0.2")]);
  assertEquals([a, b], [undefined, undefined]);
  assertEquals(await cache.get("10.0.0.1"), "one.example");
  assertEquals(calls, ["10.0.0.1", "10.0.0.2"]);
});

labTest(
  "names resolve through the namespace's hosts file, and unknown ones fail cleanly",
  async (t, lab) => {
    // `ip netns exec` mounts /etc/netns/<ns>/* over /etc: the client gets its own
    // hosts file and a resolver that fails at once, so no query leaves the lab.
    const dir = `/etc/netns/${lab.host("client").ns}`;
    await Deno.mkdir(dir, { recursive: true });
    try {
      const target = lab.host("target");
      const r1 = lab.host("r1");
      await Deno.writeTextFile(
        `${dir}/hosts`,
        `127.0.0.1 localhost\n${target.v4} target.lab\n${target.v6} target6.lab\n` +
          `${target.v4} both.lab\n192.0.2.7 both.lab\n${target.v6} both.lab\n`,
      );
      await Deno.writeTextFile(`${dir}/resolv.conf`, "nameserver 127.0.0.1\noptions attempts:1\n");
      const args = ["target.lab", "target6.lab", "nowhere.invalid", "both.lab"];
      const probe = (flags: string[]) =>
        lab.exec("client", [
          Deno.execPath(),
          "run",
          ...flags,
          PROBE,
          ...args,
          "-x",
          target.v4,
          "-x",
          r1.v4,
        ]);
      const r = await probe(["-A"]);
      assertEquals(r.code, 0, r.stderr);
      const [v4, v6, unknown, both, name, none] = JSON.parse(r.stdout);
      await t.step("forward lookups", () => {
        assertEquals(v4, {
          host: "target.lab",
          address: target.v4,
          family: 4,
          all: [`${target.v4}/4`],
        });
        assertEquals(v6, {
          host: "target6.lab",
          address: target.v6,
          family: 6,
          all: [`${target.v6}/6`],
        });
      });
      await t.step("resolveAll() gives every address of a name, each once", () => {
        assertEquals(
          [...both.all].sort(),
          [`${target.v4}/4`, "192.0.2.7/4", `${target.v6}/6`].sort(),
        );
      });
      await t.step("without FFI, node:dns gives the same answers", async () => {
        const fallback = await probe(["-A", "--deny-ffi", "--no-prompt"]);
        assertEquals(fallback.code, 0, fallback.stderr);
        const [f4, f6, fUnknown, fBoth] = JSON.parse(fallback.stdout);
        assertEquals([f4, f6], [v4, v6]);
        assertEquals([...fBoth.all].sort(), [...both.all].sort());
        assertEquals(fUnknown.message, unknown.message);
      });
      await t.step("an unknown name is a ResolveError, not a crash", () => {
        assert(["ENOTFOUND", "EAI_AGAIN"].includes(unknown.error), JSON.stringify(unknown));
        assert(unknown.message.startsWith('Cannot resolve host "nowhere.invalid": '));
      });
      await t.step("reverse lookups", () => {
        assertEquals(name, { reverse: target.v4, name: "target.lab" });
        assertEquals(none, { reverse: lab.host("r1").v4, name: null });
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
