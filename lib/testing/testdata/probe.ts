// Fixture for Lab.run() tests: functions called inside a lab namespace.

/** The IP addresses of this namespace's interfaces, sorted. */
export function addresses(): string[] {
  return Deno.networkInterfaces().map((i) => i.address).sort();
}

/** Echoes its arguments back after an await, to test argument passing. */
export async function echo(...args: unknown[]): Promise<unknown[]> {
  await Promise.resolve();
  console.log("output of the called function does not disturb the result");
  return args;
}

/** Always fails, to test that errors reach the caller. */
export function fail(what: string): never {
  throw new RangeError(`Cannot do ${what}: this fixture always fails`);
}
