/**
 * A served hop costs more than half a link's fastest ping (on this machine's loopback 0.45–0.6 ms against 0.2–0.35:
 * a bigger frame, its codec and dispatch, a receiver woken after a few ms). The coordinator reads every plain decode
 * step against what the cost model prices outside the stages' compute, announces the typical difference per hop,
 * and the planner adds it to every link (docs/bench.md).
 */
import { describe, expect, it } from 'vitest';
import type { DeviceLoad } from '../src/cluster/device-load.js';
import type { DeviceProfile } from '../src/cluster/device-profile.js';
import { DeviceWatch } from '../src/cluster/device-watch.js';
import type { ClusterMember } from '../src/cluster/membership.js';
import { silentLogger } from '../src/network/node-logger.js';
import { clusterOf } from '../src/pipeline/cluster-plan.js';
import type { Route } from '../src/pipeline/route.js';
import { readServedStep, ringHopLatencyMs } from '../src/pipeline/served-hops.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function profile(fixed: { stepOverheadMs?: number; tokenOverheadMs?: number } = {}): DeviceProfile {
  return {
    gflopsDecode: 10, gflopsPrefill: 20, memBandwidthGBps: 10, memoryBytes: 8e9, memorySource: 'test', runtime: 'node',
    backend: 'kernels', isa: 'simd128', threads: 1, cores: 2, hostname: 'h', measuredAt: 1, ...fixed,
  };
}

function load(o: Partial<DeviceLoad> = {}): DeviceLoad {
  return { slowdown: 1, calibration: 1, promptCalibration: null, source: 'stage', since: 0, otherCpuCores: 0, availableMemoryBytes: 8e9, memoryBudgetBytes: 8e9, memoryReason: '', ...o };
}

function member(id: string, links: Record<string, number>, o: { profile?: DeviceProfile; load?: DeviceLoad | null } = {}): ClusterMember {
  return {
    peerId: id, name: id, instanceId: id, addresses: [], profile: o.profile ?? profile(), load: o.load ?? null, stageInfo: null,
    links: Object.fromEntries(Object.entries(links).map(([to, rttMs]) => [to, { rttMs, bandwidthMBps: 100, measuredAt: 0 }])),
    version: 1, joinedAt: 0, lastSeen: 0,
  };
}

const model = { hiddenBytesPerToken: 1000, tokenBytes: 4 };
const route: Route = { planId: 'p', peers: ['a', 'b', 'c'], ranges: [[0, 2], [2, 4], [4, 5]], model: 'fp' };

