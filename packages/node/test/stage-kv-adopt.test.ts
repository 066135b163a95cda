/**
 * A stage's side of a live move, on stories260K's real weights (one stage holding every layer): a request decoded
 * on one worker is adopted by another under its new wire id, its KV pulled from the first, and the next step there
 * gives the token the first worker gives. A corrupt piece, or sources that leave a layer out, are refused: the
 * adopted request is freed, nothing half-copied stays, and a sound copy under the same id works afterwards. At the
 * switch the first step may come before the last positions (the coordinator overlaps them): it waits for them, and
 * is dropped if their copy fails.
 */
import { describe, expect, it } from 'vitest';
import { StageWorker } from '../src/pipeline/stage-worker.js';
import { ShardStore } from '../src/pipeline/shard-store.js';
import { silentLogger } from '../src/network/node-logger.js';
import { GREEDY } from '../src/engine/sampler.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ErrorFrame, type RequestOpening, type TokenFrame } from '../src/pipeline/activation-frame.js';
import type { KvAdoptRequest, KvSource } from '../src/pipeline/kv-move-control.js';
import type { KvChunk } from '../src/pipeline/kv-chunk.js';
import { STORIES_PROMPT, useStoriesStage } from './support/stories-model.js';

const stage = useStoriesStage();

const PROMPT = STORIES_PROMPT;
const worker = () => new StageWorker({ selfId: 'me', shards: new ShardStore(stage.model, stage.compute), modelFingerprint: 'fp', maxRowsPerFrame: 64, log: silentLogger });
const opening = (promptTokens: number[], generated = 0): RequestOpening => ({
  route: ['me'],
  ranges: [[0, stage.model.config.numLayers]],
  coordinator: 'me',
  model: 'fp',
  promptTokens,
  sampling: GREEDY,
  contextLength: 64,
  samplesDrawn: 0,
  ...(generated ? { generated } : {}),
});
const act = (rid: string, step: number, pos: number, tokens: number[], open?: RequestOpening): ActFrame => ({
  t: 'act', v: ACTIVATION_FRAME_VERSION, rid, stage: 0, step, pos, n: tokens.length, final: true, tokens: Int32Array.from(tokens), ...(open ? { open } : {}),
});

async function token(w: StageWorker, frame: ActFrame): Promise<number> {
  const [out] = await w.handle(frame);
  const f = out.frame as TokenFrame | ErrorFrame;
  if (f.t === 'error') throw new Error(`${f.name}: ${f.message}`);
  return f.token;
}

