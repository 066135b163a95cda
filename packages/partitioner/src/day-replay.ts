import { decideReplan, decideRestore, moveCostMs, repricePlan, type ReplanPolicy } from './adaptive-replan.js';
import type { Cluster, Device } from './cluster.js';
import type { ModelProfile } from './model-profile.js';
import type { Plan } from './plan.js';
import { planPipeline } from './planner.js';
import { movedLayers } from './replan.js';
import type { RequestShape } from './request-shape.js';

/** From `atS` on (until its next entry), a device runs `slowdown` times slower than profiled, or is gone. */
export interface AvailabilityChange {
  atS: number;
  device: string;
  /** 1 = as profiled; 3 = its owner uses it and it runs 3× slower. */
  slowdown: number;
  /** Memory it offers from then on (default: its profile's). */
  memoryBytes?: number;
  /** False: switched off or away (default true). */
  present?: boolean;
}

export interface DayReplayOptions {
  /** Length of the replay, s. Default 86 400 (a day). */
  durationS?: number;
  /** Time for a node to notice and announce a change (smoothing), s. Default 10. */
  noticeS?: number;
  policy?: ReplanPolicy;
  /** Rate at which a device loads moved layers, MB/s. Default 200. */
  loadMBps?: number;
  /** Pause of the answers in flight when they switch routes (one replayed prefill), ms. Default: the new plan's TTFT. */
  switchPauseMs?: number;
}

export interface ReplaySummary {
  /** Tokens generated over the replay with the cluster decoding back to back. */
  tokens: number;
  meanTokPerS: number;
  /** Worst predicted ms/token at any moment. */
  worstMsPerToken: number;
  /** Plan changes (forced ones — a device gone or out of memory — included). */
  changes: number;
  forcedChanges: number;
  movedLayers: number;
  /** Time spent loading moved layers (the old plan serves meanwhile), s. */
  movingS: number;
}

export interface ReplayChange {
  atS: number;
  strategy: 'static' | 'adaptive';
  reason: string;
  movedLayers: number;
  fromMsPerToken: number;
  toMsPerToken: number;
}

export interface DayReplayResult {
  static: ReplaySummary;
  adaptive: ReplaySummary;
  changes: ReplayChange[];
  /** Predicted ms/token of each strategy at each segment start. */
  timeline: { atS: number; staticMsPerToken: number; adaptiveMsPerToken: number }[];
}

interface DeviceState {
  slowdown: number;
  memoryBytes: number;
}

interface Track {
  plan: Plan;
  pending: { atS: number; plan: Plan } | null;
  /** The plan a load-driven change replaced, the device states under it, and the devices that caused the change. */
  restorable: { former: Plan; states: Map<string, DeviceState>; causes: string[] } | null;
  /** Device states when the plan in force was adopted. */
  states: Map<string, DeviceState>;
  lastChangeS: number;
  summary: ReplaySummary;
}

/**
 * Replays a day of changing device availability (owners using their laptops, cameras idle at night) with two
 * strategies: a static plan made once at the start (changed only when it must: a device of it is gone or out of
 * memory), and adaptive re-planning by `decideReplan` after each change is noticed. Moving layers costs time
 * (the old plan serves meanwhile) and a pause of the answers in flight. Pure: the same input gives the same result.
 */
export function replayDay(
  profile: ModelProfile,
  base: Cluster,
  request: RequestShape,
  changes: readonly AvailabilityChange[],
  options: DayReplayOptions = {},
): DayReplayResult {
  const duration = options.durationS ?? 86_400;
  const notice = options.noticeS ?? 10;
  const sorted = [...changes].sort((a, b) => a.atS - b.atS);
  const replay = new DayReplay(profile, request, new Availability(base, sorted), options);
  const tracks = replay.startTracks();
  const { times, noticeTimes } = segmentTimes(sorted, duration, notice);
  const timeline: DayReplayResult['timeline'] = [];
  for (let i = 0; i + 1 < times.length; i++) {
    const t0 = times[i];
    const cluster = replay.availability.clusterAt(t0);
    const row = { atS: t0, staticMsPerToken: 0, adaptiveMsPerToken: 0 };
    for (const name of ['static', 'adaptive'] as const) {
      const stall = replay.review(name, tracks[name], t0, cluster, name === 'adaptive' && noticeTimes.has(t0));
      row[name === 'static' ? 'staticMsPerToken' : 'adaptiveMsPerToken'] = replay.serve(tracks[name], t0 + stall, times[i + 1], cluster);
    }
    timeline.push(row);
  }
  for (const track of Object.values(tracks)) track.summary.meanTokPerS = track.summary.tokens / duration;
  return { static: tracks.static.summary, adaptive: tracks.adaptive.summary, changes: replay.log, timeline };
}

