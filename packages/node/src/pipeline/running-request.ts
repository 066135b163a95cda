import type { StepTiming } from '../engine/bench-probe.js';
import type { ExecutionRequest } from '../engine/token-executor.js';
import type { RequestOpening, TokenFrame } from './activation-frame.js';
import type { Route } from './route.js';

/** Before a request has been routed. */
export const NO_ROUTE: Route = { planId: 'none', peers: [], ranges: [], model: '' };

export interface Pending {
  /** The token sampled, or after a verification the accepted drafts and the token after them. */
  resolve: (tokens: number[]) => void;
  reject: (err: Error) => void;
  sentAt: number;
  /** From the previous token's arrival to sentAt (the coordinator's own time); 0 for the first step. */
  coordinatorMs: number;
  step: number;
  /** Frames the step went in (a verification in parts): more than one, and its stages overlapped. */
  parts?: number;
}

export interface Running {
  request: ExecutionRequest;
  /** Tokens fed back into the ring after the prompt (the generated text so far). */
  fed: number[];
  /** Tokens received from the last stage (random draws made, when sampling: one per token). */
  received: number;
  /** When the last token arrived (performance.now()), or null before the first. */
  tokenAt: number | null;
  route: Route;
  /** The request's id on the wire: changes at every replay so stale frames of a dead route are ignored. */
  wireId: string;
  recoveries: number;
  migrations: number;
  /** Step and position of the current incarnation. */
  step: number;
  pos: number;
  pending: Pending | null;
  timings: StepTiming[];
  /** An embedding request's answer, once the last stage sent it. */
  embedding: Float32Array | null;
  /** Tokens of the current incarnation's opening (prompt, or the history replayed): the stages' promptTokens. */
  opened: number;
  /** Positions of the prompt every stage of the route holds in its prefix cache, from the first token's `held`. */
  held: number;
}

/** A request as it starts: not yet routed, nothing fed or received; its wire id is its own until a replay. */
export function startRunning(request: ExecutionRequest): Running {
  return { request, fed: [], received: 0, tokenAt: null, route: NO_ROUTE, wireId: request.id, recoveries: 0, migrations: 0, step: 0, pos: 0, pending: null, timings: [], embedding: null, opened: 0, held: 0 };
}

/**
 * What the stages of the request's route are told when it opens there with `tokens` as its prompt (the prompt, or
 * its history on a replay or a live move: the last stage's sampler resumes after the draws already made).
 */
export function openingOf(run: Running, route: Route, tokens: readonly number[], coordinator: string, prefix = 0): RequestOpening {
  const { request } = run;
  const drawsPerToken = request.sampling.temperature <= 0 ? 0 : 1;
  return {
    route: route.peers,
    ranges: route.ranges,
    coordinator,
    model: route.model,
    promptTokens: [...tokens],
    sampling: request.sampling,
    contextLength: request.contextLength,
    samplesDrawn: run.received * drawsPerToken,
    ...(run.fed.length > 0 ? { generated: run.fed.length } : {}),
    ...(request.grammar ? { grammar: request.grammar } : {}),
    ...(request.logprobs !== undefined ? { logprobs: request.logprobs } : {}),
    ...(request.embed ? { embed: true } : {}),
    ...(prefix > 0 ? { prefix } : {}),
    ...(route.lora !== undefined ? { lora: route.lora } : {}),
  };
}

/** Takes in the token frame of the step `p` awaited: its timing, log-probabilities and `held`; the tokens it brought. */
export function receiveToken(run: Running, p: Pending, frame: TokenFrame, onStep?: (rid: string, timing: StepTiming) => void): number[] {
  const now = performance.now();
  run.tokenAt = now;
  const timing: StepTiming = { step: run.received, roundTripMs: now - p.sentAt, stageMs: frame.stageMs ?? [], coordinatorMs: p.coordinatorMs };
  if (frame.more) timing.tokens = 1 + frame.more.length;
  if (p.parts) timing.parts = p.parts;
  run.timings.push(timing);
  onStep?.(run.request.id, timing);
  if (frame.emb) run.embedding = frame.emb;
  if (frame.step === 0) run.held = frame.held && frame.held.length === run.route.peers.length ? Math.min(...frame.held) : 0;
  const tokens = [frame.token, ...(frame.more ?? [])];
  const lps = frame.lp ? [frame.lp, ...(frame.lps ?? [])] : [];
  lps.forEach((lp, i) => run.request.onLogprob?.({ token: tokens[i], logprob: lp.l, top: lp.top.map(([token, logprob]) => ({ token, logprob })) }));
  return tokens;
}
