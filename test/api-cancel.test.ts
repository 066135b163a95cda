/**
 * A client that goes away cancels its generation: on a live 2-node cluster, aborting a streaming (or a plain)
 * request mid-way ends it on the coordinator and frees its KV cache on both stages, as /metrics shows.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, sleep, type RunningNode } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';

const LONG = 1500;

describe('cancelling requests on a 2-node cluster', () => {
  const h = new ClusterHarness('api-cancel');
  let c: ApiCluster;
  beforeAll(async () => {
    c = await startApiCluster(h);
  }, 60_000);
  afterAll(() => h.cleanup());

  const sessions = async () => Promise.all([c.a, c.b].map((n) => metric(n, 'edge_node_kv_sessions')));
  const cacheBytes = async () => Promise.all([c.a, c.b].map((n) => metric(n, 'edge_node_kv_cache_bytes')));
  const steps = (n: RunningNode) => metric(n, 'edge_node_token_latency_seconds_count');

  /** Waits until neither stage holds a cache; returns the ms it took. */
  const freed = () => h.waitFor(async () => (await sessions()).every((s) => s === 0) && (await cacheBytes()).every((b) => b === 0), 3000, 'both stages to free the cache', 20);

  it('aborting a stream mid-way frees the cache on both stages and stops generating', async () => {
    const client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: c.modelId,
      messages: [{ role: 'user', content: 'Tell me a long story.' }],
      max_tokens: LONG,
      temperature: 0.8,
      seed: 7,
      stream: true,
      ignore_eos: true,
    } as OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming);
    let chunks = 0;
    let during: number[] = [];
    let bytesDuring: number[] = [];
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) chunks++;
      if (chunks === 20) {
        during = await sessions();
        bytesDuring = await cacheBytes();
        break; // leaving the loop aborts the HTTP request
      }
    }
    expect(during).toEqual([1, 1]);
    expect(bytesDuring.every((b) => b > 0)).toBe(true);
    const ms = await freed();
    expect(ms).toBeLessThan(1000);
    const stepsAfter = await steps(c.a);
    expect(stepsAfter).toBeLessThan(LONG / 2);
    await sleep(300);
    expect(await steps(c.a)).toBe(stepsAfter);
    expect(await metric(c.a, 'edge_node_generations_total{endpoint="chat",finish="cancelled"}')).toBe(1);
    expect(await metric(c.a, 'edge_node_requests_running')).toBe(0);
  });

  it('aborting a non-streaming request coordinated by node b frees both stages too', async () => {
    const abort = new AbortController();
    const before = await steps(c.b);
    const pending = fetch(`${c.b.apiUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: c.modelId, prompt: 'Once upon a time', max_tokens: LONG, ignore_eos: true }),
      signal: abort.signal,
    }).catch((err: Error) => err);
    await h.waitFor(async () => (await sessions()).every((s) => s === 1) && (await steps(c.b)) > before + 10, 5000, 'the request to be generating on both stages', 20);
    abort.abort();
    expect(await pending).toBeInstanceOf(Error);
    expect(await freed()).toBeLessThan(1000);
    expect((await steps(c.b)) - before).toBeLessThan(LONG / 2);
    expect(await metric(c.b, 'edge_node_generations_total{endpoint="completions",finish="cancelled"}')).toBe(1);
    // The cluster serves the next request normally.
    const res = await fetch(`${c.a.apiUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: c.modelId, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 }),
    });
    expect(((await res.json()) as { choices: { text: string }[] }).choices[0].text).toBe(', there was a little');
    // Release frames follow the answer along the ring: the stages free that request's cache moments after it returns.
    await h.waitFor(async () => (await sessions()).every((s) => s === 0), 1000, 'both stages to free the follow-up request', 20);
  });
});
