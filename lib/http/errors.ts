/**
 * The error every HTTP/1.1 parser and body reader throws on malformed or
 * over-limit input, carrying the status a server should answer.
 *
 * @module
 */

/**
 * A malformed or over-limit HTTP message, with the status a server (or, for
 * response heads, a proxy) should answer before closing the connection.
 *
 * @example
 * ```ts
 * import { HttpError } from "./mod.ts";
 * import { assertEquals } from "../testing/assert.ts";
 * const err = new HttpError(431, "Cannot read request head: more than 100 fields");
 * assertEquals(err.status, 431);
 * ```
 */
export class HttpError extends Error {
  /** The HTTP status to answer: 400, 413, 414, 431, 501, 505 (or 502 for a bad response). */
  readonly status: number;

  /**
   * Creates an error carrying an HTTP status.
   *
   * @param status The status to answer.
   * @param message What failed, then why.
   * @param options Standard error options (`cause`).
   */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpError";
    this.status = status;
  }
}
