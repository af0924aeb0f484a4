// Writes one large entry slowly so that a test can kill -9 this process mid-write.
import { CacheStore } from "../store.ts";

const dir = Deno.args[0]!;
const store = await CacheStore.open({ dir, memoryObjectSize: 1024 });
const w = store.beginWrite({
  key: "http://slow.test/\n",
  url: "http://slow.test/",
  status: 200,
  reason: "OK",
  fields: [],
  requestTime: 0,
  responseTime: 0,
  bodyLength: 0,
});
const chunk = new Uint8Array(64 * 1024).fill(120);
console.log("writing");
for (let i = 0; i < 100000; i++) {
  await w.write(chunk);
  await new Promise((r) => setTimeout(r, 5));
}
await w.commit();
