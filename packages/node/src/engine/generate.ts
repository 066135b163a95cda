import { randomUUID } from 'node:crypto';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { SamplingParams, TokenLogprob } from './sampler.js';
import type { TokenExecutor } from './token-executor.js';
import { ContextLengthError } from './forward-shard.js';
import { DraftTuner, type SpeculationOptions, type SpeculationStats } from './speculation.js';

/** What the generation loop needs from a tokenizer. */
export interface GenerationTokenizer {
  encode(text: string, opts?: { addBos?: boolean }): number[];
  createDecoder(opts?: { continuation?: boolean }): { push(id: number): string; flush(): string };
  readonly eosIds: readonly number[];
}

export type FinishReason = 'stop' | 'length';

export interface GenerateOptions {
  /** Text to tokenize, or ready token ids (used as they are). */
  prompt: string | number[];
  /** Prepend BOS to a text prompt (the model file says whether it wants one). */
  addBos: boolean;
  maxTokens: number;
  sampling: SamplingParams;
  stop?: string[];
  /** Keep going past EOS (benchmarks generate an exact number of tokens). */
  ignoreEos?: boolean;
  /** The model's context limit (or a smaller configured one). */
  contextLength: number;
  signal?: AbortSignal;
  /** Streamed text, in order; never splits a UTF-8 character or shows part of a stop string. */
  onText?: (delta: string) => void;
  /** Each generated token (not EOS) with its log-probabilities when asked for, before its text is emitted. */
  onToken?: (token: number, logprob: TokenLogprob | null) => void;
  requestId?: string;
  /** Constrained sampling: the output must follow this grammar. */
  grammar?: GrammarSpec;
  /** Log-probabilities with this many top alternatives (0: the chosen token's only). */
  logprobs?: number;
  /** false: compute the whole prompt even where a prefix cache holds some of it (benchmarks). Default true. */
  prefixCache?: boolean;
  /** Speculative decoding (when the executor can verify drafts): the same tokens, in fewer pipeline walks. */
  speculation?: SpeculationOptions;
}

export interface GenerationTimings {
  /** Prompt in to first token out. */
  ttftMs: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMs: number;
  decodeTokPerS: number;
  totalMs: number;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  promptTokens: number[];
  finishReason: FinishReason;
  timings: GenerationTimings;
  /** One per token of `tokens`, when log-probabilities were asked for. */
  logprobs?: TokenLogprob[];
  /** The stop string that ended the text (dialects that report which one: Anthropic's `stop_sequence`). */
  stopString?: string;
  /** Prompt tokens taken from a prefix cache instead of computed (OpenAI's `cached_tokens`). */
  cachedTokens?: number;
  /** With speculation: tokens drafted and accepted, and the decode's walks through the pipeline. */
  speculation?: SpeculationStats;
}

export class GenerationCancelledError extends Error {
  override name = 'GenerationCancelledError';
  constructor() {
    super('the generation was cancelled');
  }
}

export class PromptError extends Error {
  override name = 'PromptError';
}

/**
 * The loop around any TokenExecutor: tokenize, prefill, then one token at a time until EOS, a stop string or the
 * token limit, streaming text as it becomes final.
 */
