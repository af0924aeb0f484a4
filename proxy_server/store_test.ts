import { assert, assertEquals } from "../lib/testing/assert.ts";
import { CacheStore, type EntryMeta, parseEntryFile } from "./store.ts";

const enc = new TextEncoder();

function meta(url: string, vary = ""): EntryMeta {
  return {
    key: `${url}\n${vary}`,
    url,
    status: 200,
    reason: "OK",
    fields: [["content-type", "text/plain"]],
    requestTime: 1,
    responseTime: 2,
    bodyLength: 0,
  };
}

async function put(store: CacheStore, m: EntryMeta, body: Uint8Array, chunk = 1 << 16) {
  const w = store.beginWrite(m);
  for (let i = 0; i < body.length; i += chunk) await w.write(body.subarray(i, i + chunk));
  await w.commit();
}

async function bodyOf(store: CacheStore, key: string): Promise<Uint8Array | undefined> {
  const b = await store.openBody(key);
  if (b === undefined || b instanceof Uint8Array) return b;
  return new Uint8Array(await new Response(b).arrayBuffer());
}

Deno.test("CacheStore memory tier evicts least recently used entries by bytes", async () => {
  const store = await CacheStore.open({ memorySize: 20000, memoryObjectSize: 8000 });
  const blob = new Uint8Array(3000);
  await put(store, meta("http://a/1"), blob);
  await put(store, meta("http://a/2"), blob);
  store.get("http://a/1\n"); // touch 1, so 2 is the oldest
  await put(store, meta("http://a/3"), blob);
  assert(store.get("http://a/1\n") !== undefined);
  assertEquals(store.get("http://a/2\n"), undefined);
  assert(store.get("http://a/3\n") !== undefined);
  assert(store.memoryBytes <= 20000);
});

Deno.test("CacheStore counts entries the memory tier takes under new keys", async () => {
  const store = await CacheStore.open({ memorySize: 20000, memoryObjectSize: 8000 });
  const blob = new Uint8Array(3000);
  await put(store, meta("http://a/1"), blob);
  await put(store, meta("http://a/2"), blob);
  assertEquals(store.memoryInserts, 2);
  // A refresh of a stored key is no insert.
  await put(store, meta("http://a/1"), blob);
  assertEquals(store.memoryInserts, 2);
  // Nor is a body over the tier's object size, which goes nowhere.
  await put(store, meta("http://a/big"), new Uint8Array(9000));
  assertEquals(store.memoryInserts, 2);
});

Deno.test("CacheStore keeps every Vary variant of a URI until the last one goes", async () => {
  const store = await CacheStore.open();
  const url = "http://a/v";
  const variant = (lang: string): EntryMeta => ({
    ...meta(url, `accept-language:${lang}\n`),
    fields: [["vary", "Accept-Language"], ["content-type", "text/plain"]],
  });
  await put(store, variant("en"), enc.encode("en"));
  await put(store, variant("fr"), enc.encode("fr"));
  await put(store, variant("fr"), enc.encode("fr2")); // the same key again
  assertEquals(store.varyOf(url), "Accept-Language");
  assertEquals(store.size, 2);
  await store.delete(`${url}\naccept-language:en\n`);
  assertEquals(store.varyOf(url), "Accept-Language"); // fr is still stored
  assertEquals(await bodyOf(store, `${url}\naccept-language:fr\n`), enc.encode("fr2"));
  await put(store, variant("de"), enc.encode("de"));
  assertEquals(await store.deleteUrl(url), 2);
  assertEquals(store.varyOf(url), undefined);
  assertEquals(store.size, 0);
  // A URI stored again after its variants went starts afresh.
  await put(store, meta(url), enc.encode("plain"));
  assertEquals(store.varyOf(url), "");
  assertEquals(await store.deleteUrl(url), 1);
});

