import { describe, expect, it } from 'vitest';
import { QueueFullError, QueueWaitAbortedError, RequestQueue } from '../src/api/request-queue.js';
import { createApiKeyCheck } from '../src/api/api-key-auth.js';
import { OpenAIError } from '../src/api/openai-errors.js';
import type { IncomingMessage } from 'node:http';

describe('RequestQueue', () => {
  it('runs up to maxRunning together and hands slots to waiters first come, first served', async () => {
    const q = new RequestQueue(2, 3);
    const r1 = await q.acquire();
    const r2 = await q.acquire();
    expect(q.runningCount).toBe(2);
    const order: number[] = [];
    const waits = [3, 4, 5].map((n) => q.acquire().then((release) => (order.push(n), release)));
    expect(q.waitingCount).toBe(3);
    await expect(q.acquire()).rejects.toBeInstanceOf(QueueFullError);
    r2();
    r2(); // a second call must not free another slot
    const r3 = await waits[0];
    expect([q.runningCount, q.waitingCount]).toEqual([2, 2]);
    r1();
    r3();
    const [, r4, r5] = await Promise.all(waits);
    expect(order).toEqual([3, 4, 5]);
    r4();
    r5();
    expect([q.runningCount, q.waitingCount]).toEqual([0, 0]);
  });

  it('a waiter whose client left is removed from the queue', async () => {
    const q = new RequestQueue(1, 1);
    const r1 = await q.acquire();
    const abort = new AbortController();
    const waiting = q.acquire(abort.signal);
    expect(q.waitingCount).toBe(1);
    abort.abort();
    await expect(waiting).rejects.toBeInstanceOf(QueueWaitAbortedError);
    expect(q.waitingCount).toBe(0);
    r1();
    expect(q.runningCount).toBe(0);
    const e = new QueueFullError(1, 0);
    expect(e.status).toBe(429);
  });

  it('a queue length of 0 refuses as soon as every slot is busy', async () => {
    const q = new RequestQueue(1, 0);
    await q.acquire();
    await expect(q.acquire()).rejects.toMatchObject({ status: 429, code: 'queue_full' });
  });
});

describe('API key check', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  const check = createApiKeyCheck('sk-secret');
  it('accepts the key as a bearer token or x-api-key, and refuses others with 401', () => {
    expect(() => check(req({ authorization: 'Bearer sk-secret' }))).not.toThrow();
    expect(() => check(req({ 'x-api-key': 'sk-secret' }))).not.toThrow();
    for (const h of [{}, { authorization: 'Bearer sk-secre' }, { authorization: 'Bearer sk-secret2' }, { authorization: 'sk-secret' }] as Record<string, string>[]) {
      let err: unknown;
      try {
        check(req(h));
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(h)).toBeInstanceOf(OpenAIError);
      expect((err as OpenAIError).status).toBe(401);
    }
  });
});
