import type { ModelFile } from './model-file.js';
import { LoraAdapterError } from './model-errors.js';

/** The projections of a layer a LoRA adapter may adapt: the ones the forward pass multiplies. */
export const LORA_PROJECTIONS = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] as const;
export type LoraProjection = (typeof LORA_PROJECTIONS)[number];

/**
 * The low-rank update of one base matrix W [out, in]: W' = W + scale · B·A. Row-major float32, as the forward
 * multiplies them: `a` is A [rank, in] (GGUF ne [in, rank]), `b` is B [out, rank] (GGUF ne [rank, out]).
 */
export interface LoraPair {
  rank: number;
  a: Float32Array;
  b: Float32Array;
  /**
   * How a file stored A and B (default F32). ggml multiplies an F16 (BF16) matrix with its input rounded to F16
   * (BF16), so the forward rounds A's and B's inputs the same way to give llama.cpp's results; slices keep the type.
   */
  aType?: LoraStoredType;
  bType?: LoraStoredType;
}

/** The encodings a LoRA file's tensors may have here. */
export type LoraStoredType = 'F32' | 'F16' | 'BF16';

/**
 * A LoRA adapter in memory — what a trainer fills and what the file holds (llama.cpp's LoRA GGUF). `alpha` is
 * adapter.lora.alpha: with a user scale s, each pair is applied with scale s·alpha/rank (s alone when alpha is 0,
 * as llama.cpp does). `tensors` is keyed by the adapted base tensor's name, e.g. `blk.3.attn_q.weight`.
 */
export interface LoraAdapter {
  alpha: number;
  tensors: Map<string, LoraPair>;
}

/** The base tensor name of a layer's projection. */
export function loraTargetName(layer: number, projection: LoraProjection): string {
  return `blk.${layer}.${projection}.weight`;
}

/** The layer and projection a base tensor name adapts, or null when it is not a projection the forward adapts. */
export function parseLoraTarget(name: string): { layer: number; projection: LoraProjection } | null {
  const m = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(name);
  if (!m) return null;
  const projection = LORA_PROJECTIONS.find((p) => p === m[2]);
  return projection === undefined ? null : { layer: Number(m[1]), projection };
}

/** The scale a pair is applied with, computed in f32 as llama.cpp does: userScale · alpha / rank, or userScale when alpha is 0. */
export function loraScale(alpha: number, rank: number, userScale: number): number {
  const f = Math.fround;
  return alpha === 0 ? f(userScale) : f(f(f(userScale) * f(alpha)) / rank);
}

/** The pairs of layers [startLayer, endLayer): what a pipeline stage holding those layers applies. */
export function sliceLoraAdapter(adapter: LoraAdapter, startLayer: number, endLayer: number): LoraAdapter {
  const tensors = new Map<string, LoraPair>();
  for (const [name, pair] of adapter.tensors) {
    const target = parseLoraTarget(name);
    if (target !== null && target.layer >= startLayer && target.layer < endLayer) tensors.set(name, pair);
  }
  return { alpha: adapter.alpha, tensors };
}

/** The architecture name the base model's file states (what an adapter's general.architecture must equal). */
export function baseArchitectureName(base: ModelFile): string {
  const stated = base.tokenizer.kind === 'gguf' ? base.tokenizer.metadata.get('general.architecture') : undefined;
  return typeof stated === 'string' ? stated : base.config.architecture;
}

/**
 * Checks an adapter against its base model before it is used or written: alpha finite, at least one pair, every
 * pair names a projection of the base that exists, ranks positive, A and B of the sizes the base's [out, in] and
 * the rank give, every value finite. Throws a LoraAdapterError naming the tensor and what is wrong.
 */
export function checkLoraAdapter(adapter: LoraAdapter, base: ModelFile, file: string): void {
  if (!Number.isFinite(adapter.alpha)) throw new LoraAdapterError(file, `adapter.lora.alpha is ${adapter.alpha}; it must be a finite number`);
  if (adapter.tensors.size === 0) throw new LoraAdapterError(file, 'the adapter has no LoRA tensors (no <tensor>.lora_a / .lora_b pairs)');
  for (const [name, pair] of adapter.tensors) {
    if (parseLoraTarget(name) === null) {
      throw new LoraAdapterError(file, `edge-node applies LoRA only to blk.N.{${LORA_PROJECTIONS.join(',')}}.weight, and this adapts another tensor`, name);
    }
    const info = base.tensors.get(name);
    if (info === undefined) throw new LoraAdapterError(file, `the base model ${base.path} has no tensor ${name} (an adapter for another model?)`, name);
    const [out, inF] = info.shape;
    if (!Number.isSafeInteger(pair.rank) || pair.rank <= 0) throw new LoraAdapterError(file, `rank is ${pair.rank}; it must be a positive integer`, name);
    if (pair.a.length !== pair.rank * inF) {
      throw new LoraAdapterError(file, `lora_a has ${pair.a.length} values, expected rank ${pair.rank} × ${inF} inputs of the base's [${out}, ${inF}]`, name);
    }
    if (pair.b.length !== out * pair.rank) {
      throw new LoraAdapterError(file, `lora_b has ${pair.b.length} values, expected ${out} outputs of the base's [${out}, ${inF}] × rank ${pair.rank}`, name);
    }
    checkFinite(pair.a, `${name}.lora_a`, file);
    checkFinite(pair.b, `${name}.lora_b`, file);
  }
}

function checkFinite(values: Float32Array, tensor: string, file: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new LoraAdapterError(file, `value #${i} is ${values[i]}; every value must be finite`, tensor);
  }
}
