import type { StepTiming } from '../engine/bench-probe.js';
import { GenerationCancelledError } from '../engine/generate.js';
import type { EmbeddingExecutor, TokenExecutor, ExecutionRequest } from '../engine/token-executor.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PREFIX_BLOCK_TOKENS as PREFIX_BLOCK } from '../engine/prefix-trie.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ErrorFrame, type ReleaseFrame, type TokenFrame } from './activation-frame.js';
import type { ActivationRouter } from './activation-router.js';
import type { PrefixDirectory } from './prefix-directory.js';
import type { PrefixUse } from '../engine/prefix-cache.js';
import type { Route } from './route.js';
import type { MigrationEvent, RecoveryEvent } from './route-change-events.js';
import { openingOf, receiveToken, startRunning, type Running } from './running-request.js';
import { LiveMoves, type LiveMovesOptions } from './live-move.js';
import { coordinatorSwitchLine, wallMs } from './switch-phases.js';
import { RequestEndedError, StageFailedError, StageLostError } from './stage-errors.js';
import { MAX_DRAFT_TOKENS } from '../engine/speculation.js';
import { verificationParts } from './verification-parts.js';

export interface PipelineExecutorOptions {
  router: ActivationRouter;
  /**
   * Route for a request: the current plan (recomputed after membership changes), with its stages loaded, leaving
   * out `exclude` (nodes this request just lost, which membership may not have dropped yet). A node that cannot
   * load its stage is reported as a StageLostError.
   */
  routeFor: (request: ExecutionRequest, exclude: ReadonlySet<string>) => Promise<Route>;
  /** Most token ids per frame (the prompt is chunked above this). */
  maxRowsPerFrame: number;
  log: NodeLogger;
  /** Whether a peer is still a cluster member (a request is not sent into a route with a node already gone). */
  isPeerAlive: (peerId: string) => boolean;
  /**
   * The route of the plan in force, when it can be had without waiting (its stages loaded): a running request on an
   * older route moves to it at a token boundary, live with its KV (adoptKv) or replaying its history, the same text.
   */
  latestRoute?: () => Route | null;
  onMigrate?: (event: MigrationEvent) => void;
  /** Has a node take a moving request's KV for its stage of a new route (live-move.ts); without it every move replays. */
  adoptKv?: LiveMovesOptions['adoptKv'];
  /** Re-plans a request survives before it fails. Default 3. */
  maxRecoveries?: number;
  onStep?: (rid: string, timing: StepTiming) => void;
  onRecovery?: (event: RecoveryEvent) => void;
  /** A request lost a stage and could not be re-routed (`error` is why it ends). */
  onRecoveryFailed?: (requestId: string, lostPeer: string, error: Error) => void;
  /**
   * What the stages of each route keep in their prefix caches: a request opens after the longest prefix they all
   * hold. Without it every request prefills its whole prompt.
   */
  directory?: PrefixDirectory;
}

/**
 * The coordinator's side of the pipeline: a TokenExecutor whose model is the whole ring. It sends the prompt to
 * the first stage, receives each sampled token from the last stage, and feeds it back to the first.
 *
 * It keeps every request's prompt and the tokens generated so far. When a stage's node is lost mid-request it takes
 * the current plan (re-made without that node), replays prompt + generated tokens through the new route as one
 * prefill — which rebuilds every stage's KV cache — and carries on. The last stage's sampler resumes its random
 * sequence where it was, so the client sees one uninterrupted answer, the same one it would have had.
 */
export class PipelineExecutor implements TokenExecutor, EmbeddingExecutor {
  private readonly running = new Map<string, Running>();
  private readonly byWire = new Map<string, Running>();
  private readonly maxRecoveries: number;
  /** Requests that survived a lost stage (for /metrics). */
  recoveries = 0;
  readonly prefixUse: PrefixUse = { hits: 0, cachedTokens: 0, refusals: 0 };
  private readonly live: LiveMoves | null;

  constructor(private readonly opts: PipelineExecutorOptions) {
    this.maxRecoveries = opts.maxRecoveries ?? 3;
    const onFailure = (rid: string, err: Error) => opts.log.warn(`request ${rid}: its KV could not move (${err.message}); replaying its history instead`);
    this.live = opts.adoptKv ? new LiveMoves({ adoptKv: opts.adoptKv, release: (route, wire) => this.releaseOn(route, wire), selfId: opts.router.selfId, onFailure }) : null;
  }

