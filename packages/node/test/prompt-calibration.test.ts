/**
 * A prompt's speed calibrated apart from decode's: a node reads its prompt slices against the profile's prefill
 * figure and its decode steps against the one-row figure, announces the two factors, and the planner divides each
 * figure by its own. One factor for both put the bench's time to first token off by 2–5× (docs/bench.md).
 */
import { CostModel, modelProfile } from '@edge-node/partitioner';
import { describe, expect, it } from 'vitest';
import type { DeviceLoad } from '../src/cluster/device-load.js';
import type { DeviceProfile } from '../src/cluster/device-profile.js';
import { DeviceWatch } from '../src/cluster/device-watch.js';
import type { ClusterMember } from '../src/cluster/membership.js';
import type { NodeLogger } from '../src/network/node-logger.js';
import { clusterOf } from '../src/pipeline/cluster-plan.js';
import { StageRunExpectation } from '../src/pipeline/stage-run-expectation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quietLog: NodeLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

function profile(gflopsDecode: number, gflopsPrefill: number): DeviceProfile {
  return {
    gflopsDecode, gflopsPrefill, memBandwidthGBps: 1000, memoryBytes: 8e9, memorySource: 'test', runtime: 'node',
    backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: 'h', measuredAt: 1,
  };
}

function load(calibration: number | null, promptCalibration: number | null, slowdown = 1): DeviceLoad {
  return { slowdown, calibration, promptCalibration, source: 'stage', since: 0, otherCpuCores: 0, availableMemoryBytes: 8e9, memoryBudgetBytes: 8e9, memoryReason: '' };
}

function member(name: string, l: DeviceLoad | null): ClusterMember {
  return {
    peerId: `peer-${name}`, name, instanceId: name, addresses: [], profile: profile(20, 40), load: l,
    stageInfo: { model: 'fp', ready: true }, links: {}, version: 1, joinedAt: 0, lastSeen: 0,
  };
}

