/**
 * A pipeline stage holds and reads only its own layers: a shard of layers [2, 4) of a 30-layer model holds exactly
 * those layers' bytes of the file (weights stay in the file's encoding), no embeddings or head, and reads only its
 * layers' bytes from the file.
 */
import { open, mkdtemp, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { LayerRange } from '../src/engine/layer-range.js';
import { loadShardWeights, type ShardWeights } from '../src/engine/shard-weights.js';
import type { ModelFile } from '../src/model/model-file.js';
import { openModel } from '../src/model/open-model.js';
import { generateSyntheticModel } from '@edge-node/testkit';

const LAYERS = 30;
let dir = '';
let path = '';

/** Every positioned read from any file, counted at the FileHandle (what actually leaves the disk cache). */
let readBytes = 0;
let fileHandleProto: FileHandle;
let runtime: KernelRuntime;
let originalRead: FileHandle['read'];

beforeAll(async () => {
  runtime = await createKernelRuntime({ threads: 1 });
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
  await runtime.close();
  await rm(dir, { recursive: true, force: true });
});

interface Measured {
  weights: ShardWeights;
  /** Bytes allocated in the shard's arenas. */
  arenaBytes: number;
  /** Bytes read from files while loading. */
  fileBytes: number;
  /** Tensors read through readTensor or readTensorBytes, in order. */
  tensorsRead: string[];
}

async function measure(model: ModelFile, range: LayerRange): Promise<Measured> {
  const tensorsRead: string[] = [];
  const readTensor = model.readTensor.bind(model);
  const readTensorBytes = model.readTensorBytes.bind(model);
  model.readTensor = (name) => {
    tensorsRead.push(name);
    return readTensor(name);
  };
  model.readTensorBytes = (name, into) => {
    tensorsRead.push(name);
    return readTensorBytes(name, into);
  };
  try {
    readBytes = 0;
    const weights = await loadShardWeights(model, range, runtime);
    const fileBytes = readBytes;
    const arenaBytes = weights.arenas.reduce((s, a) => s + a.usedBytes, 0);
    return { weights, arenaBytes, fileBytes, tensorsRead };
  } finally {
    model.readTensor = readTensor;
    model.readTensorBytes = readTensorBytes;
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
      expect(whole.weights.weightBytes).toBe([...model.tensors.values()].reduce((s, t) => s + t.byteLength, 0));
      for (const a of whole.weights.arenas) await runtime.releaseArena(a);

      const mid = await measure(model, { startLayer: 2, endLayer: 4 });
      console.log(
        `shard memory: whole model ${mb(whole.weights.weightBytes)} of weights in ${mb(whole.arenaBytes)} of arena, read ${mb(whole.fileBytes)} ` +
          `of a ${mb(fileSize)} file; layers [2,4): ${mb(mid.weights.weightBytes)} in ${mb(mid.arenaBytes)} of arena, read ${mb(mid.fileBytes)}`,
      );

      // Memory: exactly the two layers' bytes of the file (weights stay in its encoding), nothing else.
      expect(mid.weights.embedding).toBeNull();
      expect(mid.weights.head).toBeNull();
      expect(mid.weights.layers.length).toBe(2);
      expect(mid.weights.weightBytes).toBe(layerFileBytes(2) + layerFileBytes(3));
      const perLayer = (c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize) * 4;
      expect(mid.weights.weightBytes).toBe(2 * perLayer);
      // Allocation rounds each tensor up to 64 bytes: nothing else lives in the arena.
      expect(mid.arenaBytes - mid.weights.weightBytes).toBeLessThan(64 * 2 * 9);

      // Reads: only blk.2.* and blk.3.*, each tensor once, and only their bytes from the file.
      const expected = [...model.tensors.keys()].filter((n) => n.startsWith('blk.2.') || n.startsWith('blk.3.'));
      expect([...mid.tensorsRead].sort()).toEqual(expected.sort());
      expect(mid.fileBytes).toBe(layerFileBytes(2) + layerFileBytes(3));
      expect(mid.fileBytes).toBeLessThan(fileSize * (2.2 / LAYERS));
      for (const a of mid.weights.arenas) await runtime.releaseArena(a);
    } finally {
      await model.close();
    }
  });

  it('the first stage alone holds the embeddings and the last stage alone the final norm and head', async () => {
    const model = await openModel(path);
    try {
      const first = await measure(model, { startLayer: 0, endLayer: 2 });
      expect(first.weights.embedding?.rows).toBe(model.config.vocabSize);
      expect(first.weights.embedding?.cols).toBe(model.config.hiddenSize);
      expect(first.weights.head).toBeNull();
      expect(first.tensorsRead).toContain('token_embd.weight');
      expect(first.tensorsRead.filter((n) => !n.startsWith('blk.0.') && !n.startsWith('blk.1.'))).toEqual(['token_embd.weight']);
      for (const a of first.weights.arenas) await runtime.releaseArena(a);

      const last = await measure(model, { startLayer: LAYERS - 2, endLayer: LAYERS });
      expect(last.weights.embedding).toBeNull();
      expect([last.weights.head?.rows, last.weights.head?.cols]).toEqual([model.config.vocabSize, model.config.hiddenSize]);
      expect(last.tensorsRead.filter((n) => !n.startsWith(`blk.${LAYERS - 2}.`) && !n.startsWith(`blk.${LAYERS - 1}.`)).sort()).toEqual([
        'output.weight',
        'output_norm.weight',
      ]);
      for (const a of last.weights.arenas) await runtime.releaseArena(a);
    } finally {
      await model.close();
    }
  });
});
