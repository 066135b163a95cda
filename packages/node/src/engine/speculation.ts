import { chooseDraftLength, DRAFT_STAIRCASE, expectedTokensPerWalk, stairAbove } from './draft-length.js';
import { DraftCost } from './draft-cost.js';
import { PassCost } from './pass-cost.js';
import { SourceAcceptance } from './source-acceptance.js';
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
  /** The node's pass timings (shared by its requests): what a pass of each size costs. */
  cost: PassCost;
  /** The drafter's time per token (shared by the requests drafting from the same source). */
  draftCost: DraftCost;
  /** The source's acceptance across requests: where this request's estimate starts. */
  sourceAcceptance: SourceAcceptance;
  /** Frees what the drafter holds for the request (a draft model's cache); called when the generation ends. */
  close?: () => void;
}

/** Most tokens a pass verifies; the frames' limit (activation-frame.ts) follows it. */
export const MAX_DRAFT_TOKENS = 16;
/** The tuner chooses among the staircase's steps up to this many (draft-length.ts), from measured costs. */
export const DEFAULT_MAX_DRAFT = 16;

/** Drafted and accepted tokens of one request, and the walks its decode took (for usage and /metrics). */
export interface SpeculationStats {
  drafted: number;
  accepted: number;
  /** Passes through the pipeline after the first token (plain steps and verifications). */
  walks: number;
  /** Tokens those walks returned (a plain step 1, a verification its accepted drafts + 1). */
  tokens: number;
  /** The draft length k chosen last (0: plain steps won) from the measured acceptance and costs, where the tokens left did not cut it short. */
  draftLength: number;
}

/** A node's speculation since start, for /metrics and /v1/cluster. */
export interface SpeculationReport extends SpeculationStats {
  /** Whether requests speculate unless they say otherwise (`--speculate`). */
  enabled: boolean;
  /** Requests that speculated. */
  requests: number;
  /** Extra cost of a pass row as measured, in one-row passes. */
  rowCost: number;
  /** The drafter's measured milliseconds per drafted token (the draft model's, with one). */
  draftMsPerToken: number;
  /** Measured milliseconds of a pass, by its rows (1: a plain walk, 1 + k: verifying k drafts). */
  passMs: Record<number, number>;
}

/**
 * A node's speculation policy for the requests it coordinates: on or off by default (`--speculate`), a request may
 * say otherwise; one pass-cost measurement and one draft-cost measurement per draft source shared by them, and totals.
 */
export class NodeSpeculation {
  readonly cost = new PassCost();
  /** The draft model's time per drafted token (`--draft-model`). */
  readonly modelDraftCost = new DraftCost();
  /** Prompt lookup's and a prediction's (a scan: next to nothing, measured all the same). */
  readonly lookupDraftCost = new DraftCost();
  /** Each source's acceptance across requests (a prediction is its own: a client's expected answer). */
  private readonly acceptance = { model: new SourceAcceptance(), lookup: new SourceAcceptance(), prediction: new SourceAcceptance() };
  private readonly totals: SpeculationStats & { requests: number } = { requests: 0, drafted: 0, accepted: 0, walks: 0, tokens: 0, draftLength: 0 };

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
    const common = { maxDraft: this.maxDraft, cost: this.cost };
    if (prediction) return { ...common, drafter: predictionDrafter(prediction), draftCost: this.lookupDraftCost, sourceAcceptance: this.acceptance.prediction };
    if (!this.source) return { ...common, drafter: promptLookup, draftCost: this.lookupDraftCost, sourceAcceptance: this.acceptance.lookup };
    const { drafter, close } = this.source.session();
    return { ...common, drafter, close, draftCost: this.modelDraftCost, sourceAcceptance: this.acceptance.model };
  }

  count(stats: SpeculationStats | undefined): void {
    if (!stats) return;
    const t = this.totals;
    t.requests++;
    t.drafted += stats.drafted;
    t.accepted += stats.accepted;
    t.walks += stats.walks;
    t.tokens += stats.tokens;
    t.draftLength = stats.draftLength;
  }

  report(): SpeculationReport {
    const draftMsPerToken = (this.source ? this.modelDraftCost : this.lookupDraftCost).msPerToken();
    return { enabled: this.enabled, ...this.totals, rowCost: this.cost.rowCost(), draftMsPerToken, passMs: this.cost.timings() };
  }
}

/** Prompt lookup with the default n-gram sizes. */
export const promptLookup: Drafter = (history, maxTokens) => promptLookupDraft(history, maxTokens);

