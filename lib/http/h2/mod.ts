/**
 * HTTP/2 (RFC 9113) for the server core: {@linkcode H2Session} serves one
 * connection (frames, streams, flow control, limits and flood defences);
 * `hpack.ts` is its field compression (RFC 7541) with bounded tables.
 * `HttpServer` (`../server.ts`) hands connections to it by ALPN or, for h2c,
 * by the preface.
 *
 * @example Encoding a response's fields and decoding them back
 * ```ts
 * import { encodeFields, HpackDecoder } from "./mod.ts";
 * import { assertEquals } from "../../testing/assert.ts";
 * const block = encodeFields([[":status", "404"]]);
 * assertEquals(new HpackDecoder().decode(block), [[":status", "404"]]);
 * ```
 *
 * @module
 */
export { encodeFields, HpackDecoder, type HpackDecoderOptions, HpackError } from "./hpack.ts";
export {
  H2_ERROR,
  H2_PREFACE,
  h2Field,
  type H2Handler,
  type H2LogEntry,
  type H2Request,
  H2Session,
  type H2SessionOptions,
  H2Stream,
  type H2Transport,
} from "./session.ts";
