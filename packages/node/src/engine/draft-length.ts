/**
 * How many tokens to draft, as a pure function of measured costs: the k that maximises expected tokens per
 * millisecond. With a per-token acceptance a, a pass verifying k drafts yields 1 + a + … + a^k tokens on average; it
 * costs the measured time of a (1 + k)-row verification pass plus k drafted tokens at the drafter's measured time
 * per token. k = 0 (a plain one-row walk, nothing drafted) is the rate to beat. Rows are not free on a CPU (a 4-row
 * pass of the 300M model takes ~2.4 one-row walks here), so the answer comes from the timings, not from a rule.
 */

/**
 * The draft lengths chosen among: few enough that each is timed often (a running mean per pass size), spaced wider
 * where a pass's time grows more slowly than its rows.
 */
export const DRAFT_STAIRCASE: readonly number[] = [1, 2, 3, 4, 6, 8, 12, 16];

/** What the choice is made from. */
export interface DraftCosts {
  /** Per-token acceptance estimate in [0, 1]. */
  acceptance: number;
  /** Milliseconds of a pass of `rows` rows through the pipeline (1: a plain walk; 1 + k: verifying k drafts). */
  passMs(rows: number): number;
  /** Milliseconds the drafter takes per drafted token (a draft model's forward steps; ~0 for prompt lookup). */
  draftMsPerToken: number;
}

/** A longer draft must beat the best shorter one by this factor: noise in the estimates should not buy wasted rows. */
const MARGIN = 1.02;

export function expectedTokensPerWalk(acceptance: number, k: number): number {
  let sum = 0;
  let term = 1;
  for (let i = 0; i <= k; i++) {
    sum += term;
    term *= acceptance;
  }
  return sum;
}

/** Expected tokens per millisecond when drafting k (k = 0: a plain walk). */
export function draftRate(costs: DraftCosts, k: number): number {
  const ms = costs.passMs(1 + k) + k * costs.draftMsPerToken;
  return expectedTokensPerWalk(costs.acceptance, k) / ms;
}

/** The staircase's steps up to `maxDraft`, and `maxDraft` itself (the tokens left may end between two steps). */
export function draftCandidates(maxDraft: number): number[] {
  const steps = DRAFT_STAIRCASE.filter((k) => k <= maxDraft);
  if (maxDraft >= 1 && steps.at(-1) !== maxDraft) steps.push(maxDraft);
  return steps;
}

/** The step above k on the staircase (k itself at the top or past `maxDraft`): where the tuner probes upwards. */
export function stairAbove(k: number, maxDraft: number): number {
  return DRAFT_STAIRCASE.find((s) => s > k && s <= maxDraft) ?? k;
}

/** The best draft length in [0, maxDraft] for these costs. */
export function chooseDraftLength(costs: DraftCosts, maxDraft: number): number {
  const { acceptance, draftMsPerToken } = costs;
  if (!(acceptance >= 0 && acceptance <= 1)) throw new RangeError(`acceptance must be in [0, 1] (got ${acceptance})`);
  if (!(draftMsPerToken >= 0)) throw new RangeError(`the draft's time per token must be ≥ 0 ms (got ${draftMsPerToken})`);
  const walk = costs.passMs(1);
  if (!(walk > 0 && Number.isFinite(walk))) throw new RangeError(`a one-row pass must take a positive time (got ${walk} ms)`);
  let best = 0;
  let bestRate = draftRate(costs, 0);
  for (const k of draftCandidates(maxDraft)) {
    const rate = draftRate(costs, k);
    if (rate > bestRate * MARGIN) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}
