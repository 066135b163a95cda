/**
 * A stage's side of speculative decoding, on stories260K's real weights (one stage holding every layer, so it is the
 * first and the last): a verification step computes the token and its draft in one pass and answers with the
 * drafted tokens its samples agree with and the one after them; the next step's position drops the rejected rows,
 * and what follows is the same bits as decoding one token at a time. A position below the verified row, or a
 * rollback after a plain step, is refused; the prefix cache keeps only rows of the tokens a release names.
 */
import { describe, expect, it } from 'vitest';
import { StageWorker } from '../src/pipeline/stage-worker.js';
import { ShardStore } from '../src/pipeline/shard-store.js';
import { silentLogger } from '../src/network/node-logger.js';
import { GREEDY } from '../src/engine/sampler.js';
import { PrefixCache } from '../src/engine/prefix-cache.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ErrorFrame, type RequestOpening, type TokenFrame } from '../src/pipeline/activation-frame.js';
import { STORIES_PROMPT, useStoriesStage } from './support/stories-model.js';

const stage = useStoriesStage();

const PROMPT = STORIES_PROMPT;

/** `computeRows`: rows of one request per step (2 spreads a verification over steps, its logits gathered). */
function worker(prefixCache?: PrefixCache, computeRows?: number): StageWorker {
  return new StageWorker({
    selfId: 'me',
    shards: new ShardStore(stage.model, stage.compute),
    modelFingerprint: 'fp',
    maxRowsPerFrame: 64,
    log: silentLogger,
    ...(prefixCache ? { prefixCache } : {}),
    ...(computeRows ? { computeRows } : {}),
  });
}

function opening(promptTokens: number[], prefix = 0): RequestOpening {
  return { route: ['me'], ranges: [[0, stage.model.config.numLayers]], coordinator: 'me', model: 'fp', promptTokens, sampling: GREEDY, contextLength: 64, samplesDrawn: 0, logprobs: 2, ...(prefix ? { prefix } : {}) };
}

const act = (rid: string, step: number, pos: number, tokens: number[], extra: Partial<ActFrame> = {}): ActFrame => ({
  t: 'act',
  v: ACTIVATION_FRAME_VERSION,
  rid,
  stage: 0,
  step,
  pos,
  n: tokens.length,
  final: true,
  tokens: Int32Array.from(tokens),
  ...extra,
});

async function answer(w: StageWorker, frame: ActFrame): Promise<TokenFrame> {
  const out = await w.handle(frame);
  expect(out).toHaveLength(1);
  const f = out[0].frame as TokenFrame | ErrorFrame;
  if (f.t === 'error') throw new Error(`${f.name}: ${f.message}`);
  return f;
}

/** Greedy tokens and their log-probabilities, one step at a time. */
async function plain(w: StageWorker, rid: string, prompt: number[], count: number): Promise<{ tokens: number[]; lps: number[] }> {
  const tokens: number[] = [];
  const lps: number[] = [];
  let f = await answer(w, act(rid, 0, 0, prompt, { open: opening(prompt) }));
  for (let step = 1; ; step++) {
    tokens.push(f.token);
    lps.push(f.lp!.l);
    if (tokens.length === count) return { tokens, lps };
    f = await answer(w, act(rid, step, prompt.length + step - 1, [f.token]));
  }
}

