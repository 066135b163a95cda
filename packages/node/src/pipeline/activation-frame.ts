import type { SamplingParams } from '../engine/sampler.js';
import { MAX_TOP_LOGPROBS, validateSampling } from '../engine/sampler.js';
import { parseGrammarSpec, type GrammarSpec } from '../grammar/grammar-spec.js';
import { MAX_DRAFT_TOKENS } from '../engine/speculation.js';

/**
 * Frames on `/edge-node/activations/…`: what flows around the pipeline ring. One request's life:
 *
 *   coordinator ──act(step 0, tokens, `open`)──▶ stage 0 ──act(hidden)──▶ … ──▶ last stage
 *   coordinator ◀──────────────────────── token(step 0) ─────────────────────────┘
 *   coordinator ──act(step 1, one token)──▶ stage 0 ──▶ … ──▶ last stage ──token(step 1)──▶ coordinator …
 *   (speculating: act(step k, the token + a draft of d tokens, `draft`) — every stage computes the 1 + d rows, the last
 *   samples each and answers token(step k, `token` + `more`: the accepted drafts and the token after them); the next
 *   step's `pos` tells every stage where its cache now ends, dropping the rejected drafts' rows; a verification of
 *   many rows may go in parts, each saying in `rowsBefore` where it starts in the step, so that a stage computes one
 *   part while the next stage computes the one before — only the final part makes the last stage answer)
 *   coordinator ──release──▶ stage 0 ──release──▶ … (each stage frees its KV cache and forwards)
 *
 * Prefill may arrive in several `act` chunks (each at most the frame limit); only the chunk with `final` makes the
 * last stage sample. Every frame is validated here before anything uses it.
 */
export const ACTIVATION_FRAME_VERSION = 1;

/** Everything a stage must know about a request, sent with its first chunk. */
export interface RequestOpening {
  /** Peer ids of the stages, in ring order. */
  route: string[];
  /** [startLayer, endLayer) of each stage, parallel to route. */
  ranges: [number, number][];
  /** Where the last stage sends sampled tokens and any stage sends errors. */
  coordinator: string;
  /** Fingerprint of the model every stage must have loaded. */
  model: string;
  /** Prompt ids, for the last stage's repetition penalties. */
  promptTokens: number[];
  sampling: SamplingParams;
  /** Positions each stage reserves for this request. */
  contextLength: number;
  /** Random draws the sampler already made (non-zero when a request is replayed after a failure). */
  samplesDrawn: number;
  /** How many tokens at the end of promptTokens were generated (a replay): the grammar advances over them. */
  generated?: number;
  /** Constrained sampling: the output must follow this grammar. */
  grammar?: GrammarSpec;
  /** Send log-probabilities with each token, with this many top alternatives. */
  logprobs?: number;
  /** An embedding request: the last stage pools the prompt's final-normed hidden states and samples nothing. */
  embed?: boolean;
  /**
   * Positions of promptTokens every stage takes from its prefix cache instead of computing them (whole 16-token
   * blocks, fewer than the prompt): the opening frame starts at this position. A stage that no longer holds them
   * answers with a PrefixMissError and the coordinator opens the request again with a full prefill.
   */
  prefix?: number;
  /** The LoRA adapter (its id) every stage applies to its layers: a stage without its slice loaded refuses the request. */
  lora?: string;
}

/** Log-probabilities of a sampled token: its own (`l`) and the top alternatives as [token, logprob]. */
export interface WireLogprob {
  l: number;
  top: [number, number][];
}

