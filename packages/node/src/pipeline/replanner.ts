import { moveCostMs, movedLayers, type ModelProfile, type Plan, type ReplanPolicy } from '@edge-node/partitioner';
import type { DeviceLoad } from '../cluster/device-load.js';
import type { ClusterMember, Membership } from '../cluster/membership.js';
import type { KvCacheType } from '../engine/kv-cache.js';
import type { ModelFile } from '../model/model-file.js';
import { storedBytesPerWeight } from '../model/stored-bytes-per-weight.js';
import type { NodeLogger } from '../network/node-logger.js';
import { clusterOf, computeClusterPlan, type ClusterPlan } from './cluster-plan.js';
import { movesRunning, type MovePricing } from './move-price.js';
import { changeCauses, loadWithin, quietestLoads, weighChange, type Restorable, type Weighing } from './plan-adaptation.js';
import { announcedSplit } from './plan-owner.js';
import { PlanHistory, describeCause, describeMoves, type PlanChange } from './plan-history.js';
import type { Route } from './route.js';
import type { StageControl } from './stage-control.js';


/** Shape of the requests plans are made for. */
const PLAN_REQUEST = { promptTokens: 128, genTokens: 128 };

export interface ReplannerOptions {
  selfId: string;
  membership: Membership;
  log: NodeLogger;
  model: ModelFile;
  kvCache: KvCacheType;
  fingerprint: string;
  /** The id of the LoRA adapter this coordinator's stages apply (its routes carry it). */
  lora?: string;
  /** The model's shape as the partitioner prices it. */
  profile: ModelProfile;
  contextLength: number;
  /** Requests the plan reserves KV memory for. */
  concurrency: number;
  /** Has the stages of a plan load their layers, and those a plan leaves out drop theirs. */
  control: StageControl;
  onPlan?: (plan: ClusterPlan) => void;
  onPlanChange?: (change: PlanChange) => void;
  /** When load changes are worth a new plan (threshold, payback, hysteresis). */
  replanPolicy?: ReplanPolicy;
  /** Rate at which a node loads layers it did not hold, for the cost of a move (MB/s). Default 200. */
  loadMBps?: number;
  /** Running requests move with their KV (live-move.ts), so a move costs them a switch, not a replay. Default false. */
  liveMoves?: boolean;
}

/** What a member announced that decides who takes part in a plan and how: its model and any --split. */
const announced = (m: ClusterMember): string | undefined => (m.stageInfo?.model === undefined ? undefined : `${m.stageInfo.model}|${announcedSplit(m)?.join(',') ?? ''}`);

/**
 * The coordinator's plan in force: made from membership when it changes (at the next request, or at once without
 * a node a request just lost), changed by adapt() when devices' loads make another plan worth the move, and changed
 * back once the devices that caused it are quiet again; every change with its reason in `history`.
 */
export class Replanner {
  private plan: ClusterPlan | null = null;
  /** Why the last planning attempt failed (null once a plan works). */
  planError: string | null = null;
  private planning: Promise<ClusterPlan> | null = null;
  private membersChanged = true;
  /** The last plan changes with their reasons. */
  readonly history = new PlanHistory();
  /** Why the plan in force was kept at the last check (or changed). */
  lastDecision = '';
  /** The plan in force priced with the devices' figures at the last check (ms/token), or null before one. */
  predictedNowMs: number | null = null;
  /** Rate at which stages loaded moved layers in the last re-plans (MB/s): the cost of the next move. */
  private loadMBps: number;
  private adapting = false;
  /**
   * Running requests move to this route at their next token (null: they finish on their own). A load-driven change
   * moves them only when the gain pays back their pause within MIGRATION_PAYBACK_TOKENS (move-price.ts: a live move's
   * switch, or a replay's prefill), and
   * always when the plan in force no longer fits; a change of membership does not move them.
   */
  private moveRunningTo: Route | null = null;
  private lastChangeAt = 0;
  /** What live switches took lately (ms; null before the first). */
  private switchMs: number | null = null;
  /** Devices' loads when the plan in force was made (to say what changed). */
  private loadsAtPlan = new Map<string, DeviceLoad | null>();
  /** Model (and --split) each member announced (a change of it re-plans at once, unlike a change of load). */
  private readonly announcedModel = new Map<string, string | undefined>();
  private restorable: Restorable | null = null;

