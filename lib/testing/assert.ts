/**
 * Minimal test assertions (JSR's `@std/assert` is not reachable here), built
 * on `node:util` deep equality.
 *
 * @module
 */
import { inspect, isDeepStrictEqual } from "node:util";

/** An assertion failed. */
export class AssertionError extends Error {
  /**
   * Creates an assertion error.
   *
   * @param message What was expected.
   */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/**
 * Asserts that a condition holds.
 *
 * @param condition The condition.
 * @param message Said when it does not hold.
 *
 * @example
 * ```ts
 * import { assert } from "./assert.ts";
 * assert(1 + 1 === 2);
 * ```
 */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/**
 * Asserts that two values are deeply equal (`node:util` `isDeepStrictEqual`).
 *
 * @param actual The value obtained.
 * @param expected The value expected.
 * @param message Added to the failure message.
 *
 * @example
 * ```ts
 * import { assertEquals } from "./assert.ts";
 * assertEquals({ a: [1] }, { a: [1] });
 * ```
 */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new AssertionError(
      `Values are not equal${message ? `: ${message}` : ""}\n  actual:   ${
        inspect(actual, { depth: 6 })
      }\n  expected: ${inspect(expected, { depth: 6 })}`,
    );
  }
}

/**
 * Asserts that a string matches a regular expression.
 *
 * @param actual The string.
 * @param pattern The expression it must match.
 * @param message Added to the failure message.
 *
 * @example
 * ```ts
 * import { assertMatch } from "./assert.ts";
 * assertMatch("ttl=61", /ttl=\d+/);
 * ```
 */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) {
    throw new AssertionError(
      `Expected ${inspect(actual)} to match ${pattern}${message ? `: ${message}` : ""}`,
    );
  }
}

/**
 * Asserts that a function throws, and returns what it threw.
 *
 * @param fn The function.
 * @param ErrorClass The class the error must be an instance of.
 * @returns The error.
 *
 * @example
 * ```ts
 * import { assertEquals, assertThrows } from "./assert.ts";
 * const e = assertThrows(() => JSON.parse("{"), SyntaxError);
 * assertEquals(e.name, "SyntaxError");
 * assertEquals(assertThrows(() => assertThrows(() => 1)).message, "Expected the function to throw");
 * ```
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => E,
): E {
  try {
    fn();
  } catch (e) {
    return checkError(e, ErrorClass);
  }
  throw new AssertionError("Expected the function to throw");
}

/**
 * Asserts that an async function rejects, and returns the reason.
 *
 * @param fn The async function.
 * @param ErrorClass The class the error must be an instance of.
 * @returns The error.
 *
 * @example
 * ```ts
 * import { assertEquals, assertRejects } from "./assert.ts";
 * const e = await assertRejects(() => Promise.reject(new RangeError("no")), RangeError);
 * assertEquals(e.message, "no");
 * const none = await assertRejects(() => assertRejects(() => Promise.resolve(1)));
 * assertEquals(none.message, "Expected the promise to reject");
 * ```
 */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass);
  }
  throw new AssertionError("Expected the promise to reject");
}

// deno-lint-ignore no-explicit-any
function checkError<E extends Error>(e: unknown, ErrorClass?: new (...args: any[]) => E): E {
  if (!(e instanceof Error)) throw new AssertionError(`Expected an Error, got ${inspect(e)}`);
  if (ErrorClass !== undefined && !(e instanceof ErrorClass)) {
    throw new AssertionError(
      `Expected ${ErrorClass.name}, got ${e.name}: ${e.message}`,
    );
  }
  return e as E;
}
