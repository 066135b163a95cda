/**
 * Several requests in flight at once through a 3-node pipeline (separate processes on loopback): each stage keeps
 * a KV cache per request and the coordinator matches tokens to requests, so interleaved greedy requests must come
 * out exactly as each does alone on one device.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, sleep, type CompletionJson, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF, runSingleDevice, type SingleDeviceResult } from './support/single-device-run.js';

const TOKENS = 48;
// Different prompt lengths, so the requests' positions (and their frames) never line up.
const PROMPTS = ['Once upon a time', 'Tom had a red ball', 'The sun was hot and the birds', 'Lily wanted to'];

describe('concurrent greedy requests through a 3-node pipeline', () => {
  const h = new ClusterHarness('pipeline-concurrent');
  const alone = new Map<string, SingleDeviceResult>();
  let nodes: RunningNode[] = [];
  afterAll(() => h.cleanup());

  beforeAll(async () => {
    for (let i = 0; i < PROMPTS.length; i += 2) {
      const pair = await Promise.all(PROMPTS.slice(i, i + 2).map((p) => runSingleDevice(STORIES_GGUF, p, TOKENS)));
      pair.forEach((r, j) => alone.set(PROMPTS[i + j], r));
    }
    // The prompts must lead to different texts, or a mix-up between requests could go unnoticed.
    expect(new Set([...alone.values()].map((r) => r.text)).size).toBe(PROMPTS.length);

    const args = ['--model', STORIES_GGUF, '--split', '1,2,2', '--no-mdns'];
    const p1 = await h.startNode({ name: 'p1', args });
    const [p2, p3] = await Promise.all([
      h.startNode({ name: 'p2', args: [...args, '--bootstrap', p1.addresses[0]] }),
      h.startNode({ name: 'p3', args: [...args, '--bootstrap', p1.addresses[0]] }),
    ]);
    nodes = [p1, p2, p3];
    await h.waitForPipelineMembers(nodes);
  }, 120_000);

  const body = (prompt: string) => ({ prompt, max_tokens: TOKENS, temperature: 0 });

  function expectAlone(prompt: string, res: CompletionJson): void {
    const ref = alone.get(prompt)!;
    expect(res.choices[0].text, prompt).toBe(ref.text);
    expect(res.usage.completion_tokens, prompt).toBe(ref.tokens.length);
    expect(res.usage.prompt_tokens, prompt).toBe(ref.promptTokens.length);
  }

  async function gauges(n: RunningNode): Promise<{ running: number; kvSessions: number }> {
    const text = await fetch(`${n.apiUrl}/metrics`).then((r) => r.text());
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { running: gauge('edge_node_requests_running'), kvSessions: gauge('edge_node_kv_sessions') };
  }

  /**
   * Sends the requests together while polling every node's gauges; returns the answers and, per node, the peak of
   * requests it coordinated at once and of KV caches it held at once (as a stage).
   */
  async function together(jobs: { node: RunningNode; prompt: string }[]) {
    const peakRunning = new Map<string, number>();
    const peakSessions = new Map<string, number>();
    let done = false;
    const poll = (async () => {
      while (!done) {
        await Promise.all(
          nodes.map(async (n) => {
            const g = await gauges(n);
            peakRunning.set(n.name, Math.max(peakRunning.get(n.name) ?? 0, g.running));
            peakSessions.set(n.name, Math.max(peakSessions.get(n.name) ?? 0, g.kvSessions));
          }),
        );
        await sleep(5);
      }
    })();
    let results: CompletionJson[];
    try {
      results = await Promise.all(jobs.map((j) => j.node.complete(body(j.prompt))));
    } finally {
      done = true;
      await poll;
    }
    jobs.forEach((j, i) => expectAlone(j.prompt, results[i]));
    // Every stage frees each request's cache when the coordinator releases it.
    await h.waitFor(async () => (await Promise.all(nodes.map(gauges))).every((g) => g.kvSessions === 0 && g.running === 0), 5000, 'all KV caches to be released');
    return { peakRunning, peakSessions };
  }

  it('each prompt alone through the pipeline equals the single-device run', async () => {
    for (const prompt of PROMPTS) expectAlone(prompt, await nodes[0].complete(body(prompt)));
  }, 60_000);

  it('two requests in flight at once on one coordinator', async () => {
    const { peakRunning, peakSessions } = await together(PROMPTS.slice(0, 2).map((prompt) => ({ node: nodes[0], prompt })));
    expect(peakRunning.get('p1')).toBe(2);
    for (const n of nodes) expect(peakSessions.get(n.name), n.name).toBe(2);
  }, 60_000);

  it('four requests in flight at once on one coordinator (a middle stage)', async () => {
    const { peakRunning, peakSessions } = await together(PROMPTS.map((prompt) => ({ node: nodes[1], prompt })));
    expect(peakRunning.get('p2')).toBe(4);
    for (const n of nodes) expect(peakSessions.get(n.name), n.name).toBe(4);
  }, 60_000);

  it('four requests in flight at once from three coordinators sharing the same stages', async () => {
    const { peakRunning, peakSessions } = await together(PROMPTS.map((prompt, i) => ({ node: nodes[[0, 1, 2, 2][i]], prompt })));
    expect([peakRunning.get('p1'), peakRunning.get('p2'), peakRunning.get('p3')]).toEqual([1, 1, 2]);
    for (const n of nodes) expect(peakSessions.get(n.name), n.name).toBe(4);
  }, 60_000);
});
