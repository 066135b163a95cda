import { zerosLike, type Vec } from './vec.js';

/** out = silu(g) · u elementwise, silu(g) = g / (1 + e^−g), as the engine's kernel. */
export function swigluForward(g: Vec, u: Vec): Vec {
  const out = zerosLike(g, g.length);
  for (let i = 0; i < g.length; i++) out[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return out;
}

/** dg = dout·u·silu'(g) with silu'(g) = σ(g)(1 + g(1 − σ(g))); du = dout·silu(g). */
export function swigluBackward(dout: Vec, g: Vec, u: Vec): { dg: Vec; du: Vec } {
  const dg = zerosLike(dout, g.length);
  const du = zerosLike(dout, g.length);
  for (let i = 0; i < g.length; i++) {
    const sig = 1 / (1 + Math.exp(-g[i]));
    du[i] = dout[i] * g[i] * sig;
    dg[i] = dout[i] * u[i] * sig * (1 + g[i] * (1 - sig));
  }
  return { dg, du };
}
