import { LORA_PROJECTIONS, loraScale, type LoraProjection } from '../model/lora-adapter.js';
import type { TrainShape } from './frozen-model.js';
import type { TrainablePair } from './lora-linear.js';
import { zerosLike, type Vec } from './vec.js';

/** Training adapts every projection the forward pass adapts (llama.cpp's names: attn_q … ffn_down). */
export type LayerLora = Record<LoraProjection, TrainablePair>;

/** A whole adapter (or its gradients, or an optimiser moment: the same shapes): A and B of every target of every layer. */
export interface LoraSet {
  rank: number;
  alpha: number;
  layers: LayerLora[];
}

/** [in, out] of each target's matrix W [out, in]. */
export function targetDims(shape: Pick<TrainShape, 'hidden' | 'ffn' | 'heads' | 'kvHeads' | 'headDim'>, t: LoraProjection): { inDim: number; outDim: number } {
  const qDim = shape.heads * shape.headDim;
  const kvDim = shape.kvHeads * shape.headDim;
  switch (t) {
    case 'attn_q': return { inDim: shape.hidden, outDim: qDim };
    case 'attn_k':
    case 'attn_v': return { inDim: shape.hidden, outDim: kvDim };
    case 'attn_output': return { inDim: qDim, outDim: shape.hidden };
    case 'ffn_gate':
    case 'ffn_up': return { inDim: shape.hidden, outDim: shape.ffn };
    case 'ffn_down': return { inDim: shape.ffn, outDim: shape.hidden };
  }
}

export class LoraShapeError extends Error {
  override name = 'LoraShapeError';
}

/**
 * A new adapter as LoRA starts one: A uniform in ±1/√in from a seeded generator (the same adapter for the same seed),
 * B = 0, so the adapted model starts as the base model.
 */
export function createLora(shape: TrainShape, layers: number, rank: number, alpha: number, seed: number): LoraSet {
  if (!Number.isInteger(rank) || rank < 1) throw new LoraShapeError(`LoRA rank must be a positive integer, got ${rank}`);
  if (!(alpha > 0)) throw new LoraShapeError(`LoRA alpha must be positive, got ${alpha}`);
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  // The scale the engine applies the pair with (at --lora-scale 1), in f32 as llama.cpp computes it.
  const scale = loraScale(alpha, rank, 1);
  const make = (t: LoraProjection): TrainablePair => {
    const { inDim, outDim } = targetDims(shape, t);
    const bound = 2 / Math.sqrt(inDim);
    return { a: Float32Array.from({ length: rank * inDim }, () => next() * bound), b: new Float32Array(outDim * rank), rank, inDim, outDim, scale };
  };
  return { rank, alpha, layers: Array.from({ length: layers }, () => mapTargets((t) => make(t))) };
}

function mapTargets(f: (t: LoraProjection) => TrainablePair): LayerLora {
  return Object.fromEntries(LORA_PROJECTIONS.map((t) => [t, f(t)])) as LayerLora;
}

/** Zeroed arrays of the same shapes (gradients, optimiser moments). */
export function zerosLikeLora(set: LoraSet): LoraSet {
  return { ...set, layers: set.layers.map((l) => mapTargets((t) => ({ ...l[t], a: zerosLike(l[t].a, l[t].a.length), b: zerosLike(l[t].b, l[t].b.length) }))) };
}

/** Every trainable array in one fixed order (layer, target, A then B): the order of every reduction over the adapter. */
export function loraArrays(set: LoraSet): Vec[] {
  const out: Vec[] = [];
  for (const l of set.layers) for (const t of LORA_PROJECTIONS) out.push(l[t].a, l[t].b);
  return out;
}
