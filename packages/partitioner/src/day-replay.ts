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
  const loadMBps = options.loadMBps ?? 200;
  const sorted = [...changes].sort((a, b) => a.atS - b.atS);
  const clusterAt = (t: number): Cluster => {
    const state = new Map<string, AvailabilityChange>();
    for (const c of sorted) if (c.atS <= t) state.set(c.device, c);
    const devices: Device[] = [];
    for (const d of base.devices) {
      const c = state.get(d.id);
      if (c && c.present === false) continue;
      const slow = Math.max(1, c?.slowdown ?? 1);
      devices.push({
        ...d,
        gflops: d.gflops / slow,
        ...(d.gflopsPrefill !== undefined ? { gflopsPrefill: d.gflopsPrefill / slow } : {}),
        memBandwidthGBps: d.memBandwidthGBps / slow,
        memoryBytes: c?.memoryBytes ?? d.memoryBytes,
      });
    }
    return { ...base, devices };
  };
  const statesAt = (t: number): Map<string, DeviceState> => {
    const c = clusterAt(t);
    const out = new Map<string, DeviceState>();
    for (const d of base.devices) {
      const now = c.devices.find((x) => x.id === d.id);
      out.set(d.id, now ? { slowdown: d.gflops / now.gflops, memoryBytes: now.memoryBytes } : { slowdown: Infinity, memoryBytes: 0 });
    }
    return out;
  };
  const first = planPipeline(profile, clusterAt(0), request);
  const emptySummary = (): ReplaySummary => ({ tokens: 0, meanTokPerS: 0, worstMsPerToken: 0, changes: 0, forcedChanges: 0, movedLayers: 0, movingS: 0 });
  const tracks: Record<'static' | 'adaptive', Track> = {
    static: { plan: first, pending: null, restorable: null, states: statesAt(0), lastChangeS: -Infinity, summary: emptySummary() },
    adaptive: { plan: first, pending: null, restorable: null, states: statesAt(0), lastChangeS: -Infinity, summary: emptySummary() },
  };
  const log: ReplayChange[] = [];
  const timeline: DayReplayResult['timeline'] = [];
  const boundaries = new Set<number>([0, duration]);
  for (const c of sorted) {
    if (c.atS < duration) boundaries.add(c.atS);
    if (c.atS + notice < duration) boundaries.add(c.atS + notice);
  }
  const noticeTimes = new Set(sorted.map((c) => c.atS + notice));
  const times = [...boundaries].sort((a, b) => a - b);

  const switchTo = (name: 'static' | 'adaptive', track: Track, t: number, next: Plan, reason: string, forced: boolean, cluster: Cluster, restoring = false) => {
    const moved = movedLayers(track.plan, next);
    const states = statesAt(t);
    const moveS = moveCostMs(track.plan, next, profile, loadMBps, (d) => states.get(d)?.slowdown ?? 1) / 1000;
    if (restoring || forced) track.restorable = null;
    else if (!track.restorable) {
      const causes = [...states].filter(([id, st]) => st.slowdown > (track.states.get(id)?.slowdown ?? 1) || st.memoryBytes < (track.states.get(id)?.memoryBytes ?? Infinity)).map(([id]) => id);
      if (causes.length > 0) track.restorable = { former: track.plan, states: track.states, causes };
    }
    track.states = states;
    const before = repricePlan(track.plan, profile, cluster, request).cost?.tokenLatencyMs ?? Infinity;
    log.push({ atS: t, strategy: name, reason, movedLayers: moved, fromMsPerToken: before, toMsPerToken: next.cost.tokenLatencyMs });
    track.summary.changes++;
    if (forced) track.summary.forcedChanges++;
    track.summary.movedLayers += moved;
    track.summary.movingS += moveS;
    track.lastChangeS = t;
    // A forced change cannot keep serving on the old plan: it stalls for the move. A chosen one loads first.
    if (forced) {
      track.plan = next;
      track.states = states;
      return moveS + (options.switchPauseMs ?? next.cost.ttftMs) / 1000;
    }
    track.pending = { atS: t + moveS, plan: next };
    return 0;
  };

  for (let i = 0; i + 1 < times.length; i++) {
    let t0 = times[i];
    const t1 = times[i + 1];
    const cluster = clusterAt(t0);
    const row = { atS: t0, staticMsPerToken: 0, adaptiveMsPerToken: 0 };
    for (const name of ['static', 'adaptive'] as const) {
      const track = tracks[name];
      let stall = 0;
      const now = repricePlan(track.plan, profile, cluster, request);
      if (!now.cost || !now.fitsInMemory) {
        track.pending = null;
        const next = planPipeline(profile, cluster, request, { previous: track.plan });
        stall = switchTo(name, track, t0, next, !now.cost ? 'a device of the plan is gone' : 'the plan no longer fits in memory', true, cluster);
      } else if (name === 'adaptive' && noticeTimes.has(t0)) {
        const candidate = planPipeline(profile, cluster, request, { previous: track.plan });
        const decision = decideReplan(
          {
            currentMs: now.cost.tokenLatencyMs,
            currentFits: now.fitsInMemory,
            candidateMs: candidate.cost.tokenLatencyMs,
            movedLayers: movedLayers(track.plan, candidate),
            moveMs: moveCostMs(track.plan, candidate, profile, loadMBps, (d) => statesAt(t0).get(d)?.slowdown ?? 1),
            sinceLastChangeMs: (t0 - track.lastChangeS) * 1000,
          },
          options.policy,
        );
        if (decision.replan) switchTo(name, track, t0, candidate, decision.reason, false, cluster);
        else if (track.restorable) {
          // Once the devices that caused the last change are back as they were, go back to the former plan.
          const { former, states, causes } = track.restorable;
          const nowStates = statesAt(t0);
          const causeCleared = causes.every((id) => (nowStates.get(id)?.slowdown ?? 1) <= (states.get(id)?.slowdown ?? 1) && (nowStates.get(id)?.memoryBytes ?? 0) >= (states.get(id)?.memoryBytes ?? 0));
          const back = repricePlan(former, profile, cluster, request);
          const restore = decideRestore(
            { currentMs: now.cost.tokenLatencyMs, formerMs: back.cost?.tokenLatencyMs ?? Infinity, formerFits: back.cost !== null && back.fitsInMemory, causeCleared, sinceLastChangeMs: (t0 - track.lastChangeS) * 1000 },
            options.policy,
          );
          if (restore.replan) switchTo(name, track, t0, { ...former, cost: back.cost! }, restore.reason, false, cluster, true);
        }
      }
      // Serve the segment: old plan until a pending switch lands, then the new one (after the switch pause).
      let t = t0 + stall;
      const serve = (plan: Plan, until: number) => {
        if (until <= t) return;
        const ms = repricePlan(plan, profile, cluster, request).cost?.tokenLatencyMs ?? Infinity;
        track.summary.tokens += ((until - t) * 1000) / ms;
        track.summary.worstMsPerToken = Math.max(track.summary.worstMsPerToken, ms);
        t = until;
      };
      if (track.pending && track.pending.atS < t1) {
        serve(track.plan, track.pending.atS);
        track.plan = track.pending.plan;
        track.pending = null;
        t += (options.switchPauseMs ?? track.plan.cost.ttftMs) / 1000;
      }
      serve(track.plan, t1);
      row[name === 'static' ? 'staticMsPerToken' : 'adaptiveMsPerToken'] = repricePlan(track.plan, profile, cluster, request).cost?.tokenLatencyMs ?? Infinity;
    }
    timeline.push(row);
    t0 = t1;
  }
  for (const track of Object.values(tracks)) track.summary.meanTokPerS = track.summary.tokens / duration;
  return { static: tracks.static.summary, adaptive: tracks.adaptive.summary, changes: log, timeline };
}
