/**
 * The adapter's slices between coordinator and stages (pipeline/lora-slices.ts) and the stage's shard store keyed by
 * adapter: what each stage is told, pulled in pieces and checked, and every way a slice is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelRuntime } from '@edge-node/kernels';
import { kernelBackend } from '../src/engine/kernel-backend.js';
import type { ModelFile } from '../src/model/model-file.js';
import { CoordinatorLora, fetchLoraSlice, LoraSliceError, parseLoraRead, parseLoraRef, type LoraReadReply } from '../src/pipeline/lora-slices.js';
import { ShardStore } from '../src/pipeline/shard-store.js';
import { randomLoraAdapter } from './support/random-lora.js';
import { closeStories, openStories } from './support/stories-model.js';

let runtime: KernelRuntime;
let model: ModelFile;
let lora: CoordinatorLora;
beforeAll(async () => {
  ({ runtime, model } = await openStories());
  lora = new CoordinatorLora(randomLoraAdapter(model, { rank: 4, alpha: 8, seed: 9, layers: [0, 1, 2] }), 0.5, 'a.gguf', 'ab'.repeat(32), model);
});
afterAll(() => closeStories({ runtime, model }));

/** The coordinator's answers to lora-read, in pieces of at most `piece` bytes. */
const reader =
  (piece: number, tamper = false) =>
  async (start: number, count: number): Promise<LoraReadReply> => {
    const sha = lora.refFor({ startLayer: 0, endLayer: 2 }).slice!;
    const r = lora.read({ op: 'lora-read', model: 'm', sha256: sha, start, count: Math.min(count, piece) });
    if (tamper && start === 0) {
      const data = r.data.slice();
      data[data.length - 1] ^= 1;
      return { ...r, data };
    }
    return r;
  };

describe('LoRA slices', () => {
  it('tells each stage the adapter id, the scale and its slice (none where the adapter leaves the layers alone)', () => {
    const first = lora.refFor({ startLayer: 0, endLayer: 2 });
    expect(first).toMatchObject({ id: 'abababababababab' + 'x0.5', scale: 0.5 });
    expect(first.slice).toMatch(/^[0-9a-f]{64}$/);
    expect(lora.sliceBytes(first.slice!)?.byteLength).toBe(first.bytes);
    expect(lora.refFor({ startLayer: 0, endLayer: 2 })).toBe(first);
    expect(lora.refFor({ startLayer: 3, endLayer: 5 })).toEqual({ id: first.id, scale: 0.5, slice: null, bytes: 0 });
  });

  it('pulls a slice in pieces, checks it, and gives the stage exactly its layers’ pairs', async () => {
    const ref = lora.refFor({ startLayer: 0, endLayer: 2 });
    const got = await fetchLoraSlice(ref, { startLayer: 0, endLayer: 2 }, model, undefined, reader(1000));
    expect(got?.scale).toBe(0.5);
    expect([...got!.adapter.tensors.keys()].sort()).toEqual([...lora.adapter.tensors.keys()].filter((n) => /^blk\.[01]\./.test(n)).sort());
    expect(got!.adapter.tensors.get('blk.1.ffn_down.weight')!.b).toEqual(lora.adapter.tensors.get('blk.1.ffn_down.weight')!.b);
    expect(await fetchLoraSlice(lora.refFor({ startLayer: 3, endLayer: 5 }), { startLayer: 3, endLayer: 5 }, model, undefined, reader(1000))).toBeUndefined();
  });

  it('refuses a slice whose bytes do not match the digest the load named', async () => {
    const ref = lora.refFor({ startLayer: 0, endLayer: 2 });
    await expect(fetchLoraSlice(ref, { startLayer: 0, endLayer: 2 }, model, undefined, reader(1 << 20, true))).rejects.toThrow(/arrived with SHA-256 [0-9a-f]{16}…, not the/);
  });

  it('refuses a slice with pairs outside the stage’s layers', async () => {
    const ref = lora.refFor({ startLayer: 0, endLayer: 2 });
    await expect(fetchLoraSlice(ref, { startLayer: 1, endLayer: 3 }, model, undefined, reader(1 << 20))).rejects.toThrow(/adapts blk\.0\.\w+\.weight, outside this stage's layers \[1, 3\)/);
  });

  it('refuses a coordinator that answers with the wrong size, and a read of a slice it does not offer', async () => {
    const ref = { ...lora.refFor({ startLayer: 0, endLayer: 2 }) };
    ref.bytes += 10;
    await expect(fetchLoraSlice(ref, { startLayer: 0, endLayer: 2 }, model, undefined, reader(1 << 20))).rejects.toThrow(LoraSliceError);
    expect(() => lora.read({ op: 'lora-read', model: 'm', sha256: 'cd'.repeat(32), start: 0, count: 10 })).toThrow(/offers no LoRA slice cdcdcdcdcdcdcdcd/);
  });

  it('checks what peers send: the load’s adapter reference and lora-read', () => {
    expect(() => parseLoraRef({ id: 'x', scale: 1, slice: 'nothex', bytes: 3 })).toThrow(/slice must be a SHA-256 or null/);
    expect(() => parseLoraRef({ id: 'x', scale: Number.NaN, slice: null, bytes: 0 })).toThrow(/scale must be a finite number/);
    expect(() => parseLoraRef({ id: 'x', scale: 1, slice: null, bytes: 5 })).toThrow(/bytes must be the slice size/);
    expect(parseLoraRef({ id: 'x', scale: 2, slice: null, bytes: 0 })).toEqual({ id: 'x', scale: 2, slice: null, bytes: 0 });
    expect(() => parseLoraRead({ op: 'lora-read', model: 'm', sha256: 'ab'.repeat(32), start: 0, count: 64 * 2 ** 20 })).toThrow(/count must be 1 to 4194304 bytes/);
  });

  it('keys a stage’s layers by adapter: never loads adapted layers without their slice, keeps them beside the base ones', async () => {
    const store = new ShardStore(model, kernelBackend(runtime));
    const range = { startLayer: 0, endLayer: 2 };
    await expect(store.get(range, new Set(), lora.id)).rejects.toThrow(/layers \[0, 2\) with LoRA adapter ababababababababx0\.5 are not loaded on this node/);
    const slice = await fetchLoraSlice(lora.refFor(range), range, model, undefined, reader(1 << 20));
    const adapted = await store.load(range, new Set(), lora.id, async () => slice);
    const base = await store.get(range);
    expect(await store.get(range, new Set(), lora.id)).toBe(adapted);
    expect(base).not.toBe(adapted);
    expect(adapted.weightBytes).toBeGreaterThan(base.weightBytes);
    expect(ShardStore.key(range, lora.id)).not.toBe(ShardStore.key(range));
    await store.close();
  });
});
