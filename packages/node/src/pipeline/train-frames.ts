import { LORA_PROJECTIONS } from '../model/lora-adapter.js';
import type { ModelConfig } from '../model/model-config.js';
import type { TrainerState } from '../training/layer-range-trainer.js';
import { targetDims } from '../training/lora-set.js';

/**
 * The `/edge-node/train/1.0.0` protocol: a fine-tuning job's owner (who keeps the data) and a stage (who keeps a layer
 * range). Requests and replies over one RequestChannel per owner and stage. What travels is only hidden states, their
 * gradients, scalars and, on export, the stage's A and B: no token id, text, label or logit ever does.
 */
export type TrainRequest =
  | { op: 'open'; job: string; model: string; startLayer: number; endLayer: number; rank: number; alpha: number; lr: number; seed: number; keep?: number; resume?: TrainerState }
  | { op: 'forward'; job: string; mb: number; rows: number; x: Float32Array }
  | { op: 'backward'; job: string; mb: number; grad: Float32Array }
  | { op: 'grad-norm'; job: string; start: number }
  | { op: 'step'; job: string; clipScale: number | null }
  | { op: 'export'; job: string }
  | { op: 'export-state'; job: string }
  | { op: 'close'; job: string };

export type TrainReply =
  | { ok: true; parameters: number }
  | { y: Float32Array }
  | { grad: Float32Array }
  | { sum: number }
  | { ok: true }
  /** Each layer's pairs in LORA_PROJECTIONS order, A then B. */
  | { arrays: Float32Array[] }
  /** export-state: the slice's arrays as above, AdamW's moments in the same order, its step count. */
  | { t: number; params: Float32Array[]; m: Float32Array[]; v: Float32Array[] };

/** A train request that is not one: its reason, for the error the owner gets back. */
export class TrainFrameError extends Error {
  override name = 'TrainFrameError';
}

/** What a stage accepts for a model: hidden states of at most `maxRows` rows of `hidden` values, ranks up to `maxRank`. */
export interface TrainFrameLimits {
  hidden: number;
  numLayers: number;
  maxRows: number;
  maxRank: number;
  /** [in, out] of each adapted projection, in LORA_PROJECTIONS order (a checkpoint's arrays are checked against them). */
  dims: { inDim: number; outDim: number }[];
}

/** Jobs an owner may hold open on one stage, and micro-batches a job may have in flight (each keeps its input). */
export const MAX_JOBS_PER_OWNER = 4;
export const MAX_MICRO_BATCHES_IN_FLIGHT = 64;

/** Limits for a model: rows up to the context this node serves (and the largest frame), ranks up to the hidden size. */
export function trainFrameLimits(config: ModelConfig, contextLength: number, maxFrameBytes: number): TrainFrameLimits {
  const byFrame = Math.floor((maxFrameBytes * 0.9) / (config.hiddenSize * 4));
  const shape = { hidden: config.hiddenSize, ffn: config.intermediateSize, heads: config.numHeads, kvHeads: config.numKvHeads, headDim: config.headDim };
  return {
    hidden: config.hiddenSize,
    numLayers: config.numLayers,
    maxRows: Math.max(1, Math.min(contextLength, byFrame)),
    maxRank: Math.min(config.hiddenSize, 1024),
    dims: LORA_PROJECTIONS.map((t) => targetDims(shape, t)),
  };
}

