/**
 * Embeddings as defined: the final-normed hidden state of every position (what the output head multiplies — so
 * `normed · headᵀ` must give the logits of the same rows), mean-pooled and L2-normalised; the same alone, batched with
 * a generation, split across two shards, or computed by the local executor. stories260K, real weights.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelRuntime } from '@edge-node/kernels';
import { LocalExecutor } from '../src/engine/local-executor.js';
import { MeanPool } from '../src/engine/mean-pool.js';
import { embeddingRequest } from '../src/engine/embedding-request.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import type { ModelFile } from '../src/model/model-file.js';
import { ACTIVATION_FRAME_VERSION, FrameValidationError, parseActivationFrame } from '../src/pipeline/activation-frame.js';
import { closeStories, openStories } from './support/stories-model.js';

const TOKENS = [1, 365, 1128, 1149, 280, 262, 1009, 29889, 450, 11203];

let runtime: KernelRuntime;
let model: ModelFile;
beforeAll(async () => ({ runtime, model } = await openStories()));
afterAll(() => closeStories({ runtime, model }));

const shard = async (startLayer: number, endLayer: number) => new QuantShard(await loadShardWeights(model, { startLayer, endLayer }, runtime), runtime, model.ropeLayout, 'f32');
const tokens = () => TOKENS.map((t) => t % model.config.vocabSize);

describe('embeddings', () => {
  it('"normed" rows are what the head multiplies: normed · headᵀ equals every row\'s logits', async () => {
    const s = await shard(0, model.config.numLayers);
    const c = model.config;
    const normed = (await s.forwardBatch([{ input: { kind: 'tokens', tokens: tokens() }, cache: s.createCache(64), logits: 'normed' }]))[0];
    const logits = (await s.forwardBatch([{ input: { kind: 'tokens', tokens: tokens() }, cache: s.createCache(64), logits: 'all' }]))[0];
    expect(normed.kind).toBe('hidden');
    expect(logits.kind).toBe('logits');
    if (normed.kind !== 'hidden' || logits.kind !== 'logits') return;
    expect(normed.n).toBe(TOKENS.length);
    const head = await model.readTensor(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight'); // [vocab, hidden]
    let worst = 0;
    for (let r = 0; r < normed.n; r++) {
      for (let v = 0; v < c.vocabSize; v++) {
        let dot = 0;
        for (let i = 0; i < c.hiddenSize; i++) dot += normed.hidden[r * c.hiddenSize + i] * head[v * c.hiddenSize + i];
        worst = Math.max(worst, Math.abs(dot - logits.logits[r * c.vocabSize + v]));
      }
    }
    // An F32 file: the two products differ only by float32 summation order (3e-6 here).
    expect(worst).toBeLessThan(1e-3);
    s.dispose();
  });

  it('MeanPool: the mean of the rows scaled to unit length, whatever the slicing', () => {
    const H = 3;
    const rows = Float32Array.from([1, 2, 3, 3, 2, 1, 2, 2, 2]);
    const whole = new MeanPool(H);
    whole.add(rows, 3);
    const sliced = new MeanPool(H);
    sliced.add(rows.subarray(0, 3), 1);
    sliced.add(rows.subarray(3), 2);
    const v = whole.result();
    expect(Array.from(v)).toEqual(Array.from(sliced.result()));
    expect(Math.hypot(...v)).toBeCloseTo(1, 6);
    expect(v[0]).toBeCloseTo(1 / Math.sqrt(3), 6);
    expect(() => new MeanPool(H).result()).toThrow(/no rows/);
  });

  it('the local executor\'s embedding equals pooling the normed rows; batched with a generation and split in two shards it is the same', async () => {
    const whole = await shard(0, model.config.numLayers);
    const out = (await whole.forwardBatch([{ input: { kind: 'tokens', tokens: tokens() }, cache: whole.createCache(64), logits: 'normed' }]))[0];
    if (out.kind !== 'hidden') throw new Error('expected hidden states');
    const pool = new MeanPool(model.config.hiddenSize);
    pool.add(out.hidden, out.n);
    const expected = pool.result();

    const exec = new LocalExecutor(whole);
    // A generation running at the same time shares the scheduler's steps.
    const generation = exec.begin({ id: 'gen', promptTokens: [1, 2, 3], sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, penaltyLastN: 64, seed: null }, contextLength: 16 });
    const [vector] = await Promise.all([exec.embed(embeddingRequest({ tokens: tokens() })), generation]);
    await exec.end('gen');
    expect(Array.from(vector)).toEqual(Array.from(expected));
    expect(exec.activeRequests).toBe(0);

    // Two shards, as two pipeline stages: the first's hidden states into the second, pooled at the end.
    const [a, b] = [await shard(0, 2), await shard(2, model.config.numLayers)];
    const h = (await a.forwardBatch([{ input: { kind: 'tokens', tokens: tokens() }, cache: a.createCache(64) }]))[0];
    if (h.kind !== 'hidden') throw new Error('expected hidden states');
    const last = (await b.forwardBatch([{ input: { kind: 'hidden', hidden: h.hidden, n: h.n }, cache: b.createCache(64), logits: 'normed' }]))[0];
    if (last.kind !== 'hidden') throw new Error('expected hidden states');
    const split = new MeanPool(model.config.hiddenSize);
    split.add(last.hidden, last.n);
    expect(Array.from(split.result())).toEqual(Array.from(expected));
    for (const s of [whole, a, b]) s.dispose();
  });
});

describe('embedding frames', () => {
  const limits = { maxRows: 64, hiddenSize: 4, vocabSize: 32, maxRoute: 4, maxContext: 128 };
  const token = (extra: object) => ({ t: 'token', v: ACTIVATION_FRAME_VERSION, rid: 'r1', step: 0, token: 0, ...extra });
  const act = (open: object) => ({
    t: 'act', v: ACTIVATION_FRAME_VERSION, rid: 'r1', stage: 0, step: 0, pos: 0, n: 1, final: true, tokens: [1],
    open: { route: ['p'], ranges: [[0, 2]], coordinator: 'p', model: 'm', promptTokens: [1], contextLength: 1, samplesDrawn: 0,
      sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, penaltyLastN: 64, seed: null }, ...open },
  });

  it('a token frame carries a hidden-size vector of finite floats, or is refused', () => {
    const ok = parseActivationFrame(token({ emb: Float32Array.of(0.5, 0.5, 0.5, 0.5) }), limits);
    expect(ok.t === 'token' && Array.from(ok.emb ?? [])).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(() => parseActivationFrame(token({ emb: Float32Array.of(1, 2, 3) }), limits)).toThrow(FrameValidationError);
    expect(() => parseActivationFrame(token({ emb: Float32Array.of(1, 2, 3, Number.NaN) }), limits)).toThrow(/non-finite/);
    expect(() => parseActivationFrame(token({ emb: [1, 2, 3, 4] }), limits)).toThrow(/float32/);
  });

  it('open.embed is true or absent', () => {
    const f = parseActivationFrame(act({ embed: true }), limits);
    expect(f.t === 'act' && f.open?.embed).toBe(true);
    const g = parseActivationFrame(act({}), limits);
    expect(g.t === 'act' && g.open?.embed).toBeUndefined();
    expect(() => parseActivationFrame(act({ embed: 'yes' }), limits)).toThrow(/open.embed/);
  });
});