/** The segments' boundaries (each change and the moment it is noticed), and the moments changes are noticed. */
function segmentTimes(sorted: readonly AvailabilityChange[], duration: number, notice: number): { times: number[]; noticeTimes: Set<number> } {
  const boundaries = new Set<number>([0, duration]);
  for (const c of sorted) {
    if (c.atS < duration) boundaries.add(c.atS);
    if (c.atS + notice < duration) boundaries.add(c.atS + notice);
  }
  return { times: [...boundaries].sort((a, b) => a - b), noticeTimes: new Set(sorted.map((c) => c.atS + notice)) };
}

/** The devices as they are at any moment of the day: slowed, with less memory, or gone. */
class Availability {
  constructor(
    readonly base: Cluster,
    private readonly sorted: readonly AvailabilityChange[],
  ) {}

  clusterAt(t: number): Cluster {
    const state = new Map<string, AvailabilityChange>();
    for (const c of this.sorted) if (c.atS <= t) state.set(c.device, c);
    const devices: Device[] = [];
    for (const d of this.base.devices) {
      const c = state.get(d.id);
      if (c && c.present === false) continue;
      const slow = Math.max(1, c?.slowdown ?? 1);
      devices.push({
        ...d,
        gflops: d.gflops / slow,
        ...(d.gflopsPrefill !== undefined ? { gflopsPrefill: d.gflopsPrefill / slow } : {}),
        memBandwidthGBps: d.memBandwidthGBps / slow,
        // Fixed costs are work on the device too: its load slows them, as the runtime's clusterOf prices them.
        ...(d.stepOverheadMs !== undefined ? { stepOverheadMs: d.stepOverheadMs * slow } : {}),
        ...(d.tokenOverheadMs !== undefined ? { tokenOverheadMs: d.tokenOverheadMs * slow } : {}),
        ...(d.passOverheadMs !== undefined ? { passOverheadMs: d.passOverheadMs * slow } : {}),
        ...(d.wakeMs !== undefined ? { wakeMs: d.wakeMs * slow } : {}),
        memoryBytes: c?.memoryBytes ?? d.memoryBytes,
      });
    }
    return { ...this.base, devices };
  }

  /** Each device's slowdown and memory at t (a device gone: infinitely slow, no memory). */
  statesAt(t: number): Map<string, DeviceState> {
    const c = this.clusterAt(t);
    const out = new Map<string, DeviceState>();
    for (const d of this.base.devices) {
      const now = c.devices.find((x) => x.id === d.id);
      out.set(d.id, now ? { slowdown: d.gflops / now.gflops, memoryBytes: now.memoryBytes } : { slowdown: Infinity, memoryBytes: 0 });
    }
    return out;
  }
}

/** The replay's rules applied to a track: when it must or may change plans, what a change costs, what it serves. */
class DayReplay {
  readonly log: ReplayChange[] = [];
  private readonly loadMBps: number;

  constructor(
    private readonly profile: ModelProfile,
    private readonly request: RequestShape,
    readonly availability: Availability,
    private readonly options: DayReplayOptions,
  ) {
    this.loadMBps = options.loadMBps ?? 200;
  }

  /** Both strategies start on the plan made for the devices at 00:00. */
  startTracks(): Record<'static' | 'adaptive', Track> {
    const first = planPipeline(this.profile, this.availability.clusterAt(0), this.request);
    const track = (): Track => ({ plan: first, pending: null, restorable: null, states: this.availability.statesAt(0), lastChangeS: -Infinity, summary: emptySummary() });
    return { static: track(), adaptive: track() };
  }

  private msPerToken(plan: Plan, cluster: Cluster): number {
    return repricePlan(plan, this.profile, cluster, this.request).cost?.tokenLatencyMs ?? Infinity;
  }

  /**
   * At a segment's start: a plan that lost a device or no longer fits is replaced at once (forced); an adaptive track
   * that has just noticed a change re-plans or goes back to its former plan when the rules say so. Returns the stall, s.
   */
  review(name: 'static' | 'adaptive', track: Track, t0: number, cluster: Cluster, noticed: boolean): number {
    const now = repricePlan(track.plan, this.profile, cluster, this.request);
    if (!now.cost || !now.fitsInMemory) {
      track.pending = null;
      const next = planPipeline(this.profile, cluster, this.request, { previous: track.plan });
      return this.switchTo(name, track, t0, next, !now.cost ? 'a device of the plan is gone' : 'the plan no longer fits in memory', true, cluster);
    }
    if (noticed) this.reconsider(name, track, t0, cluster, now.cost.tokenLatencyMs, now.fitsInMemory);
    return 0;
  }

