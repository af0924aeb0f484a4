// Progress counters for the sweepers of the server core and the client. A
// connection counts its read or write steps; the sweeper, a few times a
// second, notes when the count last moved. Counting costs nothing on the hot
// path, where storing a time per step allocated a number per call in a
// long-lived object (the young generation then promoted them).

/** A count of steps, and the sweeper's view of when it last moved. */
export class Progress {
  /** Steps so far; bump it at each step (begun or completed). */
  count = 0;
  #seen = 0;
  #at: number;

  /** @param now When the count is first looked at, in ms since the epoch. */
  constructor(now: number) {
    this.#at = now;
  }

  /** Counts one step. */
  step(): void {
    this.count++;
  }

  /**
   * For the sweeper: how long the count has stood still, as of `now`.
   *
   * @param now The sweep's time, in ms since the epoch.
   * @returns Milliseconds since the sweeper first saw the current count.
   */
  stillFor(now: number): number {
    if (this.count !== this.#seen) {
      this.#seen = this.count;
      this.#at = now;
    }
    return now - this.#at;
  }

  /**
   * Starts the stillness over from `now` (a new phase begins).
   *
   * @param now The time, in ms since the epoch.
   */
  restart(now: number): void {
    this.#seen = this.count;
    this.#at = now;
  }
}