  constructor(private readonly opts: ReplannerOptions) {
    this.loadMBps = opts.loadMBps ?? 200;
  }

  /** A member joined: plan again at the next request. */
  memberJoined(member: ClusterMember): void {
    this.announcedModel.set(member.peerId, announced(member));
    this.membersChanged = true;
  }

  /** A member announced something: a node that loads or drops the model, or changes its --split, re-plans at the next request. */
  memberUpdated(member: ClusterMember): void {
    // A change of load, profile or links goes through adapt(), which changes the plan only when it pays.
    if (this.announcedModel.get(member.peerId) !== announced(member)) this.membersChanged = true;
    this.announcedModel.set(member.peerId, announced(member));
  }

  memberLeft(peerId: string): void {
    this.membersChanged = true;
    this.announcedModel.delete(peerId);
  }

  /** The plan in force, without recomputing. */
  get activePlan(): ClusterPlan | null {
    return this.plan;
  }

  /** The route running requests move to at their next token, when it can be had without waiting. */
  latestRoute(): Route | null {
    return this.planning ? null : this.moveRunningTo;
  }

  /** The plan new requests use (recomputed if the membership changed since it was made). */
  async currentPlan(): Promise<ClusterPlan> {
    if (this.plan && !this.membersChanged) return this.plan;
    this.planning ??= this.replan().finally(() => (this.planning = null));
    return this.planning;
  }

  /** A request's route; mid-request after a loss, a plan without the lost nodes now, even if membership has not dropped them yet. */
  async routeFor(exclude: ReadonlySet<string>): Promise<Route> {
    if (exclude.size === 0) return (await this.currentPlan()).route;
    this.membersChanged = true;
    return (await this.replan(exclude)).route;
  }

  private async replan(exclude: ReadonlySet<string> = new Set()): Promise<ClusterPlan> {
    this.membersChanged = false;
    let next: ClusterPlan;
    try {
      next = this.compute(this.everyMember().filter((member) => !exclude.has(member.peerId)), this.plan?.plan);
    } catch (err) {
      // The cluster cannot serve (e.g. the model no longer fits): say so in /v1/cluster until a plan works again.
      this.planError = (err as Error).message;
      this.membersChanged = true;
      this.opts.log.error(`no plan: ${this.planError}`);
      throw err;
    }
    this.planError = null;
    if (next.id !== this.plan?.id) {
      const t0 = performance.now();
      await Promise.all(next.stages.map((s) => this.opts.control.load(s.peerId, s.startLayer, s.endLayer)));
      const loadMs = performance.now() - t0;
      this.opts.log.info(`plan: ${describeStages(next)} (${next.owner ? `${next.owner.why}; ` : ''}${next.plan.strategy}; predicted ${next.plan.cost.tokenLatencyMs.toFixed(1)} ms/token; stages loaded in ${loadMs.toFixed(0)} ms)`);
      this.logLeftOut(next);
      if (this.plan) {
        this.record(this.plan, next, exclude.size > 0 ? 'a stage node was lost' : 'cluster membership changed', loadMs, this.plan.plan.cost.tokenLatencyMs);
        this.dropLeftOut(this.plan, next);
      }
      this.restorable = null;
    }
    // A join leaves running requests on their routes (they are whole); after a loss they recover on their own.
    this.adopt(next, false);
    return next;
  }

  /** The partitioner's plan for `members` (or the --split in force: this node's own or the plan owner's). */
  private compute(members: ClusterMember[], previous: Plan | undefined): ClusterPlan {
    return computeClusterPlan({
      members,
      config: this.opts.model.config,
      // Priced as stored (the node's KV type too), or a move would compare two different models.
      bytesPerWeight: storedBytesPerWeight(this.opts.model),
      kvCache: this.opts.kvCache,
      modelFingerprint: this.opts.fingerprint,
      ...(this.opts.lora !== undefined ? { lora: this.opts.lora } : {}),
      self: this.opts.selfId,
      request: this.planRequest(),
      ...(previous ? { previous } : {}),
    });
  }

