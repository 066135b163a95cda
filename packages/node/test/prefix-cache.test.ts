/**
 * The prefix cache's shell on real KV caches (stories260K, a middle stage and the last one): blocks kept from one
 * request and copied into another give the same bits as computing the prompt, for the copied rows and for every
 * row computed after them; a prefix no longer held is refused and nothing is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KernelRuntime } from '@edge-node/kernels';
import type { ShardOutput } from '../src/engine/forward-shard.js';
import { KvCache } from '../src/engine/kv-cache.js';
import { PrefixCache, PrefixMissError } from '../src/engine/prefix-cache.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import type { ModelFile } from '../src/model/model-file.js';
import { closeStories, openStories } from './support/stories-model.js';

const ids = (n: number, from: number) => Array.from({ length: n }, (_, i) => 3 + ((from + i * 7) % 500));

let runtime: KernelRuntime;
let model: ModelFile;
beforeAll(async () => ({ runtime, model } = await openStories()));
afterAll(() => closeStories({ runtime, model }));

const bits = (out: ShardOutput) => Array.from(new Uint32Array((out.kind === 'logits' ? out.logits : out.hidden).slice().buffer));

describe('PrefixCache', () => {
  it('a copied prefix gives the same bits as computing it, on the first and on the last stage', async () => {
    const first = new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: 2 }, runtime), runtime, model.ropeLayout);
    const last = new QuantShard(await loadShardWeights(model, { startLayer: 2, endLayer: model.config.numLayers }, runtime), runtime, model.ropeLayout);
    const conversation = [1, ...ids(40, 3)]; // 41 tokens: 2 whole blocks
    const next = [...conversation, ...ids(12, 9)]; // the next turn continues it

    // Reference: the next turn computed from scratch, through both stages.
    const refA = first.createCache(128);
    const refB = last.createCache(128);
    const refHidden = await first.forward({ kind: 'tokens', tokens: next }, refA);
    const ref = await last.forward({ kind: 'hidden', hidden: (refHidden as { hidden: Float32Array }).hidden, n: next.length }, refB);

    // The first turn, kept by each stage.
    const pcA = new PrefixCache(1 << 20);
    const pcB = new PrefixCache(1 << 20);
    const a1 = first.createCache(128);
    const b1 = last.createCache(128);
    const h1 = (await first.forward({ kind: 'tokens', tokens: conversation }, a1)) as { hidden: Float32Array };
    await last.forward({ kind: 'hidden', hidden: h1.hidden, n: conversation.length }, b1);
    expect(pcA.store('0-2', conversation, a1)).toBe(32);
    expect(pcB.store('2-5', conversation, b1)).toBe(32);
    a1.clear();
    b1.clear();

    // The next turn: 32 positions copied, the rest computed.
    const a2 = first.createCache(128);
    const b2 = last.createCache(128);
    pcA.restore('0-2', next, 32, a2);
    pcB.restore('2-5', next, 32, b2);
    expect(a2.length).toBe(32);
    // The copied rows are the reference's, bit for bit.
    expect(Array.from((a2 as KvCache).readRows(0, 32))).toEqual(Array.from((refA as KvCache).readRows(0, 32)));
    const h2 = (await first.forward({ kind: 'tokens', tokens: next.slice(32) }, a2)) as { hidden: Float32Array; n: number };
    const out = await last.forward({ kind: 'hidden', hidden: h2.hidden, n: h2.n }, b2);
    expect(bits(out)).toEqual(bits(ref));
    expect(pcA.stats()).toMatchObject({ hits: 1, cachedTokens: 32, blocks: 2 });

    // Not held (another namespace, or more than kept): refused, and the cache is left empty.
    const a3 = first.createCache(128);
    expect(() => pcA.restore('0-3', next, 32, a3)).toThrow(PrefixMissError);
    expect(() => pcA.restore('0-2', next, 48, a3)).toThrow(/holds 32 of the 48/);
    expect(a3.length).toBe(0);
    expect(pcA.stats().misses).toBe(2);

    // Under a budget of one block, only the most recently used block stays.
    pcA.fit((a2 as KvCache).rowsBytes(16));
    expect(pcA.stats().blocks).toBe(1);
    expect(pcA.held('0-2', next)).toBe(16);
    for (const c of [refA, refB, a2, b2, a3]) c.clear();
    first.dispose();
    last.dispose();
  });
});
