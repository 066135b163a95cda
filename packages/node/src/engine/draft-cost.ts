/** Weight of the newest draft in the running milliseconds per drafted token. */
const WEIGHT = 0.2;

/**
 * The drafter's measured time per drafted token (a draft model's forward steps, including feeding it the tokens it
 * has not seen; prompt lookup's scan), shared by the requests drafting from one source: a longer draft costs this
 * much more on top of its verification pass, and the choice of a draft length counts it.
 */
export class DraftCost {
  private mean: number | null = null;

  record(tokens: number, ms: number): void {
    if (tokens < 1 || !(ms >= 0)) return;
    const perToken = ms / tokens;
    this.mean = this.mean === null ? perToken : (1 - WEIGHT) * this.mean + WEIGHT * perToken;
  }

  /** Milliseconds per drafted token (0 before the first draft: a draft's first use measures it). */
  msPerToken(): number {
    return this.mean ?? 0;
  }
}
