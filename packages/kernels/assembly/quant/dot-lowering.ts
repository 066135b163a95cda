// How this runtime lowers i32x4.relaxed_dot_i8x16_i7x16_add_s, found once at instantiation, and the two shapes of the
// unsigned K-quants' relaxed products that follow from it. Where the instruction is one step (vpdpbusd where V8 sees
// AVX-VNNI, sdot on Arm), they use it. Where V8 lowers it to vpmaddubsw + vpmaddwd + vpaddd (x64 without AVX-VNNI —
// this machine's VM shows AVX-512 VNNI only), they take i16x8.relaxed_dot_i8x16_i7x16_s (the vpmaddubsw alone), add
// the i16 pair sums and meet the scales in one pmaddwd: 4 instead of 7 instructions per 32 values and activation row
// beyond the shared ones (int-dot.ts's pairSums16, pairTermOfPairs). Both give every lane the same integer, so the
// choice never changes an output bit.

/** Two runs of 200 (as i7: out of range on purpose) and of −100: what the probe multiplies. */
const PROBE = memory.data<u8>([
  200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200,
  156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156, 156,
], 16);

/**
 * Whether the relaxed dot is lowered through saturating i16 pairs: vpmaddubsw's −32768 per pair gives −65536 a lane
 * for 200 · −100 four times (a one-step lowering gives −80000 taking 200 unsigned, or 22400 taking it as −56).
 */
function probePairedLowering(): bool {
  if (!ASC_FEATURE_RELAXED_SIMD) return false;
  const r = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(PROBE, 16), v128.load(PROBE), i32x4.splat(0));
  return i32x4.extract_lane(r, 0) == -65536;
}

/** The shape the relaxed build's K-quant products take here; tests may set it either way (both are exact everywhere). */
export let pairedLowering: bool = probePairedLowering();

/** Type parameters of the products (constants once inlined): the one-step shape, and the shape for paired lowerings. */
@final @unmanaged export class FusedDot {
  // @ts-ignore: decorator
  @inline paired(): bool { return false; }
}
@final @unmanaged export class PairedDot {
  // @ts-ignore: decorator
  @inline paired(): bool { return true; }
}

/** Sets the shape (tests: both shapes on one machine, bit for bit). */
export function setPairedLowering(on: bool): void {
  pairedLowering = on;
}
