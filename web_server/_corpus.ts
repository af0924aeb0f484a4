/**
 * The request corpus the web server's protocol tests share: a small tree
 * and requests with ranges, conditionals, HEAD and methods. The comparison
 * with nginx (HTTP/1.1) and the HTTP/2 tests send the same requests.
 *
 * @module
 */

/** One request: method, target, header fields. */
export type CorpusRequest = [string, string, Record<string, string>];

/** The tree and the requests; disposing removes the tree. */
export interface Corpus extends AsyncDisposable {
  /** The directory to serve. */
  root: string;
  /** The requests, validators filled in from the files. */
  requests: CorpusRequest[];
}

/**
 * Makes the tree in a temporary directory and the requests for it.
 *
 * @returns The corpus.
 */
export async function makeCorpus(): Promise<Corpus> {
  const root = await Deno.makeTempDir({ prefix: "netkit_cmp_" });
  await Deno.mkdir(`${root}/dir`);
  await Deno.mkdir(`${root}/site`);
  await Deno.writeTextFile(`${root}/site/index.html`, "<p>site</p>");
  const alphabet = "abcdefghijklmnopqrstuvwxyz".repeat(40); // 1040 bytes
  await Deno.writeTextFile(`${root}/file.txt`, alphabet);
  await Deno.writeFile(`${root}/data.bin`, new Uint8Array(5000).map((_, i) => i % 251));
  await Deno.writeTextFile(`${root}/empty.txt`, "");
  // nginx's strong validator, from mtime and size; ours is the same.
  const info = await Deno.stat(`${root}/file.txt`);
  const etag = `"${Math.floor(info.mtime!.getTime() / 1000).toString(16)}-${
    info.size.toString(16)
  }"`;
  const lastModified = info.mtime!.toUTCString();
  const old = new Date(info.mtime!.getTime() - 86_400_000).toUTCString();
  const requests: CorpusRequest[] = [
    ["GET", "/file.txt", {}],
    ["HEAD", "/file.txt", {}],
    ["GET", "/data.bin", {}],
    ["GET", "/empty.txt", {}],
    ["GET", "/missing.txt", {}],
    ["GET", "/dir/missing/x.txt", {}],
    ["GET", "/site", {}],
    ["GET", "/site/", {}],
    ["GET", "/file.txt?query=1", {}],
    ["GET", "/fi%6Ce.txt", {}],
    ["POST", "/file.txt", {}],
    ["PUT", "/file.txt", {}],
    ["DELETE", "/file.txt", {}],
    ["PATCH", "/file.txt", {}],
    // Ranges.
    ["GET", "/file.txt", { Range: "bytes=0-9" }],
    ["GET", "/file.txt", { Range: "bytes=1000-" }],
    ["GET", "/file.txt", { Range: "bytes=-26" }],
    ["GET", "/file.txt", { Range: "bytes=0-0" }],
    ["GET", "/file.txt", { Range: "bytes=1030-5000" }],
    ["GET", "/file.txt", { Range: "bytes=5000-" }],
    ["GET", "/file.txt", { Range: "bytes=0-1,5-6" }],
    ["GET", "/file.txt", { Range: "bytes=0-1,5-6,-3" }],
    ["GET", "/data.bin", { Range: "bytes=100-199,4000-4099" }],
    ["GET", "/file.txt", { Range: "bytes=0-1,5000-6000" }],
    ["GET", "/file.txt", { Range: "bytes=0-1039,0-1039" }],
    ["GET", "/file.txt", { Range: "items=0-5" }],
    ["GET", "/file.txt", { Range: "bytes=5-2" }],
    ["GET", "/file.txt", { Range: "bytes=abc" }],
    ["GET", "/file.txt", { Range: "bytes=-0" }],
    ["GET", "/file.txt", { Range: "bytes= 0-1, 3-4" }],
    ["GET", "/empty.txt", { Range: "bytes=0-" }],
    ["OPTIONS", "/file.txt", {}],
    ["HEAD", "/file.txt", { Range: "bytes=0-9" }],
    // Conditionals.
    ["GET", "/file.txt", { "If-None-Match": etag }],
    ["GET", "/file.txt", { "If-None-Match": '"nope"' }],
    ["GET", "/file.txt", { "If-None-Match": `"nope", ${etag}` }],
    ["GET", "/file.txt", { "If-None-Match": "*" }],
    ["HEAD", "/file.txt", { "If-None-Match": etag }],
    ["GET", "/file.txt", { "If-Modified-Since": lastModified }],
    ["GET", "/file.txt", { "If-Modified-Since": old }],
    ["GET", "/file.txt", { "If-Match": etag }],
    ["GET", "/file.txt", { "If-Match": '"nope"' }],
    ["GET", "/file.txt", { "If-Unmodified-Since": old }],
    ["GET", "/file.txt", { "If-Unmodified-Since": lastModified }],
    ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": etag }],
    ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": '"nope"' }],
    ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": lastModified }],
    ["GET", "/file.txt", { Range: "bytes=0-4", "If-Range": old }],
  ];
  return {
    root,
    requests,
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}
