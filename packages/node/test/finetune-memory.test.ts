/**
 * A fine-tuning job that does not fit is refused before it starts: what a stage and the owner need (job-memory.ts)
 * against what each node reports available, named with the node and by how much (ClusterFinetune.prepare, with its
 * cluster given as functions: the route, names and memory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeHost } from '../src/network/edge-host.js';
import type { NodeLogger } from '../src/network/node-logger.js';
import { ClusterFinetune } from '../src/pipeline/cluster-finetune.js';
import type { Route } from '../src/pipeline/route.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import { FINETUNE_DEFAULTS, FinetuneMemoryError } from '../src/training/finetune-request.js';
import { keptActivations, modelEndsBytes, stageJobBytes } from '../src/training/job-memory.js';
import { closeStories, openStories, type StoriesEngine } from './support/stories-model.js';

const quiet: NodeLogger = { debug() {}, info() {}, warn() {}, error() {} };
const DATA = ['{"text": "Tom saw a cat. The cat said moo moo moo."}', '{"text": "Lily saw a dog. The dog said moo."}'].join('\n');

let eng: StoriesEngine;
beforeAll(async () => {
  eng = await openStories();
});
afterAll(async () => closeStories(eng ?? {}));

async function runner(route: Route, available: (peer: string) => number | null): Promise<ClusterFinetune> {
  return new ClusterFinetune({
    host: { peerId: 'a-peer' } as unknown as EdgeHost,
    model: eng.model,
    tokenizer: await loadTokenizer(eng.model.tokenizer),
    fingerprint: 'fp',
    routeFor: async () => route,
    nameOf: (p) => p.slice(0, 1),
    availableMemory: available,
    threads: 1,
    log: quiet,
  });
}

const job = { ...FINETUNE_DEFAULTS, data: DATA, source: 'moo.jsonl' };
const TWO: Route = { planId: 'p', peers: ['a-peer', 'b-peer'], ranges: [[0, 2], [2, 5]], model: 'fp' };

describe('a job\'s memory', () => {
  it('is estimated from the model\'s shapes: the range\'s stored weights, 16 bytes per adapter value, growing with rank and rows', () => {
    const c = eng.model.config;
    const m = stageJobBytes(c, eng.model.tensors, { startLayer: 0, endLayer: 5 }, 8, 16, 1);
    let stored = 0;
    for (const [name, t] of eng.model.tensors) if (name.startsWith('blk.')) stored += t.byteLength;
    expect(m.weights).toBe(stored);
    // stories260K at rank 8: 46 240 adapter values (docs/training.md), each with its gradient and two moments.
    expect(m.adapter).toBe(46240 * 16);
    expect(m.total).toBe(m.weights + m.transposes + m.adapter + m.activations);
    expect(stageJobBytes(c, eng.model.tensors, { startLayer: 0, endLayer: 5 }, 16, 16, 1).total).toBeGreaterThan(m.total);
    expect(stageJobBytes(c, eng.model.tensors, { startLayer: 0, endLayer: 5 }, 8, 64, 1).total).toBeGreaterThan(m.total);
    expect(stageJobBytes(c, eng.model.tensors, { startLayer: 2, endLayer: 5 }, 8, 16, 1).weights).toBeLessThan(m.weights);
    expect(modelEndsBytes(c, eng.model.tensors)).toBeGreaterThan(c.vocabSize * c.hiddenSize * 4);
  });

  it('lets a stage keep every micro-batch in flight\'s activations when its memory holds them, fewer when not, one when unsaid', () => {
    const c = eng.model.config;
    const range = { startLayer: 2, endLayer: 5 };
    const need = (kept: number) => stageJobBytes(c, eng.model.tensors, range, 8, 64, 3, kept).total;
    // Each kept sequence adds its activations through the range; the inputs in flight are counted whatever is kept.
    expect(need(2) - need(1)).toBe(need(3) - need(2));
    expect(need(2)).toBeGreaterThan(need(1));
    const kept = (available: number | null) => keptActivations(c, eng.model.tensors, range, 8, 64, 3, available);
    expect(kept(need(3))).toBe(3);
    expect(kept(need(3) - 1)).toBe(2);
    expect(kept(need(2))).toBe(2);
    expect(kept(need(1))).toBe(1);
    // Not even one fits: the job is refused by the memory check (1 is what it is checked with), not here.
    expect(kept(0)).toBe(1);
    expect(kept(null)).toBe(1);
  });

  it('refuses, before it starts, a job a stage has not the memory for, saying which and by how much', async () => {
    const r = await runner(TWO, (p) => (p === 'b-peer' ? 100_000 : null));
    const err = await r.prepare(job).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FinetuneMemoryError);
    expect((err as Error).message).toMatch(/^stage b \(layers \[2, 5\)\) would need [\d.]+ MB for this job \([\d.]+ MB of weights, [\d.]+ MB of transposes, [\d.]+ MB of adapter and optimiser, [\d.]+ MB of activations\) but has 0\.1 MB available: [\d.]+ MB short$/);
  });

  it('counts the owner\'s embeddings and head, also when it holds no layers', async () => {
    const r = await runner({ planId: 'p', peers: ['b-peer'], ranges: [[0, 5]], model: 'fp' }, (p) => (p === 'a-peer' ? 1000 : null));
    await expect(r.prepare(job)).rejects.toThrow(/^the owner a would need [\d.]+ MB for this job \([\d.]+ MB of embeddings and head \(the owner's\)\) but has 0\.0 MB available/);
  });

  it('takes a job that fits, or where the nodes have not said', async () => {
    expect((await (await runner(TWO, () => 24e9)).prepare(job)).examples).toBe(2);
    expect((await (await runner(TWO, () => null)).prepare(job)).examples).toBe(2);
  });
});