describe('StageWorker verification steps', () => {
  it.each([undefined, 2])('accepts the agreeing prefix of a draft, rolls back the rest at the next position, and goes on with the same bits (rows per step: %s)', async (computeRows) => {
    const w = worker(undefined, computeRows);
    const ref = await plain(w, 'ref', PROMPT, 8);
    const g = ref.tokens;
    const P = PROMPT.length;
    const first = await answer(w, act('s', 0, 0, PROMPT, { open: opening(PROMPT) }));
    expect(first.token).toBe(g[0]);
    // Draft: two right tokens, then a wrong one and one more.
    const wrong = (g[3] + 1) % stage.model.config.vocabSize;
    const draft = [g[1], g[2], wrong, g[4]];
    const v = await answer(w, act('s', 1, P, [g[0], ...draft], { draft: Int32Array.from(draft) }));
    expect([v.token, ...(v.more ?? [])]).toEqual([g[1], g[2], g[3]]);
    // One log-probability per token, the same bits as one token at a time.
    expect([v.lp!.l, ...(v.lps ?? []).map((l) => l.l)]).toEqual(ref.lps.slice(1, 4));
    // Rows of g0, g1, g2 stay (P + 3); the rows of `wrong` and g4 are dropped by the next step's position.
    const next = await answer(w, act('s', 2, P + 3, [g[3]]));
    expect(next.token).toBe(g[4]);
    expect(next.lp!.l).toBe(ref.lps[4]);
    // A whole draft accepted: the sampled token after it comes too.
    const all = await answer(w, act('s', 3, P + 4, [g[4], g[5], g[6]], { draft: Int32Array.from([g[5], g[6]]) }));
    expect([all.token, ...(all.more ?? [])]).toEqual([g[5], g[6], g[7]]);
    w.close();
  });

  it('a verification in parts answers as in one frame, once its final part is in, and rolls back from its first row', async () => {
    const w = worker();
    const ref = await plain(w, 'ref', PROMPT, 8);
    const g = ref.tokens;
    const P = PROMPT.length;
    await answer(w, act('p', 0, 0, PROMPT, { open: opening(PROMPT) }));
    // Token g0 and five drafts, the fourth wrong: rows [g0, g1, g2] then [g3, wrong, g5].
    const wrong = (g[4] + 1) % stage.model.config.vocabSize;
    const draft = Int32Array.from([g[1], g[2], g[3], wrong, g[5]]);
    const early = await w.handle(act('p', 1, P, [g[0], g[1], g[2]], { draft, final: false }));
    expect(early).toEqual([]); // nothing to say before the final part
    const v = await answer(w, act('p', 1, P + 3, [g[3], wrong, g[5]], { draft, rowsBefore: 3 }));
    expect([v.token, ...(v.more ?? [])]).toEqual([g[1], g[2], g[3], g[4]]);
    expect([v.lp!.l, ...(v.lps ?? []).map((l) => l.l)]).toEqual(ref.lps.slice(1, 5));
    // The rows of `wrong` and g5 (in the second part) are dropped by the next step's position.
    const next = await answer(w, act('p', 2, P + 4, [g[4]]));
    expect([next.token, next.lp!.l]).toEqual([g[5], ref.lps[5]]);
    // A later part without its first, and a step begun again before its last part, are refused.
    const orphan = await w.handle(act('p', 3, P + 6, [g[6]], { draft: Int32Array.of(g[6], g[7]), rowsBefore: 1, n: 1, final: false }));
    expect((orphan[0].frame as ErrorFrame).message).toMatch(/later part of step 3 came before its first/);
    const w2 = worker();
    await answer(w2, act('q', 0, 0, PROMPT, { open: opening(PROMPT) }));
    await w2.handle(act('q', 1, P, [g[0], g[1]], { draft: Int32Array.of(g[1], g[2]), final: false }));
    const again = await w2.handle(act('q', 1, P + 2, [g[2]], { draft: Int32Array.of(g[1], g[2]) }));
    expect((again[0].frame as ErrorFrame).message).toMatch(/step 1 began again before its last part/);
    w.close();
    w2.close();
  });

  it('refuses a position below the verified token, and any rollback after a plain step', async () => {
    const w = worker();
    const P = PROMPT.length;
    const f0 = await answer(w, act('r', 0, 0, PROMPT, { open: opening(PROMPT) }));
    await answer(w, act('r', 1, P, [f0.token, 5, 6], { draft: Int32Array.of(5, 6) }));
    // The verified token's own row (position P) always stays: P is below the floor.
    const below = await w.handle(act('r', 2, P, [7]));
    expect((below[0].frame as ErrorFrame).message).toMatch(/expected position/);
    const w2 = worker();
    const g0 = await answer(w2, act('q', 0, 0, PROMPT, { open: opening(PROMPT) }));
    await answer(w2, act('q', 1, P, [g0.token]));
    const back = await w2.handle(act('q', 2, P, [7]));
    expect((back[0].frame as ErrorFrame).message).toMatch(/expected position 13, got 12/);
    w.close();
    w2.close();
  });

  it('a release keeps only the rows of the tokens it names: the next turn from the prefix cache gives the same bits', async () => {
    const pc = new PrefixCache(1 << 20);
    const w = worker(pc);
    const P = PROMPT.length;
    const ref = await plain(worker(), 'ref', PROMPT, 6);
    const g = ref.tokens;
    const f0 = await answer(w, act('c', 0, 0, PROMPT, { open: opening(PROMPT) }));
    expect(f0.token).toBe(g[0]);
    // Accepts g1..g3 and rejects four wrong drafts: the cache holds P + 8 rows (past a 16-token block), P + 4 valid.
    const wrong = [0, 1, 2, 3].map((i) => (g[4] + 1 + i) % stage.model.config.vocabSize);
    const v = await answer(w, act('c', 1, P, [g[0], g[1], g[2], g[3], ...wrong], { draft: Int32Array.from([g[1], g[2], g[3], ...wrong]) }));
    expect([v.token, ...(v.more ?? [])]).toEqual([g[1], g[2], g[3], g[4]]);
    // The request ends here: the release names what was fed (g0..g3), so positions [0, P + 4) = 16 make one block.
    await w.handle({ t: 'release', v: ACTIVATION_FRAME_VERSION, rid: 'c', stage: 0, tokens: Int32Array.from(g.slice(0, 4)) });
    expect(pc.stats().blocks).toBe(1);
    // The next turn opens after that block and must read exactly what computing it gives.
    const turn = [...PROMPT, ...g.slice(0, 4), 300, 301, 302];
    const cached = await answer(w, act('t2', 0, 16, turn.slice(16), { open: opening(turn, 16) }));
    const full = await answer(worker(), act('t3', 0, 0, turn, { open: opening(turn) }));
    expect(cached.token).toBe(full.token);
    expect(cached.lp!.l).toBe(full.lp!.l);
    w.close();
  });
});