  async begin(request: ExecutionRequest): Promise<number> {
    const run = startRunning(request);
    this.running.set(request.id, run);
    this.byWire.set(run.wireId, run);
    // An abort (client gone) ends the wait for a token at once, even if a stage never answers.
    request.signal?.addEventListener('abort', () => this.failPending(run, new GenerationCancelledError()), { once: true });
    try {
      const [token] = await this.withRecovery(run, async () => {
        run.route = await this.opts.routeFor(request, new Set());
        return [await this.open(run, request.promptTokens)];
      });
      return token;
    } catch (err) {
      await this.end(request.id);
      throw err;
    }
  }

  /**
   * An embedding through the ring: the prompt goes round once as a prefill whose last stage pools instead of
   * sampling. A lost stage is recovered like any request's (the prompt is replayed on the new route).
   */
  async embed(request: ExecutionRequest): Promise<Float32Array> {
    await this.begin({ ...request, embed: true });
    const vector = this.running.get(request.id)?.embedding ?? null;
    await this.end(request.id);
    if (!vector) throw new StageFailedError(this.opts.router.selfId, 'EmbeddingError', 'the last stage answered without an embedding');
    return vector;
  }

  async step(requestId: string, token: number): Promise<number> {
    return (await this.verify(requestId, token, []))[0];
  }

  /**
   * The token and a draft in one step through every stage; the last stage answers with the drafts it accepted and
   * the token after them. The next step's position makes every stage drop the rejected drafts' rows. A request moving
   * to a newer plan by a replay, or replayed after a lost stage, gets one token from the replay instead (the same one).
   */
  async verify(requestId: string, token: number, draft: readonly number[]): Promise<number[]> {
    const run = this.running.get(requestId);
    if (!run) throw new RequestEndedError(`request ${requestId} is not running`);
    run.fed.push(token);
    // A verification's rows fit one frame (sendStep may send them in parts, each smaller).
    const rows = draft.slice(0, Math.min(MAX_DRAFT_TOKENS, this.opts.maxRowsPerFrame - 1));
    const latest = this.opts.latestRoute?.() ?? null;
    if (latest && run.route.peers.length > 0 && latest.planId !== run.route.planId && latest.peers.every((p) => this.opts.isPeerAlive(p))) {
      const move = this.live?.next(run, latest, rows.length === 0) ?? 'replay';
      if (move === 'replay') return this.withRecovery(run, async () => [await this.migrate(run, latest)]);
      if (move === 'switch') return this.withRecovery(run, () => this.switchLive(run, token, rows));
    }
    return this.withRecovery(run, () => this.sendStep(run, token, rows));
  }

  /** A live move's switch: the step goes to the new route while its stages copy the last positions; a failed copy replays. */
  private async switchLive(run: Running, token: number, draft: readonly number[]): Promise<number[]> {
    const t0 = performance.now();
    const decided = wallMs();
    const lastToken = run.tokenAt === null ? null : decided - (t0 - run.tokenAt);
    const [old, oldWire] = [run.route, run.wireId];
    let step: Promise<number[]> | null = null;
    let bytes: number;
    let sent = decided;
    let copied = decided;
    try {
      const moved = this.live!.switchTo(run);
      run.migrations++;
      this.rewire(run, moved.wireId);
      Object.assign(run, { route: moved.route, step: 0, opened: run.request.promptTokens.length + run.fed.length, held: 0 });
      // In one frame: the new route's stages hold this step until their copy is in, and a later part would overtake it.
      step = this.sendStep(run, token, draft, false);
      sent = wallMs();
      bytes = await moved.copied;
      copied = wallMs();
    } catch (err) {
      // No copy to switch to, or its last part failed (the stages lacking it dropped the step): replay instead.
      this.live!.opts.onFailure(run.request.id, err as Error);
      this.failPending(run, err as Error);
      await step?.catch(() => {});
      if (run.wireId !== oldWire) this.releaseOn(old, oldWire);
      return [await this.migrate(run, this.opts.latestRoute?.() ?? old)];
    }
    const switchCopyMs = performance.now() - t0;
    // The old route is freed after the first step on the new one: its stages keep the blocks (prefix cache) meanwhile.
    const tokens = await step.finally(() => this.releaseOn(old, oldWire));
    this.opts.log.debug(coordinatorSwitchLine({ rid: run.wireId, lastToken, decided, sent, copied, token: wallMs() }));
    this.opts.onMigrate?.({ requestId: run.request.id, oldPlan: old.planId, newPlan: run.route.planId, replayedTokens: 0, copiedBytes: bytes, switchCopyMs, ms: performance.now() - t0 });
    return tokens;
  }