export interface ActFrame {
  t: 'act';
  v: number;
  rid: string;
  /** Index in the route of the stage this frame is for. */
  stage: number;
  /** 0 = prefill, k = the k-th decode step. */
  step: number;
  /** Position of the first row (must equal the stage's cache length: frames arrive in order). */
  pos: number;
  /** Rows in this frame. */
  n: number;
  /** Last chunk of this step. */
  final: boolean;
  /** Token ids, for stage 0. */
  tokens?: Int32Array;
  /** Hidden states [n, hidden] float32, for later stages. */
  hidden?: Float32Array;
  /** Only on the first chunk of step 0. */
  open?: RequestOpening;
  /** Compute ms of the stages before this one for this step (travels to the coordinator with the token). */
  stageMs?: number[];
  /** On the final chunk of step 0: positions of the prompt each stage so far holds in its prefix cache. */
  held?: number[];
  /**
   * A verification step (speculative decoding): the drafted tokens that follow the step's first row, which every
   * stage computes with it (n = 1 + draft.length) and the last stage checks against its samples.
   */
  draft?: Int32Array;
  /**
   * A verification sent in parts (pipeline/verification-parts.ts): the step's rows before this part's first (absent
   * = 0). Every part carries the whole draft; the step's first row is at pos − rowsBefore.
   */
  rowsBefore?: number;
}

/** Position of the first row of the frame's step: its own, or for a later part of a verification the first part's. */
export function stepStart(frame: Pick<ActFrame, 'pos' | 'rowsBefore'>): number {
  return frame.pos - (frame.rowsBefore ?? 0);
}

export interface TokenFrame {
  t: 'token';
  v: number;
  rid: string;
  step: number;
  token: number;
  /** Per-stage compute time for this step, ms, in route order (for metrics and `edge-node bench`). */
  stageMs?: number[];
  /** When the request asked for log-probabilities. */
  lp?: WireLogprob;
  /** An embedding request's answer (its `token` is 0): the pooled, normalised vector, hidden-size long. */
  emb?: Float32Array;
  /** On step 0: positions of the prompt each stage holds in its prefix cache, in route order. */
  held?: number[];
  /**
   * A verification step's answer: the tokens after `token` (the drafted ones the model agreed with but the first,
   * then the one it sampled after them); `token` is the first. With log-probabilities, `lps` has one per token here.
   */
  more?: Int32Array;
  lps?: WireLogprob[];
}

export interface ReleaseFrame {
  t: 'release';
  v: number;
  rid: string;
  stage: number;
  /**
   * The tokens fed after the opening's promptTokens (the generated ones): with them each stage knows which tokens
   * its KV rows stand for and keeps their whole blocks in its prefix cache.
   */
  tokens?: Int32Array;
}

export interface ErrorFrame {
  t: 'error';
  v: number;
  rid: string;
  /** Typed error name from the stage (e.g. ContextLengthError) and its message. */
  name: string;
  message: string;
  /** The stage's peer id. */
  from: string;
  /** With a PrefixMissError: positions of the prompt the stage does hold. */
  held?: number;
}

export type ActivationFrame = ActFrame | TokenFrame | ReleaseFrame | ErrorFrame;

/** A frame that does not follow this schema: the stream it came on is reset. */
export class FrameValidationError extends Error {
  override name = 'FrameValidationError';
}

/** Limits that keep a hostile or broken peer from making us allocate or loop without bound. */
export interface FrameLimits {
  maxRows: number;
  hiddenSize: number;
  vocabSize: number;
  maxRoute: number;
  maxContext: number;
}

const RID = /^[A-Za-z0-9_.:-]{1,96}$/;

function fail(msg: string): never {
  throw new FrameValidationError(msg);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x);
}

function int(o: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`field "${key}" must be an integer in [${min}, ${max}]`);
  return v;
}

function str(o: Record<string, unknown>, key: string, max = 256): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(`field "${key}" must be a non-empty string of at most ${max} characters`);
  return v;
}

function rid(o: Record<string, unknown>): string {
  const v = str(o, 'rid', 96);
  if (!RID.test(v)) fail('field "rid" has characters outside [A-Za-z0-9_.:-]');
  return v;
}

