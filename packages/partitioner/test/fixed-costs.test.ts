import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseCluster, type Cluster } from '../src/cluster.js';
import { ModelDoesNotFitError } from '../src/errors.js';
import { modelProfile } from '../src/model-profile.js';
import { evaluateSplit, planPipeline } from '../src/planner.js';
import { simulate } from '../src/simulator.js';
import { PROMPT_ROWS_PER_STEP } from '../src/step-rows.js';
import { bruteForce, instanceArb, type Instance } from './instances.js';

// The fixed costs a small model's step is made of (a pass after idling, scheduling, frames, the coordinator's
// sampling and streaming).

/** A random instance whose devices have random fixed costs of a step and of coordinating a token. */
const withFixedCosts = (maxDevices: number, maxLayers: number): fc.Arbitrary<Instance> =>
  fc
    .tuple(instanceArb(maxDevices, maxLayers), fc.array(fc.record({ step: fc.double({ min: 0, max: 5, noNaN: true }), token: fc.double({ min: 0, max: 5, noNaN: true }), pass: fc.double({ min: 0, max: 5, noNaN: true }), wake: fc.double({ min: 0, max: 5, noNaN: true }) }), { minLength: 12, maxLength: 12 }))
    .map(([inst, costs]) => ({
      ...inst,
      cluster: { ...inst.cluster, devices: inst.cluster.devices.map((d, i) => ({ ...d, stepOverheadMs: costs[i].step, tokenOverheadMs: costs[i].token, passOverheadMs: costs[i].pass, wakeMs: costs[i].wake })) },
    }));

const tiny = modelProfile({ hiddenSize: 64, intermediateSize: 172, numLayers: 6, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4 });
const request = { promptTokens: 100, genTokens: 16, contextTokens: 128, concurrency: 1 };
const equalDevices = (step: number, token: number, pass = 0): Cluster => ({
  devices: ['a', 'b', 'c'].map((id) => ({ id, gflops: 10, memBandwidthGBps: 10, memoryBytes: 1e9, stepOverheadMs: step, tokenOverheadMs: token, passOverheadMs: pass })),
  links: [],
  defaultLink: { latencyMs: 0.1, bandwidthMBps: 1000 },
});
const withoutFixedCosts = evaluateSplit(tiny, equalDevices(0, 0), request, [2, 2, 2]);

