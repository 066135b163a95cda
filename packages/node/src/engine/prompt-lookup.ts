/**
 * Prompt-lookup drafts: the tokens that followed the most recent earlier occurrence of the sequence's last n tokens
 * (n from `maxNgram` down to `minNgram`), in the prompt and the output so far. No model: it pays off where the answer
 * quotes its context (summaries, code edits, answers citing their sources) and costs one scan where it does not.
 */
export interface PromptLookupOptions {
  /** Longest tail matched first (a longer match predicts better). Default 3. */
  maxNgram?: number;
  /** Shortest tail tried. Default 1. */
  minNgram?: number;
}

export const DEFAULT_MAX_NGRAM = 3;
export const DEFAULT_MIN_NGRAM = 1;

/** Up to `maxTokens` drafted tokens to follow `history` (empty when its tail occurs nowhere earlier). */
export function promptLookupDraft(history: readonly number[], maxTokens: number, opts: PromptLookupOptions = {}): number[] {
  const maxNgram = opts.maxNgram ?? DEFAULT_MAX_NGRAM;
  const minNgram = opts.minNgram ?? DEFAULT_MIN_NGRAM;
  if (!Number.isInteger(maxNgram) || !Number.isInteger(minNgram) || minNgram < 1 || maxNgram < minNgram) throw new RangeError(`n-gram sizes must be whole numbers with 1 ≤ min ≤ max (got ${minNgram}, ${maxNgram})`);
  const L = history.length;
  if (maxTokens < 1) return [];
  for (let n = Math.min(maxNgram, L - 1); n >= minNgram; n--) {
    // The latest earlier match: the text most like what is being written now.
    for (let j = L - n - 1; j >= 0; j--) {
      let same = true;
      for (let t = 0; t < n && same; t++) same = history[j + t] === history[L - n + t];
      if (same) return history.slice(j + n, Math.min(j + n + maxTokens, L));
    }
  }
  return [];
}
