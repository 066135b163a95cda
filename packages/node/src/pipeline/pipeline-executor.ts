import type { TokenExecutor, ExecutionRequest } from '../engine/token-executor.js';
import { ACTIVATION_FRAME_VERSION, type ActFrame, type ErrorFrame, type TokenFrame } from './activation-frame.js';
import type { ActivationRouter } from './activation-router.js';

/** The stages a request runs through: peer ids in ring order and their layer ranges. */
export interface Route {
  /** Identifies the plan the route came from (for logs and metrics). */
  planId: string;
  peers: string[];
  ranges: [number, number][];
  model: string;
}

/** A stage reported an error for this request (its message is the stage's). */
export class StageFailedError extends Error {
  override name = 'StageFailedError';
  constructor(
    readonly stage: string,
    readonly remoteName: string,
    message: string,
  ) {
    super(`stage ${stage.slice(-8)} failed: ${remoteName}: ${message}`);
  }
}

/** A node of the route left while the request was running. */
export class StageLostError extends Error {
  override name = 'StageLostError';
  constructor(readonly peerId: string) {
    super(`stage node ${peerId.slice(-8)} left the cluster mid-request`);
  }
}

/** Per-step timing of the pipeline, as reported by the stages. */
export interface StepTiming {
  step: number;
  /** Coordinator's wall time from sending the step to receiving its token. */
  roundTripMs: number;
  /** Compute ms per stage, in route order. */
  stageMs: number[];
}

interface Pending {
  resolve: (token: number) => void;
  reject: (err: Error) => void;
  sentAt: number;
  step: number;
}

interface Running {
  route: Route;
  step: number;
  /** Position the next frame starts at (prompt length + tokens fed back so far). */
  pos: number;
  pending: Pending | null;
  timings: StepTiming[];
}

/**
 * The coordinator's side of the pipeline: a TokenExecutor whose model is the whole ring. It sends the prompt to
 * the first stage, receives each sampled token from the last stage, and feeds it back to the first.
 */
export class PipelineExecutor implements TokenExecutor {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly router: ActivationRouter,
    /** Route for a new request (plans, loads stages). */
    private readonly routeFor: (request: ExecutionRequest) => Promise<Route>,
    /** Most token ids per frame (the prompt is chunked above this). */
    private readonly maxRowsPerFrame: number,
    private readonly onStep?: (rid: string, timing: StepTiming) => void,
  ) {}

  async begin(request: ExecutionRequest): Promise<number> {
    const route = await this.routeFor(request);
    const run: Running = { route, step: 0, pos: 0, pending: null, timings: [] };
    this.running.set(request.id, run);
    const tokens = Int32Array.from(request.promptTokens);
    const first = this.awaitToken(request.id, run, 0);
    try {
      for (let r = 0; r < tokens.length; r += this.maxRowsPerFrame) {
        const n = Math.min(this.maxRowsPerFrame, tokens.length - r);
        const frame: ActFrame = {
          t: 'act',
          v: ACTIVATION_FRAME_VERSION,
          rid: request.id,
          stage: 0,
          step: 0,
          pos: r,
          n,
          final: r + n >= tokens.length,
          tokens: tokens.subarray(r, r + n),
        };
        if (r === 0) {
          frame.open = {
            route: route.peers,
            ranges: route.ranges,
            coordinator: this.router.selfId,
            model: route.model,
            promptTokens: request.promptTokens,
            sampling: request.sampling,
            contextLength: request.contextLength,
          };
        }
        await this.router.send(route.peers[0], frame);
      }
    } catch (err) {
      this.fail(request.id, err as Error);
    }
    run.pos = tokens.length;
    return first;
  }

  async step(requestId: string, token: number): Promise<number> {
    const run = this.running.get(requestId);
    if (!run) throw new StageFailedError('coordinator', 'UnknownRequest', `request ${requestId} is not running`);
    run.step++;
    const next = this.awaitToken(requestId, run, run.step);
    const frame: ActFrame = {
      t: 'act',
      v: ACTIVATION_FRAME_VERSION,
      rid: requestId,
      stage: 0,
      step: run.step,
      pos: run.pos,
      n: 1,
      final: true,
      tokens: Int32Array.of(token),
    };
    run.pos++;
    this.router.send(run.route.peers[0], frame).catch((err: Error) => this.fail(requestId, err));
    return next;
  }

  async end(requestId: string): Promise<void> {
    const run = this.running.get(requestId);
    if (!run) return;
    this.running.delete(requestId);
    run.pending?.reject(new StageFailedError('coordinator', 'Released', 'request ended'));
    // Release travels the same streams as the activations, so it reaches each stage after the request's last frame.
    await this.router.send(run.route.peers[0], { t: 'release', v: ACTIVATION_FRAME_VERSION, rid: requestId, stage: 0 }).catch(() => {});
  }

  /** Called by the node for token and error frames addressed to this coordinator. */
  onFrame(frame: TokenFrame | ErrorFrame): void {
    const run = this.running.get(frame.rid);
    if (!run || !run.pending) return;
    const p = run.pending;
    if (frame.t === 'error') {
      run.pending = null;
      p.reject(new StageFailedError(frame.from, frame.name, frame.message));
      return;
    }
    if (frame.step !== p.step) return; // a stale token from before a replay: ignore
    run.pending = null;
    const timing: StepTiming = { step: frame.step, roundTripMs: performance.now() - p.sentAt, stageMs: frame.stageMs ?? [] };
    run.timings.push(timing);
    this.onStep?.(frame.rid, timing);
    p.resolve(frame.token);
  }

  /** Fails every running request whose route includes `peerId`. */
  peerLost(peerId: string): string[] {
    const affected: string[] = [];
    for (const [rid, run] of this.running) {
      if (run.route.peers.includes(peerId)) {
        affected.push(rid);
        this.fail(rid, new StageLostError(peerId));
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

  private awaitToken(rid: string, run: Running, step: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      run.pending = { resolve, reject, sentAt: performance.now(), step };
    });
  }

  private fail(rid: string, err: Error): void {
    const run = this.running.get(rid);
    const p = run?.pending;
    if (!run || !p) return;
    run.pending = null;
    p.reject(err);
  }
}