  /** Makes `next` the plan in force (running requests move to it at their next token). */
  private adopt(next: ClusterPlan, moveRunning = true): void {
    this.plan = next;
    this.moveRunningTo = moveRunning ? next.route : null;
    this.loadsAtPlan = new Map(this.everyMember().map((m) => [m.peerId, m.load]));
    this.opts.onPlan?.(next);
  }

  /**
   * The coordinator's check, every second: priced with the devices' figures of now, does another plan beat the one
   * in force by enough to pay for moving layers (or is it time to go back)? If so, the new stages load their layers
   * while the old route keeps serving; then the new plan takes over and running requests move to it at their next token.
   */
  async adapt(): Promise<PlanChange | null> {
    const current = this.plan;
    // A split given by hand (here or on the plan owner) stays as given.
    if (this.adapting || this.planning || this.membersChanged || !current || current.owner?.split) return null;
    this.adapting = true;
    try {
      const members = this.everyMember().filter((m) => m.stageInfo?.model === this.opts.fingerprint);
      let candidate: ClusterPlan;
      try {
        candidate = this.compute(members, current.plan);
      } catch (err) {
        this.lastDecision = `no plan fits the devices' figures of now: ${(err as Error).message}`;
        return null;
      }
      this.loadsAtPlan = quietestLoads(this.loadsAtPlan, members);
      const situation = { current, members, profile: this.opts.profile, request: this.planRequest(), loadMBps: this.loadMBps, sinceLastChangeMs: Date.now() - this.lastChangeAt, restorable: this.restorable };
      const w = weighChange(this.opts.replanPolicy ? { ...situation, policy: this.opts.replanPolicy } : situation, candidate);
      if (!w) return null;
      this.predictedNowMs = w.nowMs;
      this.lastDecision = w.decision.reason;
      return w.decision.replan ? await this.change(current, w, members) : null;
    } finally {
      this.adapting = false;
    }
  }

  /** Moves to the weighed candidate once its stages have loaded (the old route serves meanwhile). */
  private async change(current: ClusterPlan, w: Weighing, members: ClusterMember[]): Promise<PlanChange | null> {
    const { candidate } = w;
    const cause = describeCause(Date.now(), members.map((m) => ({ peerId: m.peerId, name: m.name, load: m.load })), this.loadsAtPlan);
    const t0 = performance.now();
    if (!(await this.loadCandidate(current, w))) return null;
    if (this.plan !== current) return null; // membership re-planned meanwhile
    const loadMs = performance.now() - t0;
    this.noteLoadRate(current.plan, candidate.plan, loadMs);
    const loadsBefore = this.loadsAtPlan;
    this.dropLeftOut(current, candidate);
    const change = this.record(current, candidate, cause, loadMs, w.nowMs);
    this.predictedNowMs = candidate.plan.cost.tokenLatencyMs;
    const gainMs = w.nowMs - candidate.plan.cost.tokenLatencyMs;
    this.adopt(candidate, !w.nowFits || movesRunning(gainMs, this.pricing(candidate)));
    if (w.restoring) this.restorable = null;
    else if (!this.restorable) {
      // Remember what to go back to once the devices that caused this change are quiet again.
      const causes = changeCauses(members, loadsBefore);
      if (causes.length > 0) this.restorable = { former: current, loads: loadsBefore, causes };
    }
    this.opts.log.info(`re-plan: ${change.reason} (${w.decision.reason}); plan ${describeStages(candidate)}, layers loaded in ${loadMs.toFixed(0)} ms`);
    this.logLeftOut(candidate);
    return change;
  }

