/** The workload a training plan is made for: one step of a LoRA fine-tuning job. */
export interface TrainingShape {
  /** Tokens of one sequence (a micro-batch): the longest of the job's, for memory (and for pricing, without meanTokens). */
  sequenceTokens: number;
  /**
   * Tokens per sequence on average, what a step's compute and transfers are priced with: each micro-batch costs its
   * own rows, and pricing every one at the longest put the moo job's step 20 % over (17–23 rows, mean 19.2).
   * Default: sequenceTokens.
   */
  meanTokens?: number;
  /** Sequences per step, each one micro-batch through the pipeline (1F1B). */
  microBatches: number;
  /** LoRA rank. */
  rank: number;
  /** Rows per sequence the loss counts (the head and cross-entropy run on those only; prompt rows are skipped). Default: sequenceTokens. */
  lossTokens?: number;
}

export function normalizeTraining(t: TrainingShape): Required<TrainingShape> {
  const longest = Math.max(1, Math.floor(t.sequenceTokens));
  return {
    sequenceTokens: longest,
    meanTokens: Math.min(longest, Math.max(1, t.meanTokens ?? longest)),
    microBatches: Math.max(1, Math.floor(t.microBatches)),
    rank: Math.max(1, Math.floor(t.rank)),
    lossTokens: Math.min(Math.max(1, Math.floor(t.sequenceTokens)), Math.max(1, t.lossTokens ?? t.sequenceTokens)),
  };
}
