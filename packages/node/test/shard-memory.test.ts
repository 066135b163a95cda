/**
 * A pipeline stage holds and reads only its own layers: a shard of layers [2, 4) of a 30-layer model costs 2/30 of
 * the model's layer weights in memory, holds no embeddings or head, and reads only its layers' bytes from the file.
 */
import { open, mkdtemp, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/tf-backend.js';
import { disposeShard, loadShard, type LayerRange, type ShardWeights } from '../src/engine/shard-loader.js';
import type { ModelFile } from '../src/model/model-file.js';
import { openModel } from '../src/model/open-model.js';
import { generateSyntheticModel } from '../src/synth/synthetic-model.js';

const LAYERS = 30;
let dir = '';
let path = '';

/** Every positioned read from any file, counted at the FileHandle (what actually leaves the disk cache). */
let readBytes = 0;
let fileHandleProto: FileHandle;
let originalRead: FileHandle['read'];

beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'shard-memory-'));
  // hidden 256, 4 heads of 64 (2 KV heads), FFN 512, untied head: small enough to generate in well under a second.
  const g = await generateSyntheticModel({
    preset: 'tiny-tinyllama',
    config: { hiddenSize: 256, intermediateSize: 512, numHeads: 4, numKvHeads: 2, headDim: 64 },
    numLayers: LAYERS,
    format: 'gguf',
    seed: 5,
    outPath: join(dir, 'deep.gguf'),
  });
  path = g.path;
  const probe = await open(path, 'r');
  fileHandleProto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  originalRead = fileHandleProto.read;
  (fileHandleProto as unknown as { read: (...args: unknown[]) => unknown }).read = function (this: FileHandle, ...args: unknown[]) {
    const result = (originalRead as (...a: unknown[]) => Promise<{ bytesRead: number }>).apply(this, args);
    return result.then((r) => {
      readBytes += r.bytesRead;
      return r;
    });
  };
});
afterAll(async () => {
  (fileHandleProto as unknown as { read: unknown }).read = originalRead;
  await rm(dir, { recursive: true, force: true });
});

interface Measured {
  weights: ShardWeights;
  /** tf.memory().numBytes after loading minus before. */
  tensorBytes: number;
  /** Bytes of the shard's plain JS arrays (the embedding table). */
  jsBytes: number;
  /** Bytes read from files while loading. */
  fileBytes: number;
  /** Tensors read through readTensor, in order. */
  tensorsRead: string[];
}

async function measure(model: ModelFile, range: LayerRange): Promise<Measured> {
  const tensorsRead: string[] = [];
  const readTensor = model.readTensor.bind(model);
  model.readTensor = (name) => {
    tensorsRead.push(name);
    return readTensor(name);
  };
  try {
    const before = tf.memory().numBytes;
    readBytes = 0;
    const weights = await loadShard(model, range);
    const fileBytes = readBytes;
    const tensorBytes = tf.memory().numBytes - before;
    return { weights, tensorBytes, jsBytes: weights.embedding?.byteLength ?? 0, fileBytes, tensorsRead };
  } finally {
    model.readTensor = readTensor;
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;

describe('shard memory and reads (30-layer synthetic model, hidden 256)', () => {
  it('layers [2, 4) hold 2/30 of the layer weights, no embeddings or head, and read only their tensors', async () => {
    const model = await openModel(path);
    try {
      const c = model.config;
      const fileSize = (await stat(path)).size;
      const layerFileBytes = (l: number) => [...model.tensors.values()].filter((t) => t.name.startsWith(`blk.${l}.`)).reduce((s, t) => s + t.byteLength, 0);

      const whole = await measure(model, { startLayer: 0, endLayer: LAYERS });
      const headBytes = whole.weights.head!.size * 4;
      const wholeLayerTensorBytes = whole.tensorBytes - headBytes;
      disposeShard(whole.weights);

      const mid = await measure(model, { startLayer: 2, endLayer: 4 });
      console.log(
        `shard memory: whole model ${mb(whole.tensorBytes)} tfjs + ${mb(whole.jsBytes)} JS (layers ${mb(wholeLayerTensorBytes)}, head ${mb(headBytes)}), ` +
          `read ${mb(whole.fileBytes)} of a ${mb(fileSize)} file; layers [2,4): ${mb(mid.tensorBytes)} tfjs + ${mb(mid.jsBytes)} JS ` +
          `(${((mid.tensorBytes / wholeLayerTensorBytes) * 100).toFixed(2)}% of the layer weights; 2/30 = 6.67%), read ${mb(mid.fileBytes)}`,
      );

      // Memory: exactly two layers' worth of tensors, nothing else.
      expect(mid.weights.embedding).toBeNull();
      expect(mid.weights.head).toBeNull();
      expect(mid.jsBytes).toBe(0);
      expect(mid.weights.layers.length).toBe(2);
      expect(mid.tensorBytes / wholeLayerTensorBytes).toBeCloseTo(2 / LAYERS, 6);
      expect(mid.weights.weightBytes).toBe(mid.tensorBytes);
      const perLayer = (c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize) * 4;
      expect(mid.tensorBytes).toBe(2 * perLayer);

      // Reads: only blk.2.* and blk.3.*, each tensor once, and only their bytes from the file.
      const expected = [...model.tensors.keys()].filter((n) => n.startsWith('blk.2.') || n.startsWith('blk.3.'));
      expect([...mid.tensorsRead].sort()).toEqual(expected.sort());
      expect(mid.fileBytes).toBe(layerFileBytes(2) + layerFileBytes(3));
      expect(mid.fileBytes).toBeLessThan(fileSize * (2.2 / LAYERS));
      disposeShard(mid.weights);
      expect(tf.memory().numBytes).toBe(0);
    } finally {
      await model.close();
    }
  });

  it('the first stage alone holds the embeddings and the last stage alone the final norm and head', async () => {
    const model = await openModel(path);
    try {
      const first = await measure(model, { startLayer: 0, endLayer: 2 });
      expect(first.weights.embedding?.length).toBe(model.config.vocabSize * model.config.hiddenSize);
      expect(first.weights.head).toBeNull();
      expect(first.tensorsRead).toContain('token_embd.weight');
      expect(first.tensorsRead.filter((n) => !n.startsWith('blk.0.') && !n.startsWith('blk.1.'))).toEqual(['token_embd.weight']);
      disposeShard(first.weights);

      const last = await measure(model, { startLayer: LAYERS - 2, endLayer: LAYERS });
      expect(last.weights.embedding).toBeNull();
      expect(last.weights.head?.shape).toEqual([model.config.hiddenSize, model.config.vocabSize]);
      expect(last.tensorsRead.filter((n) => !n.startsWith(`blk.${LAYERS - 2}.`) && !n.startsWith(`blk.${LAYERS - 1}.`)).sort()).toEqual([
        'output.weight',
        'output_norm.weight',
      ]);
      expect(last.jsBytes).toBe(0);
      disposeShard(last.weights);
    } finally {
      await model.close();
    }
  });
});