describe('fixed costs of a step and of a token', () => {
  it('a decode token pays every stage reached by a frame its step cost and the coordinator its token cost, once each', () => {
    const plan = evaluateSplit(tiny, equalDevices(0.4, 0.6), request, [2, 2, 2]);
    // The first stage's step is started by the coordinator on its own device: the token's cost holds its frame.
    expect(plan.cost.tokenLatencyMs - withoutFixedCosts.cost.tokenLatencyMs).toBeCloseTo(2 * 0.4 + 0.6, 9);
    expect(plan.stages.map((s, i) => s.computeMs - withoutFixedCosts.stages[i].computeMs)).toEqual([0, 0.4, 0.4].map((x) => expect.closeTo(x, 9)));
    // The hops stay the wire's; the coordinator's turn is the last stage's.
    expect(plan.stages.map((s) => s.hopMs)).toEqual(withoutFixedCosts.stages.map((s) => s.hopMs));
    expect(plan.stages[2].stageMs - plan.stages[2].computeMs - plan.stages[2].hopMs).toBeCloseTo(0.6, 9);
  });

  it('a token whose last stage ran on its coordinator\'s device does not wake it: it pays its token cost less the wake-up', () => {
    const woken = (wake: number) => ({ ...equalDevices(0.4, 0.6), devices: equalDevices(0.4, 0.6).devices.map((d) => ({ ...d, wakeMs: wake })) });
    const alone = (c: Cluster) => evaluateSplit(tiny, { ...c, devices: c.devices.slice(0, 1) }, request, [6]);
    const bare = evaluateSplit(tiny, { ...equalDevices(0, 0), devices: equalDevices(0, 0).devices.slice(0, 1) }, request, [6]);
    // One device: its steps come in no frame, and its tokens wake nobody.
    expect(alone(woken(0.25)).cost.tokenLatencyMs - bare.cost.tokenLatencyMs).toBeCloseTo(0.6 - 0.25, 9);
    // A wake-up figure above the token's whole cost takes no more than that cost.
    expect(alone(woken(2)).cost.tokenLatencyMs).toBeCloseTo(bare.cost.tokenLatencyMs, 9);
    // A ring: the token comes back over the network and wakes its coordinator.
    const ring = evaluateSplit(tiny, woken(0.25), request, [2, 2, 2]);
    expect(ring.cost.tokenLatencyMs - withoutFixedCosts.cost.tokenLatencyMs).toBeCloseTo(2 * 0.4 + 0.6, 9);
    // The simulator prices it alike.
    const one = (c: Cluster): Cluster => ({ ...c, devices: c.devices.slice(0, 1) });
    const sim = (c: Cluster) => simulate(evaluateSplit(tiny, one(c), request, [6]), { model: tiny, cluster: one(c) }, request).tokenLatencyMs;
    expect(sim(woken(0.25)) - sim(equalDevices(0, 0))).toBeCloseTo(0.6 - 0.25, 6);
  });

  it('every stage, the first too, pays its pass cost once a step, whatever its layers', () => {
    const plan = evaluateSplit(tiny, equalDevices(0, 0, 0.3), request, [1, 2, 3]);
    const bare = evaluateSplit(tiny, equalDevices(0, 0), request, [1, 2, 3]);
    expect(plan.stages.map((s, i) => s.computeMs - bare.stages[i].computeMs)).toEqual([0.3, 0.3, 0.3].map((x) => expect.closeTo(x, 9)));
    expect(plan.cost.tokenLatencyMs - bare.cost.tokenLatencyMs).toBeCloseTo(3 * 0.3, 9);
  });

  it('a prompt pays the step cost once per slice of PROMPT_ROWS_PER_STEP rows on every stage reached by a frame', () => {
    const plan = evaluateSplit(tiny, equalDevices(0.4, 0.6), request, [2, 2, 2]);
    const slices = Math.ceil(request.promptTokens / PROMPT_ROWS_PER_STEP);
    expect(slices).toBe(4);
    expect(plan.cost.ttftMs - withoutFixedCosts.cost.ttftMs).toBeCloseTo(2 * slices * 0.4 + 0.6, 9);
  });

  it('the simulator agrees with the cost model for one request', () => {
    fc.assert(
      fc.property(withFixedCosts(5, 10), (inst) => {
        const r = { ...inst.request, concurrency: 1, genTokens: Math.max(2, inst.request.genTokens), promptTokens: Math.min(inst.request.promptTokens, PROMPT_ROWS_PER_STEP) };
        let plan;
        try {
          plan = planPipeline(inst.profile, inst.cluster, r, { strategy: 'fast' });
        } catch (e) {
          if (e instanceof ModelDoesNotFitError) return;
          throw e;
        }
        const sim = simulate(plan, { model: inst.profile, cluster: inst.cluster }, r);
        expect(sim.ttftMs).toBeCloseTo(plan.cost.ttftMs, 6);
        expect(Math.abs(sim.tokenLatencyMs - plan.cost.tokenLatencyMs)).toBeLessThanOrEqual(0.03 * plan.cost.tokenLatencyMs);
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  it('the exact planner still equals brute force with fixed costs', () => {
    fc.assert(
      fc.property(withFixedCosts(4, 6), fc.constantFrom('latency' as const, 'throughput' as const), (inst, objective) => {
        const brute = bruteForce(inst, objective);
        let plan;
        try {
          plan = planPipeline(inst.profile, inst.cluster, inst.request, { objective, strategy: 'exact' });
        } catch (e) {
          if (!(e instanceof ModelDoesNotFitError)) throw e;
          expect(brute).toBeNull();
          return;
        }
        expect(Math.abs(plan.cost.objectiveValue - brute!.value) / brute!.value).toBeLessThan(1e-7);
      }),
      { numRuns: 150, seed: 31 },
    );
  });

  it('devices.json takes them, and refuses a negative one by name', () => {
    const device = { id: 'a', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1e9 };
    expect(parseCluster({ devices: [{ ...device, stepOverheadMs: 0.3, tokenOverheadMs: 0 }] }).devices[0]).toMatchObject({ stepOverheadMs: 0.3, tokenOverheadMs: 0 });
    expect(() => parseCluster({ devices: [{ ...device, stepOverheadMs: -1 }] })).toThrow(/stepOverheadMs/);
    expect(() => parseCluster({ devices: [{ ...device, tokenOverheadMs: 'x' }] })).toThrow(/tokenOverheadMs/);
    expect(parseCluster({ devices: [{ ...device, tokenOverheadMs: 0.2, wakeMs: 0.1 }] }).devices[0]).toMatchObject({ wakeMs: 0.1 });
    expect(() => parseCluster({ devices: [{ ...device, wakeMs: -0.1 }] })).toThrow(/wakeMs/);
  });
});