  /** Moves a running request to `route` at a token boundary: frees the old route, replays the history on the new. */
  private async migrate(run: Running, route: Route): Promise<number> {
    const t0 = performance.now();
    const old = run.route;
    this.releaseOn(run.route, run.wireId);
    run.migrations++;
    this.rewire(run, `${run.request.id}.m${run.migrations}`);
    run.route = route;
    run.step = 0;
    run.pos = 0;
    const history = [...run.request.promptTokens, ...run.fed];
    const token = await this.open(run, history);
    this.opts.onMigrate?.({ requestId: run.request.id, oldPlan: old.planId, newPlan: route.planId, replayedTokens: history.length, copiedBytes: 0, ms: performance.now() - t0 });
    return token;
  }

  async end(requestId: string): Promise<void> {
    const run = this.running.get(requestId);
    if (!run) return;
    this.running.delete(requestId);
    this.byWire.delete(run.wireId);
    this.live?.abandon(requestId);
    // Positions computed on every stage: those sent, but the last one's only once its token came back.
    const computed = run.pending ? run.pos - 1 : run.pos;
    run.pending?.reject(new RequestEndedError(`request ${requestId} ended`));
    run.pending = null;
    // Release travels the same streams as the activations, so it reaches each stage after the request's last frame.
    if (run.route.peers.length > 0) {
      const history = [...run.request.promptTokens, ...run.fed];
      // Each stage keeps the blocks of what it computed; when they all kept the whole prompt (so their caches are on
      // and have room), they keep the rest too.
      const keptPrompt = run.held > 0 && run.held >= Math.floor(run.opened / PREFIX_BLOCK) * PREFIX_BLOCK;
      if (this.opts.directory && !run.request.embed && keptPrompt) this.opts.directory.record(run.route, history, computed);
      const release: ReleaseFrame = { t: 'release', v: ACTIVATION_FRAME_VERSION, rid: run.wireId, stage: 0 };
      if (!run.request.embed && history.length > run.opened) release.tokens = Int32Array.from(history.slice(run.opened));
      await this.opts.router.send(run.route.peers[0], release).catch(() => {});
    }
  }

  /** Frees what the stages of `route` hold under wire id `rid`. */
  private releaseOn(route: Route, rid: string): void {
    route.peers.forEach((peer, stage) => {
      this.opts.router.send(peer, { t: 'release', v: ACTIVATION_FRAME_VERSION, rid, stage }).catch(() => {});
    });
  }

  /** A new wire id for the request: frames of its former incarnation are ignored from now on. */
  private rewire(run: Running, wireId: string): void {
    this.byWire.delete(run.wireId);
    run.wireId = wireId;
    this.byWire.set(run.wireId, run);
  }

  /** Called by the node for token and error frames addressed to this coordinator. */
  onFrame(frame: TokenFrame | ErrorFrame): void {
    const run = this.byWire.get(frame.rid);
    if (!run || !run.pending) return;
    const p = run.pending;
    if (frame.t === 'error') {
      run.pending = null;
      // A stage that cannot reach the next one reports it as lost (`from` is the unreachable node).
      p.reject(frame.name === 'StageLostError' ? new StageLostError(frame.from, 'could not be reached from the previous stage') : new StageFailedError(frame.from, frame.name, frame.message, frame.held));
      return;
    }
    if (frame.step !== p.step) return;
    run.pending = null;
    p.resolve(receiveToken(run, p, frame, this.opts.onStep));
  }

  /** A node left: every running request routed through it is replayed on a new route. */
  peerLost(peerId: string): string[] {
    const affected: string[] = [];
    for (const run of this.running.values()) {
      if (run.route.peers.includes(peerId) && run.pending) {
        affected.push(run.request.id);
        const p = run.pending;
        run.pending = null;
        p.reject(new StageLostError(peerId));
      }
    }
    return affected;
  }

