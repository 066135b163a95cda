import { OpenAIError } from './openai-errors.js';

/** 429: more requests are waiting than the queue holds. */
export class QueueFullError extends OpenAIError {
  override name = 'QueueFullError';
  constructor(running: number, waiting: number) {
    super(
      429,
      `the node is busy: ${running} request(s) running and ${waiting} waiting, the most it queues; retry later (or start it with a larger --queue-length)`,
      'rate_limit_error',
      'queue_full',
    );
  }
}

/** The request was cancelled (client gone) while it waited for a slot. */
export class QueueWaitAbortedError extends Error {
  override name = 'QueueWaitAbortedError';
  constructor() {
    super('the request was cancelled while it waited in the queue');
  }
}

interface Waiter {
  grant: () => void;
  reject: (err: Error) => void;
}

/**
 * Admits up to `maxRunning` requests into the pipeline at once (they run together, interleaved step by step) and
 * queues up to `maxWaiting` more, first come first served; beyond that, requests are refused with a 429.
 */
export class RequestQueue {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly maxRunning: number,
    readonly maxWaiting: number,
  ) {
    if (!Number.isInteger(maxRunning) || maxRunning < 1) throw new RangeError(`maxRunning must be a whole number ≥ 1 (got ${maxRunning})`);
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new RangeError(`the queue length must be a whole number ≥ 0 (got ${maxWaiting})`);
  }

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.waiters.length;
  }

  /** Waits for a slot; returns the function that gives it back (call it exactly once). */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw new QueueWaitAbortedError();
    if (this.running < this.maxRunning && this.waiters.length === 0) {
      this.running++;
      return this.releaser();
    }
    if (this.waiters.length >= this.maxWaiting) throw new QueueFullError(this.running, this.waiters.length);
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new QueueWaitAbortedError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      // The slot passes straight to the oldest waiter, so a newcomer cannot overtake it.
      if (next) next.grant();
      else this.running--;
    };
  }
}
