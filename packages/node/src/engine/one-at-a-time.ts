/**
 * Runs asynchronous tasks one after another, in the order they were given. A shard's forward passes pause at
 * their checkpoints (compute-slices.ts) and must not interleave meanwhile: each pass takes its scratch from the
 * shard's arenas and appends to its requests' caches in order.
 */
export class OneAtATime {
  private tail: Promise<void> = Promise.resolve();
  private pending = 0;

  /** Runs `task` once every task given before it has settled; settles as it does. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(task).finally(() => this.pending--);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** No task is running or waiting. */
  get idle(): boolean {
    return this.pending === 0;
  }

  /** Resolves once every task given so far has settled. */
  settled(): Promise<void> {
    return this.tail;
  }
}
