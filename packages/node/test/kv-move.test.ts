/**
 * A live move at the engine seam (stories260K, 5 layers): a request decoded on one split of the layers has its KV
 * rows copied, layer range by layer range, into the caches of another split, and carries on there with the same
 * logits bits as on the old one; a corrupt, short or other-typed copy is refused before anything is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelRuntime } from '@edge-node/kernels';
import type { ShardKvCache, ShardOutput } from '../src/engine/forward-shard.js';
import { KvCache } from '../src/engine/kv-cache.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import type { ModelFile } from '../src/model/model-file.js';
import { exportKv, importKv, KvMoveError } from '../src/pipeline/kv-chunk.js';
import { closeStories, openStories } from './support/stories-model.js';

let runtime: KernelRuntime;
let model: ModelFile;
beforeAll(async () => ({ runtime, model } = await openStories()));
afterAll(() => closeStories({ runtime, model }));

const bits = (out: ShardOutput) => Array.from(new Uint32Array((out.kind === 'logits' ? out.logits : out.hidden).slice().buffer));
const prompt = Array.from({ length: 37 }, (_, i) => 3 + ((i * 11) % 400));

async function shard(startLayer: number, endLayer: number, kv: 'f16' | 'f32' = 'f16'): Promise<QuantShard> {
  return new QuantShard(await loadShardWeights(model, { startLayer, endLayer }, runtime), runtime, model.ropeLayout, kv);
}

/** Runs tokens through a chain of shards, each with its cache; the last output. */
async function run(chain: { s: QuantShard; c: ShardKvCache }[], tokens: number[]): Promise<ShardOutput> {
  let out = await chain[0].s.forward({ kind: 'tokens', tokens }, chain[0].c);
  for (const { s, c } of chain.slice(1)) out = await s.forward({ kind: 'hidden', hidden: (out as { hidden: Float32Array }).hidden, n: tokens.length }, c);
  return out;
}

describe('KV move between splits', () => {
  it('a request moved from split [0,2)+[2,5) to [0,3)+[3,5) with its KV continues with the same logits bits', async () => {
    const L = model.config.numLayers;
    const a = [await shard(0, 2), await shard(2, L)];
    const b = [await shard(0, 3), await shard(3, L)];
    const old = a.map((s) => ({ s, c: s.createCache(128) }));
    await run(old, prompt);
    await run(old, [42]);
    const positions = prompt.length + 1;

    const moved = b.map((s) => ({ s, c: s.createCache(128) }));
    // Layer pieces: [0,2) from a0 → b0; [2,3) from a1 → b0; [3,L) from a1 → b1.
    importKv(moved[0].c, b[0].range, exportKv(old[0].c, a[0].range, { startLayer: 0, endLayer: 2 }, 0, positions));
    importKv(moved[0].c, b[0].range, exportKv(old[1].c, a[1].range, { startLayer: 2, endLayer: 3 }, 0, positions));
    importKv(moved[1].c, b[1].range, exportKv(old[1].c, a[1].range, { startLayer: 3, endLayer: L }, 0, positions));
    expect(moved[0].c.length).toBe(0); // nothing counts before the import says it is whole
    for (const m of moved) (m.c as KvCache).setLength(positions);

    const ref = await run(old, [77]);
    const got = await run(moved, [77]);
    expect(bits(got)).toEqual(bits(ref));
    expect(bits(await run(moved, [9]))).toEqual(bits(await run(old, [9])));
  });

  it('refuses a corrupt, short or other-typed chunk, and writes nothing', async () => {
    const L = model.config.numLayers;
    const src = await shard(0, L);
    const c = src.createCache(64);
    await run([{ s: src, c }], prompt);
    const chunk = exportKv(c, src.range, { startLayer: 1, endLayer: 3 }, 0, 20);
    const dst = src.createCache(64);
    const corrupt = { ...chunk, bytes: chunk.bytes.slice() };
    corrupt.bytes[5] ^= 1;
    expect(() => importKv(dst, src.range, corrupt)).toThrow(/SHA-256/);
    expect(() => importKv(dst, src.range, { ...chunk, bytes: chunk.bytes.subarray(1) })).toThrow(/short or long/);
    const f32 = (await shard(0, L, 'f32')).createCache(64);
    expect(() => importKv(f32, src.range, chunk)).toThrow(KvMoveError);
    expect(() => importKv(f32, src.range, chunk)).toThrow(/f16 .* f32/);
    expect(() => importKv(dst, { startLayer: 2, endLayer: L }, chunk)).toThrow(/not within/);
    expect(dst.length).toBe(0);
    // The whole chunk goes in, bit for bit.
    importKv(dst, src.range, chunk);
    dst.setLength(20);
    expect(exportKv(dst, src.range, { startLayer: 1, endLayer: 3 }, 0, 20).sha256).toBe(chunk.sha256);
  });
});
