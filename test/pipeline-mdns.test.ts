/**
 * Zero configuration: three `edge-node start` processes with no bootstrap address find each other by mDNS and
 * serve a completion through a 3-way split. mDNS multicasts on every interface, so the nodes run inside a network
 * namespace the test creates, with only `lo` up (as in cluster-mdns.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF, runSingleDevice, type SingleDeviceResult } from './support/single-device-run.js';

const NS = `en-pipe-${randomBytes(4).toString('hex')}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' }).toString();
const SPLIT = [2, 2, 1];
const TOKENS = 40;

describe('pipeline over nodes found by mDNS in a private network namespace', () => {
  let h: ClusterHarness;
  let reference: SingleDeviceResult;

  beforeAll(async () => {
    ip('netns', 'add', NS);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    // lo has no multicast flag and no route for 224.0.0.0/4 by default; both stay inside the namespace.
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'multicast', 'on');
    ip('netns', 'exec', NS, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo');
    h = new ClusterHarness('pipeline-mdns', { netns: NS });
    reference = await runSingleDevice(STORIES_GGUF, 'Once upon a time', TOKENS);
  }, 120_000);

  afterAll(async () => {
    await h?.cleanup();
    try {
      ip('netns', 'delete', NS);
    } catch {
      // already gone
    }
  });

  it('three nodes without bootstrap addresses find each other within 5 s and serve a 3-way split', async () => {
    const args = ['--model', STORIES_GGUF, '--split', SPLIT.join(','), '--mdns'];
    const nodes: RunningNode[] = await Promise.all(['m1', 'm2', 'm3'].map((name) => h.startNode({ name, args })));
    const found = await h.waitForPipelineMembers(nodes, 5000);
    expect(found).toBeLessThan(5000);
    for (const n of nodes) expect(n.output()).not.toMatch(/bootstrap/);

    // The last node by name coordinates; the ring is m1 → m2 → m3 and back to m3.
    const res = await nodes[2].complete({ prompt: 'Once upon a time', max_tokens: TOKENS, temperature: 0 });
    expect(res.choices[0].text).toBe(reference.text);
    expect(res.usage.completion_tokens).toBe(TOKENS);
    const { plan } = (await nodes[2].cluster()) as { plan: { stages: { name: string; startLayer: number; endLayer: number }[] } };
    expect(plan.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual([
      ['m1', 0, 2],
      ['m2', 2, 4],
      ['m3', 4, 5],
    ]);
  }, 60_000);
});
