/**
 * Continuous batching on every stage: requests run together in one pass per step, and each answer is the same as the
 * request run alone — through one node and through a 3-node ring (separate `edge-node start` processes on loopback,
 * stories260K), driven by the official `openai` client.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF } from './support/single-device-run.js';

type Req = { prompt: string; max_tokens: number; temperature: number; top_k?: number; top_p?: number; seed?: number };

// Eight requests: different prompts and lengths, greedy and sampled with their own settings and seeds.
const REQUESTS: Req[] = [
  { prompt: 'Once upon a time', max_tokens: 40, temperature: 0 },
  { prompt: 'Tom had a red ball', max_tokens: 24, temperature: 0.9, seed: 1 },
  { prompt: 'The sun was hot and the birds', max_tokens: 48, temperature: 1, top_k: 20, seed: 2 },
  { prompt: 'Lily wanted to', max_tokens: 32, temperature: 0.7, top_p: 0.9, seed: 3 },
  { prompt: 'One day, a little dog', max_tokens: 20, temperature: 0 },
  { prompt: 'The cat sat on the mat and', max_tokens: 36, temperature: 1.2, seed: 4 },
  { prompt: 'Mom said', max_tokens: 28, temperature: 0.5, seed: 5 },
  { prompt: 'In the big green park there was a tree', max_tokens: 44, temperature: 1, top_k: 5, seed: 6 },
];

interface Answer {
  text: string;
  tokens: number;
  /** Arrival time of each streamed chunk (ms). */
  times: number[];
}

