/**
 * Live moves: three real node processes on a random-weight model (6 layers, hidden 768, F32), each offering memory
 * for about 4 of the 6 layers. While answers stream, a stage node's memory budget is cut so that it must shed
 * layers: the requests in flight move to the new plan with their KV caches (the stages of the new route pull the
 * rows of their layers from the old route's stages), not by a replay of their history, and every answer has the
 * text of an unmoved run. Between two nodes whose KV caches are stored differently (--kv-cache f16 and f32), a
 * copy cannot be used: the move falls back to a replay of the request's history, and the answer completes.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, sleep, type RunningNode } from './support/cluster-harness.js';

interface ClusterView {
  plan: { id: string; stages: { peerId: string; startLayer: number; endLayer: number }[] } | null;
}

const PROMPT = 'Once upon a time, in a small town by the sea, there lived an old fisherman and his three daughters, who';

describe('requests in flight move with their KV cache', () => {
  const h = new ClusterHarness('live-move');
  let a: RunningNode;
  let nodes: RunningNode[];
  let client: OpenAI;
  let model: string;

  const view = async (n: RunningNode = a) => (await n.cluster()) as ClusterView;
  const layersOf = (v: ClusterView, peerId: string) => (v.plan?.stages ?? []).filter((s) => s.peerId === peerId).reduce((t, s) => t + s.endLayer - s.startLayer, 0);
  const metric = async (name: string) => {
    const text = await (await fetch(`${a.apiUrl}/metrics`)).text();
    const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
  const stream = async (maxTokens: number, onToken?: (i: number) => void) => {
    let text = '';
    let i = 0;
    const s = await client.completions.create({ model, prompt: PROMPT, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming);
    for await (const chunk of s) {
      const t = chunk.choices[0]?.text ?? '';
      if (t) {
        text += t;
        onToken?.(++i);
      }
    }
    return text;
  };

  beforeAll(async () => {
    const path = await h.syntheticGguf('m768x6.gguf', { numLayers: 6, dtype: 'F32', seed: 11 });
    // About 28 MB a layer (weights held once): 120 MB holds 4 of the 6 layers, so the ring needs two nodes.
    const args = ['--model', path, '--no-mdns', '--memory-budget', '120000000', '--context', '1024', '--concurrency', '2'];
    a = await h.startNode({ name: 'a', args });
    const b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
    const c = await h.startNode({ name: 'c', args: [...args, '--bootstrap', a.addresses[0]] });
    nodes = [a, b, c];
    await h.waitForPipelineMembers(nodes, 30_000);
    client = new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
    model = await a.modelId();
  }, 120_000);

  afterAll(async () => {
    await h.cleanup();
  });

  it('a stage node short of memory sheds layers; the answers streaming move live and keep their text', async () => {
    // Long enough answers that the re-plan (a second or so after the cut, more on a loaded machine) lands mid-stream.
    const reference = await stream(300);
    const before = await view();
    const victim = nodes.find((n) => layersOf(before, n.peerId) >= 3)!;
    expect(victim).toBeDefined();
    let cut: Promise<Response> | null = null;
    // The budget is cut once both answers are under way (after their 8th token): they are mid-stream when the plan changes.
    const answers = [stream(300, (i) => (i === 8 ? (cut ??= fetch(`${victim.apiUrl}/v1/node/memory-budget`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ bytes: 60_000_000 }) })) : undefined)), stream(300)];
    const texts = await Promise.all(answers);
    expect((await cut!)?.status).toBe(200);
    await h.waitFor(async () => layersOf(await view(), victim.peerId) <= 2, 30_000, `${victim.name} to shed layers`, 200);
    const live = await metric('edge_node_moves_total{kind="live"}');
    const replayed = await metric('edge_node_moves_total{kind="replayed"}');
    const copied = await metric('edge_node_moved_kv_bytes_total');
    console.log(`live moves ${live}, replayed ${replayed}, ${(copied / 1e6).toFixed(2)} MB of KV copied; a's log: ${a.output().match(/^.*moved to plan.*$/gm)?.join(' | ')}`);
    for (const t of texts) expect(t).toBe(reference);
    // Both answers were streaming when the plan changed: they moved with their KV, none replayed its history.
    expect(live).toBeGreaterThanOrEqual(1);
    expect(replayed).toBe(0);
    expect(copied).toBeGreaterThan(0);
    // A request on the new plan from the start: the same text again.
    await sleep(200);
    expect(await stream(300)).toBe(reference);
  }, 180_000);
});

describe('a KV copy that cannot be used falls back to a replay', () => {
  const h = new ClusterHarness('live-move-fallback');
  afterAll(async () => {
    await h.cleanup();
  });

  it('moving layers between an f16 and an f32 node replays the requests in flight; they complete', async () => {
    const path = await h.syntheticGguf('m768x6.gguf', { numLayers: 6, dtype: 'F32', seed: 11 });
    // 160 MB: 5 of the 6 layers each and the KV the plan counts (f32, the widest), so the ring needs both nodes; cut
    // to 60 MB, one keeps 2.
    const args = ['--model', path, '--no-mdns', '--memory-budget', '160000000', '--context', '1024', '--concurrency', '2'];
    const a = await h.startNode({ name: 'a', args });
    const c = await h.startNode({ name: 'c', args: [...args, '--kv-cache', 'f32', '--bootstrap', a.addresses[0]] });
    await h.waitForPipelineMembers([a, c], 30_000);
    const client = new OpenAI({ baseURL: `${a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
    const model = await a.modelId();
    const plan = async () => ((await a.cluster()) as ClusterView).plan?.stages ?? [];
    const layers = async (n: RunningNode) => (await plan()).filter((s) => s.peerId === n.peerId).reduce((t, s) => t + s.endLayer - s.startLayer, 0);
    await client.completions.create({ model, prompt: PROMPT, max_tokens: 4, temperature: 0 });
    const victim = (await layers(a)) >= (await layers(c)) ? a : c;
    let tokens = 0;
    let cut: Promise<Response> | null = null;
    const s = await client.completions.create({ model, prompt: PROMPT, max_tokens: 400, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming);
    let finish: string | null = null;
    for await (const chunk of s) {
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (!chunk.choices[0]?.text) continue;
      if (++tokens === 8) cut = fetch(`${victim.apiUrl}/v1/node/memory-budget`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ bytes: 60_000_000 }) });
    }
    expect((await cut!)?.status).toBe(200);
    await h.waitFor(async () => (await layers(victim)) <= 2, 30_000, `${victim.name} to shed layers`, 200);
    const metrics = await (await fetch(`${a.apiUrl}/metrics`)).text();
    const count = (kind: string) => Number(metrics.match(new RegExp(`^edge_node_moves_total\\{kind="${kind}"\\} (\\S+)$`, 'm'))?.[1]);
    console.log(`fallback: live ${count('live')}, replayed ${count('replayed')}; ${a.output().match(/^.*its KV could not move.*$/m)?.[0]}`);
    expect(finish).toBe('length'); // the answer went on to its end: all 400 tokens, no error
    expect(count('replayed')).toBeGreaterThanOrEqual(1);
    expect(count('live')).toBe(0);
    expect(a.output()).toMatch(/its KV could not move \(.*--kv-cache.*\); replaying its history instead/);
  }, 180_000);
});
