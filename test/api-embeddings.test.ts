/**
 * Embeddings through the pipeline of a live 2-node cluster (stories260K split [0,2) + [2,5): the last stage pools),
 * with the official `openai` and `ollama` clients, checked against a node on `--backend tfjs` (a second, independent
 * implementation of the forward pass) and for batch invariance.
 */
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../packages/node/src/tokenizer/tokenizer.js';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { metric, startApiCluster, type ApiCluster } from './support/api-cluster.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const TEXTS = ['A dog ran in the park.', 'The cat slept on the warm mat all day long.', 'Lily found a shiny red ball.'];

const maxDiff = (a: readonly number[], b: readonly number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const dot = (a: readonly number[], b: readonly number[]) => a.reduce((s, v, i) => s + v * b[i], 0);

describe('embeddings through a 2-node pipeline', () => {
  const h = new ClusterHarness('api-embeddings');
  let c: ApiCluster;
  let tfjs: RunningNode;
  let client: OpenAI;
  let tokenizer: Tokenizer;
  let hidden = 0;
  beforeAll(async () => {
    const model = await openModel(STORIES_GGUF);
    tokenizer = await loadTokenizer(model.tokenizer);
    hidden = model.config.hiddenSize;
    await model.close();
    [c, tfjs] = await Promise.all([startApiCluster(h), h.startNode({ name: 'tf', args: ['--model', STORIES_GGUF, '--no-mdns', '--backend', 'tfjs'] })]);
    client = new OpenAI({ baseURL: `${c.a.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
  }, 90_000);
  afterAll(() => h.cleanup());

  let vectors: number[][];
  it('embeddings.create: a unit vector of the hidden size per input, usage counts the tokens, the second stage computed them', async () => {
    const rowsBefore = await metric(c.b, 'edge_node_stage_batch_rows_sum');
    const r = await client.embeddings.create({ model: c.modelId, input: TEXTS, encoding_format: 'float' });
    expect(r.object).toBe('list');
    expect(r.model).toBe('stories260K');
    expect(r.data.map((d) => d.index)).toEqual([0, 1, 2]);
    vectors = r.data.map((d) => d.embedding);
    for (const v of vectors) {
      expect(v).toHaveLength(hidden);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    const tokens = TEXTS.reduce((n, t) => n + tokenizer.encode(t).length, 0);
    expect(r.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    // Node b holds layers [2, 5): every input's rows went through its stage.
    expect((await metric(c.b, 'edge_node_stage_batch_rows_sum')) - rowsBefore).toBeGreaterThanOrEqual(tokens);
    // Different texts, different directions.
    expect(dot(vectors[0], vectors[1])).toBeLessThan(0.999);
  });

  it('the same vectors alone or batched, base64 or float, from either node, as token ids, and through Ollama\'s /api/embed', async () => {
    const alone = await client.embeddings.create({ model: c.modelId, input: TEXTS[1], encoding_format: 'float' });
    expect(alone.data[0].embedding).toEqual(vectors[1]);
    // The openai client asks for base64 when no format is given and decodes it.
    const b64 = await client.embeddings.create({ model: c.modelId, input: TEXTS });
    expect(b64.data.map((d) => d.embedding)).toEqual(vectors);
    const viaB = new OpenAI({ baseURL: `${c.b.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    expect((await viaB.embeddings.create({ model: c.modelId, input: TEXTS[0], encoding_format: 'float' })).data[0].embedding).toEqual(vectors[0]);
    const ids = await client.embeddings.create({ model: c.modelId, input: [tokenizer.encode(TEXTS[2])], encoding_format: 'float' });
    expect(ids.data[0].embedding).toEqual(vectors[2]);
    const ollama = new Ollama({ host: c.b.apiUrl });
    const o = await ollama.embed({ model: 'stories260K:latest', input: TEXTS });
    expect(o.embeddings).toEqual(vectors);
    expect(o.prompt_eval_count).toBe(ids.usage.prompt_tokens + (await client.embeddings.create({ model: c.modelId, input: TEXTS.slice(0, 2) })).usage.prompt_tokens);
    const legacy = (await (await fetch(`${c.a.apiUrl}/api/embeddings`, { method: 'POST', body: JSON.stringify({ model: 'stories260K', prompt: TEXTS[0] }) })).json()) as { embedding: number[] };
    expect(legacy.embedding).toEqual(vectors[0]);
  });

  it('agree with an independent implementation of the forward pass (a --backend tfjs node)', async () => {
    const tf = new OpenAI({ baseURL: `${tfjs.apiUrl}/v1`, apiKey: 'x', maxRetries: 0 });
    const r = await tf.embeddings.create({ model: 'stories260K', input: TEXTS, encoding_format: 'float' });
    r.data.forEach((d, i) => {
      // The cluster keeps its KV cache in F16, tfjs in F32: 1e-4 apart here, not bit-equal.
      expect(maxDiff(d.embedding, vectors[i])).toBeLessThan(1e-3);
      expect(dot(d.embedding, vectors[i])).toBeGreaterThan(0.99999);
    });
  });

  it('bad input: too long without truncation, wrong dimensions, wrong types, unknown model; the node serves after', async () => {
    const long = 'dog '.repeat(4000);
    const err = async (call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (e) {
        if (e instanceof OpenAI.APIError) return e;
        throw e;
      }
      throw new Error('expected the call to fail');
    };
    const tooLong = await err(() => client.embeddings.create({ model: c.modelId, input: long }));
    expect([tooLong.status, tooLong.code]).toEqual([400, 'context_length_exceeded']);
    const dims = await err(() => client.embeddings.create({ model: c.modelId, input: 'x', dimensions: 8 }));
    expect(dims.status).toBe(400);
    expect(dims.message).toContain(String(hidden));
    const types = await err(() => client.embeddings.create({ model: c.modelId, input: 42 as unknown as string }));
    expect([types.status, types.param]).toEqual([400, 'input']);
    const unknown = await err(() => client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }));
    expect(unknown.status).toBe(404);
    // Ollama truncates by default: the long input is embedded from its beginning.
    const ollama = new Ollama({ host: c.a.apiUrl });
    const truncated = await ollama.embed({ model: 'stories260K', input: long });
    expect(truncated.embeddings[0]).toHaveLength(hidden);
    const refused = await fetch(`${c.a.apiUrl}/api/embed`, { method: 'POST', body: JSON.stringify({ model: 'stories260K', input: long, truncate: false }) });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toContain('context');
    const again = await client.embeddings.create({ model: c.modelId, input: TEXTS[0], encoding_format: 'float' });
    expect(again.data[0].embedding).toEqual(vectors[0]);
    expect(await metric(c.a, 'edge_node_generations_total{endpoint="embeddings",finish="stop"}')).toBeGreaterThanOrEqual(8);
  });
});
