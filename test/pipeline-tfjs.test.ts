/**
 * `--backend tfjs` in a cluster: a tfjs node and a node on the kernels serve stories260K together (hidden states
 * cross between the two implementations of ForwardShard), and /v1/cluster reports each node's backend.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterHarness } from './support/cluster-harness.js';
import { STORIES_GGUF, storiesReference } from './support/single-device-run.js';

const TOKENS = 32;

interface ClusterJson {
  self: { name: string; profile: { backend: string; threads: number; gflopsDecode: number } };
  peers: { name: string; profile: { backend: string } }[];
  plan: { stages: { name: string; startLayer: number; endLayer: number }[] } | null;
}

describe('a tfjs node and a kernels node in one pipeline', () => {
  const h = new ClusterHarness('pipeline-tfjs');
  afterAll(() => h.cleanup());

  it('give the greedy tokens of the reference, with layers [0, 2) on tfjs and [2, 5) on the kernels', async () => {
    const args = ['--model', STORIES_GGUF, '--split', '2,3', '--no-mdns'];
    const n1 = await h.startNode({ name: 'n1', args: [...args, '--backend', 'tfjs'] });
    const n2 = await h.startNode({ name: 'n2', args: [...args, '--bootstrap', n1.addresses[0]] });
    expect(n1.output()).toMatch(/device: tfjs-wasm \(simd128, 1 thread; @tensorflow\/tfjs-node not installed/);
    await h.waitForPipelineMembers([n1, n2]);

    const ref = storiesReference();
    const res = await n1.complete({ prompt: 'Once upon a time', max_tokens: TOKENS, temperature: 0 });
    expect(res.usage.completion_tokens).toBe(TOKENS);
    expect(ref.greedy_from_bos_text.startsWith(`Once upon a time${res.choices[0].text}`)).toBe(true);
    expect(res.choices[0].text.length).toBeGreaterThan(TOKENS);

    const c = (await n1.cluster()) as ClusterJson;
    expect(c.plan?.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual([
      ['n1', 0, 2],
      ['n2', 2, 5],
    ]);
    expect(c.self.profile.backend).toBe('tfjs-wasm');
    expect(c.self.profile.threads).toBe(1);
    expect(c.self.profile.gflopsDecode).toBeGreaterThan(0);
    expect(c.peers.map((p) => [p.name, p.profile.backend])).toEqual([['n2', 'kernels']]);
  }, 60_000);
});