describe('kv-adopt on a stage', () => {
  it('a request adopted with its KV gives the next token the old stage gives; a corrupt or partial copy is refused and freed', async () => {
    const old = worker();
    const fed = [await token(old, act('r', 0, 0, PROMPT, opening(PROMPT)))];
    for (let step = 1; step <= 3; step++) fed.push(await token(old, act('r', step, PROMPT.length + step - 1, [fed[step - 1]])));
    // The coordinator's view at a token boundary: fed[3] is to be stepped at position PROMPT.length + 3.
    const pos = PROMPT.length + 3;
    const history = [...PROMPT, ...fed];
    const L = stage.model.config.numLayers;
    const whole: KvSource[] = [{ peer: 'old', rid: 'r', startLayer: 0, endLayer: L }];
    const req = (sources: KvSource[], start = 0, count = pos, atSwitch = false): KvAdoptRequest => ({ op: 'kv-adopt', model: 'fp', rid: 'r.k1', stage: 0, opening: opening(history, fed.length), start, count, sources, ...(atSwitch ? {} : { precopy: true }) });
    const pull = (src: KvSource, start: number, count: number): Promise<KvChunk> => old.readKv(src.rid, src, start, count);

    const moved = worker();
    const corrupt = async (src: KvSource, start: number, count: number) => {
      const c = await pull(src, start, count);
      const bytes = c.bytes.slice();
      bytes[bytes.length - 1] ^= 0x40;
      return { ...c, bytes };
    };
    await expect(moved.adoptKv(req(whole), corrupt)).rejects.toThrow(/SHA-256/);
    expect(moved.sessionCount).toBe(0);
    await expect(moved.adoptKv(req([{ ...whole[0], endLayer: L - 1 }]), pull)).rejects.toThrow(/do not cover/);
    expect(moved.sessionCount).toBe(0);
    // A step for the request refused is dropped, not computed on an empty cache.
    expect(await moved.handle(act('r.k1', 1, pos, [fed[3]]))).toEqual([]);

    // Pre-copy of the first positions, then the delta: the bytes of both counted once whole.
    const copied = (await moved.adoptKv(req(whole, 0, pos - 2), pull)) + (await moved.adoptKv(req(whole, pos - 2, 2, true), pull));
    expect(copied).toBe((await old.readKv('r', whole[0], 0, pos)).bytes.length);
    await expect(moved.adoptKv(req(whole, 0, 1), pull)).rejects.toThrow(/already open/);
    const next = await token(moved, act('r.k1', 1, pos, [fed[3]]));
    expect(next).toBe(await token(old, act('r', 4, pos, [fed[3]])));
    expect(await token(moved, act('r.k1', 2, pos + 1, [next]))).toBe(await token(old, act('r', 5, pos + 1, [next])));
  });

  it('a step that comes before the last positions of its move waits for them; if their copy fails it is dropped', async () => {
    const old = worker();
    const fed = [await token(old, act('r', 0, 0, PROMPT, opening(PROMPT)))];
    for (let step = 1; step <= 3; step++) fed.push(await token(old, act('r', step, PROMPT.length + step - 1, [fed[step - 1]])));
    const pos = PROMPT.length + 3;
    const history = [...PROMPT, ...fed];
    const whole: KvSource[] = [{ peer: 'old', rid: 'r', startLayer: 0, endLayer: stage.model.config.numLayers }];
    const req = (rid: string, start: number, count: number, atSwitch = true): KvAdoptRequest => ({ op: 'kv-adopt', model: 'fp', rid, stage: 0, opening: opening(history, fed.length), start, count, sources: whole, ...(atSwitch ? {} : { precopy: true }) });
    const pull = (src: KvSource, start: number, count: number): Promise<KvChunk> => old.readKv(src.rid, src, start, count);
    const late = (src: KvSource, start: number, count: number) => new Promise<KvChunk>((r) => setTimeout(() => r(pull(src, start, count)), 50));

    const moved = worker();
    await moved.adoptKv(req('r.k1', 0, pos - 2, false), pull);
    // The step is handed over first, then the delta is copied (slowly): the step's token is the old stage's.
    const step = token(moved, act('r.k1', 1, pos, [fed[3]]));
    await moved.adoptKv(req('r.k1', pos - 2, 2), late);
    expect(await step).toBe(await token(old, act('r', 4, pos, [fed[3]])));

    // The delta's copy fails: the waiting step is dropped (no token, no error computed on a half cache), the request freed.
    const other = worker();
    await other.adoptKv(req('r.k2', 0, pos - 2, false), pull);
    const dropped = other.handle(act('r.k2', 1, pos, [fed[3]]));
    const broken = async (src: KvSource, start: number, count: number) => ({ ...(await late(src, start, count)), sha256: '0'.repeat(64) });
    await expect(other.adoptKv(req('r.k2', pos - 2, 2), broken)).rejects.toThrow(/SHA-256/);
    expect(await dropped).toEqual([]);
    expect(other.sessionCount).toBe(0);
  });

  it('the last round reads ahead: the old stage answers for the position it is computing once computed, and the switch needs no copy', async () => {
    const old = worker();
    const fed = [await token(old, act('r', 0, 0, PROMPT, opening(PROMPT)))];
    for (let step = 1; step <= 3; step++) fed.push(await token(old, act('r', step, PROMPT.length + step - 1, [fed[step - 1]])));
    // Boundary: fed[3] goes to the old stage at `pos`; the move's last round asks for [pos - 2, pos + 1) meanwhile.
    const pos = PROMPT.length + 3;
    const whole: KvSource[] = [{ peer: 'old', rid: 'r', startLayer: 0, endLayer: stage.model.config.numLayers }];
    const pull = (src: KvSource, start: number, count: number, computing?: number): Promise<KvChunk> => old.readKv(src.rid, src, start, count, computing);
    const moved = worker();
    const history = [...PROMPT, ...fed];
    const req = (start: number, count: number, atSwitch: boolean, tokens = history): KvAdoptRequest => ({ op: 'kv-adopt', model: 'fp', rid: 'r.k1', stage: 0, opening: opening(tokens, tokens.length - PROMPT.length), start, count, sources: whole, ...(atSwitch ? {} : { precopy: true }) });
    await moved.adoptKv(req(0, pos - 2, false), pull);
    let answered = false;
    const ahead = moved.adoptKv({ ...req(pos - 2, 3, false), computing: pos }, pull).then((bytes) => ((answered = true), bytes));
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).toBe(false); // the old stage has not computed position `pos` yet
    const next = await token(old, act('r', 4, pos, [fed[3]]));
    // The switch: its part (nothing left to copy) and the first step go at once, the last round perhaps still under way.
    const later = [...history, next];
    const step = token(moved, act('r.k1', 1, pos + 1, [next]));
    const switched = moved.adoptKv(req(pos + 1, 0, true, later), pull);
    expect(await ahead).toBe((await old.readKv('r', whole[0], pos - 2, 3)).bytes.length);
    expect(await switched).toBe(0);
    expect(await step).toBe(await token(old, act('r', 5, pos + 1, [next])));
  });

  it('a row read ahead where a rejected draft lies is read once the step there has computed it anew', async () => {
    const old = worker();
    const fed = [await token(old, act('r', 0, 0, PROMPT, opening(PROMPT)))];
    for (let step = 1; step <= 2; step++) fed.push(await token(old, act('r', step, PROMPT.length + step - 1, [fed[step - 1]])));
    // A verification of a draft the model will not follow: its rows past the fed token stay in the cache until the next step.
    const p = PROMPT.length + 2;
    const draft = [fed[2] === 1 ? 2 : 1, 3, 4];
    const [out] = await old.handle({ ...act('r', 3, p, [fed[2], ...draft]), draft: Int32Array.from(draft) });
    const answer = out.frame as TokenFrame;
    const accepted = [answer.token, ...(answer.more ?? [])];
    const pos = p + accepted.length; // the position the next (plain) step computes
    const whole: KvSource = { peer: 'old', rid: 'r', startLayer: 0, endLayer: stage.model.config.numLayers };
    expect(pos).toBeLessThan(p + 1 + draft.length); // a rejected draft's row lies at `pos`
    const stale = (await old.readKv('r', whole, pos, 1)).bytes;
    let read: KvChunk | null = null;
    const ahead = old.readKv('r', whole, pos - 1, 2, pos).then((c) => (read = c));
    await new Promise((r) => setTimeout(r, 20));
    expect(read).toBeNull(); // not the rejected draft's row
    await token(old, act('r', 4, pos, [accepted.at(-1)!]));
    await ahead;
    const fresh = (await old.readKv('r', whole, pos, 1)).bytes;
    expect(Buffer.from(fresh).equals(Buffer.from(stale))).toBe(false);
    expect(Buffer.from(read!.bytes).equals(Buffer.from((await old.readKv('r', whole, pos - 1, 2)).bytes))).toBe(true);
  });

  it('without the switch\'s part the first step waits, even when every position it follows is copied', async () => {
    const old = worker();
    const fed = [await token(old, act('r', 0, 0, PROMPT, opening(PROMPT)))];
    const pos = PROMPT.length;
    const whole: KvSource[] = [{ peer: 'old', rid: 'r', startLayer: 0, endLayer: stage.model.config.numLayers }];
    const pull = (src: KvSource, start: number, count: number): Promise<KvChunk> => old.readKv(src.rid, src, start, count);
    const req = (start: number, count: number, atSwitch: boolean): KvAdoptRequest => ({ op: 'kv-adopt', model: 'fp', rid: 'r.k1', stage: 0, opening: opening([...PROMPT, ...fed], 1), start, count, sources: whole, ...(atSwitch ? {} : { precopy: true }) });
    const moved = worker();
    await moved.adoptKv(req(0, pos, false), pull);
    let done = false;
    const step = token(moved, act('r.k1', 1, pos, [fed[0]])).then((t) => ((done = true), t));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    await moved.adoptKv(req(pos, 0, true), pull);
    expect(await step).toBe(await token(old, act('r', 1, pos, [fed[0]])));
  });
});
