import { describe, expect, it } from 'vitest';
import { ComputeSlices, turnEventLoop } from '../src/engine/compute-slices.js';

/** A clock the test moves by hand, and a record of the turns taken. */
function harness(sliceMs: number) {
  let now = 1000;
  const turns: number[] = [];
  const slices = new ComputeSlices({
    sliceMs,
    now: () => now,
    turn: async () => {
      turns.push(now);
      now += 3; // other work on the loop takes 3 ms
    },
  });
  return { slices, turns, advance: (ms: number) => (now += ms) };
}

describe('ComputeSlices', () => {
  it('turns the loop only once a slice has run its length, then starts a new slice after the turn', async () => {
    const { slices, turns, advance } = harness(20);
    advance(19);
    expect(slices.checkpoint()).toBeNull();
    advance(1);
    await slices.checkpoint();
    expect(turns).toEqual([1020]);
    // The new slice starts when the loop hands back (1023), not when it was left.
    advance(19);
    expect(slices.checkpoint()).toBeNull();
    advance(1);
    await slices.checkpoint();
    expect(turns).toEqual([1020, 1043]);
    expect(slices.turns).toBe(2);
    expect(slices.awayMs).toBe(6);
  });

  it('a long product between checkpoints gives one turn, not one per slice it overran', async () => {
    const { slices, turns, advance } = harness(20);
    advance(95);
    await slices.checkpoint();
    expect(slices.checkpoint()).toBeNull();
    expect(turns).toHaveLength(1);
  });

  it('with a zero slice turns at every checkpoint', async () => {
    const { slices, turns } = harness(0);
    for (let i = 0; i < 5; i++) await slices.checkpoint();
    expect(turns).toHaveLength(5);
  });

  it('a turn of the real loop lets due timers and I/O run', async () => {
    let fired = false;
    setTimeout(() => (fired = true), 0);
    const until = performance.now() + 5;
    while (performance.now() < until); // compute past the timer's due time
    expect(fired).toBe(false);
    await turnEventLoop();
    await turnEventLoop();
    expect(fired).toBe(true);
  });
});
