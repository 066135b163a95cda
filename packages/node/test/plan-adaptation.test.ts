/**
 * The coordinator's adaptation, driven second by second over three alike devices as Replanner.adapt() drives it
 * (pure: plans from the partitioner, weighed by weighChange): a throttled device sheds its layers, stays out while
 * the throttle lasts whatever its neighbours read, and gets them back by the way back as soon as it is measured no
 * slower than the devices covering for it — without waiting to read quiet, nor for a new move's 20 % gain.
 */
import { describe, expect, it } from 'vitest';
import { modelProfile } from '@edge-node/partitioner';
import { SYNTHETIC_PRESETS } from '@edge-node/testkit';
import type { DeviceLoad } from '../src/cluster/device-load.js';
import type { DeviceProfile } from '../src/cluster/device-profile.js';
import type { ClusterMember } from '../src/cluster/membership.js';
import { computeClusterPlan, modelShapeOf, type ClusterPlan } from '../src/pipeline/cluster-plan.js';
import { changeCauses, quietestLoads, weighChange, type Restorable } from '../src/pipeline/plan-adaptation.js';

// llama-300m's shape in Q8_0: 16 layers of about 20 MB; each device offers room for about 10 of them.
const config = SYNTHETIC_PRESETS['llama-300m'];
const BYTES_PER_WEIGHT = 1.0625;
const request = { promptTokens: 128, genTokens: 128, contextTokens: 1024, concurrency: 2 };
const profile = modelProfile(modelShapeOf(config, BYTES_PER_WEIGHT, 'f16'));

function member(name: string, slowdown: number): ClusterMember {
  const p: DeviceProfile = {
    gflopsDecode: 20, gflopsPrefill: 40, memBandwidthGBps: 20, memoryBytes: 240e6, memorySource: 'test', runtime: 'node',
    backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: name, measuredAt: 1, kvCache: 'f16',
  };
  const load: DeviceLoad = { slowdown, calibration: 1, promptCalibration: null, source: 'probe', since: 0, otherCpuCores: 0, availableMemoryBytes: 1e9, memoryBudgetBytes: 240e6, memoryReason: '' };
  return { peerId: `peer-${name}`, name, instanceId: name, addresses: [], profile: p, load, stageInfo: { model: 'fp', ready: true }, links: {}, version: 1, joinedAt: 0, lastSeen: 0 };
}

/** The coordinator's state between checks, as Replanner keeps it. */
class Coordinator {
  plan: ClusterPlan;
  restorable: Restorable | null = null;
  lastChangeAt = -Infinity;
  loadsAtPlan: Map<string, DeviceLoad | null>;
  readonly changes: { at: number; layersOfB: number; reason: string }[] = [];
  lastReason = '';

  /** `loadsAtAdopt`: what the members announced when the plan was adopted (default: what it was made from). */
  constructor(members: ClusterMember[], loadsAtAdopt = members) {
    this.plan = plan(members);
    this.loadsAtPlan = loadsOf(loadsAtAdopt);
  }

  /** One check at `at` ms with the members' figures of the moment. */
  check(at: number, members: ClusterMember[]): void {
    this.loadsAtPlan = quietestLoads(this.loadsAtPlan, members);
    const candidate = plan(members, this.plan);
    const w = weighChange({ current: this.plan, members, profile, request, loadMBps: 200, sinceLastChangeMs: at - this.lastChangeAt, restorable: this.restorable }, candidate);
    if (!w) throw new Error('a stage node is missing');
    this.lastReason = w.decision.reason;
    if (!w.decision.replan) return;
    if (w.restoring) this.restorable = null;
    else if (!this.restorable) {
      const causes = changeCauses(members, this.loadsAtPlan);
      if (causes.length > 0) this.restorable = { former: this.plan, loads: this.loadsAtPlan, causes };
    }
    this.plan = w.candidate;
    this.loadsAtPlan = loadsOf(members);
    this.lastChangeAt = at;
    this.changes.push({ at, layersOfB: layersOf(this.plan, 'peer-b'), reason: w.decision.reason });
  }
}

const plan = (members: ClusterMember[], previous?: ClusterPlan) =>
  computeClusterPlan({ members, config, bytesPerWeight: BYTES_PER_WEIGHT, kvCache: 'f16', modelFingerprint: 'fp', request, ...(previous ? { previous: previous.plan } : {}) });
const loadsOf = (members: ClusterMember[]) => new Map(members.map((m) => [m.peerId, m.load]));
const layersOf = (p: ClusterPlan, peerId: string) => p.stages.filter((s) => s.peerId === peerId).reduce((t, s) => t + s.endLayer - s.startLayer, 0);

/**
 * Runs the coordinator once a second over `seconds`, the devices' slowdowns given by `figures(t)` (t in s), from a
 * quiet fleet whose plan gives b layers.
 */