describe('prompt calibration', () => {
  it('the device watch keeps a prompt\'s slices apart: their factor is announced alone and never reads as load', async () => {
    const announced: DeviceLoad[] = [];
    const watch = new DeviceWatch({ profileMemoryBytes: 1e9, announce: (l) => announced.push(l), heldBytes: () => 0, log: quietLog, intervalMs: 5, probeWhen: () => false, slowdown: { timeConstantMs: 1, minSamples: 1 } });
    watch.start();
    try {
      for (let i = 0; i < 5; i++) {
        watch.observeCompute(8, 10, 'decode'); // decode runs at 0.8 of the prediction
        watch.observeCompute(30, 10, 'prompt'); // a prompt's slice takes 3× its prediction
        await sleep(10);
      }
      await sleep(20);
    } finally {
      watch.stop();
    }
    const now = watch.current();
    expect(now.calibration).toBe(0.8);
    expect(now.promptCalibration).toBe(3);
    expect(now.slowdown).toBe(1);
    expect(announced.at(-1)?.promptCalibration).toBe(3);
  });

  it('the planner divides the prefill figure by the prompt factor and the decode figure by the decode one', () => {
    const [a, b, c] = clusterOf([member('a', load(0.5, 2)), member('b', load(1, null)), member('c', load(1, 4, 2))]).devices;
    expect(a.gflops).toBe(40); // 20 / 0.5
    expect(a.gflopsPrefill).toBe(20); // 40 / 2
    // b has computed no prompt yet: it takes the others' median (of 2 and 4, the upper one).
    expect(b.gflopsPrefill).toBe(10);
    // The slowdown (how busy) divides both.
    expect(c.gflops).toBe(10);
    expect(c.gflopsPrefill).toBe(5);
    // With no prompt factor anywhere, a prompt takes the decode factor, as before there was one.
    expect(clusterOf([member('a', load(0.5, null))]).devices[0].gflopsPrefill).toBe(80);
  });

  it('a stage run is read as a decode step (one row a request) or a prompt slice, priced at the matching figure', () => {
    const model = modelProfile({ numLayers: 4, hiddenSize: 1024, intermediateSize: 4096, numHeads: 16, numKvHeads: 8, headDim: 64, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 34 / 32, bytesPerKvValue: 2 });
    const expectation = new StageRunExpectation(model);
    const run = (parts: { rows: number; position: number; logits: boolean }[]) => ({ startLayer: 0, endLayer: 2, rows: parts.reduce((s, p) => s + p.rows, 0), parts, ms: 1 });
    const slow = profile(10, 20);
    const fastPrompt = profile(10, 80);
    const slice = run([{ rows: 32, position: 0, logits: false }]);
    const decode = run([{ rows: 1, position: 40, logits: false }, { rows: 1, position: 7, logits: false }]);
    expect(expectation.read(slice, slow)?.kind).toBe('prompt');
    // Compute-bound at these figures: 4× the prefill figure, a quarter of the time; the one-row figure plays no part.
    expect(expectation.read(slice, slow)!.expectedMs / expectation.read(slice, fastPrompt)!.expectedMs).toBeCloseTo(4, 6);
    // Two requests' rows in one step are decode too; one row alone is priced at the one-row figure only.
    expect(expectation.read(decode, slow)?.kind).toBe('decode');
    const one = run([{ rows: 1, position: 40, logits: false }]);
    expect(expectation.read(one, slow)!.expectedMs).toBe(expectation.read(one, fastPrompt)!.expectedMs);
    expect(expectation.read(one, profile(20, 20))!.expectedMs * 2).toBeCloseTo(expectation.read(one, slow)!.expectedMs, 6);
    // A verification of three drafts is neither.
    expect(expectation.read(run([{ rows: 4, position: 40, logits: true }]), slow)).toBeNull();
  });

  it('the first run of each kind after a re-measured profile carries the previous profile\'s prediction (the calibration is rescaled, not restarted)', () => {
    const model = modelProfile({ numLayers: 4, hiddenSize: 1024, intermediateSize: 4096, numHeads: 16, numKvHeads: 8, headDim: 64, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 34 / 32, bytesPerKvValue: 2 });
    const expectation = new StageRunExpectation(model);
    const run = (rows: number) => ({ startLayer: 0, endLayer: 2, rows, parts: [{ rows, position: 0, logits: false }], ms: 1 });
    const before = profile(10, 20);
    const after = profile(20, 80);
    expect(expectation.read(run(1), before)?.expectedByPreviousMs).toBeUndefined();
    expect(expectation.read(run(32), before)?.expectedByPreviousMs).toBeUndefined();
    const decode = expectation.read(run(1), after)!;
    expect(decode.expectedByPreviousMs! / decode.expectedMs).toBeCloseTo(2, 6);
    expect(expectation.read(run(1), after)?.expectedByPreviousMs).toBeUndefined();
    // The prompt's first slice under the new profile, later: priced by the previous profile's prefill figure.
    const prompt = expectation.read(run(32), after)!;
    expect(prompt.expectedByPreviousMs! / prompt.expectedMs).toBeCloseTo(4, 6);
  });

  it('a run of other layers than the kind\'s previous run says so, once', () => {
    const model = modelProfile({ numLayers: 4, hiddenSize: 1024, intermediateSize: 4096, numHeads: 16, numKvHeads: 8, headDim: 64, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 34 / 32, bytesPerKvValue: 2 });
    const expectation = new StageRunExpectation(model);
    const run = (startLayer: number, endLayer: number, rows = 1) => ({ startLayer, endLayer, rows, parts: [{ rows, position: 0, logits: false }], ms: 1 });
    const p = profile(10, 20);
    expect(expectation.read(run(0, 2), p)?.newRange).toBeUndefined();
    expect(expectation.read(run(0, 2), p)?.newRange).toBeUndefined();
    expect(expectation.read(run(2, 4), p)?.newRange).toBe(true);
    expect(expectation.read(run(2, 4), p)?.newRange).toBeUndefined();
    // Each kind follows its own runs: the first prompt slice of the new layers is the prompts' first.
    expect(expectation.read(run(2, 4, 32), p)?.newRange).toBeUndefined();
  });

  it('a stage priced with its calibration takes the time of the runs the calibration was read from, its pass included', () => {
    const model = modelProfile({ numLayers: 4, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4, bytesPerKvValue: 2 });
    const p = { ...profile(10, 20), passOverheadMs: 0.1 };
    const run = { startLayer: 1, endLayer: 3, rows: 1, parts: [{ rows: 1, position: 0, logits: false }], ms: 1 };
    const expected = new StageRunExpectation(model).read(run, p)!.expectedMs;
    // The device runs that stage 2.5× slower than its profile predicts (kernels and pass together): calibration 2.5.
    const m = { ...member('a', load(2.5, null)), profile: p };
    const device = clusterOf([m]).devices[0];
    const priced = new CostModel(model, { devices: [device], links: [] }, { promptTokens: 1, genTokens: 1 }).stepMs(0, 1, 3, run.parts);
    expect(priced).toBeCloseTo(2.5 * expected, 6);
    expect(device.passOverheadMs).toBeCloseTo(0.25, 9);
  });

  it('a prompt priced with its calibrations takes the time of the slices read: the pass, at the decode calibration, is taken off first', async () => {
    const model = modelProfile({ numLayers: 4, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, headDim: 8, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4, bytesPerKvValue: 2 });
    const p = { ...profile(10, 20), passOverheadMs: 0.1 };
    const expectation = new StageRunExpectation(model);
    const decodeRun = { startLayer: 0, endLayer: 4, rows: 1, parts: [{ rows: 1, position: 0, logits: true }], ms: 1 };
    const slice = { startLayer: 0, endLayer: 4, rows: 32, parts: [{ rows: 32, position: 0, logits: false }], ms: 1 };
    const decode = expectation.read(decodeRun, p)!;
    const prompt = expectation.read(slice, p)!;
    // A slice's expectation is its roofline alone; the pass comes apart.
    expect(prompt.passMs).toBe(0.1);
    expect(decode.passMs).toBeUndefined();
    // The device: decode steps at 2 × (roofline + pass), prompt slices of 4 ms, ~5× their roofline (a small model's are mostly fixed work).
    const sliceMs = 4;
    const watch = new DeviceWatch({ profileMemoryBytes: 1e9, announce: () => {}, heldBytes: () => 0, log: quietLog, intervalMs: 5, probeWhen: () => false, slowdown: { timeConstantMs: 1, minSamples: 1 } });
    watch.start();
    try {
      for (let i = 0; i < 200; i++) {
        watch.observeCompute(2 * decode.expectedMs, decode.expectedMs, 'decode');
        watch.observeCompute(sliceMs, prompt.expectedMs, 'prompt', undefined, false, prompt.passMs);
        if (i % 20 === 0) await sleep(2);
      }
      await sleep(20);
    } finally {
      watch.stop();
    }
    const device = clusterOf([{ ...member('a', watch.current()), profile: p }]).devices[0];
    // The planner prices a prompt's slices at the prefill figure (prefillMs), as its time to first token.
    const priced = new CostModel(model, { devices: [device], links: [] }, { promptTokens: 32, genTokens: 1 }).prefillMs(0, 0, 4, 32);
    // Within the announced figures' rounding.
    expect(priced / sliceMs).toBeGreaterThan(0.97);
    expect(priced / sliceMs).toBeLessThan(1.03);
  });
});

