import { expF64 } from '@edge-node/kernels';
import { zerosLike, type Vec } from './vec.js';

/** SwiGLU's output, and 1 + e^−g per element for the backward. */
export interface SwigluForward {
  out: Vec;
  /**
   * 1 + e^−g in float64, whatever the precision: the backward's σ(g) = 1 / (1 + e^−g) from it is the bits computing
   * it again gives, without the exponential (the backward's exp was most of its time; 8 bytes per element of the MLP
   * kept with the activations, counted in the partitioner's training-memory.ts).
   */
  den: Float64Array;
}

/**
 * out = silu(g) · u elementwise, silu(g) = g / (1 + e^−g), as the engine's kernel; e^x is the kernels' expF64, so
 * that `swiglu_train` (KernelGemm's) gives these bits.
 */
export function swigluForward(g: Vec, u: Vec): SwigluForward {
  // The result made before the loop, not after it: V8 compiles a hot loop alone, and an object first made after it
  // sent that code back to the interpreter on every call (as swigluBackward's).
  const r: SwigluForward = { out: zerosLike(g, g.length), den: new Float64Array(g.length) };
  const { out, den } = r;
  for (let i = 0; i < g.length; i++) {
    const d = 1 + expF64(-g[i]);
    den[i] = d;
    out[i] = (g[i] / d) * u[i];
  }
  return r;
}

/** dg = dout·u·silu'(g) with silu'(g) = σ(g)(1 + g(1 − σ(g))); du = dout·silu(g); σ(g) = 1 / den (swigluForward's). */
export function swigluBackward(dout: Vec, g: Vec, u: Vec, den: Float64Array): { dg: Vec; du: Vec } {
  const r = { dg: zerosLike(dout, g.length), du: zerosLike(dout, g.length) };
  const { dg, du } = r;
  for (let i = 0; i < g.length; i++) {
    const sig = 1 / den[i];
    du[i] = dout[i] * g[i] * sig;
    dg[i] = dout[i] * u[i] * sig * (1 + g[i] * (1 - sig));
  }
  return r;
}
