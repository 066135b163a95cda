import type { AttentionShape } from './attention-grad.js';
import type { FrozenLayer, FrozenRange } from './frozen-model.js';
import { loraBackward, loraBackwardShared, loraForward, loraForwardShared, type LoraSaved } from './lora-linear.js';
import type { LayerLora } from './lora-set.js';
import { rmsNormBackward, rmsNormForward } from './rms-norm-grad.js';
import { ropeApply, ropeTable, type RopeShape } from './rope-grad.js';
import { swigluBackward } from './swiglu-grad.js';
import type { Vec } from './vec.js';

/** What one layer's forward keeps for its backward (activations of one sequence). */
export interface LayerSaved {
  x: Vec;
  r1: Vec;
  q: Vec;
  k: Vec;
  v: Vec;
  probs: Vec;
  lq: LoraSaved;
  lk: LoraSaved;
  lv: LoraSaved;
  lo: LoraSaved;
  x2: Vec;
  r2: Vec;
  g: Vec;
  u: Vec;
  /** SwiGLU's 1 + e^−g (swiglu-grad.ts). */
  den: Float64Array;
  lgate: LoraSaved;
  lup: LoraSaved;
  ldown: LoraSaved;
}

function addBias(y: Vec, rows: number, bias: Vec): void {
  for (let i = 0; i < rows; i++) for (let j = 0; j < bias.length; j++) y[i * bias.length + j] += bias[j];
}

/**
 * a + b into b, which the caller has just made and nobody else holds (a sum of two is the same bits either way round;
 * a new array per residual and gradient sum was a share of the garbage collected per step).
 */
function addInto(a: Vec, b: Vec): Vec {
  for (let i = 0; i < b.length; i++) b[i] = a[i] + b[i];
  return b;
}

/** One layer, the engine's order: norm → q, k, v (+bias) → RoPE → attention → o → residual → norm → gate, up → SwiGLU → down → residual. */
export function layerForward(m: FrozenRange, w: FrozenLayer, lora: LayerLora, x: Vec, t: number, table: Vec): { out: Vec; saved: LayerSaved } {
  const s = m.shape;
  const { y: h1, r: r1 } = rmsNormForward(x, t, s.hidden, w.attnNorm, s.eps);
  const [fq, fk, fv] = loraForwardShared(h1, t, [w.wq, w.wk, w.wv], [lora.attn_q, lora.attn_k, lora.attn_v], m.gemm);
  if (w.bias) {
    addBias(fq.y, t, w.bias.q);
    addBias(fk.y, t, w.bias.k);
    addBias(fv.y, t, w.bias.v);
  }
  ropeApply(fq.y, ropeShape(m, t, s.heads), table);
  ropeApply(fk.y, ropeShape(m, t, s.kvHeads), table);
  const { out: att, probs } = m.gemm.attentionForward(fq.y, fk.y, fv.y, attnShape(m, t));
  const fo = loraForward(att, t, w.wo, lora.attn_output, m.gemm);
  const x2 = addInto(x, fo.y);
  const { y: h2, r: r2 } = rmsNormForward(x2, t, s.hidden, w.ffnNorm, s.eps);
  const [fg, fu] = loraForwardShared(h2, t, [w.wgate, w.wup], [lora.ffn_gate, lora.ffn_up], m.gemm);
  const sw = m.gemm.swigluForward(fg.y, fu.y);
  const fd = loraForward(sw.out, t, w.wdown, lora.ffn_down, m.gemm);
  const saved = { x, r1, q: fq.y, k: fk.y, v: fv.y, probs, lq: fq.saved, lk: fk.saved, lv: fv.saved, lo: fo.saved, x2, r2, g: fg.y, u: fu.y, den: sw.den, lgate: fg.saved, lup: fu.saved, ldown: fd.saved };
  return { out: addInto(x2, fd.y), saved };
}

/** The gradient of a layer's output → of its input; adds the layer's LoRA gradients into `grads`. */
export function layerBackward(m: FrozenRange, w: FrozenLayer, lora: LayerLora, grads: LayerLora, sv: LayerSaved, dOut: Vec, t: number, table: Vec): Vec {
  const s = m.shape;
  const ds = loraBackward(dOut, sv.ldown, w.wdown, lora.ffn_down, grads.ffn_down.a, grads.ffn_down.b, m.gemm);
  const { dg, du } = swigluBackward(ds, sv.g, sv.u, sv.den);
  const [dGate, dUp] = loraBackwardShared([dg, du], [sv.lgate, sv.lup], [w.wgate, w.wup], [lora.ffn_gate, lora.ffn_up], [grads.ffn_gate.a, grads.ffn_up.a], [grads.ffn_gate.b, grads.ffn_up.b], m.gemm);
  const dh2 = addInto(dGate, dUp);
  const dx2 = addInto(dOut, rmsNormBackward(dh2, sv.x2, sv.r2, t, s.hidden, w.ffnNorm));
  const dAtt = loraBackward(dx2, sv.lo, w.wo, lora.attn_output, grads.attn_output.a, grads.attn_output.b, m.gemm);
  const { dq, dk, dv } = m.gemm.attentionBackward(dAtt, sv.q, sv.k, sv.v, sv.probs, attnShape(m, t));
  ropeApply(dq, ropeShape(m, t, s.heads), table, true);
  ropeApply(dk, ropeShape(m, t, s.kvHeads), table, true);
  const [dxq, dxk, dxv] = loraBackwardShared(
    [dq, dk, dv],
    [sv.lq, sv.lk, sv.lv],
    [w.wq, w.wk, w.wv],
    [lora.attn_q, lora.attn_k, lora.attn_v],
    [grads.attn_q.a, grads.attn_k.a, grads.attn_v.a],
    [grads.attn_q.b, grads.attn_k.b, grads.attn_v.b],
    m.gemm,
  );
  const dh1 = addInto(addInto(dxq, dxk), dxv);
  return addInto(dx2, rmsNormBackward(dh1, sv.x, sv.r1, t, s.hidden, w.attnNorm));
}

function ropeShape(m: FrozenRange, rows: number, heads: number): RopeShape {
  return { rows, stride: heads * m.shape.headDim, heads, headDim: m.shape.headDim, pairs: m.shape.ropePairs };
}

function attnShape(m: FrozenRange, t: number): AttentionShape {
  return { t, heads: m.shape.heads, kvHeads: m.shape.kvHeads, headDim: m.shape.headDim };
}

/** RoPE's cos/sin table for positions 0 … t−1 (in `like`'s precision). */
export function positionsTable(m: FrozenRange, t: number, like: Vec): Vec {
  return ropeTable(Array.from({ length: t }, (_, i) => i), m.shape.ropeFreqs, like);
}