function tokenArray(v: unknown, what: string, max: number, vocab: number): Int32Array {
  let out: Int32Array;
  if (v instanceof Int32Array) out = v;
  else if (Array.isArray(v) && v.length <= max && v.every((x) => Number.isInteger(x))) out = Int32Array.from(v as number[]);
  else fail(`${what} must be an array of integer token ids`);
  if (out.length > max) fail(`${what} has ${out.length} entries (limit ${max})`);
  for (const id of out) if (id < 0 || id >= vocab) fail(`${what} holds token id ${id}, outside the vocabulary (0..${vocab - 1})`);
  return out;
}

function parseSampling(v: unknown): SamplingParams {
  if (!isRecord(v)) fail('open.sampling must be an object');
  const num = (k: string) => {
    const x = v[k];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`open.sampling.${k} must be a finite number`);
    return x;
  };
  const seed = v.seed;
  const params: SamplingParams = {
    temperature: num('temperature'),
    topK: num('topK'),
    topP: num('topP'),
    minP: num('minP'),
    repetitionPenalty: num('repetitionPenalty'),
    frequencyPenalty: num('frequencyPenalty'),
    presencePenalty: num('presencePenalty'),
    penaltyLastN: num('penaltyLastN'),
    seed: seed === null || seed === undefined ? null : typeof seed === 'number' ? seed : fail('open.sampling.seed must be a number or null'),
  };
  try {
    validateSampling(params);
  } catch (err) {
    fail(`open.sampling: ${(err as Error).message}`);
  }
  return params;
}

export function parseOpening(v: unknown, limits: FrameLimits): RequestOpening {
  if (!isRecord(v)) fail('field "open" must be an object');
  const route = v.route;
  if (!Array.isArray(route) || route.length < 1 || route.length > limits.maxRoute || !route.every((p) => typeof p === 'string' && p.length > 0 && p.length < 128)) {
    fail(`open.route must list 1..${limits.maxRoute} peer ids`);
  }
  const ranges = v.ranges;
  if (!Array.isArray(ranges) || ranges.length !== route.length) fail('open.ranges must have one [start, end) per route entry');
  let expectStart = 0;
  for (const r of ranges) {
    if (!Array.isArray(r) || r.length !== 2 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) || r[0] !== expectStart || r[1] <= r[0]) {
      fail('open.ranges must be contiguous, non-empty [start, end) layer ranges starting at 0');
    }
    expectStart = r[1];
  }
  const contextLength = int(v, 'contextLength', 1, limits.maxContext);
  const promptTokens = Array.from(tokenArray(v.promptTokens, 'open.promptTokens', limits.maxContext, limits.vocabSize));
  return {
    route: route as string[],
    ranges: ranges as [number, number][],
    coordinator: str(v, 'coordinator', 128),
    model: str(v, 'model', 256),
    promptTokens,
    sampling: parseSampling(v.sampling),
    contextLength,
    samplesDrawn: v.samplesDrawn === undefined ? 0 : int(v, 'samplesDrawn', 0, limits.maxContext),
    ...(v.generated === undefined ? {} : { generated: int(v, 'generated', 0, promptTokens.length) }),
    ...(v.logprobs === undefined ? {} : { logprobs: int(v, 'logprobs', 0, MAX_TOP_LOGPROBS) }),
    ...(v.grammar === undefined ? {} : { grammar: parseGrammar(v.grammar) }),
    ...(v.embed === undefined ? {} : { embed: v.embed === true ? true : fail('open.embed must be true when present') }),
    ...(v.prefix === undefined ? {} : { prefix: int(v, 'prefix', 0, Math.max(0, promptTokens.length - 1)) }),
    ...(v.lora === undefined ? {} : { lora: str(v, 'lora', 64) }),
  };
}

function parseGrammar(v: unknown): GrammarSpec {
  try {
    return parseGrammarSpec(v);
  } catch (err) {
    fail(`open.grammar: ${(err as Error).message}`);
  }
}

