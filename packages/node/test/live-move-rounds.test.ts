/**
 * A live move's copy rounds (pipeline/live-move.ts), the coordinator's side alone: the new route's stages take the
 * request's KV in rounds while the old route decodes, and at the switch the last part — up to and including the
 * position the old route computed at the last token boundary — so that the step the new route computes first follows
 * a cache without a hole. (A previous version of the rounds was found to leave that position out.) The last round
 * reads ahead (the position of the step going to the old route with it), so that the switch has nothing to copy and
 * goes even while that round is still under way; a step verifying a draft copies its delta at the switch instead.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionRequest } from '../src/engine/token-executor.js';
import type { KvAdoptRequest } from '../src/pipeline/kv-move-control.js';
import { LiveMoves, MAX_SWITCH_DELTA } from '../src/pipeline/live-move.js';
import type { Route } from '../src/pipeline/route.js';
import { startRunning, type Running } from '../src/pipeline/running-request.js';

const oldRoute: Route = { planId: 'old', peers: ['a', 'b'], ranges: [[0, 6], [6, 12]], model: 'fp' };
const newRoute: Route = { planId: 'new', peers: ['a', 'c'], ranges: [[0, 7], [7, 12]], model: 'fp' };

/** A request 40 tokens into its prompt, on the old route, every position before `pos` computed on every stage. */
function running(): Running {
  const request = { id: 'r1', promptTokens: Array.from({ length: 40 }, (_, i) => i + 1), sampling: { temperature: 0 }, contextLength: 1024 } as unknown as ExecutionRequest;
  return { ...startRunning(request), route: oldRoute, pos: 40, wireId: 'r1' };
}

/** Lets the copies' promises settle. */
const settle = () => new Promise((r) => setTimeout(r, 0));

function liveMoves(adoptKv: (peer: string, req: KvAdoptRequest) => Promise<number>): LiveMoves {
  return new LiveMoves({
    adoptKv,
    release: () => {},
    selfId: 'a',
    onFailure: (id, err) => {
      throw new Error(`${id}: ${err.message}`);
    },
  });
}

describe('live move copy rounds', () => {
  it('the switch copies every position the old route computed, the last boundary\'s included, and each exactly once', async () => {
    const asked: { peer: string; start: number; count: number }[] = [];
    let slow = 20; // the first round takes 20 token steps: the request decodes meanwhile, and a second round follows
    const live = new LiveMoves({
      adoptKv: async (peer: string, req: KvAdoptRequest) => {
        asked.push({ peer, start: req.start, count: req.count });
        const steps = slow;
        for (let i = 0; i < steps; i++) await settle();
        return req.count * 100;
      },
      release: () => {},
      selfId: 'a',
      onFailure: (id, err) => {
        throw new Error(`${id}: ${err.message}`);
      },
    });
    const run = running();
    // Token boundaries: the coordinator feeds the next token, asks what to do; on 'wait' the old route computes the
    // position at run.pos (one step) before the next boundary.
    let switched: ReturnType<LiveMoves['switchTo']> | null = null;
    for (let step = 0; step < 200 && !switched; step++) {
      run.fed.push(1000 + step);
      const move = live.next(run, newRoute, true);
      expect(move).not.toBe('replay');
      if (move === 'switch') {
        const before = run.pos;
        switched = live.switchTo(run);
        // The new route's first step is at `before`: each stage waits for positions [0, before).
        const last = asked.slice(-2);
        for (const a of last) expect(a.start + a.count).toBe(before);
        // The last round read ahead: the switch's part has nothing left to copy.
        expect(last.map((a) => a.count)).toEqual([0, 0]);
        break;
      }
      run.pos++; // the old route's step: this boundary's token computed
      run.received++;
      if (step === 10) slow = 0;
      await settle();
    }
    expect(switched).not.toBeNull();
    // Per stage: a first round, a second (more than MAX_SWITCH_DELTA positions came meanwhile), the last one reading
    // ahead, the switch; they tile [0, pos) with no hole and no overlap.
    expect(asked.filter((a) => a.peer === 'c').length).toBe(4);
    for (const peer of newRoute.peers) {
      const rounds = asked.filter((a) => a.peer === peer);
      let at = 0;
      for (const r of rounds) {
        expect(r.start).toBe(at);
        at += r.count;
      }
      expect(at).toBe(run.pos);
    }
    const bytes = await switched!.copied;
    expect(bytes).toBe(run.pos * 100 * newRoute.peers.length);
  });

  it('switches while the round reading ahead is under way, and the move is copied once that round is in', async () => {
    const asked: KvAdoptRequest[] = [];
    const finishAhead: (() => void)[] = [];
    const live = liveMoves(async (_peer, req) => {
      asked.push(req);
      // The round reading ahead is answered only once released (the old stage computing its last position).
      if (req.count > 0 && req.start > 0) await new Promise<void>((r) => finishAhead.push(r));
      return req.count * 100;
    });
    const run = running();
    run.fed.push(1000);
    expect(live.next(run, newRoute, true)).toBe('wait'); // first round [0, 40)
    await settle();
    run.pos++; // the old route computed position 40
    run.fed.push(1001);
    expect(live.next(run, newRoute, true)).toBe('wait'); // last round [40, 42): 41 is this boundary's step, ahead
    expect(asked.slice(-2).map((r) => [r.start, r.count, r.precopy])).toEqual([[40, 2, true], [40, 2, true]]);
    run.pos++;
    run.fed.push(1002);
    expect(live.next(run, newRoute, true)).toBe('switch');
    const moved = live.switchTo(run);
    expect(asked.slice(-2).map((r) => [r.start, r.count, r.precopy])).toEqual([[42, 0, undefined], [42, 0, undefined]]);
    let bytes: number | null = null;
    void moved.copied.then((b) => (bytes = b));
    await settle();
    expect(bytes).toBeNull();
    for (const f of finishAhead) f();
    await settle();
    expect(bytes).toBe(42 * 100 * newRoute.peers.length);
  });

  it('a step verifying a draft does not read ahead: its delta is copied at the switch', async () => {
    const asked: KvAdoptRequest[] = [];
    const live = liveMoves(async (_peer, req) => (asked.push(req), req.count * 100));
    const run = running();
    run.fed.push(1000);
    expect(live.next(run, newRoute, false)).toBe('wait');
    await settle();
    run.pos += 3; // a verification accepted two drafts
    run.fed.push(1001, 1002, 1003);
    expect(live.next(run, newRoute, false)).toBe('switch');
    live.switchTo(run);
    expect(asked.slice(-2).map((r) => [r.start, r.count, r.precopy])).toEqual([[40, 3, undefined], [40, 3, undefined]]);
    expect(3).toBeLessThanOrEqual(MAX_SWITCH_DELTA);
  });
});