  /** After a noticed change: a better plan worth its move, or else the former plan once its cause is cleared. */
  private reconsider(name: 'static' | 'adaptive', track: Track, t0: number, cluster: Cluster, currentMs: number, currentFits: boolean): void {
    const candidate = planPipeline(this.profile, cluster, this.request, { previous: track.plan });
    const decision = decideReplan(
      {
        currentMs,
        currentFits,
        candidateMs: candidate.cost.tokenLatencyMs,
        movedLayers: movedLayers(track.plan, candidate),
        moveMs: moveCostMs(track.plan, candidate, this.profile, this.loadMBps, (d) => this.availability.statesAt(t0).get(d)?.slowdown ?? 1),
        sinceLastChangeMs: (t0 - track.lastChangeS) * 1000,
      },
      this.options.policy,
    );
    if (decision.replan) {
      this.switchTo(name, track, t0, candidate, decision.reason, false, cluster);
      return;
    }
    if (!track.restorable) return;
    // Once the devices that caused the last change are back as they were, go back to the former plan.
    const { former, states, causes } = track.restorable;
    const nowStates = this.availability.statesAt(t0);
    const causeCleared = causes.every((id) => (nowStates.get(id)?.slowdown ?? 1) <= (states.get(id)?.slowdown ?? 1) && (nowStates.get(id)?.memoryBytes ?? 0) >= (states.get(id)?.memoryBytes ?? 0));
    const back = repricePlan(former, this.profile, cluster, this.request);
    const restore = decideRestore(
      { currentMs, formerMs: back.cost?.tokenLatencyMs ?? Infinity, formerFits: back.cost !== null && back.fitsInMemory, causeCleared, sinceLastChangeMs: (t0 - track.lastChangeS) * 1000 },
      this.options.policy,
    );
    if (restore.replan) this.switchTo(name, track, t0, { ...former, cost: back.cost! }, restore.reason, false, cluster, true);
  }

  /** Records a change of plan; a forced one takes effect now (returns its stall, s), a chosen one once its layers are loaded. */
  private switchTo(name: 'static' | 'adaptive', track: Track, t: number, next: Plan, reason: string, forced: boolean, cluster: Cluster, restoring = false): number {
    const moved = movedLayers(track.plan, next);
    const states = this.availability.statesAt(t);
    const moveS = moveCostMs(track.plan, next, this.profile, this.loadMBps, (d) => states.get(d)?.slowdown ?? 1) / 1000;
    if (restoring || forced) track.restorable = null;
    else if (!track.restorable) {
      const causes = [...states].filter(([id, st]) => st.slowdown > (track.states.get(id)?.slowdown ?? 1) || st.memoryBytes < (track.states.get(id)?.memoryBytes ?? Infinity)).map(([id]) => id);
      if (causes.length > 0) track.restorable = { former: track.plan, states: track.states, causes };
    }
    track.states = states;
    this.log.push({ atS: t, strategy: name, reason, movedLayers: moved, fromMsPerToken: this.msPerToken(track.plan, cluster), toMsPerToken: next.cost.tokenLatencyMs });
    track.summary.changes++;
    if (forced) track.summary.forcedChanges++;
    track.summary.movedLayers += moved;
    track.summary.movingS += moveS;
    track.lastChangeS = t;
    // A forced change cannot keep serving on the old plan: it stalls for the move. A chosen one loads first.
    if (forced) {
      track.plan = next;
      return moveS + (this.options.switchPauseMs ?? next.cost.ttftMs) / 1000;
    }
    track.pending = { atS: t + moveS, plan: next };
    return 0;
  }

  /**
   * Serves [from, t1): the old plan until a pending switch lands, then the new one (after the switch pause). Returns
   * the plan's ms/token at the segment's start, for the timeline.
   */
  serve(track: Track, from: number, t1: number, cluster: Cluster): number {
    let t = from;
    const serveUntil = (plan: Plan, until: number) => {
      if (until <= t) return;
      const ms = this.msPerToken(plan, cluster);
      track.summary.tokens += ((until - t) * 1000) / ms;
      track.summary.worstMsPerToken = Math.max(track.summary.worstMsPerToken, ms);
      t = until;
    };
    if (track.pending && track.pending.atS < t1) {
      serveUntil(track.plan, track.pending.atS);
      track.plan = track.pending.plan;
      track.pending = null;
      t += (this.options.switchPauseMs ?? track.plan.cost.ttftMs) / 1000;
    }
    serveUntil(track.plan, t1);
    return this.msPerToken(track.plan, cluster);
  }
}

function emptySummary(): ReplaySummary {
  return { tokens: 0, meanTokPerS: 0, worstMsPerToken: 0, changes: 0, forcedChanges: 0, movedLayers: 0, movingS: 0 };
}
