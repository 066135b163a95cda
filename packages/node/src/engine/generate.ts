import { randomUUID } from 'node:crypto';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { SamplingParams, TokenLogprob } from './sampler.js';
import type { TokenExecutor } from './token-executor.js';
import { ContextLengthError } from './forward-shard.js';
import { DraftTuner, type SpeculationOptions, type SpeculationStats } from './speculation.js';
import { StopStringFilter } from './stop-strings.js';

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
  const promptTokens = promptTokensOf(tokenizer, opts);
  // Generation stops at the context limit: the request reserves exactly what it can use.
  const maxTokens = Math.min(opts.maxTokens, opts.contextLength - promptTokens.length);
  const id = opts.requestId ?? randomUUID();
  const output = new GenerationOutput(tokenizer, opts);
  const t0 = performance.now();
  checkAbort(opts.signal);
  // Log-probabilities arrive before their tokens (several at once after a verification): matched in order.
  const lpQueue: TokenLogprob[] = [];
  const tuner = opts.speculation && executor.verify ? new DraftTuner(opts.speculation) : null;
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
  const tFirst = performance.now();
  // What drafts continue (prompt + output), grown token by token rather than copied every pass.
  const decode: Decode = { executor, id, tuner, history: tuner ? [...promptTokens] : [], promptLength: promptTokens.length };
  try {
    // Tokens sampled and not yet taken by the loop (a verification returns several).
    const ready: number[] = [first];
    for (;;) {
      checkAbort(opts.signal);
      const token = ready.shift()!;
      if (!output.take(token, lpQueue.shift())) break;
      if (tuner) decode.history.push(token);
      if (output.tokens.length >= maxTokens) break;
      if (ready.length === 0) await nextTokens(decode, token, maxTokens - output.tokens.length, ready);
    }
    output.flush();
  } finally {
    opts.speculation?.close?.();
    await executor.end(id);
  }
  return {
    text: output.text,
    tokens: output.tokens,
    promptTokens,
    finishReason: output.finishReason,
    cachedTokens,
    ...(tuner ? { speculation: { ...tuner.stats } } : {}),
    ...(opts.logprobs !== undefined ? { logprobs: output.logprobs } : {}),
    ...(output.stopString !== null ? { stopString: output.stopString } : {}),
    timings: timings(t0, tFirst, performance.now(), promptTokens.length, output.tokens.length),
  };
}

/** The prompt as token ids, checked along with the token limit. */
function promptTokensOf(tokenizer: GenerationTokenizer, opts: GenerateOptions): number[] {
  const promptTokens = typeof opts.prompt === 'string' ? tokenizer.encode(opts.prompt, { addBos: opts.addBos }) : [...opts.prompt];
  if (promptTokens.length === 0) throw new PromptError('the prompt is empty (and the model adds no BOS token)');
  if (promptTokens.length >= opts.contextLength) throw new ContextLengthError(promptTokens.length + 1, opts.contextLength);
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) throw new PromptError(`max tokens must be a whole number ≥ 1 (got ${opts.maxTokens})`);
  return promptTokens;
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GenerationCancelledError();
}

/** What the decode loop asks the executor with. */
interface Decode {
  executor: TokenExecutor;
  id: string;
  tuner: DraftTuner | null;
  /** Prompt and output so far (with a tuner only): what a draft continues. */
  history: number[];
  promptLength: number;
}

/** Puts the token(s) that follow `token` in `ready`: one step, or with speculation a draft's accepted tokens and one more. */
async function nextTokens(d: Decode, token: number, tokensLeft: number, ready: number[]): Promise<void> {
  if (!d.tuner) {
    ready.push(await d.executor.step(d.id, token));
    return;
  }
  // A pass returns its accepted drafts and one token more: drafting one fewer than the tokens still allowed computes
  // nothing past the limit (nor past the rows the request reserved). Drafting is timed apart (the tuner's DraftCost):
  // the pass's time is the pipeline's alone.
  const draft = await d.tuner.draft(d.history, tokensLeft - 1, d.promptLength);
  const t = performance.now();
  ready.push(...(draft.length > 0 ? await d.executor.verify!(d.id, token, draft) : [await d.executor.step(d.id, token)]));
  d.tuner.record(draft.length, ready.length - 1, performance.now() - t);
}

/** What a generation has produced: its tokens (with their log-probabilities) and the text made final so far. */
class GenerationOutput {
  readonly tokens: number[] = [];
  readonly logprobs: TokenLogprob[] = [];
  text = '';
  finishReason: FinishReason = 'length';
  private readonly stopper: StopStringFilter;
  private readonly decoder: ReturnType<GenerationTokenizer['createDecoder']>;
  private readonly eos: Set<number>;

  constructor(
    tokenizer: GenerationTokenizer,
    private readonly opts: GenerateOptions,
  ) {
    this.stopper = new StopStringFilter(opts.stop ?? []);
    // Generated text continues the prompt: a SentencePiece word-boundary space at its start is real text.
    this.decoder = tokenizer.createDecoder({ continuation: true });
    this.eos = new Set(opts.ignoreEos ? [] : tokenizer.eosIds);
  }

  /** The stop string that ended the text, if one did. */
  get stopString(): string | null {
    return this.stopper.matched;
  }

  /** Takes a sampled token (with the next log-probability that arrived, if any); false once EOS or a stop string ends the output. */
  take(token: number, queued: TokenLogprob | undefined): boolean {
    if (this.eos.has(token)) {
      this.finishReason = 'stop';
      return false;
    }
    this.tokens.push(token);
    const lp: TokenLogprob | null = queued !== undefined && queued.token === token ? queued : null;
    if (lp) this.logprobs.push(lp);
    this.opts.onToken?.(token, lp);
    return this.push(this.decoder.push(token));
  }

  /** At the end: bytes still held by the decoder (an unfinished UTF-8 sequence) and text held back for stop strings. */
  flush(): void {
    if (this.stopper.stopped) return;
    if (this.push(this.decoder.flush())) this.emit(this.stopper.flush());
  }

  /** Decoded text through the stop-string filter; false if it stopped. */
  private push(decoded: string): boolean {
    const { emitted, stopped } = this.stopper.push(decoded);
    this.emit(emitted);
    if (stopped) this.finishReason = 'stop';
    return !stopped;
  }

  private emit(delta: string): void {
    if (!delta) return;
    this.text += delta;
    this.opts.onText?.(delta);
  }
}

function timings(t0: number, tFirst: number, tEnd: number, promptTokens: number, tokens: number): GenerationTimings {
  const prefillMs = tFirst - t0;
  const decodeMs = tEnd - tFirst;
  const decoded = Math.max(tokens - 1, 0);
  return {
    ttftMs: prefillMs,
    prefillMs,
    prefillTokPerS: (promptTokens / prefillMs) * 1000,
    decodeMs,
    decodeTokPerS: decoded > 0 ? (decoded / decodeMs) * 1000 : 0,
    totalMs: tEnd - t0,
  };
}