  /** The candidate's stages load within the patience; past it, the change is dropped and decided again with fresher figures. */
  private async loadCandidate(current: ClusterPlan, w: Weighing): Promise<boolean> {
    const control = this.opts.control;
    try {
      // A late load must not pin layers on a node the plan in force does not use.
      const late = (s: ClusterPlan['stages'][number]) => {
        if (!this.plan?.stages.some((x) => x.peerId === s.peerId)) control.drop(s.peerId, s.name);
      };
      if (await loadWithin(w.candidate.stages, (s) => control.load(s.peerId, s.startLayer, s.endLayer), w.patienceMs, late)) return true;
      // The stages keep the ranges of the plan in force (they are loaded: this only marks them current again).
      for (const st of current.stages) void control.load(st.peerId, st.startLayer, st.endLayer).catch(() => {});
      this.lastDecision = `re-plan abandoned: its stages did not load within ${(w.patienceMs / 1000).toFixed(1)} s`;
      this.opts.log.warn(`${this.lastDecision} (${w.candidate.id}); deciding again`);
      return false;
    } catch (err) {
      this.opts.log.warn(`re-plan abandoned, a stage could not load its layers: ${(err as Error).message}`);
      return false;
    }
  }

  private record(before: ClusterPlan, after: ClusterPlan, cause: string, loadMs: number, predictedBeforeMs: number): PlanChange {
    const now = Date.now();
    const moves = describeMoves(before.stages, after.stages);
    const predictedAfterMs = after.plan.cost.tokenLatencyMs;
    const change: PlanChange = {
      at: now,
      from: before.id,
      to: after.id,
      cause,
      moves,
      movedLayers: movedLayers(before.plan, after.plan),
      predictedBeforeMs,
      predictedAfterMs,
      loadMs,
      reason: `${cause}; ${moves}; predicted ${predictedBeforeMs.toFixed(1)} → ${predictedAfterMs.toFixed(1)} ms/token`,
    };
    this.history.add(change);
    this.lastChangeAt = now;
    this.opts.onPlanChange?.(change);
    return change;
  }

  /** Learns the rate at which this cluster's stages load layers (the slowest stage of a move decides). */
  private noteLoadRate(before: Plan, after: Plan, loadMs: number): void {
    const predictedMs = moveCostMs(before, after, this.opts.profile, 1); // at 1 MB/s: equals the megabytes moved
    if (predictedMs <= 0 || loadMs < 50) return;
    const observed = Math.min(2000, Math.max(5, predictedMs / loadMs));
    this.loadMBps = 0.5 * this.loadMBps + 0.5 * observed;
  }

  /** Tells the nodes of `before` that `after` leaves out to free what they held for this coordinator. */
  private dropLeftOut(before: ClusterPlan, after: ClusterPlan): void {
    const kept = new Set(after.stages.map((s) => s.peerId));
    for (const s of before.stages) if (!kept.has(s.peerId)) this.opts.control.drop(s.peerId, s.name);
  }

  private logLeftOut(plan: ClusterPlan): void {
    for (const e of plan.plan.excluded) this.opts.log.info(`plan leaves out ${this.nameOf(e.device)}: ${e.reason}`);
  }

  /** A member's name for the log (its peer id's tail when it is gone). */
  private nameOf(peerId: string): string {
    return this.everyMember().find((m) => m.peerId === peerId)?.name ?? peerId.slice(-8);
  }

  /** A live move's switch took `ms` (to the first token on the new route): the next moves are priced with it. */
  noteSwitch(ms: number): void {
    this.switchMs = this.switchMs === null ? ms : 0.7 * this.switchMs + 0.3 * ms;
  }

  /** What moving a running request to `candidate` is priced with now. */
  private pricing(candidate: ClusterPlan): MovePricing {
    const links = clusterOf(this.everyMember()).links.map((l) => l.bandwidthMBps);
    return {
      live: this.opts.liveMoves === true,
      profile: this.opts.profile,
      linkMBps: links.length > 0 ? Math.min(...links) : 100,
      switchMs: this.switchMs ?? candidate.plan.cost.tokenLatencyMs,
      replayMs: candidate.plan.cost.ttftMs,
    };
  }

  private everyMember(): ClusterMember[] {
    const m = this.opts.membership;
    return [m.self(), ...m.members()];
  }

  private planRequest() {
    return { ...PLAN_REQUEST, contextTokens: this.opts.contextLength, concurrency: this.opts.concurrency };
  }
}

/** "a [0, 2) → b [2, 4)": a plan's stages for the log. */
function describeStages(plan: ClusterPlan): string {
  return plan.stages.map((s) => `${s.name} [${s.startLayer}, ${s.endLayer})`).join(' → ');
}
