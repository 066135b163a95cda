/** Acceptance assumed for a draft source nothing was learnt about yet: drafts are tried, and the estimate learns fast. */
const PRIOR_ACCEPTANCE = 0.6;
/** Older passes' weight across requests (a node's traffic changes character too, more slowly than one text). */
const DECAY = 0.98;

/**
 * A draft source's acceptance across the requests drafting from it (the draft model, prompt lookup, predictions):
 * a new request's tuner starts from it rather than from a fixed guess, so a source that drafts well gets long
 * drafts from its first pass instead of climbing there over the request's first walks.
 */
export class SourceAcceptance {
  private tested = 0;
  private agreed = 0;

  /** A pass's drafted tokens the model saw (up to the first rejection included) and accepted. */
  record(tested: number, accepted: number): void {
    if (tested < 1) return;
    this.tested = DECAY * this.tested + tested;
    this.agreed = DECAY * this.agreed + accepted;
  }

  /** Per-token acceptance in [0, 1] (the prior until a pass was recorded), worth one token beside it. */
  estimate(): number {
    return (this.agreed + PRIOR_ACCEPTANCE) / (this.tested + 1);
  }
}