function parseLogprob(v: unknown, limits: FrameLimits): WireLogprob | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v) || typeof v.l !== 'number' || !(v.l <= 0) || !Array.isArray(v.top) || v.top.length > MAX_TOP_LOGPROBS) fail('lp must be { l: logprob ≤ 0, top: [[token, logprob]…] }');
  for (const e of v.top as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || !Number.isInteger(e[0]) || e[0] < 0 || e[0] >= limits.vocabSize || typeof e[1] !== 'number' || !(e[1] <= 0)) fail('lp.top entries must be [token id, logprob ≤ 0]');
  }
  return { l: v.l, top: v.top as [number, number][] };
}

function parseLogprobs(v: unknown, limits: FrameLimits): WireLogprob[] {
  if (!Array.isArray(v) || v.length > MAX_DRAFT_TOKENS) fail(`lps must list at most ${MAX_DRAFT_TOKENS} log-probabilities`);
  return v.map((e) => parseLogprob(e, limits) ?? fail('lps entries must be log-probabilities'));
}

function parseEmbedding(v: unknown, limits: FrameLimits): Float32Array {
  if (!(v instanceof Float32Array) || v.length !== limits.hiddenSize) fail(`emb must be float32 data of the hidden size ${limits.hiddenSize}`);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) fail('emb holds a non-finite value');
  return v;
}

function parseHeld(v: unknown, limits: FrameLimits): number[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > limits.maxRoute || !v.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= limits.maxContext)) {
    fail(`held must list at most ${limits.maxRoute} positions in [0, ${limits.maxContext}]`);
  }
  return v as number[];
}

function parseStageMs(v: unknown, limits: FrameLimits): number[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > limits.maxRoute || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0)) {
    fail(`stageMs must list at most ${limits.maxRoute} non-negative numbers`);
  }
  return v as number[];
}

/** An `act` frame: a chunk of rows (token ids or hidden states) for one stage, maybe opening its request. */
function parseActFrame(raw: Record<string, unknown>, limits: FrameLimits): ActFrame {
  const n = int(raw, 'n', 1, limits.maxRows);
  const frame: ActFrame = {
    t: 'act',
    v: ACTIVATION_FRAME_VERSION,
    rid: rid(raw),
    stage: int(raw, 'stage', 0, limits.maxRoute - 1),
    step: int(raw, 'step', 0, limits.maxContext),
    pos: int(raw, 'pos', 0, limits.maxContext - 1),
    n,
    final: raw.final === true,
  };
  if (typeof raw.final !== 'boolean') fail('field "final" must be a boolean');
  if (raw.tokens !== undefined && raw.hidden !== undefined) fail('a frame carries tokens or hidden states, not both');
  if (raw.tokens !== undefined) {
    frame.tokens = tokenArray(raw.tokens, 'tokens', limits.maxRows, limits.vocabSize);
    if (frame.tokens.length !== n) fail(`tokens has ${frame.tokens.length} ids but n = ${n}`);
  } else if (raw.hidden !== undefined) {
    if (!(raw.hidden instanceof Float32Array)) fail('hidden must be float32 data');
    if (raw.hidden.length !== n * limits.hiddenSize) fail(`hidden has ${raw.hidden.length} values; expected n × hidden = ${n} × ${limits.hiddenSize}`);
    for (let i = 0; i < raw.hidden.length; i++) if (!Number.isFinite(raw.hidden[i])) fail('hidden holds a non-finite value');
    frame.hidden = raw.hidden;
  } else {
    fail('an act frame needs tokens or hidden');
  }
  if (raw.open !== undefined) {
    frame.open = parseOpening(raw.open, limits);
    // A request opens at 0, or after the positions its stages take from their prefix caches.
    if (frame.step !== 0 || frame.pos !== (frame.open.prefix ?? 0)) fail('only the first chunk of step 0 may open a request');
  }
  if (raw.draft !== undefined) {
    if (frame.step === 0) fail('a prefill step carries no draft');
    frame.draft = tokenArray(raw.draft, 'draft', MAX_DRAFT_TOKENS, limits.vocabSize);
    if (frame.draft.length === 0) fail('a draft holds at least one token');
  }
  if (raw.rowsBefore !== undefined) {
    if (!frame.draft) fail('only a verification step (with a draft) is sent in parts');
    frame.rowsBefore = int(raw, 'rowsBefore', 1, MAX_DRAFT_TOKENS);
  }
  // A decode step is one row, or one row and its draft (a verification): in one final frame, or a verification in
  // consecutive parts whose last one is final.
  if (frame.step > 0) {
    const rows = 1 + (frame.draft?.length ?? 0), before = frame.rowsBefore ?? 0;
    if (before + n > rows || frame.final !== (before + n === rows)) fail('a decode step carries its token and its draft (if any) in one final frame, or a verification in parts whose last one is final');
  }
  const ms = parseStageMs(raw.stageMs, limits);
  if (ms) frame.stageMs = ms;
  const held = parseHeld(raw.held, limits);
  if (held) frame.held = held;
  return frame;
}

