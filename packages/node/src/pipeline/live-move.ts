import type { KvAdoptRequest, KvSource } from './kv-move-control.js';
import type { Route } from './route.js';
import { openingOf, type Running } from './running-request.js';

/** Positions decoded since the last copy above which another copy round runs before the switch (keeps the switch's delta small). */
export const MAX_SWITCH_DELTA = 16;

/** The layers a stage of `next` takes from each stage of `old` (those whose ranges overlap its own). */
function kvSources(old: { peers: readonly string[]; ranges: readonly (readonly [number, number])[] }, oldRid: string, range: readonly [number, number]): KvSource[] {
  const out: KvSource[] = [];
  old.ranges.forEach(([x, y], i) => {
    const startLayer = Math.max(x, range[0]);
    const endLayer = Math.min(y, range[1]);
    if (startLayer < endLayer) out.push({ peer: old.peers[i], rid: oldRid, startLayer, endLayer });
  });
  return out;
}

/** A request's KV on its way to the stages of a new route, under the wire id it will have there. */
interface Copy {
  route: Route;
  wireId: string;
  /** The old route's wire id it copies from (a replay meanwhile makes it stale). */
  from: string;
  /** Positions every stage of the new route holds. */
  copied: number;
  /**
   * While the last round reads ahead (it asks the old stages for the position of the step under way there as
   * well, answered once computed): the positions it covers. At the next boundary the request switches with it.
   */
  ahead: number | null;
  bytes: number;
  busy: Promise<void> | null;
  error: Error | null;
}

/** What a request at a token boundary does about a newer plan: keep decoding on its route while its KV is copied, switch, or replay. */
export type LiveMoveStep = 'wait' | 'switch' | 'replay';

export interface LiveMovesOptions {
  /** Has a node take the request's KV for its stage of the new route (StageControl.adoptKv); resolves with the bytes it copied. */
  adoptKv: (peerId: string, req: KvAdoptRequest) => Promise<number>;
  /** Frees what the stages of `route` hold under `wireId`. */
  release: (route: Route, wireId: string) => void;
  /** This coordinator's peer id. */
  selfId: string;
  /** Why a request's KV could not move (it replays instead). */
  onFailure: (requestId: string, err: Error) => void;
}

/**
 * The coordinator's side of live moves (as live VM migration does): when a newer plan's route appears, the stages of
 * that route pull the request's KV for their layers from the stages of its route while it keeps decoding there
 * (pre-copy, in rounds until the positions decoded meanwhile are few; the last round also reads the position of the
 * step it goes out with, so the switch has nothing left to copy); at the switch the request goes on there with its
 * next step. A copy that fails makes the request replay its history instead.
 */
export class LiveMoves {
  private readonly copies = new Map<string, Copy>();

  constructor(readonly opts: LiveMovesOptions) {}

  /**
   * At a token boundary, before the step that feeds the token goes out: `plain` when it feeds that one token alone
   * (no draft to verify), so that the position it computes is certain and a last round may read it ahead.
   */
  next(run: Running, route: Route, plain: boolean): LiveMoveStep {
    let c = this.copies.get(run.request.id);
    if (c && (c.route.planId !== route.planId || c.from !== run.wireId)) {
      this.abandon(run.request.id);
      c = undefined;
    }
    if (!c) {
      c = { route, wireId: `${run.request.id}.k${run.migrations + 1}`, from: run.wireId, copied: 0, ahead: null, bytes: 0, busy: null, error: null };
      this.copies.set(run.request.id, c);
      this.round(run, c);
      return 'wait';
    }
    // The last round, reading ahead, covers the positions the old route holds now: nothing is left to copy.
    if (c.busy) return c.ahead === run.pos ? 'switch' : 'wait';
    if (c.error) {
      this.opts.onFailure(run.request.id, c.error);
      this.abandon(run.request.id);
      return 'replay';
    }
    const delta = run.pos - c.copied;
    if (delta > MAX_SWITCH_DELTA || (delta > 0 && plain)) {
      // A few positions left and a plain step going to the old route: the last round reads ahead, so that the delta
      // is copied while that step computes, not at the switch.
      this.round(run, c, delta <= MAX_SWITCH_DELTA);
      return 'wait';
    }
    return 'switch';
  }

  /**
   * The switch (the old route idle at a token boundary): the stages of the new route take the positions decoded
   * since the last round — none when it read ahead, even if it is still under way — with the opening a replay would
   * send (the sampler resumes where it was). The first step may go to the new route at once: its stages hold it
   * until they have this part. `copied` resolves with the bytes of the whole move, or rejects if the last parts fail
   * (what the new stages took is freed; the caller replays). Throws if no copy is ready.
   */
  switchTo(run: Running): { wireId: string; route: Route; copied: Promise<number> } {
    const c = this.copies.get(run.request.id);
    const reading = c?.busy && c.ahead === run.pos;
    if (!c || (c.busy && !reading) || c.error) throw new Error('no finished copy to switch to');
    this.copies.delete(run.request.id);
    // The switch's part goes at once, the last round still under way or not (the stages apply parts in order).
    const start = reading ? run.pos : c.copied;
    const last = c.busy ?? Promise.resolve();
    const copied = Promise.all([last, this.adopt(run, c, start, run.pos - start, true)]).then(
      ([, bytes]) => {
        if (c.error) throw c.error;
        return c.bytes + bytes;
      },
    ).catch((err: unknown) => {
      this.opts.release(c.route, c.wireId);
      throw err;
    });
    return { wireId: c.wireId, route: c.route, copied };
  }

  /** The request ended or went another way: what the new route's stages took for it is freed (once its copy settles). */
  abandon(requestId: string): void {
    const c = this.copies.get(requestId);
    if (!c) return;
    this.copies.delete(requestId);
    void (c.busy ?? Promise.resolve()).then(() => this.opts.release(c.route, c.wireId));
  }

  /** A copy round of the positions decoded since the last; `ahead`: with the position of the step about to go to the old route. */
  private round(run: Running, c: Copy, ahead = false): void {
    const start = c.copied;
    const count = run.pos - start + (ahead ? 1 : 0);
    c.ahead = ahead ? start + count : null;
    c.busy = this.adopt(run, c, start, count, false, ahead ? run.pos : undefined)
      .then(
        (bytes) => {
          c.copied = start + count;
          c.bytes += bytes;
        },
        (err: Error) => {
          c.error = err;
        },
      )
      .finally(() => {
        c.busy = null;
        c.ahead = null;
      });
  }

  /** Every stage of the new route takes positions [start, start + count) of its layers; resolves with the bytes copied. */
  private async adopt(run: Running, c: Copy, start: number, count: number, atSwitch = false, computing?: number): Promise<number> {
    const history = [...run.request.promptTokens, ...run.fed];
    const opening = openingOf(run, c.route, history, this.opts.selfId);
    const copied = await Promise.all(
      c.route.peers.map((peer, stage) =>
        this.opts.adoptKv(peer, { op: 'kv-adopt', model: c.route.model, rid: c.wireId, stage, opening, start, count, sources: kvSources(run.route, c.from, c.route.ranges[stage]), ...(atSwitch ? {} : { precopy: true }), ...(computing !== undefined ? { computing } : {}) }),
      ),
    );
    return copied.reduce((a, b) => a + b, 0);
  }
}