function drive(seconds: number, figures: (t: number) => { a: number; b: number; c: number }, adoptedAt = { a: 1, b: 1, c: 1 }): Coordinator {
  const quiet = [member('a', 1), member('b', 1), member('c', 1)];
  const co = new Coordinator(quiet, [member('a', adoptedAt.a), member('b', adoptedAt.b), member('c', adoptedAt.c)]);
  expect(layersOf(co.plan, 'peer-b')).toBeGreaterThan(0);
  for (let t = 0; t < seconds; t++) {
    const f = figures(t);
    co.check(t * 1000, [member('a', f.a), member('b', f.b), member('c', f.c)]);
  }
  return co;
}

describe('a throttled device and the way back (plan-adaptation)', () => {
  it('sheds b\'s layers when it is throttled and gives them back at the first check after it reads quiet again', () => {
    // b throttled from 5 s to 65 s (20× by its probe); quiet from 65 s.
    const co = drive(80, (t) => ({ a: 1, b: t >= 5 && t < 65 ? 20 : 1, c: 1 }));
    expect(co.changes[0]).toMatchObject({ at: 5000, layersOfB: 0 });
    expect(co.changes[1]).toMatchObject({ at: 65_000 });
    expect(co.changes[1].layersOfB).toBeGreaterThan(0);
    expect(co.changes).toHaveLength(2);
  });

  it('gives them back while the shared machine keeps every device reading busy, once b is no slower than the device covering for it', () => {
    // After the lift b reads 2.6× (its probe on a loaded machine: not quiet), and so do a and c (their stages).
    const co = drive(80, (t) => (t >= 5 && t < 65 ? { a: 1, b: 20, c: 1 } : t < 5 ? { a: 1, b: 1, c: 1 } : { a: 2.6, b: 2.6, c: 2.6 }));
    expect(co.changes).toHaveLength(2);
    expect(co.changes[1].at).toBe(65_000);
    expect(co.changes[1].layersOfB).toBeGreaterThan(0);
    expect(co.changes[1].reason).toMatch(/^the device that caused the last change is no slower now than those covering its layers: back to the former plan \(predicted [0-9.]+ → [0-9.]+ ms\/token\)$/);
  });

  it('keeps b out while it is throttled, whatever its neighbours read meanwhile (no flapping)', () => {
    // b reads 6-20× while throttled; a and c swing between quiet and 4× with the machine's load, each second.
    const swing = (t: number, k: number) => [1, 2.6, 4, 1.5, 3.2][(t + k) % 5];
    const co = drive(70, (t) => (t < 5 ? { a: 1, b: 1, c: 1 } : { a: swing(t, 0), b: 6 + ((t * 7) % 15), c: swing(t, 2) }));
    expect(co.changes[0]).toMatchObject({ at: 5000, layersOfB: 0 });
    expect(co.changes.filter((c) => c.layersOfB > 0)).toEqual([]);
  });

  it('does not take b back while it is slower than the device covering for it, even though it no longer reads as before', () => {
    // After the lift b reads 3× (still busy by its figures) and c, holding its layers, 1.5×: b stays out.
    const co = drive(40, (t) => (t < 5 ? { a: 1, b: 1, c: 1 } : t < 20 ? { a: 1, b: 20, c: 1.5 } : { a: 1, b: 3, c: 1.5 }));
    expect(co.changes).toHaveLength(1);
    expect(layersOf(co.plan, 'peer-b')).toBe(0);
  });

  it('gives them back when b read busy as the plan was adopted and quiet a second later (the throttle is then a cause)', () => {
    // A start-up probe on a loaded machine read b 4.6× as the quiet plan was adopted; b read quiet from the first check.
    // Throttled from 5 s (2.6×: no worse than that 4.6×, were it the baseline) to 20 s, then quiet.
    const co = drive(40, (t) => ({ a: 1, b: t >= 5 && t < 20 ? 2.6 : 1, c: 1 }), { a: 1, b: 4.6, c: 1 });
    expect(co.changes[0]).toMatchObject({ at: 5000, layersOfB: 0 });
    expect(co.changes).toHaveLength(2);
    expect(co.changes[1].at).toBe(20_000);
    expect(co.changes[1].layersOfB).toBeGreaterThan(0);
  });

  it('waits for the hysteresis after the shed (a lift right after it does not bring the layers back at once)', () => {
    const co = drive(30, (t) => ({ a: 1, b: t >= 5 && t < 8 ? 20 : 1, c: 1 }));
    expect(co.changes).toHaveLength(2);
    expect(co.changes[1].at).toBe(15_000);
    expect(co.changes[1].layersOfB).toBeGreaterThan(0);
  });
});
