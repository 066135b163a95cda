import type { FinetuneProgress } from './training-loop.js';

/** A fine-tuning job as a node is given it (`POST /v1/edge-node/finetune`): the data itself and the options. */
export interface FinetuneJobRequest {
  /** The training data as JSONL text (`{"text": …}` or `{"messages": […]}` lines). */
  data: string;
  /** How errors name the data (the client's file name). */
  source: string;
  rank: number;
  alpha: number;
  lr: number;
  steps: number;
  batch: number;
  seed: number;
  /** Stages lost mid-job that the job goes on without (from its last checkpoint) before it fails. */
  recoveries: number;
}

export interface FinetuneJobReport {
  examples: number;
  parameters: number;
  /** Each step's loss before its update (the training forward's, through the stages). */
  losses: number[];
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Measured ms per step after the first (which warms up), on a cluster's job. */
  stepMs?: number;
  /** The training plan's predicted ms per step for the split the job ran on, when it was priced. */
  predictedStepMs?: number | null;
  /** The stages the layers were trained on, in order. */
  stages: { name: string; startLayer: number; endLayer: number }[];
  /** The adapter in llama.cpp's LoRA GGUF format (F32). */
  adapter: Uint8Array;
}

/** A job whose data and options were checked (so a bad line is refused before anything starts), ready to run. */
export interface PreparedFinetune {
  readonly examples: number;
  /** `onNotice`: what the job's client should be told as it happens (a stage lost and the job going on without it). */
  run(onProgress: (p: FinetuneProgress) => void, signal: AbortSignal, onNotice?: (message: string) => void): Promise<FinetuneJobReport>;
}

/** The last job this node owned, as the web page draws it (`GET /v1/edge-node/finetune`). */
export interface FinetuneStatus {
  state: 'running' | 'done' | 'failed';
  step: number;
  steps: number;
  /** Each step's loss so far. */
  losses: number[];
  tokensPerSecond: number;
  /** The split it runs on, e.g. "n1[0,2) → n2[2,5)". */
  stages: string;
  /** Why it failed, or what it last had to say (a stage lost and replaced). */
  message: string | null;
}

/** What runs fine-tuning jobs on a node's cluster (pipeline/cluster-finetune.ts). */
export interface FinetuneRunner {
  /** The job running, or the last one (null before any). */
  status(): FinetuneStatus | null;
  /**
   * Checks the options, parses and tokenises the data and checks that the job fits the nodes' memory; throws
   * TrainingDataError (with the line), FinetuneOptionError or FinetuneMemoryError.
   */
  prepare(req: FinetuneJobRequest): Promise<PreparedFinetune>;
}

/** A job is running on this node already (one at a time: each holds a copy of its stages' layers). */
export class FinetuneBusyError extends Error {
  override name = 'FinetuneBusyError';
}

/** What a job request leaves out (the `edge-node finetune` defaults). */
export const FINETUNE_DEFAULTS = { rank: 8, alpha: 16, lr: 1e-3, steps: 100, batch: 4, seed: 0, recoveries: 3 } as const;

/** A job that does not fit a node's memory, refused before it starts (the message names the node and by how much). */
export class FinetuneMemoryError extends Error {
  override name = 'FinetuneMemoryError';
}

export class FinetuneOptionError extends Error {
  override name = 'FinetuneOptionError';
}

/** The options' ranges, named as the command's flags. */
export function checkFinetuneOptions(o: { rank: number; steps: number; batch: number; alpha: number; lr: number; threads?: number; seed?: number; recoveries?: number }): void {
  const positiveInt = (v: number, flag: string) => {
    if (!Number.isSafeInteger(v) || v < 1) throw new FinetuneOptionError(`${flag} must be a positive integer, got ${v}`);
  };
  positiveInt(o.rank, '--rank');
  positiveInt(o.steps, '--steps');
  positiveInt(o.batch, '--batch');
  if (o.threads !== undefined) positiveInt(o.threads, '--threads');
  if (o.seed !== undefined && !(Number.isSafeInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32)) throw new FinetuneOptionError(`--seed must be an integer from 0 to 2^32 − 1, got ${o.seed}`);
  if (o.recoveries !== undefined && !(Number.isSafeInteger(o.recoveries) && o.recoveries >= 0 && o.recoveries <= 16)) throw new FinetuneOptionError(`recoveries must be an integer from 0 to 16, got ${o.recoveries}`);
  if (!(o.alpha > 0 && Number.isFinite(o.alpha))) throw new FinetuneOptionError(`--alpha must be a positive number, got ${o.alpha}`);
  if (!(o.lr > 0 && Number.isFinite(o.lr))) throw new FinetuneOptionError(`--lr must be a positive number, got ${o.lr}`);
}
