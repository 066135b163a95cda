import fc from 'fast-check';
import type { Cluster, Link } from '../src/cluster.js';
import { CostModel } from '../src/cost-model.js';
import type { ModelProfile } from '../src/model-profile.js';
import { modelProfile } from '../src/model-profile.js';
import type { Assignment, Objective } from '../src/plan.js';
import type { RequestShape } from '../src/request-shape.js';

/** A random small planning problem: model, devices (memory relative to the model's size), links, request. */
export interface Instance {
  profile: ModelProfile;
  cluster: Cluster;
  request: RequestShape;
}

export function instanceArb(maxDevices: number, maxLayers: number): fc.Arbitrary<Instance> {
  return fc
    .record({
      hidden: fc.constantFrom(32, 64, 128),
      inter: fc.integer({ min: 32, max: 512 }),
      layers: fc.integer({ min: 1, max: maxLayers }),
      vocab: fc.integer({ min: 50, max: 4000 }),
      tied: fc.boolean(),
      bpw: fc.constantFrom(4, 2, 1.0625),
      devices: fc.array(
        fc.record({
          gflops: fc.double({ min: 0.01, max: 50, noNaN: true }),
          bw: fc.double({ min: 0.01, max: 20, noNaN: true }),
          memFrac: fc.double({ min: 0.05, max: 1.5, noNaN: true }),
        }),
        { minLength: 1, maxLength: maxDevices },
      ),
      links: fc.array(
        fc.record({ a: fc.nat(), b: fc.nat(), latencyMs: fc.double({ min: 0, max: 20, noNaN: true }), bandwidthMBps: fc.double({ min: 0.5, max: 200, noNaN: true }) }),
        { maxLength: 8 },
      ),
      defaultLatency: fc.double({ min: 0, max: 10, noNaN: true }),
      defaultBw: fc.double({ min: 1, max: 100, noNaN: true }),
      prompt: fc.integer({ min: 1, max: 64 }),
      gen: fc.integer({ min: 1, max: 32 }),
      extraContext: fc.integer({ min: 0, max: 64 }),
      concurrency: fc.integer({ min: 1, max: 6 }),
    })
    .map((r) => {
      const profile = modelProfile({
        hiddenSize: r.hidden,
        intermediateSize: r.inter,
        numLayers: r.layers,
        numHeads: 4,
        numKvHeads: 2,
        headDim: r.hidden / 4,
        vocabSize: r.vocab,
        tiedEmbeddings: r.tied,
        attentionBias: false,
        bytesPerWeight: r.bpw,
      });
      const request: RequestShape = { promptTokens: r.prompt, genTokens: r.gen, contextTokens: r.prompt + r.gen + r.extraContext, concurrency: r.concurrency };
      const n = r.devices.length;
      const probe: Cluster = { devices: [{ id: 'x', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1 }], links: [] };
      const whole = new CostModel(profile, probe, request).memoryBytes(0, profile.numLayers);
      const devices = r.devices.map((d, i) => ({ id: `d${i}`, gflops: d.gflops, memBandwidthGBps: d.bw, memoryBytes: Math.max(1, Math.round(d.memFrac * whole)) }));
      const links: Link[] = [];
      if (n > 1) {
        for (const l of r.links) {
          const a = l.a % n;
          const b = (a + 1 + (l.b % (n - 1))) % n;
          links.push({ from: `d${a}`, to: `d${b}`, latencyMs: l.latencyMs, bandwidthMBps: l.bandwidthMBps });
        }
      }
      return { profile, request, cluster: { devices, links, defaultLink: { latencyMs: r.defaultLatency, bandwidthMBps: r.defaultBw } } };
    });
}

/** Brute force: every ordered subset of devices × every composition of the layers. Null when nothing fits. */
export function bruteForce(inst: Instance, objective: Objective): { value: number; assignments: Assignment[] } | null {
  const cm = new CostModel(inst.profile, inst.cluster, inst.request);
  const L = cm.L;
  let best: { value: number; assignments: Assignment[] } | null = null;
  const orders: number[][] = [];
  const grow = (cur: number[]) => {
    if (cur.length > 0) orders.push(cur);
    for (let d = 0; d < cm.n; d++) if (!cur.includes(d)) grow([...cur, d]);
  };
  grow([]);
  for (const order of orders) {
    if (order.length > L) continue;
    const compose = (i: number, start: number, acc: Assignment[]) => {
      if (i === order.length - 1) {
        const a = [...acc, { device: order[i], start, end: L }];
        if (!a.every((x) => cm.fits(x.device, x.start, x.end))) return;
        const v = cm.objectiveValue(a, objective);
        if (!best || v < best.value) best = { value: v, assignments: a };
        return;
      }
      for (let e = start + 1; e <= L - (order.length - 1 - i); e++) compose(i + 1, e, [...acc, { device: order[i], start, end: e }]);
    };
    compose(0, 0, []);
  }
  return best;
}
