import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planPipeline } from '../src/planner.js';
import { simulate } from '../src/simulator.js';
import { ModelDoesNotFitError } from '../src/errors.js';
import { instanceArb } from './instances.js';

describe('simulate(plan, profiles, request)', () => {
  it('matches the cost model for one request: TTFT exactly, per-token time within 3%', () => {
    fc.assert(
      fc.property(instanceArb(5, 10), (inst) => {
        const request = { ...inst.request, concurrency: 1, genTokens: Math.max(2, inst.request.genTokens) };
        let plan;
        try {
          plan = planPipeline(inst.profile, inst.cluster, request, { strategy: 'fast' });
        } catch (e) {
          if (e instanceof ModelDoesNotFitError) return;
          throw e;
        }
        const sim = simulate(plan, { model: inst.profile, cluster: inst.cluster }, request);
        expect(Math.abs(sim.ttftMs - plan.cost.ttftMs)).toBeLessThanOrEqual(1e-9 * plan.cost.ttftMs);
        expect(Math.abs(sim.tokenLatencyMs - plan.cost.tokenLatencyMs)).toBeLessThanOrEqual(0.03 * plan.cost.tokenLatencyMs);
        // One request alone: nothing overlaps, so the makespan is TTFT + (gen − 1) × per-token time.
        const expected = sim.ttftMs + (request.genTokens - 1) * sim.tokenLatencyMs;
        expect(Math.abs(sim.makespanMs - expected)).toBeLessThanOrEqual(1e-9 * expected);
      }),
      { numRuns: 120, seed: 99 },
    );
  });

  it('with c requests in flight: throughput never beats the steady-state bound, gains over c = 1, and TTFT grows', () => {
    fc.assert(
      fc.property(instanceArb(5, 10), fc.integer({ min: 2, max: 6 }), (inst, c) => {
        const base = { ...inst.request, genTokens: 48, promptTokens: Math.min(inst.request.promptTokens, 16), contextTokens: 128 };
        let plan;
        try {
          plan = planPipeline(inst.profile, inst.cluster, { ...base, concurrency: c }, { strategy: 'fast', objective: 'throughput' });
        } catch (e) {
          if (e instanceof ModelDoesNotFitError) return;
          throw e;
        }
        const profiles = { model: inst.profile, cluster: inst.cluster };
        const one = simulate(plan, profiles, { ...base, concurrency: 1 });
        const many = simulate(plan, profiles, { ...base, concurrency: c });
        // The cost model's period is the steady decode state at the mean KV position. The simulated run also counts
        // the token each prefill yields, which can cost a little less than a mean decode step: allow 5%.
        expect(many.throughputTokPerS).toBeLessThanOrEqual(plan.cost.throughputTokPerS * 1.05);
        expect(many.throughputTokPerS).toBeGreaterThanOrEqual(one.throughputTokPerS * (1 - 1e-9));
        expect(many.ttftMs).toBeGreaterThanOrEqual(one.ttftMs * (1 - 1e-9));
        if (plan.stages.length === 1) {
          // A single device serialises everything: no gain from concurrency.
          expect(Math.abs(many.throughputTokPerS / one.throughputTokPerS - 1)).toBeLessThan(1e-6);
        }
      }),
      { numRuns: 80, seed: 5 },
    );
  });

  it('pipelining gains: a 4-stage ring of equal devices with c = 4 nearly quadruples throughput', () => {
    const devices = ['a', 'b', 'c', 'd'].map((id) => ({ id, gflops: 10, memBandwidthGBps: 10, memoryBytes: 1e12 }));
    const cluster = { devices, links: [], defaultLink: { latencyMs: 0, bandwidthMBps: 1e6 } };
    const profile = { ...planProfile() };
    const plan = planPipeline(profile, cluster, { promptTokens: 4, genTokens: 200 }, { strategy: 'equal' });
    const one = simulate(plan, { model: profile, cluster }, { promptTokens: 4, genTokens: 200, concurrency: 1 });
    const four = simulate(plan, { model: profile, cluster }, { promptTokens: 4, genTokens: 200, concurrency: 4 });
    expect(four.throughputTokPerS / one.throughputTokPerS).toBeGreaterThan(3.5);
    expect(four.throughputTokPerS / one.throughputTokPerS).toBeLessThanOrEqual(4 + 1e-9);
  });
});

import { modelProfile } from '../src/model-profile.js';
function planProfile() {
  return modelProfile({ hiddenSize: 256, intermediateSize: 1024, numLayers: 16, numHeads: 8, numKvHeads: 8, headDim: 32, vocabSize: 64, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4 });
}
