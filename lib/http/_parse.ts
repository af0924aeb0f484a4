// Field-line parsing and framing-field checks shared by the head parsers and the chunked
// trailer reader (RFC 9112 §5, §6). Private to lib/http.
import { HttpError } from "./errors.ts";
import { listTokens, splitList } from "./fields.ts";
import { COLON, CR, FIELD_VALUE, HTAB, LF, SP, TCHAR, TOKEN_RE } from "./_chars.ts";
/** Returns the end of line content (excluding CR) for the line ending at LF index `lf`. */
export function contentEnd(
  buf: Uint8Array,
  lineStart: number,
  lf: number,
  allowBareLf: boolean,
  status: number,
  what: string,
): number {
  if (lf > lineStart && buf[lf - 1] === CR) return lf - 1;
  if (allowBareLf) return lf;
  throw new HttpError(status, `Cannot parse ${what}: line ends with a bare LF, not CRLF`);
}

/**
 * Compares a token in `buf` at `at` with a lower-case name, ignoring ASCII
 * case. Only for tokens already validated as tchar (where `| 0x20` folds
 * letters and changes nothing a name literal holds).
 */
function isName(buf: Uint8Array, at: number, lower: string): boolean {
  for (let n = 0; n < lower.length; n++) {
    if ((buf[at + n]! | 0x20) !== lower.charCodeAt(n)) return false;
  }
  return true;
}

/** Framing-relevant fields noticed while parsing, so no second pass is needed. */
export interface FramingFields {
  contentLength: string[] | null;
  transferEncoding: string[] | null;
  connection: string[] | null;
  host: number;
  hostValue: string;
  expect: string | null;
  /** The index past the last field line written to `names`/`values`. */
  count: number;
}

/**
 * Parses field lines in `buf[from..end)` (the block ends with the empty
 * line) into `names`/`values` from index `start` on, validating per RFC 9112
 * §5. Returns the framing fields seen. `start` is `names.length` for a list
 * that grows, or 0 for scratch lists that a caller reuses (they may be longer).
 */
export function parseFields(
  buf: Uint8Array,
  str: string,
  base: number,
  from: number,
  end: number,
  names: string[],
  values: string[],
  start: number,
  maxHeaders: number,
  allowBareLf: boolean,
  status: number,
  overStatus: number,
  what: string,
): FramingFields {
  const f: FramingFields = {
    contentLength: null,
    transferEncoding: null,
    connection: null,
    host: 0,
    hostValue: "",
    expect: null,
    count: start,
  };
  let n = start;
  let i = from;
  while (i < end) {
    const first = buf[i]!;
    // The block ends with an empty line, so each loop below stops before `end`.
    if (first === CR && buf[i + 1] === LF) break;
    if (first === LF) {
      if (allowBareLf) break;
      throw new HttpError(status, `Cannot parse ${what}: line ends with a bare LF, not CRLF`);
    }
    if (first === SP || first === HTAB) {
      throw new HttpError(status, `Cannot parse ${what}: obsolete line folding (RFC 9112 §5.2)`);
    }
    let j = i;
    while (TCHAR[buf[j]!] === 1) j++;
    if (buf[j] !== COLON || j === i) {
      const b = buf[j]!;
      const why = j === i
        ? "empty or invalid field name"
        : b === SP || b === HTAB
        ? "whitespace between field name and colon"
        : `invalid byte 0x${b.toString(16).padStart(2, "0")} in field name`;
      throw new HttpError(status, `Cannot parse ${what}: ${why}`);
    }
    let vs = j + 1;
    while (buf[vs] === SP || buf[vs] === HTAB) vs++;
    // One pass validates the value and finds the line end: the first byte
    // that may not appear in a value must be the CR of CRLF (or a bare LF).
    let k = vs;
    while (FIELD_VALUE[buf[k]!] === 1) k++;
    let next: number;
    if (buf[k] === CR && buf[k + 1] === LF) next = k + 2;
    else if (buf[k] === LF && allowBareLf) next = k + 1;
    else if (buf[k] === LF) {
      throw new HttpError(status, `Cannot parse ${what}: line ends with a bare LF, not CRLF`);
    } else {
      throw new HttpError(
        status,
        `Cannot parse ${what}: invalid byte 0x${
          buf[k]!.toString(16).padStart(2, "0")
        } in the value of field "${str.slice(i - base, j - base)}"`,
      );
    }
    let ve = k;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    if (n >= maxHeaders) {
      throw new HttpError(overStatus, `Cannot parse ${what}: more than ${maxHeaders} fields`);
    }
    const name = str.slice(i - base, j - base);
    const value = str.slice(vs - base, ve - base);
    names[n] = name;
    values[n] = value;
    n++;
    // Framing fields are recognised from the bytes, without lower-casing
    // every name.
    switch (j - i) {
      case 4:
        if (isName(buf, i, "host")) {
          f.host++;
          f.hostValue = value;
        }
        break;
      case 6:
        if (isName(buf, i, "expect")) f.expect = value;
        break;
      case 10:
        if (isName(buf, i, "connection")) (f.connection ??= []).push(value);
        break;
      case 14:
        if (isName(buf, i, "content-length")) (f.contentLength ??= []).push(value);
        break;
      case 17:
        if (isName(buf, i, "transfer-encoding")) (f.transferEncoding ??= []).push(value);
        break;
    }
    i = next;
  }
  f.count = n;
  return f;
}