async function stream(client: OpenAI, model: string, r: Req, signal?: AbortSignal): Promise<Answer> {
  const { top_k, ...rest } = r;
  const s = await client.completions.create({ model, ...rest, ...(top_k !== undefined ? { top_k } : {}), stream: true, stream_options: { include_usage: true } } as OpenAI.Completions.CompletionCreateParamsStreaming, { signal });
  let text = '';
  let tokens = 0;
  const times: number[] = [];
  for await (const chunk of s) {
    if (chunk.choices[0]?.text) {
      text += chunk.choices[0].text;
      times.push(performance.now());
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { text, tokens, times };
}

interface Batching {
  steps: number;
  maxRequests: number;
  meanRows: number;
}
async function batching(n: RunningNode): Promise<Batching & { slots: number }> {
  const c = (await (await fetch(`${n.apiUrl}/v1/cluster`)).json()) as { serving: { batching: Batching; slots: number } };
  return { ...c.serving.batching, slots: c.serving.slots };
}

/** Rows this node's stage has computed in all (prompt positions and decode rows). */
async function rowsComputed(n: RunningNode): Promise<number> {
  const text = await (await fetch(`${n.apiUrl}/metrics`)).text();
  return Number(/^edge_node_stage_batch_rows_sum (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
}

describe.each([
  ['one node', [5]],
  ['three nodes', [1, 2, 2]],
])('continuous batching, %s', (_label, split) => {
  const h = new ClusterHarness(`batching-${split.length}`);
  let nodes: RunningNode[] = [];
  let client: OpenAI;
  const model = 'stories260K';
  const alone: Answer[] = [];

  beforeAll(async () => {
    const args = ['--model', STORIES_GGUF, '--no-mdns', '--parallel', '8', ...(split.length > 1 ? ['--split', split.join(',')] : [])];
    const first = await h.startNode({ name: 'p1', args });
    nodes = [first];
    if (split.length > 1) nodes.push(...(await Promise.all([2, 3].map((i) => h.startNode({ name: `p${i}`, args: [...args, '--bootstrap', first.addresses[0]] })))));
    await h.waitForPipelineMembers(nodes);
    client = new OpenAI({ baseURL: `${first.apiUrl}/v1`, apiKey: 'none', maxRetries: 0 });
    for (const r of REQUESTS) alone.push(await stream(client, model, r));
    // Different texts, or a mix-up between requests could go unnoticed.
    expect(new Set(alone.map((a) => a.text)).size).toBe(REQUESTS.length);
  }, 180_000);
  afterAll(() => h.cleanup());

  it('8 concurrent requests: each answer identical to the request alone, computed in shared steps', async () => {
    const before = await Promise.all(nodes.map(batching));
    const together = await Promise.all(REQUESTS.map((r) => stream(client, model, r)));
    together.forEach((a, i) => {
      expect(a.text, REQUESTS[i].prompt).toBe(alone[i].text);
      expect(a.tokens, REQUESTS[i].prompt).toBe(alone[i].tokens);
    });
    // Every stage really computed several requests in one step.
    for (const [i, n] of nodes.entries()) {
      const b = await batching(n);
      expect(b.steps, n.name).toBeGreaterThan(before[i].steps);
      expect(b.maxRequests, n.name).toBeGreaterThanOrEqual(4);
      expect(b.slots, n.name).toBe(8);
    }
  }, 120_000);

  it('n = 3 choices: each the same as its own request with its seed, the prompt computed once on every stage', async () => {
    // Rows are counted one per token: no speculation (its rejected drafts are rows computed too).
    const body = { model, prompt: 'The dog ran to the big tree and', max_tokens: 12, temperature: 1, seed: 7, ignore_eos: true, speculate: false };
    const separate = await Promise.all([0, 1, 2].map((i) => client.completions.create({ ...body, seed: 7 + i } as OpenAI.Completions.CompletionCreateParamsNonStreaming)));
    const before = await Promise.all(nodes.map(rowsComputed));
    const r = await client.completions.create({ ...body, n: 3 } as OpenAI.Completions.CompletionCreateParamsNonStreaming);
    const after = await Promise.all(nodes.map(rowsComputed));
    expect(r.choices.map((c) => c.text)).toEqual(separate.map((s) => s.choices[0].text));
    expect(new Set(r.choices.map((c) => c.text)).size).toBeGreaterThan(1);
    // Each stage: the prompt's rows once, then 11 decode rows per choice.
    const prompt = r.usage!.prompt_tokens;
    for (const [i, n] of nodes.entries()) expect(after[i] - before[i], n.name).toBe(prompt + 3 * 11);
  }, 60_000);

  it('a request that joins while others decode, and one cancelled mid-batch, leave the others unchanged', async () => {
    const controller = new AbortController();
    const running = [0, 2, 3].map((i) => stream(client, model, REQUESTS[i]));
    const cancelled = stream(client, model, REQUESTS[7], controller.signal).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 30));
    const joined = stream(client, model, REQUESTS[5]);
    controller.abort();
    const [a, b, c] = await Promise.all(running);
    expect([a.text, b.text, c.text]).toEqual([alone[0].text, alone[2].text, alone[3].text]);
    expect((await joined).text).toBe(alone[5].text);
    // The cancelled stream ended early: an abort error, or a stream cut off before its usage chunk.
    const cut = await cancelled;
    expect(cut instanceof Error || ((cut as Answer).tokens === 0 && (cut as Answer).text.length < alone[7].text.length)).toBe(true);
  }, 60_000);

  it('a long prompt arriving while 3 answers stream is spread over steps: the streams keep getting tokens', async () => {
    const longPrompt = 'The little girl went to the park with her mom and dad. '.repeat(14); // ~ 200 tokens: 7 slices of 32
    const streams = [0, 2, 7].map((i) => stream(client, model, { ...REQUESTS[i], max_tokens: 120 }));
    await new Promise((r) => setTimeout(r, 40));
    const t0 = performance.now();
    const long = await stream(client, model, { prompt: longPrompt, max_tokens: 4, temperature: 0 });
    const firstOfLong = long.times[0];
    const answers = await Promise.all(streams);
    // Between the long request's arrival and its first token, every streaming answer kept receiving tokens.
    for (const a of answers) {
      const during = a.times.filter((t) => t > t0 && t < firstOfLong).length;
      expect(during).toBeGreaterThanOrEqual(3);
    }
    expect(long.tokens).toBe(4);
  }, 60_000);
});
