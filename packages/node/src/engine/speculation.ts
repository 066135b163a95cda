import { chooseDraftLength } from './draft-length.js';
import { promptLookupDraft } from './prompt-lookup.js';
import { predictionDrafter } from './predicted-draft.js';
import type { ComputeBackend } from './compute-backend.js';

/**
 * Where drafts come from: a proposer over the sequence so far (prompt + output; the output from `promptLength`) —
 * pure (prompt lookup, a prediction) or a draft model's greedy continuation.
 */
export type Drafter = (history: readonly number[], maxTokens: number, promptLength: number) => number[] | Promise<number[]>;

/** A draft source with per-request state (a draft model's KV cache): one session per request, closed at its end. */
export interface DraftSource {
  session(): { drafter: Drafter; close(): void };
}

/** A request's speculation: the drafter, the longest draft, and the node's measured pass cost. */
export interface SpeculationOptions {
  drafter: Drafter;
  /** Most drafted tokens per pass. */
  maxDraft: number;
  /** The node's pass timings (shared by its requests): what an extra row costs. */
  cost: PassCost;
  /** Frees what the drafter holds for the request (a draft model's cache); called when the generation ends. */
  close?: () => void;
}

/** Most tokens a pass verifies; the frames' limit (activation-frame.ts) follows it. */
export const MAX_DRAFT_TOKENS = 16;
export const DEFAULT_MAX_DRAFT = 8;

/** Drafted and accepted tokens of one request, and the walks its decode took (for usage and /metrics). */
export interface SpeculationStats {
  drafted: number;
  accepted: number;
  /** Passes through the pipeline after the first token (plain steps and verifications). */
  walks: number;
  /** Tokens those walks returned (a plain step 1, a verification its accepted drafts + 1). */
  tokens: number;
}

/** A node's speculation since start, for /metrics and /v1/cluster. */
export interface SpeculationReport extends SpeculationStats {
  /** Whether requests speculate unless they say otherwise (`--speculate`). */
  enabled: boolean;
  /** Requests that speculated. */
  requests: number;
  /** Extra cost of a pass row as measured, in one-row passes. */
  rowCost: number;
}

/**
 * A node's speculation policy for the requests it coordinates: on or off by default (`--speculate`), a request may
 * say otherwise; one pass-cost measurement shared by them, and totals.
 */
export class NodeSpeculation {
  readonly cost = new PassCost();
  private readonly totals: SpeculationStats & { requests: number } = { requests: 0, drafted: 0, accepted: 0, walks: 0, tokens: 0 };

  constructor(
    readonly enabled: boolean,
    readonly maxDraft = DEFAULT_MAX_DRAFT,
    /** A draft model (`--draft-model`): drafts come from it instead of prompt lookup. */
    readonly source: DraftSource | null = null,
  ) {
    if (!Number.isInteger(maxDraft) || maxDraft < 1 || maxDraft > MAX_DRAFT_TOKENS) throw new RangeError(`the draft length must be a whole number in [1, ${MAX_DRAFT_TOKENS}] (got ${maxDraft})`);
  }

  /**
   * What `generate` takes for a request: `requested` is its own choice (else the node's; a prediction turns it on);
   * `prediction`, the output it expects (token ids), drafts first.
   */
  optionsFor(requested: boolean | undefined, prediction?: readonly number[]): SpeculationOptions | undefined {
    if (!(requested ?? (this.enabled || prediction !== undefined))) return undefined;
    if (prediction) return { drafter: predictionDrafter(prediction), maxDraft: this.maxDraft, cost: this.cost };
    if (!this.source) return { drafter: promptLookup, maxDraft: this.maxDraft, cost: this.cost };
    const { drafter, close } = this.source.session();
    return { drafter, close, maxDraft: this.maxDraft, cost: this.cost };
  }

  count(stats: SpeculationStats | undefined): void {
    if (!stats) return;
    const t = this.totals;
    t.requests++;
    t.drafted += stats.drafted;
    t.accepted += stats.accepted;
    t.walks += stats.walks;
    t.tokens += stats.tokens;
  }

  report(): SpeculationReport {
    return { enabled: this.enabled, ...this.totals, rowCost: this.cost.rowCost() };
  }
}

/** Prompt lookup with the default n-gram sizes. */
export const promptLookup: Drafter = (history, maxTokens) => promptLookupDraft(history, maxTokens);

