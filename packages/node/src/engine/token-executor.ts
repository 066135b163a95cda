import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { SamplingParams, TokenLogprob } from './sampler.js';

/** One request as the executor sees it: ids only; text is the generation loop's business. */
export interface ExecutionRequest {
  id: string;
  /** The prompt as token ids, BOS included when the model wants it. */
  promptTokens: number[];
  sampling: SamplingParams;
  /** Positions to reserve: prompt + the most tokens that may be generated. */
  contextLength: number;
  /** Aborts the request wherever it is (client gone, shutdown). */
  signal?: AbortSignal;
  /** The output must follow this grammar (enforced by the sampler of the last stage). */
  grammar?: GrammarSpec;
  /** Ask for log-probabilities with this many top alternatives; each comes through `onLogprob` before its token. */
  logprobs?: number;
  onLogprob?: (lp: TokenLogprob) => void;
  /** An embedding request: the prompt's pooled hidden state is computed instead of a token (see `embed`). */
  embed?: boolean;
  /**
   * false: the prompt is computed in full even if the stages keep some of it (a benchmark measuring prefill); what
   * it computes is still kept for later requests. Default true.
   */
  prefixCache?: boolean;
  /** Called with the first token: how many prompt positions were taken from a prefix cache instead of computed. */
  onCachedTokens?: (positions: number) => void;
}

/**
 * Runs the model and samples, one token at a time. The single-device engine and the multi-device pipeline both
 * implement it, so the generation loop (stop strings, streaming text, limits) is written once.
 */
export interface TokenExecutor {
  /** Runs the whole prompt (one batched prefill) and returns the first sampled token. */
  begin(request: ExecutionRequest): Promise<number>;
  /** Feeds back the token just sampled and returns the next one. */
  step(requestId: string, token: number): Promise<number>;
  /**
   * Speculation: feeds back the token just sampled followed by `draft` (tokens proposed, not sampled) in one pass of
   * 1 + draft.length rows, and returns the drafted tokens the model agreed with followed by the token it sampled
   * after them — exactly the tokens `step` would have returned one at a time. Rows of rejected drafts are dropped
   * from every KV cache before the next pass. Log-probabilities, when asked for, come through `onLogprob` in order.
   */
  verify?(requestId: string, token: number, draft: readonly number[]): Promise<number[]>;
  /** Frees the request's KV caches and sampler everywhere; safe to call twice. */
  end(requestId: string): Promise<void>;
}

/** An executor that also computes embeddings (the single-device engine and the pipeline). */
export interface EmbeddingExecutor {
  /**
   * Runs the prompt once and returns its embedding: the final-normed hidden states of every position, mean-pooled
   * and L2-normalised (`MeanPool`). Nothing is sampled; the request is freed when it returns.
   */
  embed(request: ExecutionRequest): Promise<Float32Array>;
}
