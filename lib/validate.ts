/**
 * Range checks for the numeric options of library constructors (a server's
 * timeouts, a loss probability): one wording for every tool, a
 * `RangeError` that names the option and the value.
 *
 * @module
 */

/**
 * Returns `value` when it is a finite number above zero.
 *
 * @param name The option's name, for the message.
 * @param value The value to check.
 * @returns `value`.
 * @throws {RangeError} When `value` is zero, negative, infinite or NaN.
 *
 * @example
 * ```ts
 * import { positive } from "./validate.ts";
 * import { assertEquals, assertThrows } from "./testing/assert.ts";
 * assertEquals(positive("timeout", 30), 30);
 * assertEquals(assertThrows(() => positive("timeout", 0), RangeError).message, "Cannot use timeout 0: it must be a number > 0");
 * ```
 */
export function positive(name: string, value: number): number {
  if (!(value > 0 && Number.isFinite(value))) {
    throw new RangeError(`Cannot use ${name} ${value}: it must be a number > 0`);
  }
  return value;
}

/**
 * Returns `value` when it is a finite number of zero or more.
 *
 * @param name The option's name, for the message.
 * @param value The value to check.
 * @returns `value`.
 * @throws {RangeError} When `value` is negative, infinite or NaN.
 *
 * @example
 * ```ts
 * import { nonNegative } from "./validate.ts";
 * import { assertEquals, assertThrows } from "./testing/assert.ts";
 * assertEquals(nonNegative("delay", 0), 0);
 * assertEquals(assertThrows(() => nonNegative("delay", -1), RangeError).message, "Cannot use delay -1: it must be a number >= 0");
 * ```
 */
export function nonNegative(name: string, value: number): number {
  if (!(value >= 0 && Number.isFinite(value))) {
    throw new RangeError(`Cannot use ${name} ${value}: it must be a number >= 0`);
  }
  return value;
}

/**
 * Returns `value` when it is a probability, 0 to 1 inclusive.
 *
 * @param name The option's name, for the message.
 * @param value The value to check.
 * @returns `value`.
 * @throws {RangeError} When `value` is outside 0 to 1 or NaN.
 *
 * @example
 * ```ts
 * import { probability } from "./validate.ts";
 * import { assertEquals, assertThrows } from "./testing/assert.ts";
 * assertEquals(probability("loss", 0.3), 0.3);
 * assertEquals(assertThrows(() => probability("loss", 1.5), RangeError).message, "Cannot use loss 1.5: it must be 0 to 1");
 * ```
 */
export function probability(name: string, value: number): number {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`Cannot use ${name} ${value}: it must be 0 to 1`);
  }
  return value;
}