const OPS = new Set(['open', 'forward', 'backward', 'grad-norm', 'step', 'export', 'export-state', 'close']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function int(r: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = r[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new TrainFrameError(`"${key}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function positive(r: Record<string, unknown>, key: string): number {
  const v = r[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new TrainFrameError(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function finiteRows(r: Record<string, unknown>, key: string, values: number, what: string): Float32Array {
  const v = r[key];
  if (!(v instanceof Float32Array)) throw new TrainFrameError(`"${key}" must be a Float32Array of ${what}`);
  if (v.length !== values) throw new TrainFrameError(`"${key}" has ${v.length} values; ${what} are ${values}`);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new TrainFrameError(`"${key}" has a value that is not finite at ${i}`);
  return v;
}

/**
 * Checks a request against the limits: its op and fields, integer ids, rows within the limits, every tensor a finite
 * Float32Array of whole hidden-size rows. `rowsOf` gives the rows a micro-batch went forward with (its gradient must
 * match), or null when it has not.
 */
export function parseTrainRequest(body: unknown, limits: TrainFrameLimits, rowsOf: (job: string, mb: number) => number | null): TrainRequest {
  if (!isRecord(body)) throw new TrainFrameError('a train request must be an object');
  const op = body.op;
  if (typeof op !== 'string' || !OPS.has(op)) throw new TrainFrameError(`unknown op ${JSON.stringify(op)}; expected one of ${[...OPS].join(', ')}`);
  const job = body.job;
  if (typeof job !== 'string' || job.length === 0 || job.length > 64) throw new TrainFrameError('"job" must be a string of 1 to 64 characters');
  switch (op) {
    case 'open': {
      if (typeof body.model !== 'string') throw new TrainFrameError('"model" must be the model\'s fingerprint');
      const startLayer = int(body, 'startLayer', 0, limits.numLayers - 1);
      const endLayer = int(body, 'endLayer', startLayer + 1, limits.numLayers);
      const rank = int(body, 'rank', 1, limits.maxRank);
      const base = { op, job, model: body.model, startLayer, endLayer, rank, alpha: positive(body, 'alpha'), lr: positive(body, 'lr'), seed: int(body, 'seed', 0, 2 ** 32 - 1) } as const;
      // Optional (an owner before it sent none: the stage then keeps one micro-batch's activations at a time).
      const open = body.keep === undefined ? base : { ...base, keep: int(body, 'keep', 1, MAX_MICRO_BATCHES_IN_FLIGHT) };
      if (body.resume === undefined) return open;
      return { ...open, resume: parseResume(body.resume, limits, endLayer - startLayer, rank) };
    }
    case 'forward': {
      const mb = int(body, 'mb', 0, Number.MAX_SAFE_INTEGER);
      const rows = int(body, 'rows', 1, limits.maxRows);
      return { op, job, mb, rows, x: finiteRows(body, 'x', rows * limits.hidden, `${rows} hidden-state rows of ${limits.hidden}`) };
    }
    case 'backward': {
      const mb = int(body, 'mb', 0, Number.MAX_SAFE_INTEGER);
      const rows = rowsOf(job, mb);
      if (rows === null) throw new TrainFrameError(`micro-batch ${mb} of job ${job} has not gone forward here`);
      return { op, job, mb, grad: finiteRows(body, 'grad', rows * limits.hidden, `the gradient of ${rows} rows of ${limits.hidden}`) };
    }
    case 'grad-norm': {
      const start = body.start;
      if (typeof start !== 'number' || !(start >= 0) || start === Infinity) throw new TrainFrameError('"start" must be a finite number ≥ 0');
      return { op, job, start };
    }
    case 'step': {
      const s = body.clipScale;
      if (s !== null && (typeof s !== 'number' || !(s > 0 && s <= 1))) throw new TrainFrameError('"clipScale" must be null or a number in (0, 1]');
      return { op, job, clipScale: s };
    }
    default:
      return { op: op as 'export' | 'export-state' | 'close', job };
  }
}

/** A stage's slice as arrays in the protocol's order: each layer's pairs in LORA_PROJECTIONS order, A then B. */
export function sliceArrays(layers: readonly Record<(typeof LORA_PROJECTIONS)[number], { a: Float32Array | Float64Array; b: Float32Array | Float64Array }>[]): Float32Array[] {
  return layers.flatMap((l) => LORA_PROJECTIONS.flatMap((t) => [Float32Array.from(l[t].a), Float32Array.from(l[t].b)]));
}

/** A checkpoint for `layers` layers at `rank`: every array a finite Float32Array of its pair's size, a step count. */
function parseResume(raw: unknown, limits: TrainFrameLimits, layers: number, rank: number): TrainerState {
  if (!isRecord(raw)) throw new TrainFrameError('"resume" must be an object { t, params, m, v }');
  const t = int(raw, 't', 0, Number.MAX_SAFE_INTEGER);
  const sizes = Array.from({ length: layers }, () => limits.dims.flatMap((d) => [rank * d.inDim, d.outDim * rank])).flat();
  const list = (key: string): Float32Array[] => {
    const v = raw[key];
    if (!Array.isArray(v) || v.length !== sizes.length) throw new TrainFrameError(`"resume.${key}" must be ${sizes.length} arrays (${layers} layers × ${LORA_PROJECTIONS.length} pairs × A, B)`);
    return v.map((x: unknown, i) => finiteRows({ x }, 'x', sizes[i], `entry ${i} of resume.${key}`));
  };
  return { t, params: list('params'), m: list('m'), v: list('v') };
}
