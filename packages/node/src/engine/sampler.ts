/**
 * Turns logits into the next token, in llama.cpp's order: repetition/frequency/presence penalties → top-k → top-p →
 * min-p → temperature → draw. Temperature 0 is greedy (argmax after penalties). Seeded draws are reproducible.
 */
export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  minP: number;
  /** 1 = off. Divides positive logits and multiplies negative ones of recently seen tokens (llama.cpp's rule). */
  repetitionPenalty: number;
  /** OpenAI-style: subtracts count × frequencyPenalty from each seen token's logit. */
  frequencyPenalty: number;
  /** OpenAI-style: subtracts presencePenalty once from each seen token's logit. */
  presencePenalty: number;
  /** How many of the most recent tokens the penalties look at. */
  penaltyLastN: number;
  /** null = a random seed. */
  seed: number | null;
}

export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  penaltyLastN: 64,
  seed: null,
};

export const GREEDY: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0, topK: 0, topP: 1, minP: 0 };

export class SamplingParamsError extends Error {
  override name = 'SamplingParamsError';
}

export function validateSampling(p: SamplingParams): void {
  const check = (ok: boolean, msg: string) => {
    if (!ok) throw new SamplingParamsError(msg);
  };
  check(Number.isFinite(p.temperature) && p.temperature >= 0, `temperature must be ≥ 0 (got ${p.temperature})`);
  check(Number.isInteger(p.topK) && p.topK >= 0, `top_k must be a whole number ≥ 0 (got ${p.topK})`);
  check(Number.isFinite(p.topP) && p.topP > 0 && p.topP <= 1, `top_p must be in (0, 1] (got ${p.topP})`);
  check(Number.isFinite(p.minP) && p.minP >= 0 && p.minP <= 1, `min_p must be in [0, 1] (got ${p.minP})`);
  check(Number.isFinite(p.repetitionPenalty) && p.repetitionPenalty > 0, `repetition_penalty must be > 0 (got ${p.repetitionPenalty})`);
  check(Number.isFinite(p.frequencyPenalty) && Math.abs(p.frequencyPenalty) <= 2, `frequency_penalty must be in [-2, 2] (got ${p.frequencyPenalty})`);
  check(Number.isFinite(p.presencePenalty) && Math.abs(p.presencePenalty) <= 2, `presence_penalty must be in [-2, 2] (got ${p.presencePenalty})`);
  check(Number.isInteger(p.penaltyLastN) && p.penaltyLastN >= 0, `penalty_last_n must be a whole number ≥ 0`);
  check(p.seed === null || Number.isInteger(p.seed), `seed must be an integer (got ${p.seed})`);
}

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same draws on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Restricts which tokens may come next (constrained sampling, e.g. a grammar). `mask` sets the logits of tokens that
 * may not follow to −∞; `remaining` is how many tokens may still be generated, this one included.
 */
export interface LogitConstraint {
  mask(logits: Float32Array, remaining: number): void;
  /** Advances over a token that entered the output. */
  accept(token: number): void;
}

/** The chosen token's log-probability and the most likely alternatives, under the distribution it was drawn from. */
export interface TokenLogprob {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

export interface SamplerOptions {
  constraint?: LogitConstraint;
  /** Report log-probabilities with this many top alternatives (0: the chosen token's only). Off when undefined. */
  logprobs?: number;
}

/** Most top alternatives a request may ask for (OpenAI's limit). */
export const MAX_TOP_LOGPROBS = 20;

/** Candidates this far below the best logit carry < e^-40 of the mass: dropping them changes no draw measurably. */
const NEGLIGIBLE_LOGIT_GAP = 40;

export class Sampler {
  private readonly random: () => number;
  /** The tokens seen so far (prompt and generated), for the penalties. */
  private readonly history: number[];

  constructor(
    readonly params: SamplingParams,
    history: readonly number[] = [],
    /** Random draws already made for this request elsewhere (a pipeline replaying after a failure resumes the sequence). */
    skipDraws = 0,
    private readonly options: SamplerOptions = {},
  ) {
    validateSampling(params);
    this.random = mulberry32(params.seed ?? Math.floor(Math.random() * 2 ** 32));
    for (let i = 0; i < skipDraws; i++) this.random();
    this.history = [...history];
  }

  /** How many random draws `sample` makes per token: one when sampling, none when greedy. */
  get drawsPerToken(): number {
    return this.params.temperature <= 0 ? 0 : 1;
  }

  /** Records a token that entered the sequence without being sampled here (e.g. a prompt token). */
  accept(token: number): void {
    this.history.push(token);
  }

  /** Log-probabilities of the last sampled token (when the options ask for them). */
  lastLogprob: TokenLogprob | null = null;

