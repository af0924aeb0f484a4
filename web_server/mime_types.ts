/**
 * File-extension to media-type table for the static web server, with the
 * list of types worth compressing.
 *
 * @module
 */

/**
 * Media types by lower-case extension (without the dot). Text types get
 * `; charset=utf-8` from {@linkcode contentType}, as std's file_server and
 * npm's `serve` do, so browsers never have to guess the encoding.
 */
export const MEDIA_TYPES: Readonly<Record<string, string>> = {
  // Text and documents.
  html: "text/html",
  htm: "text/html",
  xhtml: "application/xhtml+xml",
  css: "text/css",
  js: "text/javascript", // RFC 9239 makes text/javascript the one registered type.
  mjs: "text/javascript",
  cjs: "text/javascript",
  jsx: "text/javascript",
  ts: "text/typescript",
  tsx: "text/tsx",
  json: "application/json",
  jsonld: "application/ld+json",
  map: "application/json",
  webmanifest: "application/manifest+json",
  txt: "text/plain",
  text: "text/plain",
  log: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  csv: "text/csv",
  tsv: "text/tab-separated-values",
  xml: "application/xml",
  rss: "application/rss+xml",
  atom: "application/atom+xml",
  yaml: "text/yaml",
  yml: "text/yaml",
  toml: "text/plain",
  ics: "text/calendar",
  vtt: "text/vtt",
  srt: "text/plain",
  pdf: "application/pdf",
  rtf: "application/rtf",
  wasm: "application/wasm",
  // Images.
  svg: "image/svg+xml",
  png: "image/png",
  apng: "image/apng",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/vnd.microsoft.icon",
  bmp: "image/bmp",
  tif: "image/tiff",
  tiff: "image/tiff",
  heic: "image/heic",
  // Fonts.
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
  eot: "application/vnd.ms-fontobject",
  // Audio and video.
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  flac: "audio/flac",
  m4a: "audio/mp4",
  aac: "audio/aac",
  mp4: "video/mp4",
  m4v: "video/mp4",
  webm: "video/webm",
  ogv: "video/ogg",
  mov: "video/quicktime",
  mkv: "video/x-matroska",
  avi: "video/x-msvideo",
  // Archives and binaries.
  zip: "application/zip",
  gz: "application/gzip",
  tgz: "application/gzip",
  br: "application/x-brotli",
  zst: "application/zstd",
  bz2: "application/x-bzip2",
  xz: "application/x-xz",
  tar: "application/x-tar",
  "7z": "application/x-7z-compressed",
  jar: "application/java-archive",
  deb: "application/vnd.debian.binary-package",
  bin: "application/octet-stream",
  exe: "application/octet-stream",
  iso: "application/octet-stream",
};

/** The type sent for unknown extensions (RFC 9110 §8.3: the recipient may then sniff). */
export const DEFAULT_MEDIA_TYPE = "application/octet-stream";

function isText(type: string): boolean {
  return type.startsWith("text/") || type === "application/json" ||
    type === "application/ld+json" || type === "application/manifest+json" ||
    type === "application/xml" || type === "application/rss+xml" ||
    type === "application/atom+xml" || type === "application/xhtml+xml" ||
    type === "image/svg+xml";
}

/**
 * Returns the `Content-Type` for a file name, with `charset=utf-8` on text types.
 *
 * @param name A file name or path; only its extension matters.
 * @returns The header value; `application/octet-stream` for unknown extensions.
 *
 * @example
 * ```ts
 * import { contentType } from "./mime_types.ts";
 * import { assertEquals } from "../lib/testing/assert.ts";
 * assertEquals(contentType("a/index.html"), "text/html; charset=utf-8");
 * assertEquals(contentType("logo.PNG"), "image/png");
 * ```
 */
export function contentType(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  if (dot <= 0) return DEFAULT_MEDIA_TYPE;
  const type = MEDIA_TYPES[base.slice(dot + 1).toLowerCase()];
  if (type === undefined) return DEFAULT_MEDIA_TYPE;
  return isText(type) ? `${type}; charset=utf-8` : type;
}

/**
 * Tells whether a media type is worth compressing: text, JSON, XML, SVG,
 * WebAssembly and uncompressed fonts; never images, audio, video or archives,
 * which are compressed already.
 *
 * @param type A `Content-Type` value (parameters are ignored).
 * @returns `true` when on-the-fly compression pays off.
 *
 * @example
 * ```ts
 * import { isCompressible } from "./mime_types.ts";
 * import { assert } from "../lib/testing/assert.ts";
 * assert(isCompressible("text/css; charset=utf-8"));
 * assert(!isCompressible("image/png"));
 * ```
 */
export function isCompressible(type: string): boolean {
  const bare = type.split(";", 1)[0]!.trim().toLowerCase();
  return isText(bare) || bare === "application/wasm" || bare === "text/javascript" ||
    bare === "font/ttf" || bare === "font/otf" || bare === "application/vnd.ms-fontobject" ||
    bare === "image/vnd.microsoft.icon" || bare === "image/bmp";
}
