/**
 * Device loss mid-generation: a 3-node loopback cluster streams a 200-token greedy answer while a random
 * non-coordinator node is SIGKILLed at a random moment; the answer must complete and equal the fault-free one.
 * `scripts/chaos.ts` runs the same scenario (test/support/chaos-scenario.ts) 50 times and prints the pass rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaosCluster } from './support/chaos-scenario.js';

const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 10);

describe('a stage node dies mid-answer', () => {
  const chaos = new ChaosCluster('chaos');

  beforeAll(async () => {
    await chaos.start();
    expect(chaos.reference.length).toBeGreaterThan(200);
  }, 120_000);

  afterAll(() => chaos.cleanup());

  it(`completes with identical text when b or c is killed at a random point (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const r = await chaos.round(round);
      const what = `round ${round}: ${r.victim} killed after ${r.delayMs.toFixed(0)} ms`;
      expect(r.problem, what).toBe('');
      expect(r.result?.text, what).toBe(chaos.reference);
    }
    // At least one kill must have landed mid-answer (not between requests) for the test to mean anything.
    expect(chaos.replays()).toBeGreaterThan(0);
    // /metrics counts every recovery, and the log says what was lost and how long it took.
    const metrics = await (await fetch(`${chaos.a.apiUrl}/metrics`)).text();
    const recovered = Number(/edge_node_recoveries_total\{outcome="recovered"\} (\d+)/.exec(metrics)?.[1]);
    expect(recovered).toBeGreaterThan(0);
    expect(recovered).toBeLessThanOrEqual(chaos.replays()); // a replay that itself loses a stage is retried
    expect(metrics).toMatch(/edge_node_recoveries_total\{outcome="failed"\} 0/);
    expect(chaos.a.output()).toMatch(/recovered from the loss of [bc] in \d+ ms \(plan \S+ → \S+, \d+ tokens replayed\)/);
  }, 600_000);
});
