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
import { readServedStep } from '../src/pipeline/served-hops.js';

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
    const legs = 0.2 + 1000 / 1e5 + (0.1 + 1000 / 1e5) + (0.4 + 4 / 1e5);
    // b and c take a frame (their layers do not start the model); a coordinates the token.
    expect(r?.expectedMs).toBeCloseTo(legs + 0.1 + 0.3 + 0.2, 9);
    expect(r?.measuredMs).toBeCloseTo(4 + 0.5 - 1.5, 9);
  });

  it('a coordinator that is no stage counts its legs to the first stage and back', () => {
    const r = readServedStep({ step: 1, roundTripMs: 4, stageMs: [1, 1], coordinatorMs: 0 }, { ...route, peers: ['b', 'c'], ranges: [[0, 3], [3, 5]] }, 'a', get, model);
    expect(r?.hops).toBe(3);
    // a→b (0.2) and c→a (0.4) carry token ids, b→c (0.1) a hidden state; c takes a frame, b starts the model.
    expect(r?.expectedMs).toBeCloseTo(0.2 + 4 / 1e5 + (0.1 + 1000 / 1e5) + (0.4 + 4 / 1e5) + 0.3 + 0.2, 9);
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
      // Blocks of 128 quick steps over 2 hops, 0.6 ms more than expected a step: 0.3 ms a hop.
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
