import type { GenerationResult } from '../engine/generate.js';

/**
 * llama-server's `timings` object on an OpenAI answer, for clients and tools written against it: the prompt's tokens
 * computed (not taken from a prefix cache) and their time up to the first token, the tokens decoded after it and
 * their time, and the speculation's drafted and accepted tokens.
 */
export interface LlamaTimings {
  prompt_n: number;
  prompt_ms: number;
  prompt_per_token_ms: number;
  prompt_per_second: number;
  /** Tokens after the first (the first comes with the prompt's pass, and its time is in prompt_ms). */
  predicted_n: number;
  predicted_ms: number;
  predicted_per_token_ms: number;
  predicted_per_second: number;
  draft_n: number;
  draft_n_accepted: number;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * The answer's timings when speculation ran for one of its choices (else nothing: its counts are what the object adds
 * over usage). Choices run side by side: their tokens are summed, their times are the longest.
 */
export function llamaTimings(promptTokens: number, results: readonly GenerationResult[]): { timings?: LlamaTimings } {
  if (!results.some((r) => r.speculation)) return {};
  const promptN = promptTokens - Math.max(0, ...results.map((r) => r.cachedTokens ?? 0));
  const promptMs = Math.max(...results.map((r) => r.timings.prefillMs));
  const predictedN = results.reduce((n, r) => n + Math.max(0, r.tokens.length - 1), 0);
  const predictedMs = Math.max(...results.map((r) => r.timings.decodeMs));
  const perToken = (ms: number, n: number) => (n > 0 ? round(ms / n) : 0);
  const perSecond = (ms: number, n: number) => (ms > 0 ? round((n / ms) * 1000) : 0);
  return {
    timings: {
      prompt_n: promptN,
      prompt_ms: round(promptMs),
      prompt_per_token_ms: perToken(promptMs, promptN),
      prompt_per_second: perSecond(promptMs, promptN),
      predicted_n: predictedN,
      predicted_ms: round(predictedMs),
      predicted_per_token_ms: perToken(predictedMs, predictedN),
      predicted_per_second: perSecond(predictedMs, predictedN),
      draft_n: results.reduce((n, r) => n + (r.speculation?.drafted ?? 0), 0),
      draft_n_accepted: results.reduce((n, r) => n + (r.speculation?.accepted ?? 0), 0),
    },
  };
}
