import { describe, expect, it } from 'vitest';
import { decideReplan, moveCostMs, repricePlan } from '../src/adaptive-replan.js';
import { replayDay, type AvailabilityChange } from '../src/day-replay.js';
import { modelProfile } from '../src/model-profile.js';
import { planPipeline } from '../src/planner.js';
import { movedLayers } from '../src/replan.js';
import type { Cluster, Device } from '../src/cluster.js';

const profile = modelProfile({ hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, headDim: 64, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4 });
const request = { promptTokens: 64, genTokens: 128 };
const dev = (id: string, gflops = 20, bw = 20): Device => ({ id, gflops, memBandwidthGBps: bw, memoryBytes: 4e9 });
const cluster = (devices: Device[]): Cluster => ({ devices, links: [], defaultLink: { latencyMs: 0.5, bandwidthMBps: 200 } });
const situation = { currentMs: 30, currentFits: true, candidateMs: 20, movedLayers: 4, moveMs: 100, sinceLastChangeMs: 60_000 };

describe('decideReplan', () => {
  it('switches when the predicted gain is above the threshold and pays back its move', () => {
    const d = decideReplan(situation);
    expect(d.replan).toBe(true);
    expect(d.reason).toBe('predicted 30.0 → 20.0 ms/token (33 % faster)');
  });

  it('keeps the plan for a small gain, a move that does not pay back, or right after a change (hysteresis)', () => {
    expect(decideReplan({ ...situation, candidateMs: 25 }).replan).toBe(false); // 17 % < 20 %
    expect(decideReplan({ ...situation, candidateMs: 25 }, { minGain: 0.1 }).replan).toBe(true);
    expect(decideReplan({ ...situation, currentMs: 1.2, candidateMs: 0.9 }).reason).toContain('threshold'); // 25 % but 0.3 ms
    const slowMove = decideReplan({ ...situation, moveMs: 10_000 }); // 10 ms/token × 500 tokens = 5 s < 10 s
    expect(slowMove).toEqual({ replan: false, reason: 'moving 4 layers (10000 ms) would not pay back within 500 tokens' });
    const soon = decideReplan({ ...situation, sinceLastChangeMs: 9000 });
    expect(soon.replan).toBe(false);
    expect(soon.reason).toContain('hysteresis');
    expect(decideReplan({ ...situation, movedLayers: 0 }).replan).toBe(false);
  });

  it('leaves a plan that no longer fits at once, whatever the timing', () => {
    expect(decideReplan({ ...situation, currentFits: false, candidateMs: 40, sinceLastChangeMs: 0 })).toEqual({ replan: true, reason: 'the plan in force no longer fits in memory' });
  });

  it('does not flap: a device slowing and recovering by less than the threshold changes nothing', () => {
    const fleet = [dev('a'), dev('b'), dev('c')];
    const plan = planPipeline(profile, cluster(fleet), request);
    for (const slow of [1.1, 1.15, 1.05]) {
      const now = cluster([dev('a'), dev('b', 20 / slow, 20 / slow), dev('c')]);
      const cur = repricePlan(plan, profile, now, request);
      const cand = planPipeline(profile, now, request, { previous: plan });
      const d = decideReplan({ currentMs: cur.cost!.tokenLatencyMs, currentFits: cur.fitsInMemory, candidateMs: cand.cost.tokenLatencyMs, movedLayers: movedLayers(plan, cand), moveMs: moveCostMs(plan, cand, profile, 200), sinceLastChangeMs: 60_000 });
      expect(d.replan).toBe(false);
    }
  });
});

describe('moveCostMs', () => {
  it('counts the whole new range of every device whose range changes, slowed by its load; devices load in parallel', () => {
    const fleet = cluster([dev('a'), dev('b')].map((d) => ({ ...d, memoryBytes: 250e6 })));
    const before = planPipeline(profile, fleet, request);
    expect(moveCostMs(before, before, profile, 200)).toBe(0);
    const shifted = { ...before, stages: before.stages.map((s, i) => (i === 0 ? { ...s, endLayer: s.endLayer - 1 } : { ...s, startLayer: s.startLayer - 1 })) };
    const first = before.stages[0];
    const secondBytes = profile.layers.slice(shifted.stages[1].startLayer, shifted.stages[1].endLayer).reduce((t, l) => t + l.weightBytes, 0);
    const firstBytes = profile.layers.slice(first.startLayer, first.endLayer - 1).reduce((t, l) => t + l.weightBytes, 0);
    expect(moveCostMs(before, shifted, profile, 200)).toBeCloseTo(Math.max(firstBytes, secondBytes) / 200e3, 6);
    expect(moveCostMs(before, shifted, profile, 200, (d) => (d === first.device ? 10 : 1))).toBeCloseTo(Math.max(10 * firstBytes, secondBytes) / 200e3, 6);
  });
});

