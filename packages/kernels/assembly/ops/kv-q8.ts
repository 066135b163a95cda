// Rows of the Q8_0 KV cache: ggml's block_q8_0 (per 32 values an f16 scale d = max|x|/127, then 32 × i8 round(x/d)),
// made the way ggml's quantize_row_q8_0_ref makes them (x·(1/d), rounded half away from zero, as roundf does), so a
// cache row holds the bits llama.cpp's reference quantiser would write.
import { f32ToF16 } from '../half';

export const KV_Q8_0_BLOCK_BYTES: usize = 34;

// roundf: to nearest, ties away from zero (nearest() would round ties to even).
// @ts-ignore: decorator
@inline function roundAway(x: f32): f32 {
  const t = trunc(x);
  return abs(x - t) >= 0.5 ? t + copysign<f32>(1, x) : t;
}

/** Quantises n f32 values at src (n a multiple of 32) into n/32 Q8_0 blocks at dst. */
export function quantizeQ8_0(src: usize, dst: usize, n: i32): void {
  const nb = n >> 5;
  for (let b = 0; b < nb; b++) {
    const x = src + (<usize>b << 7);
    const out = dst + <usize>b * KV_Q8_0_BLOCK_BYTES;
    let amax: f32 = 0;
    for (let j = 0; j < 32; j++) amax = max(amax, abs(load<f32>(x + (<usize>j << 2))));
    const d: f32 = amax / 127;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(out, <u16>f32ToF16(d));
    for (let j = 0; j < 32; j++) store<i8>(out + 2 + <usize>j, <i8>(<i32>roundAway(load<f32>(x + (<usize>j << 2)) * id)));
  }
}