  /** Timings of a running request so far. */
  timings(requestId: string): StepTiming[] {
    return this.running.get(requestId)?.timings ?? [];
  }

  routeOf(requestId: string): Route | undefined {
    return this.running.get(requestId)?.route;
  }

  get activeRequests(): number {
    return this.running.size;
  }

  /** Runs one attempt; if a stage was lost, re-routes the request, replays it, and returns the replay's token. */
  private async withRecovery(run: Running, attempt: () => Promise<number[]>): Promise<number[]> {
    const lost = new Set<string>();
    for (;;) {
      try {
        const tokens = await attempt();
        run.received += tokens.length;
        return tokens;
      } catch (err) {
        if (!(err instanceof StageLostError) || !this.running.has(run.request.id) || run.recoveries >= this.maxRecoveries) {
          // A recovery was under way (or the stage was lost once too often): the request ends here.
          const lostPeer = err instanceof StageLostError ? err.peerId : [...lost].at(-1);
          if (lostPeer !== undefined && this.running.has(run.request.id) && !(err instanceof GenerationCancelledError)) {
            this.opts.log.error(`request ${run.request.id}: lost stage node ${lostPeer.slice(-8)} and cannot carry on: ${(err as Error).message}`);
            this.opts.onRecoveryFailed?.(run.request.id, lostPeer, err as Error);
          }
          throw err;
        }
        lost.add(err.peerId);
        const t0 = performance.now();
        const oldPlan = run.route.planId;
        const history = [...run.request.promptTokens, ...run.fed];
        attempt = async () => {
          await this.reroute(run, lost);
          this.opts.log.warn(`request ${run.request.id}: ${err.message}; replaying ${history.length} tokens on plan ${run.route.planId}`);
          const token = await this.open(run, history);
          this.opts.onRecovery?.({
            requestId: run.request.id,
            lostPeer: err.peerId,
            oldPlan,
            newPlan: run.route.planId,
            replayedTokens: history.length,
            recoveryMs: performance.now() - t0,
          });
          return [token];
        };
      }
    }
  }

  private async reroute(run: Running, lost: ReadonlySet<string>): Promise<void> {
    run.recoveries++;
    this.recoveries++;
    // Free what the surviving stages of the old route still hold for this request (none if it never had one).
    this.releaseOn(run.route, run.wireId);
    this.rewire(run, `${run.request.id}.r${run.recoveries}`);
    run.route = await this.opts.routeFor(run.request, lost);
    run.step = 0;
    run.pos = 0;
  }

  /**
   * Opens the request on its route with `tokens` as its prompt (the prompt, or the history replayed) and waits for
   * the token it samples: after the longest prefix the route's stages hold in their prefix caches, computing only
   * the rest; if a stage no longer holds it, again with a full prefill.
   */
  private async open(run: Running, tokens: readonly number[]): Promise<number> {
    const directory = this.opts.directory;
    let prefix = directory && !run.request.embed && run.request.prefixCache !== false ? directory.lookup(run.route, tokens) : 0;
    for (;;) {
      try {
        const token = await this.openAt(run, tokens, prefix);
        if (prefix > 0) {
          this.prefixUse.hits++;
          this.prefixUse.cachedTokens += prefix;
        }
        run.request.onCachedTokens?.(prefix);
        if (directory && !run.request.embed && run.held > 0) directory.record(run.route, tokens, run.held);
        return token;
      } catch (err) {
        if (prefix === 0 || !(err instanceof StageFailedError) || err.remoteName !== 'PrefixMissError' || !this.running.has(run.request.id)) throw err;
        // Evicted since the directory heard of it: forget what that stage lacks and open again after what the
        // route still holds by the directory — less each time, down to the whole prompt, so this ends.
        const held = err.held ?? 0;
        directory!.forget(run.route, tokens, held);
        const next = Math.min(directory!.lookup(run.route, tokens), held, prefix - 1);
        this.prefixUse.refusals++;
        this.opts.log.info(`request ${run.request.id}: stage ${err.stage.slice(-8)} holds ${held} of ${prefix} cached positions; prefilling ${tokens.length - next} of ${tokens.length}`);
        this.releaseOn(run.route, run.wireId);
        this.rewire(run, `${run.request.id}.p${this.prefixUse.refusals}`);
        prefix = Math.max(0, next - (next % PREFIX_BLOCK));
      }
    }
  }