describe('repricePlan', () => {
  it('prices the plan in force with its devices 4× slower, and says when a device of it is gone', () => {
    const plan = planPipeline(profile, cluster([dev('a'), dev('b')]), request);
    const slow = repricePlan(plan, profile, cluster([dev('a', 5, 5), dev('b', 5, 5)]), request);
    expect(slow.cost!.tokenLatencyMs).toBeGreaterThan(plan.cost.tokenLatencyMs * 3);
    expect(slow.fitsInMemory).toBe(true);
    const used = plan.stages[0].device;
    expect(repricePlan(plan, profile, cluster([dev(used === 'a' ? 'b' : 'a')]), request)).toEqual({ cost: null, fitsInMemory: false });
    const small = repricePlan(plan, profile, cluster([{ ...dev('a'), memoryBytes: 1e6 }, { ...dev('b'), memoryBytes: 1e6 }]), request);
    expect(small.fitsInMemory).toBe(false);
  });
});

describe('replayDay', () => {
  // No device holds the whole model (about 330 MB): the ring needs two of them.
  const fleet = cluster([250e6, 250e6, 250e6].map((m, i) => ({ ...[dev('laptop', 20, 20), dev('desktop', 30, 30), dev('camera', 6, 6)][i], memoryBytes: m })));
  // The laptop's owner works 9:00-12:00 and 14:00-18:00 (3× slower); the desktop games 20:00-23:00 (5×);
  // the camera is busy by day (4×) and idle at night.
  const h = 3600;
  const day: AvailabilityChange[] = [
    { atS: 7 * h, device: 'camera', slowdown: 4 },
    { atS: 9 * h, device: 'laptop', slowdown: 3 },
    { atS: 12 * h, device: 'laptop', slowdown: 1 },
    { atS: 14 * h, device: 'laptop', slowdown: 3 },
    { atS: 18 * h, device: 'laptop', slowdown: 1 },
    { atS: 20 * h, device: 'desktop', slowdown: 5 },
    { atS: 22 * h, device: 'camera', slowdown: 1 },
    { atS: 23 * h, device: 'desktop', slowdown: 1 },
  ];

  it('adaptive re-planning generates more tokens than a static plan over a day, paying for its moves', () => {
    const r = replayDay(profile, fleet, request, day);
    expect(r.static.changes).toBe(0);
    expect(r.adaptive.changes).toBeGreaterThan(0);
    expect(r.adaptive.movedLayers).toBeGreaterThan(0);
    expect(r.adaptive.movingS).toBeGreaterThan(0);
    expect(r.adaptive.tokens).toBeGreaterThan(r.static.tokens * 1.02);
    // While the desktop games, the static plan runs 3.5× slower; the adaptive one moves its layers away.
    const gaming = r.timeline.find((row) => row.atS === 20 * h + 10)!;
    expect(gaming.staticMsPerToken).toBeGreaterThan(3 * r.timeline[0].staticMsPerToken);
    expect(gaming.adaptiveMsPerToken).toBeLessThan(0.7 * gaming.staticMsPerToken);
    // And back once it is free again.
    expect(r.timeline.at(-1)!.adaptiveMsPerToken).toBeCloseTo(r.timeline[0].adaptiveMsPerToken, 6);
    expect(r.adaptive.worstMsPerToken).toBeLessThanOrEqual(r.static.worstMsPerToken);
    // Pure: the same day replays the same.
    expect(replayDay(profile, fleet, request, day)).toEqual(r);
  });

  it('with nothing changing, both strategies are the same plan all day', () => {
    const r = replayDay(profile, fleet, request, []);
    expect(r.adaptive).toEqual(r.static);
    expect(r.changes).toEqual([]);
  });

  it('a device that leaves forces both strategies to re-plan, and a static plan never moves otherwise', () => {
    const r = replayDay(profile, fleet, request, [{ atS: 100, device: 'desktop', slowdown: 1, present: false }, ...day.filter((c) => c.device !== 'desktop')], { durationS: 24 * h });
    expect(r.static.forcedChanges).toBe(1);
    expect(r.static.changes).toBe(1);
    expect(r.adaptive.forcedChanges).toBe(1);
  });
});
