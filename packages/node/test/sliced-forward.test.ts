/**
 * A forward pass that lets the event loop turn part-way (stories260K on the kernels): the same bits however it is
 * sliced, and what may happen while it is paused — its request freed, its shard disposed, another pass asked for —
 * does not corrupt it or anyone else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ComputeSliceOptions } from '../src/engine/compute-slices.js';
import type { ShardOutput } from '../src/engine/forward-shard.js';
import { QuantShard } from '../src/engine/quant-shard.js';
import { loadShardWeights } from '../src/engine/shard-weights.js';
import type { ModelFile } from '../src/model/model-file.js';
import { closeStories, openStories } from './support/stories-model.js';


let runtime: KernelRuntime;
let model: ModelFile;
beforeAll(async () => ({ runtime, model } = await openStories()));
afterAll(() => closeStories({ runtime, model }));

async function shardOf(slicing: ComputeSliceOptions = {}): Promise<QuantShard> {
  return new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime), runtime, model.ropeLayout, 'f16', slicing);
}

/** Slicing that turns the loop at every checkpoint and runs `onTurn(n)` at the n-th turn. */
function everyCheckpoint(onTurn: (n: number) => void = () => {}): ComputeSliceOptions {
  let n = 0;
  return { sliceMs: 0, turn: () => new Promise((r) => setImmediate(() => (onTurn(++n), r()))) };
}

const logits = (o: ShardOutput) => Array.from(o.kind === 'logits' ? o.logits : o.hidden);
const PROMPT = [1, ...Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % 500))];

describe('a forward pass in slices', () => {
  it('gives the same bits sliced at every checkpoint as in one piece, and the event loop runs meanwhile', async () => {
    const whole = await shardOf({ sliceMs: Infinity });
    let turns = 0;
    const sliced = await shardOf(everyCheckpoint(() => turns++));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const a = whole.createCache(96);
      const b = sliced.createCache(96);
      expect(logits(await sliced.forward({ kind: 'tokens', tokens: PROMPT }, b, { allLogits: true }))).toEqual(logits(await whole.forward({ kind: 'tokens', tokens: PROMPT }, a, { allLogits: true })));
      expect(logits(await sliced.forward({ kind: 'tokens', tokens: [7] }, b))).toEqual(logits(await whole.forward({ kind: 'tokens', tokens: [7] }, a)));
    } finally {
      clearInterval(timer);
    }
    // 71 rows = two passes (64 + 7) over 5 layers, several checkpoints each.
    expect(turns).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(5);
    whole.dispose();
    sliced.dispose();
  });

  it('cuts large products into pieces of weight rows, with the same bits (one and two threads)', async () => {
    const whole = await shardOf({ sliceMs: Infinity, pieceMacs: Infinity });
    // stories260K's products are small: 4096 multiply-adds a piece cuts every product of a prompt slice into 16-row pieces.
    const pieced = await shardOf({ sliceMs: 0, pieceMacs: 4096 });
    const two = await createKernelRuntime({ threads: 2, minParallelWork: 0 });
    const threaded = new QuantShard(await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, two), two, model.ropeLayout, 'f16', { sliceMs: 0, pieceMacs: 4096 });
    try {
      const ref = logits(await whole.forward({ kind: 'tokens', tokens: PROMPT }, whole.createCache(96), { allLogits: true }));
      expect(logits(await pieced.forward({ kind: 'tokens', tokens: PROMPT }, pieced.createCache(96), { allLogits: true }))).toEqual(ref);
      expect(logits(await threaded.forward({ kind: 'tokens', tokens: PROMPT }, threaded.createCache(96), { allLogits: true }))).toEqual(ref);
    } finally {
      threaded.dispose();
      await two.close();
      whole.dispose();
      pieced.dispose();
    }
  });

  it('a request freed mid-pass keeps its memory until the pass ends; the others of the batch get their bits', async () => {
    const ref = await shardOf();
    const alone = logits(await ref.forward({ kind: 'tokens', tokens: [1, 42, 43] }, ref.createCache(16)));
    let freed: (() => void) | null = null;
    let bytesWhilePaused = -1;
    const shard = await shardOf(everyCheckpoint((n) => n === 3 && freed?.()));
    const gone = shard.createCache(16);
    const kept = shard.createCache(16);
    freed = () => {
      gone.clear();
      bytesWhilePaused = gone.bytes();
      // A cache made meanwhile must not be given the freed one's memory while the pass still writes there.
      shard.createCache(16).clear();
    };
    const [, out] = await shard.forwardBatch([
      { input: { kind: 'tokens', tokens: PROMPT.slice(0, 9) }, cache: gone },
      { input: { kind: 'tokens', tokens: [1, 42, 43] }, cache: kept },
    ]);
    expect(bytesWhilePaused).toBeGreaterThan(0);
    expect(gone.bytes()).toBe(0);
    expect(logits(out)).toEqual(alone);
    expect(kept.length).toBe(3);
    await expect(shard.forward({ kind: 'tokens', tokens: [5] }, gone)).rejects.toThrow(/freed/);
    ref.dispose();
    shard.dispose();
  });

  it('a shard disposed mid-pass finishes the pass, then frees its weights and refuses more', async () => {
    const ref = await shardOf();
    const alone = logits(await ref.forward({ kind: 'tokens', tokens: PROMPT }, ref.createCache(96)));
    let shard: QuantShard | null = null;
    shard = await shardOf(everyCheckpoint((n) => n === 2 && shard?.dispose()));
    const out = await shard.forward({ kind: 'tokens', tokens: PROMPT }, shard.createCache(96));
    expect(logits(out)).toEqual(alone);
    await expect(shard.forward({ kind: 'tokens', tokens: [1] }, shard.createCache(8))).rejects.toThrow(/freed/);
    ref.dispose();
  });

  it('passes asked for together run one after another, each with its own bits', async () => {
    const ref = await shardOf();
    const prompts = [PROMPT.slice(0, 20), [1, 42, 43], PROMPT.slice(30)];
    const alone = [];
    for (const p of prompts) alone.push(logits(await ref.forward({ kind: 'tokens', tokens: p }, ref.createCache(96))));
    const order: string[] = [];
    const shard = await shardOf(everyCheckpoint(() => order.push('turn')));
    // The turns one pass takes alone.
    const turnsOf = async (p: number[]) => {
      order.length = 0;
      await shard.forward({ kind: 'tokens', tokens: p }, shard.createCache(96));
      return order.length;
    };
    const expected = [];
    for (const [i, p] of prompts.entries()) expected.push(...Array<string>(await turnsOf(p)).fill('turn'), `done ${i}`);
    order.length = 0;
    const together = await Promise.all(
      prompts.map(async (p, i) => {
        const out = await shard.forward({ kind: 'tokens', tokens: p }, shard.createCache(96));
        order.push(`done ${i}`);
        return logits(out);
      }),
    );
    expect(together).toEqual(alone);
    // Not interleaved: each pass's turns, then its end, then the next pass's.
    const ends = order.flatMap((e, i) => (e.startsWith('done') ? [i] : []));
    expect(order.filter((e) => e.startsWith('done'))).toEqual(['done 0', 'done 1', 'done 2']);
    expect(ends).toEqual(expected.flatMap((e, i) => (e.startsWith('done') ? [i] : [])));
    ref.dispose();
    shard.dispose();
  });
});