/** A `token` frame: the last stage's sampled token (and accepted drafts), with its timings and extras. */
function parseTokenFrame(raw: Record<string, unknown>, limits: FrameLimits): TokenFrame {
  const stageMs = parseStageMs(raw.stageMs, limits);
  const lp = parseLogprob(raw.lp, limits);
  const more = raw.more === undefined ? undefined : tokenArray(raw.more, 'more', MAX_DRAFT_TOKENS, limits.vocabSize);
  const lps = raw.lps === undefined ? undefined : parseLogprobs(raw.lps, limits);
  // One log-probability per token: `lp` for `token`, `lps` for each of `more`.
  if (lps && (!lp || lps.length !== (more?.length ?? 0))) fail('lps must follow lp with one entry per token of more');
  return {
    t: 'token',
    v: ACTIVATION_FRAME_VERSION,
    rid: rid(raw),
    step: int(raw, 'step', 0, limits.maxContext),
    token: int(raw, 'token', 0, limits.vocabSize - 1),
    ...(stageMs ? { stageMs } : {}),
    ...(lp ? { lp } : {}),
    ...(raw.emb === undefined ? {} : { emb: parseEmbedding(raw.emb, limits) }),
    ...(raw.held === undefined ? {} : { held: parseHeld(raw.held, limits)! }),
    ...(more ? { more } : {}),
    ...(lps ? { lps } : {}),
  };
}

/** Checks an incoming message against the schema and the limits; returns it typed, or throws FrameValidationError. */
export function parseActivationFrame(raw: unknown, limits: FrameLimits): ActivationFrame {
  if (!isRecord(raw)) fail('a frame must be a map');
  if (raw.v !== ACTIVATION_FRAME_VERSION) fail(`frame version ${String(raw.v)} is not supported (this node speaks ${ACTIVATION_FRAME_VERSION})`);
  switch (raw.t) {
    case 'act':
      return parseActFrame(raw, limits);
    case 'token':
      return parseTokenFrame(raw, limits);
    case 'release':
      return {
        t: 'release',
        v: ACTIVATION_FRAME_VERSION,
        rid: rid(raw),
        stage: int(raw, 'stage', 0, limits.maxRoute - 1),
        ...(raw.tokens === undefined ? {} : { tokens: tokenArray(raw.tokens, 'tokens', limits.maxContext, limits.vocabSize) }),
      };
    case 'error':
      return {
        t: 'error',
        v: ACTIVATION_FRAME_VERSION,
        rid: rid(raw),
        name: str(raw, 'name', 128),
        message: str(raw, 'message', 4096),
        from: str(raw, 'from', 128),
        ...(raw.held === undefined ? {} : { held: int(raw, 'held', 0, limits.maxContext) }),
      };
    default:
      fail(`unknown frame type ${JSON.stringify(raw.t)?.slice(0, 40)}`);
  }
}