/** Weight of the newest pass in the running milliseconds of passes of its size. */
const COST_WEIGHT = 0.2;
/** Before two pass sizes were timed: an extra row at a tenth of a walk (a ring's hops dominate small passes). */
const PRIOR_ROW_COST = 0.1;

/**
 * The cost of a pass as a function of its rows, measured: a running mean of milliseconds per pass size, and a line
 * through them. `rowCost` is the slope over a one-row pass's time.
 */
export class PassCost {
  private readonly ms = new Map<number, number>();

  record(rows: number, ms: number): void {
    if (!(ms >= 0) || rows < 1) return;
    const prev = this.ms.get(rows);
    this.ms.set(rows, prev === undefined ? ms : (1 - COST_WEIGHT) * prev + COST_WEIGHT * ms);
  }

  /** Extra cost of one more row, in one-row passes. */
  rowCost(): number {
    if (this.ms.size < 2) return PRIOR_ROW_COST;
    const pts = [...this.ms];
    const mx = pts.reduce((s, [r]) => s + r, 0) / pts.length;
    const my = pts.reduce((s, [, m]) => s + m, 0) / pts.length;
    let sxy = 0;
    let sxx = 0;
    for (const [r, m] of pts) {
      sxy += (r - mx) * (m - my);
      sxx += (r - mx) ** 2;
    }
    const slope = sxy / sxx;
    const oneRow = my + slope * (1 - mx);
    if (!(oneRow > 0)) return PRIOR_ROW_COST;
    return Math.min(2, Math.max(0, slope / oneRow));
  }
}

/** Acceptance assumed before a request has tested a draft: drafts are tried, and the estimate learns fast. */
const PRIOR_ACCEPTANCE = 0.6;
const PRIOR_WEIGHT = 2;
/** Older passes' weight in the acceptance estimate (a request's text changes character as it goes). */
const ACCEPTANCE_DECAY = 0.9;
/** While speculation does not pay, one opportunity in this many still drafts (a probe), to notice when it would. */
const PROBE_EVERY = 8;

/**
 * One request's speculation: how long a draft to ask for next, from its measured acceptance and the node's pass
 * cost, backing off to plain steps when drafts are mostly rejected.
 */
export class DraftTuner {
  /** Decayed counts of drafted tokens the model saw (up to the first rejection included) and accepted. */
  private tested = 0;
  private agreed = 0;
  private idle = 0;
  readonly stats: SpeculationStats = { drafted: 0, accepted: 0, walks: 0, tokens: 0 };

  constructor(private readonly opts: SpeculationOptions) {}

  /** Per-token acceptance estimate in [0, 1]. */
  get acceptance(): number {
    return (this.agreed + PRIOR_ACCEPTANCE * PRIOR_WEIGHT) / (this.tested + PRIOR_WEIGHT);
  }

  /** The draft to verify after `history` (at most `limit` tokens): empty for a plain step. */
  async draft(history: readonly number[], limit: number, promptLength: number): Promise<number[]> {
    const max = Math.min(limit, this.opts.maxDraft);
    if (max < 1) return [];
    let k = chooseDraftLength(this.acceptance, this.opts.cost.rowCost(), max);
    if (k === 0) {
      if (++this.idle < PROBE_EVERY) return [];
      // A probe as long as the acceptance would make worth it with free rows: it times a pass of that size too, so
      // the cost line is measured where speculation would run, not only at two rows (noisy, and pessimistic where
      // per-pass overheads such as hops are what rows amortise).
      k = Math.max(1, chooseDraftLength(this.acceptance, 0, max));
    }
    this.idle = 0;
    return this.opts.drafter(history, k, promptLength);
  }

  /** After a pass: `drafted` tokens verified, the first `accepted` of them kept, in `ms` for its 1 + drafted rows. */
  record(drafted: number, accepted: number, ms: number): void {
    this.stats.walks++;
    this.stats.tokens += accepted + 1;
    this.opts.cost.record(1 + drafted, ms);
    if (drafted === 0) return;
    this.stats.drafted += drafted;
    this.stats.accepted += accepted;
    this.tested = ACCEPTANCE_DECAY * this.tested + accepted + (accepted < drafted ? 1 : 0);
    this.agreed = ACCEPTANCE_DECAY * this.agreed + accepted;
  }
}

/**
 * Speculation is on unless asked otherwise where it cannot change a bit: the kernels give a row the same bits in a
 * pass of any size; tfjs's products do not promise that (its greedy text could differ at a near-tie).
 */
export function speculatesByDefault(compute: ComputeBackend): boolean {
  return compute.name === 'kernels';
}
