/**
 * How many tokens to draft: the k that maximises tokens per unit of pipeline time, as pure functions of the measured
 * acceptance and cost. With a per-token acceptance a, a pass verifying k drafts yields 1 + a + … + a^k tokens on
 * average; it costs one walk plus k extra rows, each `rowCost` of a one-row walk (small on a ring, where hops and
 * per-pass overhead dominate and the batched products make rows cheap). k = 0 means: do not speculate now.
 */
export function expectedTokensPerWalk(acceptance: number, k: number): number {
  let sum = 0;
  let term = 1;
  for (let i = 0; i <= k; i++) {
    sum += term;
    term *= acceptance;
  }
  return sum;
}

/** The best draft length in [0, maxDraft] for this acceptance (0..1) and cost of a row (≥ 0, per one-row walk). */
export function chooseDraftLength(acceptance: number, rowCost: number, maxDraft: number): number {
  if (!(acceptance >= 0 && acceptance <= 1)) throw new RangeError(`acceptance must be in [0, 1] (got ${acceptance})`);
  if (!(rowCost >= 0)) throw new RangeError(`row cost must be ≥ 0 (got ${rowCost})`);
  let best = 0;
  let bestRate = 1;
  for (let k = 1; k <= maxDraft; k++) {
    const rate = expectedTokensPerWalk(acceptance, k) / (1 + rowCost * k);
    // A longer draft must earn its place by a clear margin: noise in the estimates should not buy wasted rows.
    if (rate > bestRate * 1.02) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}