describe('served hops', () => {
  const members = new Map([
    ['a', member('a', { b: 0.4, c: 0.6 }, { profile: profile({ stepOverheadMs: 0.5, tokenOverheadMs: 0.2 }), load: load() })],
    ['b', member('b', { c: 0.2, a: 0.6 }, { profile: profile({ stepOverheadMs: 0.1 }) })],
    ['c', member('c', { a: 0.8, b: 0.2 }, { profile: profile({ stepOverheadMs: 0.3 }) })],
  ]);
  const get = (p: string) => members.get(p);

  it('a decode step is read against the legs, the stages that take a frame, and the coordinator\'s token', () => {
    const r = readServedStep({ step: 5, roundTripMs: 4, stageMs: [0.5, 0.7, 0.3], coordinatorMs: 0.5 }, route, 'a', get, model);
    // The coordinator is stage 0: its own stage is no hop. a→b carries a hidden state, b→c too, c→a a token id.
    expect(r?.hops).toBe(2 + 1);
    expect(ringHopLatencyMs(route, 'a', get)! * 3).toBeCloseTo(0.2 + 0.1 + 0.4, 9);
    // b and c take a frame (their layers do not start the model); a coordinates the token.
    expect(r?.fixedMs).toBeCloseTo(1000 / 1e5 + 1000 / 1e5 + 4 / 1e5 + 0.1 + 0.3 + 0.2, 9);
    expect(r?.measuredMs).toBeCloseTo(4 + 0.5 - 1.5, 9);
  });

  it('a coordinator that is no stage counts its legs to the first stage and back', () => {
    const r = readServedStep({ step: 1, roundTripMs: 4, stageMs: [1, 1], coordinatorMs: 0 }, { ...route, peers: ['b', 'c'], ranges: [[0, 3], [3, 5]] }, 'a', get, model);
    expect(r?.hops).toBe(3);
    // a→b (0.2) and c→a (0.4) carry token ids, b→c (0.1) a hidden state; c takes a frame, b starts the model.
    expect(ringHopLatencyMs({ ...route, peers: ['b', 'c'], ranges: [[0, 3], [3, 5]] }, 'a', get)! * 3).toBeCloseTo(0.2 + 0.1 + 0.4, 9);
    expect(r?.fixedMs).toBeCloseTo(4 / 1e5 + 1000 / 1e5 + 4 / 1e5 + 0.3 + 0.2, 9);
  });

  it("a leg's half ping is counted less the receiver's wake-up, which its fixed costs already hold", () => {
    // b and c say both costs: a step 0.3 = wake + turn + 2 codecs, a token 0.2 = wake + turn + 1 codec → 0.1 shared.
    const both = profile({ stepOverheadMs: 0.3, tokenOverheadMs: 0.2 });
    const ring = new Map([
      ['a', member('a', { b: 0.4, c: 0.6 }, { profile: both, load: load() })],
      ['b', member('b', { c: 0.2, a: 0.6 }, { profile: both })],
      ['c', member('c', { a: 0.8, b: 0.2 }, { profile: both })],
    ]);
    const r = readServedStep({ step: 5, roundTripMs: 4, stageMs: [0.5, 0.7, 0.3], coordinatorMs: 0.5 }, route, 'a', (p) => ring.get(p), model);
    expect(r?.fixedMs).toBeCloseTo(1000 / 1e5 + 1000 / 1e5 + 4 / 1e5 + 0.3 + 0.3 + 0.2, 9);
    expect(ringHopLatencyMs(route, 'a', (p) => ring.get(p))).toBeCloseTo(0.4 / 3, 9);
    // The planner prices the same legs (no excess announced yet): what the coordinator reads against is what it plans with.
    const cluster = clusterOf([...ring.values()]);
    const latency = (from: string, to: string) => cluster.links.find((l) => l.from === from && l.to === to)?.latencyMs;
    expect(latency('a', 'b')).toBeCloseTo(0.1, 9);
    expect(latency('b', 'c')).toBeCloseTo(0, 9);
    expect(latency('c', 'a')).toBeCloseTo(0.3, 9);
  });

  it('reads no step while a node of the ring is announced busy: the excess, as a calibration, is of quiet steps', () => {
    const step = { step: 5, roundTripMs: 4, stageMs: [0.5, 0.7, 0.3], coordinatorMs: 0.5 };
    expect(readServedStep(step, route, 'a', get, model)).not.toBeNull();
    for (const who of ['a', 'b', 'c']) {
      const busy = (p: string) => (p === who ? { ...get(p)!, load: load({ slowdown: 6.9 }) } : get(p));
      expect(readServedStep(step, route, 'a', busy, model), who).toBeNull();
    }
    // The coordinator outside the ring counts too (its token cost is in the step).
    const outside = { ...route, peers: ['b', 'c'], ranges: [[0, 3], [3, 5]] as [number, number][] };
    expect(readServedStep({ ...step, stageMs: [1, 1] }, outside, 'a', (p) => (p === 'a' ? { ...get(p)!, load: load({ slowdown: 2 }) } : get(p)), model)).toBeNull();
  });

  it('reads no prompt, no verification of drafts, no step of a route not measured', () => {
    const step = { step: 3, roundTripMs: 4, stageMs: [0.5, 0.7, 0.3], coordinatorMs: 0.5 };
    expect(readServedStep({ ...step, step: 0 }, route, 'a', get, model)).toBeNull();
    expect(readServedStep({ ...step, tokens: 3 }, route, 'a', get, model)).toBeNull();
    expect(readServedStep(step, route, 'a', (p) => (p === 'b' ? member('b', {}) : get(p)), model)).toBeNull();
    expect(readServedStep(step, { ...route, peers: ['a'], ranges: [[0, 5]] }, 'a', get, model)).toBeNull();
  });

  it('the watch announces the mean of the recent blocks per hop, stalls included, and forgets blocks beyond the last 8', async () => {
    const announced: DeviceLoad[] = [];
    const watch = new DeviceWatch({ profileMemoryBytes: 1e9, announce: (l) => announced.push(l), heldBytes: () => 0, log: silentLogger, intervalMs: 5, probeWhen: () => false });
    watch.start();
    const block = (measuredMs: number) => {
      for (let i = 0; i < 128; i++) watch.observeServedStep(measuredMs, 1, 2);
    };
    try {
      // Blocks of 128 quick steps over 2 hops, 0.6 ms more than the fixed costs a step, links priced at 0 a hop: 0.3 ms a hop.
      watch.setServedRingLatency(0);
      block(1.6);
      block(1.6);
      block(1.6);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(0.3);
      // A block whose steps stalled (4.6 ms more a step): its stalls are what those hops cost, in the mean.
      block(5.6);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(0.8); // (3 × 0.3 + 2.3) / 4
      // Eight quick blocks later the stalled one is out of the window.
      for (let i = 0; i < 8; i++) block(1.6);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(0.3);
      expect(announced.map((l) => l.hopExcessMs).filter((x) => x !== undefined)).toEqual([0.3, 0.8, 0.3]);
      // A ring with no network hop tells nothing.
      for (let i = 0; i < 512; i++) watch.observeServedStep(30, 1, 0);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(0.3);
    } finally {
      watch.stop();
    }
  });

  it('the excess follows the links as they are now: a link re-measured after its steps ran moves it, not the price', async () => {
    const announced: DeviceLoad[] = [];
    const watch = new DeviceWatch({ profileMemoryBytes: 1e9, announce: (l) => announced.push(l), heldBytes: () => 0, log: silentLogger, intervalMs: 5, probeWhen: () => false });
    watch.start();
    try {
      // Served hops took 0.3 ms beyond the fixed costs; nothing is announced before the ring's links are known.
      for (let i = 0; i < 256; i++) watch.observeServedStep(1.6, 1, 2);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBeUndefined();
      // Their pings priced a hop at 0.5 ms when they ran: −0.2 ms.
      watch.setServedRingLatency(0.5);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(-0.2);
      // Re-measured quieter, the links price a hop at 0.15 ms: the excess is +0.15, and a link priced at
      // its half ping plus the excess stays at what the hops took (with −0.2 kept it would be 0).
      watch.setServedRingLatency(0.15);
      await sleep(20);
      expect(watch.current().hopExcessMs).toBe(0.15);
      const a = member('a', { b: 0.3 }, { load: watch.current() });
      expect(clusterOf([a, member('b', { a: 0.3 })]).links.find((l) => l.from === 'a')?.latencyMs).toBeCloseTo(0.3, 9);
    } finally {
      watch.stop();
    }
  });

  it('the planner adds the coordinators\' median excess to every link, never below 0', () => {
    const links = (l: ClusterMember[]) => clusterOf(l).links.map((x) => `${x.from}>${x.to} ${x.latencyMs.toFixed(2)}`);
    const plain = [member('a', { b: 0.4 }), member('b', { a: 0.6 })];
    expect(links(plain)).toEqual(['a>b 0.20', 'b>a 0.30']);
    const withExcess = [member('a', { b: 0.4 }, { load: load({ hopExcessMs: 0.25 }) }), member('b', { a: 0.6 }, { load: load({ hopExcessMs: 0.5 }) }), member('c', {}, { load: load({ hopExcessMs: 0.1 }) })];
    expect(links(withExcess)).toEqual(['a>b 0.45', 'b>a 0.55']);
    // Fixed costs over-measured at start make the excess negative: a link's latency stays ≥ 0.
    expect(links([member('a', { b: 0.4 }, { load: load({ hopExcessMs: -0.3 }) }), member('b', { a: 0.8 })])).toEqual(['a>b 0.00', 'b>a 0.10']);
  });
});