/** Parses `HTTP/d.d` at `buf[i..i+8)`; returns the minor version, or throws. */
export function parseVersion(
  buf: Uint8Array,
  i: number,
  end: number,
  status: number,
  what: string,
) {
  if (
    end - i !== 8 || buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 ||
    buf[i + 3] !== 80 || buf[i + 4] !== 47 || buf[i + 6] !== 46
  ) {
    throw new HttpError(status, `Cannot parse ${what}: malformed HTTP version`);
  }
  const major = buf[i + 5]! - 48;
  const minor = buf[i + 7]! - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) {
    throw new HttpError(status, `Cannot parse ${what}: malformed HTTP version`);
  }
  if (major !== 1) {
    throw new HttpError(
      status === 400 ? 505 : status,
      `Cannot parse ${what}: HTTP/${major}.${minor} is not supported`,
    );
  }
  return minor;
}

/**
 * Parses a Content-Length list (possibly several fields). Identical values
 * are folded to one (RFC 9110 §8.6); anything else is an error.
 */
export function parseContentLength(values: string[], status: number, what: string): number {
  let result = -1;
  for (const v of values) {
    for (const part of v.split(",")) {
      const t = part.trim();
      if (t.length === 0 || t.length > 15 || !/^[0-9]+$/.test(t)) {
        throw new HttpError(status, `Cannot parse ${what}: invalid Content-Length "${v}"`);
      }
      const n = Number(t);
      if (result !== -1 && n !== result) {
        throw new HttpError(status, `Cannot parse ${what}: conflicting Content-Length values`);
      }
      result = n;
    }
  }
  return result;
}

/** Parses Transfer-Encoding values into lower-case codings, rejecting empty elements. */
export function transferCodings(values: string[], status: number, what: string): string[] {
  const codings: string[] = [];
  for (const v of values) {
    for (const element of splitList(v)) {
      const semi = element.indexOf(";");
      const coding = (semi >= 0 ? element.slice(0, semi) : element).trim().toLowerCase();
      if (coding === "") continue; // empty list elements are allowed (RFC 9110 §5.6.1)
      if (!TOKEN_RE.test(coding)) {
        throw new HttpError(status, `Cannot parse ${what}: invalid Transfer-Encoding "${v}"`);
      }
      codings.push(coding);
    }
  }
  if (codings.length === 0) {
    throw new HttpError(status, `Cannot parse ${what}: empty Transfer-Encoding`);
  }
  return codings;
}

const NO_TOKENS: readonly string[] = Object.freeze([]);

export function connectionTokens(values: string[] | null): readonly string[] {
  if (values === null) return NO_TOKENS;
  const out: string[] = [];
  for (const v of values) out.push(...listTokens(v));
  return out;
}