export async function generate(executor: TokenExecutor, tokenizer: GenerationTokenizer, opts: GenerateOptions): Promise<GenerationResult> {
  const promptTokens = typeof opts.prompt === 'string' ? tokenizer.encode(opts.prompt, { addBos: opts.addBos }) : [...opts.prompt];
  if (promptTokens.length === 0) throw new PromptError('the prompt is empty (and the model adds no BOS token)');
  if (promptTokens.length >= opts.contextLength) throw new ContextLengthError(promptTokens.length + 1, opts.contextLength);
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) throw new PromptError(`max tokens must be a whole number ≥ 1 (got ${opts.maxTokens})`);
  // Generation stops at the context limit: the request reserves exactly what it can use.
  const maxTokens = Math.min(opts.maxTokens, opts.contextLength - promptTokens.length);
  const stopper = new StopStringFilter(opts.stop ?? []);
  // Generated text continues the prompt: a SentencePiece word-boundary space at its start is real text.
  const decoder = tokenizer.createDecoder({ continuation: true });
  const eos = new Set(opts.ignoreEos ? [] : tokenizer.eosIds);
  const id = opts.requestId ?? randomUUID();
  const tokens: number[] = [];
  let text = '';
  let finishReason: FinishReason = 'length';
  const emit = (delta: string) => {
    if (!delta) return;
    text += delta;
    opts.onText?.(delta);
  };
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new GenerationCancelledError();
  };

  const t0 = performance.now();
  checkAbort();
  // Log-probabilities arrive before their tokens (several at once after a verification): matched in order.
  const lpQueue: TokenLogprob[] = [];
  const logprobs: TokenLogprob[] = [];
  const tuner = opts.speculation && executor.verify ? new DraftTuner(opts.speculation) : null;
  // What drafts continue (prompt + output), grown token by token rather than copied every pass.
  const history: number[] = tuner ? [...promptTokens] : [];
  let cachedTokens = 0;
  const first = await executor.begin({
    id,
    promptTokens,
    sampling: opts.sampling,
    contextLength: promptTokens.length + maxTokens,
    signal: opts.signal,
    onCachedTokens: (n) => (cachedTokens = n),
    ...(opts.prefixCache === false ? { prefixCache: false } : {}),
    ...(opts.grammar ? { grammar: opts.grammar } : {}),
    ...(opts.logprobs !== undefined ? { logprobs: opts.logprobs, onLogprob: (lp: TokenLogprob) => lpQueue.push(lp) } : {}),
  });
  // Tokens sampled and not yet taken by the loop (a verification returns several).
  const ready: number[] = [first];
  const tFirst = performance.now();
  try {
    for (;;) {
      checkAbort();
      const token = ready.shift()!;
      const queued = lpQueue.shift();
      if (eos.has(token)) {
        finishReason = 'stop';
        break;
      }
      tokens.push(token);
      if (tuner) history.push(token);
      const lp: TokenLogprob | null = queued !== undefined && queued.token === token ? queued : null;
      if (lp) logprobs.push(lp);
      opts.onToken?.(token, lp);
      const { emitted, stopped } = stopper.push(decoder.push(token));
      emit(emitted);
      if (stopped) {
        finishReason = 'stop';
        break;
      }
      if (tokens.length >= maxTokens) break;
      if (ready.length > 0) continue;
      if (tuner) {
        // A pass returns its accepted drafts and one token more: drafting one fewer than the tokens still allowed
        // computes nothing past the limit (nor past the rows the request reserved). Its time includes drafting: a
        // draft model's steps are part of what a longer draft costs.
        const t = performance.now();
        const draft = await tuner.draft(history, maxTokens - tokens.length - 1, promptTokens.length);
        ready.push(...(draft.length > 0 ? await executor.verify!(id, token, draft) : [await executor.step(id, token)]));
        tuner.record(draft.length, ready.length - 1, performance.now() - t);
      } else {
        ready.push(await executor.step(id, token));
      }
    }
    if (!stopper.stopped) {
      // Bytes still held by the decoder (an unfinished UTF-8 sequence) and text held back for stop strings.
      const { emitted, stopped } = stopper.push(decoder.flush());
      emit(emitted);
      if (stopped) finishReason = 'stop';
      else emit(stopper.flush());
    }
  } finally {
    opts.speculation?.close?.();
    await executor.end(id);
  }
  const tEnd = performance.now();
  const prefillMs = tFirst - t0;
  const decodeMs = tEnd - tFirst;
  const decoded = Math.max(tokens.length - 1, 0);
  return {
    text,
    tokens,
    promptTokens,
    finishReason,
    cachedTokens,
    ...(tuner ? { speculation: { ...tuner.stats } } : {}),
    ...(opts.logprobs !== undefined ? { logprobs } : {}),
    ...(stopper.matched !== null ? { stopString: stopper.matched } : {}),
    timings: {
      ttftMs: prefillMs,
      prefillMs,
      prefillTokPerS: (promptTokens.length / prefillMs) * 1000,
      decodeMs,
      decodeTokPerS: decoded > 0 ? (decoded / decodeMs) * 1000 : 0,
      totalMs: tEnd - t0,
    },
  };
}

/**
 * Holds back text that might be the start of a stop string, and cuts the output before the first stop string.
 */
export class StopStringFilter {
  private pending = '';
  stopped = false;
  /** The stop string found (the earliest in the text), once stopped. */
  matched: string | null = null;
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  push(delta: string): { emitted: string; stopped: boolean } {
    if (this.stopped) return { emitted: '', stopped: true };
    if (this.stops.length === 0) return { emitted: delta, stopped: false };
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      if (!s) continue;
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        this.matched = s;
      }
    }
    if (cut >= 0) {
      this.stopped = true;
      const emitted = this.pending.slice(0, cut);
      this.pending = '';
      return { emitted, stopped: true };
    }
    // Keep the longest tail that could still grow into a stop string.
    let keep = 0;
    for (let k = Math.min(this.longest - 1, this.pending.length); k > 0; k--) {
      const tail = this.pending.slice(-k);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = k;
        break;
      }
    }
    const emitted = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { emitted, stopped: false };
  }

  flush(): string {
    const rest = this.stopped ? '' : this.pending;
    this.pending = '';
    return rest;
  }
}
