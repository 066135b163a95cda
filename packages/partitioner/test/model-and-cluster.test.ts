import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { modelShapeFromHfConfig } from '../src/model-shape.js';
import { modelProfile, modelWeightBytes } from '../src/model-profile.js';
import { parseCluster } from '../src/cluster.js';
import { memoryWeightedSplit, equalSplit } from '../src/baselines.js';
import { InvalidDevicesError, InvalidModelConfigError } from '../src/errors.js';
import { CostModel } from '../src/cost-model.js';

const smolConfig = JSON.parse(readFileSync('/work/shared/models/smollm2-135m-instruct-tokenizer/config.json', 'utf8')) as unknown;

describe('model shape and profile', () => {
  it('reads SmolLM2-135M config.json and counts its 134,515,008 parameters', () => {
    const shape = modelShapeFromHfConfig(smolConfig);
    expect(shape).toMatchObject({ hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, vocabSize: 49152, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 4 });
    const p = modelProfile(shape);
    expect(modelWeightBytes(p)).toBe(134_515_008 * 4);
    expect(p.layers[0].kvBytesPerToken).toBe(2 * 3 * 64 * 4);
    // A Q8_0 cache: 34 bytes per 32 values.
    expect(modelProfile({ ...shape, bytesPerKvValue: 34 / 32 }).layers[0].kvBytesPerToken).toBe(2 * 6 * 34);
    expect(() => modelProfile({ ...shape, bytesPerKvValue: 0 })).toThrow(InvalidModelConfigError);
    // Decode FLOPs ≈ 2 × parameters touched per token.
    expect(p.layers[0].flopsPerToken).toBe(2 * (576 * 576 * 2 + 2 * 576 * 192 + 3 * 576 * 1536));
  });

  it('qwen2 configs get attention biases; missing keys are reported', () => {
    const q = modelShapeFromHfConfig({ model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: true });
    expect(q.attentionBias).toBe(true);
    expect(q.headDim).toBe(64);
    const withBias = modelProfile(q).layers[0].weightBytes;
    const noBias = modelProfile({ ...q, attentionBias: false }).layers[0].weightBytes;
    expect(withBias - noBias).toBe((896 + 2 * 128) * 4);
    expect(() => modelShapeFromHfConfig({ hidden_size: 8 })).toThrow(InvalidModelConfigError);
    expect(() => modelShapeFromHfConfig({ hidden_size: 8 })).toThrow(/num_hidden_layers/);
  });

  it('the last stage holds the tied embedding matrix too, unless it is also the first', () => {
    const p = modelProfile(modelShapeFromHfConfig(smolConfig));
    const cm = new CostModel(p, { devices: [{ id: 'x', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1 }], links: [] }, { promptTokens: 1, genTokens: 1 });
    const emb = 49152 * 576 * 4;
    const whole = cm.memoryBytes(0, 30);
    const split = cm.memoryBytes(0, 15) + cm.memoryBytes(15, 30);
    // Split: the matrix twice, and activations on both stages.
    expect(split - whole).toBeCloseTo(emb + cm.memoryBytes(1, 1), 0);
  });
});

describe('devices.json', () => {
  const ok = { devices: [{ id: 'a', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1e9 }, { id: 'b', gflops: 2, memBandwidthGBps: 2, memoryBytes: 2e9 }], links: [{ from: 'a', to: 'b', latencyMs: 3, bandwidthMBps: 40 }] };
  it('accepts a valid file; a listed link serves both directions', () => {
    const c = parseCluster(ok);
    const cm = new CostModel(modelProfile(modelShapeFromHfConfig(smolConfig)), c, { promptTokens: 1, genTokens: 1 });
    expect(cm.hopMs(1, 0, 40e3)).toBeCloseTo(3 + 1, 9);
  });
  it('rejects bad files with a message naming the problem', () => {
    expect(() => parseCluster({ devices: [] })).toThrow(InvalidDevicesError);
    expect(() => parseCluster({ devices: [ok.devices[0], ok.devices[0]] })).toThrow(/appears twice/);
    expect(() => parseCluster({ devices: [{ ...ok.devices[0], gflops: -1 }] })).toThrow(/gflops/);
    expect(() => parseCluster({ devices: ok.devices })).toThrow(/defaultLink/);
    expect(() => parseCluster({ ...ok, links: [{ from: 'a', to: 'zz', latencyMs: 1, bandwidthMBps: 1 }] })).toThrow(/zz/);
  });
});

describe('baselines', () => {
  const devs = (mems: number[]) => ({ devices: mems.map((m, i) => ({ id: `d${i}`, gflops: 1, memBandwidthGBps: 1, memoryBytes: m })), links: [], defaultLink: { latencyMs: 1, bandwidthMBps: 1 } });
  it('memory-weighted follows exo: sorted by memory, int(frac·L) boundaries, last to L', () => {
    expect(memoryWeightedSplit(devs([8, 16, 8]), 32)).toEqual([
      { device: 1, start: 0, end: 16 },
      { device: 2, start: 16, end: 24 },
      { device: 0, start: 24, end: 32 },
    ]);
    expect(memoryWeightedSplit(devs([3, 1, 1]), 10).map((a) => a.end - a.start)).toEqual([6, 2, 2]);
    // A tiny device's empty shard is dropped.
    expect(memoryWeightedSplit(devs([10, 1, 1]), 4)).toEqual([
      { device: 0, start: 0, end: 3 },
      { device: 1, start: 3, end: 4 },
    ]);
    // Equal memory: exo's reverse (memory, id) sort puts d2 before d1, so d2 got the empty middle shard.
  });
  it('equal split gives the remainder to the first devices', () => {
    expect(equalSplit(devs([1, 1, 1]), 10).map((a) => a.end - a.start)).toEqual([4, 3, 3]);
  });
});
