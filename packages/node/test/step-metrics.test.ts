/**
 * A pipeline step in the coordinator's metrics (api/api-metrics.ts): its per-hop time is the round trip less the
 * stages' compute, shared by the hops; a verification sent in parts overlapped its stages, so it gives no hop time.
 */
import { describe, expect, it } from 'vitest';
import { ApiMetrics } from '../src/api/api-metrics.js';

async function hops(m: ApiMetrics): Promise<{ count: number; sum: number }> {
  const h = (await m.hopTime.get()).values;
  return { count: h.find((v) => v.metricName === 'edge_node_hop_seconds_count')?.value ?? 0, sum: h.find((v) => v.metricName === 'edge_node_hop_seconds_sum')?.value ?? 0 };
}

describe('ApiMetrics.observeStep', () => {
  it('reads a step in one frame as its hops, and a verification in parts as none', async () => {
    const m = new ApiMetrics();
    const route = { peers: ['a', 'b', 'c'] };
    m.observeStep({ step: 3, roundTripMs: 40, stageMs: [10, 10, 10], coordinatorMs: 0, tokens: 9 }, route, 4);
    expect(await hops(m)).toEqual({ count: 1, sum: 10 / 4 / 1000 });
    // Two parts: the stages' 45 ms of compute overlapped within a round trip of 35.
    m.observeStep({ step: 4, roundTripMs: 35, stageMs: [15, 15, 15], coordinatorMs: 0, tokens: 17, parts: 2 }, route, 4);
    expect((await hops(m)).count).toBe(1);
  });
});