Deno.test("CacheStore indexes a URI stored without Vary, then with it, under both keys", async () => {
  const store = await CacheStore.open();
  const url = "http://a/later-vary";
  await put(store, meta(url), enc.encode("plain"));
  assertEquals(store.varyOf(url), "");
  const varied: EntryMeta = {
    ...meta(url, "accept-encoding:gzip\n"),
    fields: [["vary", "Accept-Encoding"]],
  };
  await put(store, varied, enc.encode("gzip"));
  assertEquals(store.varyOf(url), "Accept-Encoding");
  assertEquals(await store.deleteUrl(url), 2);
  assertEquals(store.varyOf(url), undefined);
  assertEquals(store.size, 0);
  // Deleting the one key of a URI without Vary forgets the URI.
  await put(store, meta(url), enc.encode("again"));
  await store.delete(`${url}\n`);
  assertEquals(store.varyOf(url), undefined);
  assertEquals(await store.deleteUrl(url), 0);
});

Deno.test("CacheStore shares equal stored field pairs between entries, read-only", async () => {
  const store = await CacheStore.open();
  const fields: Array<[string, string]> = [["cache-control", "public, max-age=60"]];
  await put(store, { ...meta("http://a/p1"), fields }, enc.encode("1"));
  await put(store, {
    ...meta("http://a/p2"),
    fields: [["cache-control", "public, max-age=" + 60]],
  }, enc.encode("2"));
  const a = store.get("http://a/p1\n")!.meta.fields;
  const b = store.get("http://a/p2\n")!.meta.fields;
  assertEquals(a, [["cache-control", "public, max-age=60"]]);
  assert(a[0] === b[0], "one pair for both entries");
  assert(a[0] !== fields[0], "the caller's pair is not kept");
  // A pair shared by many entries cannot be changed through one of them.
  let threw = false;
  try {
    a[0]![1] = "no-store";
  } catch (err) {
    threw = err instanceof TypeError;
  }
  assert(threw);
  assertEquals(store.get("http://a/p2\n")!.meta.fields[0], ["cache-control", "public, max-age=60"]);
});

Deno.test("CacheStore refuses objects over maxObjectSize", async () => {
  const store = await CacheStore.open({ maxObjectSize: 100 });
  const w = store.beginWrite(meta("http://a/big"));
  assertEquals(await w.write(new Uint8Array(80)), true);
  assertEquals(await w.write(new Uint8Array(80)), false);
  await w.commit();
  assertEquals(store.get("http://a/big\n"), undefined);
});