/** The source's acceptance (SourceAcceptance) counts as this many drafted tokens beside the request's own. */
const PRIOR_WEIGHT = 1;
/** Older passes' weight in the acceptance estimate (a request's text changes character as it goes). */
const ACCEPTANCE_DECAY = 0.9;
/**
 * While speculation does not pay, one opportunity in this many still drafts (a probe), to notice when it would; while
 * it does, one verification in this many drafts a step higher on the staircase, so that the next size is timed.
 */
const PROBE_EVERY = 8;
/**
 * A longer draft on the staircase whose pass was never timed is tried at once, where the acceptance makes it yield
 * at least this many times the tokens of the length chosen: a line through the short passes timed so far prices
 * long ones dear (a few rows do not fill the kernels' eight-row groups), and climbing a step every PROBE_EVERY
 * verifications would take a whole answer to reach them.
 */
const EXPLORE_GAIN = 1.2;

/**
 * One request's speculation: how long a draft to ask for next, from its measured acceptance, the node's measured
 * pass times and the drafter's measured time per token (draft-length.ts), backing off to plain steps when drafts
 * are mostly rejected.
 */
export class DraftTuner {
  /** Decayed counts of drafted tokens the model saw (up to the first rejection included) and accepted. */
  private tested = 0;
  private agreed = 0;
  private idle = 0;
  private steady = 0;
  readonly stats: SpeculationStats = { drafted: 0, accepted: 0, walks: 0, tokens: 0, draftLength: 0 };

  private readonly prior: number;

  constructor(private readonly opts: SpeculationOptions) {
    this.prior = opts.sourceAcceptance.estimate();
  }

  /** Per-token acceptance estimate in [0, 1]: the request's own passes, from where its source's stood. */
  get acceptance(): number {
    return (this.agreed + this.prior * PRIOR_WEIGHT) / (this.tested + PRIOR_WEIGHT);
  }

  /** The draft to verify after `history` (at most `limit` tokens): empty for a plain step. */
  async draft(history: readonly number[], limit: number, promptLength: number): Promise<number[]> {
    const max = Math.min(limit, this.opts.maxDraft);
    if (max < 1) return [];
    const { cost, draftCost } = this.opts;
    const costs = { acceptance: this.acceptance, passMs: (rows: number) => cost.passMs(rows), draftMsPerToken: draftCost.msPerToken() };
    let k = chooseDraftLength(costs, max);
    // Reported: the choice the costs made, not one the tokens left cut short at the end of the answer.
    if (max === this.opts.maxDraft || this.stats.walks === 0) this.stats.draftLength = k;
    if (k === 0) {
      this.steady = 0;
      if (++this.idle < PROBE_EVERY) return [];
      // A probe as long as the acceptance would make worth it with free rows and drafting: it times a pass of that
      // size too, so the cost is measured where speculation would run (per-pass overheads such as hops are what
      // rows amortise).
      k = Math.max(1, chooseDraftLength({ ...costs, passMs: () => cost.passMs(1), draftMsPerToken: 0 }, max));
    } else {
      const untimed = DRAFT_STAIRCASE.find((s) => s > k && s <= max && !cost.timed(1 + s));
      if (untimed !== undefined && expectedTokensPerWalk(costs.acceptance, untimed) >= EXPLORE_GAIN * expectedTokensPerWalk(costs.acceptance, k)) k = untimed;
      else if (++this.steady >= PROBE_EVERY) {
        this.steady = 0;
        k = stairAbove(k, max);
      }
    }
    this.idle = 0;
    const t = performance.now();
    const draft = await this.opts.drafter(history, k, promptLength);
    draftCost.record(draft.length, performance.now() - t);
    return draft;
  }

  /** After a pass: `drafted` tokens verified, the first `accepted` of them kept, in `ms` for its 1 + drafted rows (drafting not counted). */
  record(drafted: number, accepted: number, ms: number): void {
    this.stats.walks++;
    this.stats.tokens += accepted + 1;
    this.opts.cost.record(1 + drafted, ms);
    if (drafted === 0) return;
    this.stats.drafted += drafted;
    this.stats.accepted += accepted;
    const tested = accepted + (accepted < drafted ? 1 : 0);
    this.tested = ACCEPTANCE_DECAY * this.tested + tested;
    this.agreed = ACCEPTANCE_DECAY * this.agreed + accepted;
    this.opts.sourceAcceptance.record(tested, accepted);
  }
}

/**
 * Speculation is on unless asked otherwise where it cannot change a bit: the kernels give a row the same bits in a
 * pass of any size; tfjs's products do not promise that (its greedy text could differ at a near-tie).
 */
export function speculatesByDefault(compute: ComputeBackend): boolean {
  return compute.name === 'kernels';
}