  /** Sends an opening prefill of `tokens` from position `prefix` (the stages copy the rest) and waits for its token. */
  private async openAt(run: Running, tokens: readonly number[], prefix: number): Promise<number> {
    const { route } = run;
    const ids = Int32Array.from(tokens);
    run.opened = tokens.length;
    run.held = 0;
    run.step = 0;
    run.tokenAt = null; // a (re)opened route starts with a prefill step, which has no coordinator gap before it
    const first = this.awaitToken(run, 0).then(([token]) => token);
    const rows = this.opts.maxRowsPerFrame;
    try {
      for (let r = prefix; r < ids.length; r += rows) {
        const n = Math.min(rows, ids.length - r);
        const frame: ActFrame = { t: 'act', v: ACTIVATION_FRAME_VERSION, rid: run.wireId, stage: 0, step: 0, pos: r, n, final: r + n >= ids.length, tokens: ids.subarray(r, r + n) };
        if (r === prefix) frame.open = openingOf(run, route, tokens, this.opts.router.selfId, prefix);
        await this.opts.router.send(route.peers[0], frame);
      }
    } catch (err) {
      this.failPending(run, new StageLostError(route.peers[0], `could not be reached (${(err as Error).message})`));
    }
    run.pos = ids.length;
    return first;
  }

  /** One decode step: the token (and a draft to verify) from the cache's end; resolves with the tokens sampled. */
  private async sendStep(run: Running, token: number, draft: readonly number[], inParts = true): Promise<number[]> {
    run.step++;
    const tokens = Int32Array.from([token, ...draft]);
    const drafted = draft.length > 0 ? Int32Array.from(draft) : null;
    const parts = drafted && inParts ? verificationParts(tokens.length, run.route.peers.length) : [tokens.length];
    const frames: ActFrame[] = [];
    for (let at = 0, i = 0; i < parts.length; at += parts[i++]) {
      const n = parts[i];
      const frame: ActFrame = { t: 'act', v: ACTIVATION_FRAME_VERSION, rid: run.wireId, stage: 0, step: run.step, pos: run.pos + at, n, final: at + n === tokens.length, tokens: tokens.subarray(at, at + n) };
      if (drafted) frame.draft = drafted;
      if (at > 0) frame.rowsBefore = at;
      frames.push(frame);
    }
    const next = this.awaitToken(run, run.step, frames.length);
    // The token's row is computed whatever the verdict; the drafts' only count once accepted.
    run.pos++;
    const first = run.route.peers[0];
    void (async () => {
      for (const frame of frames) await this.opts.router.send(first, frame);
    })().catch((err: Error) => this.failPending(run, new StageLostError(first, `could not be reached (${err.message})`)));
    const sampled = await next;
    if (sampled.length > draft.length + 1 || sampled.slice(0, -1).some((t, i) => t !== draft[i])) {
      throw new StageFailedError(run.route.peers.at(-1)!, 'VerificationError', `answered a draft of ${draft.length} with tokens that do not extend it`);
    }
    // Accepted drafts are fed: their rows stay on every stage, and the next step starts after them.
    run.fed.push(...sampled.slice(0, -1));
    run.pos += sampled.length - 1;
    return sampled;
  }

  /** The step's token(s), once they come back; `parts`: frames the step goes in (a verification in parts). */
  private awaitToken(run: Running, step: number, parts = 1): Promise<number[]> {
    const promise = new Promise<number[]>((resolve, reject) => {
      const sentAt = performance.now();
      run.pending = { resolve, reject, sentAt, coordinatorMs: run.tokenAt === null ? 0 : sentAt - run.tokenAt, step };
      if (parts > 1) run.pending.parts = parts;
    });
    // A node may have left between two steps, when no token was awaited: fail now rather than wait forever.
    const gone = run.route.peers.find((p) => !this.opts.isPeerAlive(p));
    if (gone) queueMicrotask(() => this.failPending(run, new StageLostError(gone)));
    return promise;
  }

  private failPending(run: Running, err: Error): void {
    const p = run.pending;
    if (!p) return;
    run.pending = null;
    p.reject(err);
  }
}
