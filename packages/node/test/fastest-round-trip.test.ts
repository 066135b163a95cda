import { describe, expect, it } from 'vitest';
import { fastestRoundTrip } from '../src/cluster/fastest-round-trip.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fastestRoundTrip', () => {
  it('reads the link awake: a ping after a pause pays a wake-up, the one right after it does not', async () => {
    // A receiver asleep for more than 20 ms answers in 40 ms, awake in 6 ms. (A timer may fire up to ~1 ms early
    // against performance.now(): libuv starts it from the loop's cached time. With 2 ms it once read 1.17.)
    let last = -Infinity;
    const ping = async () => {
      const cold = performance.now() - last > 20;
      await sleep(cold ? 40 : 6);
      last = performance.now();
    };
    const ms = await fastestRoundTrip(ping, 3, 30);
    expect(ms).toBeGreaterThanOrEqual(4);
    expect(ms).toBeLessThan(20);
  });

  it('takes the fastest of the spaced pings, so a busy moment does not make the link slow', async () => {
    let n = 0;
    const ping = () => sleep(n++ < 4 ? 30 : 3); // busy for the first two pairs
    const ms = await fastestRoundTrip(ping, 4, 5);
    expect(ms).toBeLessThan(20);
  });
});