  /**
   * Picks the next token from `logits` (one row, vocab-sized) and records it. `remaining` (tokens that may still be
   * generated, this one included) lets a constraint make sure its output can finish in time.
   */
  sample(logits: Float32Array, remaining = Number.MAX_SAFE_INTEGER): number {
    const p = this.params;
    let adjusted = this.penalise(logits);
    const { constraint, logprobs } = this.options;
    if (constraint) {
      if (adjusted === logits) adjusted = Float32Array.from(logits);
      constraint.mask(adjusted, remaining);
    }
    const token = p.temperature <= 0 ? argmax(adjusted) : this.draw(adjusted);
    // Log-probabilities of the distribution the sampler chose from (after penalties and the constraint, at
    // temperature 1): the greedy token is always the top one.
    if (logprobs !== undefined) this.lastLogprob = logprobsOf(adjusted, token, logprobs);
    constraint?.accept(token);
    this.history.push(token);
    return token;
  }

  private penalise(logits: Float32Array): Float32Array {
    const p = this.params;
    if ((p.repetitionPenalty === 1 && p.frequencyPenalty === 0 && p.presencePenalty === 0) || p.penaltyLastN === 0) return logits;
    const counts = new Map<number, number>();
    for (const t of this.history.slice(-p.penaltyLastN)) counts.set(t, (counts.get(t) ?? 0) + 1);
    const out = Float32Array.from(logits);
    for (const [t, count] of counts) {
      if (t < 0 || t >= out.length) continue;
      let v = out[t];
      v = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
      out[t] = v - count * p.frequencyPenalty - p.presencePenalty;
    }
    return out;
  }

  private draw(logits: Float32Array): number {
    const p = this.params;
    let cand = candidates(logits, p.topK);
    // top-p and min-p act on the distribution before temperature, as in llama.cpp's default chain.
    let probs = softmaxOf(logits, cand, 1);
    if (p.topP < 1) {
      let cum = 0;
      let keep = cand.length;
      for (let i = 0; i < cand.length; i++) {
        cum += probs[i];
        if (cum >= p.topP) {
          keep = i + 1;
          break;
        }
      }
      cand = cand.slice(0, keep);
      probs = probs.slice(0, keep);
    }
    if (p.minP > 0) {
      const threshold = probs[0] * p.minP;
      let keep = 1;
      while (keep < cand.length && probs[keep] >= threshold) keep++;
      cand = cand.slice(0, keep);
    }
    const final = softmaxOf(logits, cand, p.temperature);
    let r = this.random();
    for (let i = 0; i < cand.length; i++) {
      r -= final[i];
      if (r <= 0) return cand[i];
    }
    return cand[cand.length - 1];
  }
}

export function argmax(x: Float32Array): number {
  let best = 0;
  let bestValue = x[0];
  for (let i = 1; i < x.length; i++) {
    if (x[i] > bestValue) {
      bestValue = x[i];
      best = i;
    }
  }
  return best;
}

/** Token ids sorted by logit, descending: the top k, or everything not negligibly unlikely. */
function candidates(logits: Float32Array, topK: number): number[] {
  const max = logits[argmax(logits)];
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] >= max - NEGLIGIBLE_LOGIT_GAP) ids.push(i);
  ids.sort((a, b) => logits[b] - logits[a] || a - b);
  return topK > 0 && ids.length > topK ? ids.slice(0, topK) : ids;
}

function softmaxOf(logits: Float32Array, ids: number[], temperature: number): Float64Array {
  const out = new Float64Array(ids.length);
  const max = logits[ids[0]];
  let sum = 0;
  for (let i = 0; i < ids.length; i++) {
    out[i] = Math.exp((logits[ids[i]] - max) / temperature);
    sum += out[i];
  }
  for (let i = 0; i < ids.length; i++) out[i] /= sum;
  return out;
}

/** log-softmax of `logits` at `token`, and the `top` most likely tokens with theirs. */
export function logprobsOf(logits: Float32Array, token: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const best: number[] = [];
  if (top > 0) {
    // A running top-n: n is at most 20, so insertion into a short sorted list beats sorting the vocabulary.
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i];
      if (v === -Infinity) continue;
      if (best.length === top && v <= logits[best[top - 1]]) continue;
      let at = best.length;
      while (at > 0 && (logits[best[at - 1]] < v || (logits[best[at - 1]] === v && best[at - 1] > i))) at--;
      best.splice(at, 0, i);
      if (best.length > top) best.pop();
    }
  }
  return { token, logprob: logits[token] - lse, top: best.map((t) => ({ token: t, logprob: logits[t] - lse })) };
}