Deno.test("CacheStore disk tier survives a restart and streams large bodies intact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const small = enc.encode("hello");
    const large = new Uint8Array(3 << 20).map((_, i) => i % 251);
    {
      const store = await CacheStore.open({ dir, memoryObjectSize: 1 << 20 });
      await put(store, meta("http://a/small"), small);
      await put(store, meta("http://a/large", "accept:x\n"), large);
      assertEquals(store.size, 2);
    }
    const store = await CacheStore.open({ dir, memoryObjectSize: 1 << 20 });
    assertEquals(store.size, 2);
    assertEquals(store.get("http://a/small\n")?.body, null); // on disk only until read
    assertEquals(await bodyOf(store, "http://a/small\n"), small);
    assertEquals(store.get("http://a/small\n")?.body, small); // promoted to memory
    assertEquals(store.varyOf("http://a/large"), "");
    const got = await bodyOf(store, "http://a/large\naccept:x\n");
    assertEquals(got?.length, large.length);
    assertEquals(got, large);
    await store.deleteUrl("http://a/large");
    assertEquals(store.get("http://a/large\naccept:x\n"), undefined);
    assertEquals(store.size, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CacheStore discards corrupt, truncated and temporary files", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    {
      const store = await CacheStore.open({ dir });
      await put(store, meta("http://a/flip"), enc.encode("0123456789"));
      await put(store, meta("http://a/cut"), enc.encode("0123456789"));
      await put(store, meta("http://a/ok"), enc.encode("fine"));
    }
    const files: string[] = [];
    for await (const e of Deno.readDir(dir)) files.push(e.name);
    assertEquals(files.length, 3);
    for (const name of files) {
      const bytes = await Deno.readFile(`${dir}/${name}`);
      const parsed = parseEntryFile(bytes)!;
      if (parsed.meta.url === "http://a/flip") {
        bytes[24] = bytes[24]! ^ 0xff; // a body byte: same length, bad checksum
        await Deno.writeFile(`${dir}/${name}`, bytes);
      } else if (parsed.meta.url === "http://a/cut") {
        await Deno.writeFile(`${dir}/${name}`, bytes.subarray(0, bytes.length - 3));
      }
    }
    await Deno.writeFile(`${dir}/${"0".repeat(40)}.abc.tmp`, new Uint8Array(10));
    const store = await CacheStore.open({ dir });
    await t.step("a truncated file is dropped at start", () => {
      assertEquals(store.get("http://a/cut\n"), undefined);
    });
    await t.step("a checksum mismatch is dropped when read", async () => {
      assert(store.get("http://a/flip\n") !== undefined);
      assertEquals(await store.openBody("http://a/flip\n"), undefined);
      assertEquals(store.get("http://a/flip\n"), undefined);
    });
    await t.step("a good entry is kept and temporary files are gone", async () => {
      assertEquals(await bodyOf(store, "http://a/ok\n"), enc.encode("fine"));
      const left: string[] = [];
      for await (const e of Deno.readDir(dir)) left.push(e.name);
      assertEquals(left.filter((n) => n.endsWith(".tmp")), []);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CacheStore disk tier stays within diskSize by evicting the oldest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await CacheStore.open({ dir, diskSize: 5000, memoryObjectSize: 100 });
    for (let i = 0; i < 6; i++) await put(store, meta(`http://a/${i}`), new Uint8Array(1500));
    assert(store.diskBytes <= 5000, `disk bytes ${store.diskBytes}`);
    assertEquals(store.get("http://a/0\n"), undefined);
    assert(store.get("http://a/5\n") !== undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CacheStore never serves an entry half-written when its writer was killed -9", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./testdata/slow_writer.ts", import.meta.url).pathname, dir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    await reader.read(); // "writing"
    // Let it write a few chunks, then kill it without warning.
    await new Promise((r) => setTimeout(r, 300));
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    let tmpSeen = false;
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".tmp")) tmpSeen = true;
    assert(tmpSeen, "the writer should have left a partial temp file");
    const store = await CacheStore.open({ dir });
    assertEquals(store.size, 0);
    assertEquals(store.get("http://slow.test/\n"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CacheStore updateMeta replaces the fields and keeps the body, in memory and on disk", async (t) => {
  const body = enc.encode("the body of a revalidated response");
  const refreshed = (m: EntryMeta): EntryMeta => ({
    ...m,
    fields: [...m.fields, ["etag", '"v2"']],
    responseTime: 99,
    bodyLength: body.length,
  });
  await t.step("memory only: the stored body is the same array, not a copy", async () => {
    const store = await CacheStore.open();
    const changed: string[] = [];
    store.onChange = (url) => changed.push(url);
    const m = meta("http://a/r");
    await put(store, m, body);
    const before = store.get(m.key)!;
    const bytesBefore = store.memoryBytes;
    changed.length = 0;
    await store.updateMeta(m.key, refreshed(m));
    const after = store.get(m.key)!;
    assert(after.body === before.body);
    assertEquals(after.meta.fields.at(-1), ["etag", '"v2"']);
    assertEquals(after.meta.responseTime, 99);
    assertEquals(after.meta.bodyLength, body.length);
    assert(store.memoryBytes > bytesBefore); // the extra field is accounted for
    assertEquals(changed, ["http://a/r"]); // hit loops drop their copies
    assertEquals(store.size, 1);
  });
  await t.step("with a disk tier: the new fields survive a restart", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const m = meta("http://a/d");
      {
        const store = await CacheStore.open({ dir });
        await put(store, m, body);
        await store.updateMeta(m.key, refreshed(m));
      }
      const store = await CacheStore.open({ dir });
      assertEquals(store.get(m.key)?.meta.fields.at(-1), ["etag", '"v2"']);
      assertEquals(await bodyOf(store, m.key), body);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
