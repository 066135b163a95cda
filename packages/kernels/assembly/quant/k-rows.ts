// The super-block loop shared by the K-quants' single-row products (Q2_K, Q3_K, Q6_K; Q4_K, Q5_K via k4-family.ts) against a prepared Q8_K row
// (Q8_KS in the relaxed build): [nb × f32 d][nb × 16 × i16 bsums][nb × 256 q]. Each type has a block class L in its
// own file whose methods inline: blockBytes(), and blockDot(p, xd, bsums, aq), one super-block's f32x4 contribution.
import { hsum } from '../simd';
import { KACT_BYTES } from './int-dot';

/** W[r]·act for one weight row at wr and one prepared activation row at ad of nb super-blocks. */
// @ts-ignore: decorator
@inline export function rowDotK<L>(wr: usize, ad: usize, nb: i32): f32 {
  const block = changetype<L>(0);
  const sums = ad + (<usize>nb << 2);
  const aq = ad + <usize>nb * 36;
  let s = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    s = f32x4.add(s, block.blockDot(wr + <usize>b * block.blockBytes(), load<f32>(ad + (<usize>b << 2)), sums + (<usize>b << 5), aq + (<usize>b << 8) * KACT_BYTES));
  }
  return hsum(s);
}
