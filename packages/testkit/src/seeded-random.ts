/**
 * Deterministic, addressable random numbers for synthetic weights. Every (seed, stream, row) triple has its
 * own generator, so any row of any tensor can be produced on its own: a GGUF writer can emit Q/K rows in
 * RoPE-permuted order and still hold exactly the numbers the safetensors writer emits in HF order.
 */

/** 32-bit FNV-1a of a string: turns a tensor name into a stream id. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: spreads nearby inputs (row 0, row 1, ...) over unrelated states. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

const TWO_PI = 2 * Math.PI;
const INV_2_32 = 1 / 4294967296;

/** sfc32 (Chris Doty-Humphrey's small fast chaotic PRNG): fast in JS, passes PractRand for our volumes. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number, stream = 0, row = 0) {
    this.a = mix32(seed ^ 0x9e3779b9);
    this.b = mix32(stream ^ 0x243f6a88);
    this.c = mix32(row ^ 0xb7e15162);
    this.d = 1;
    // Warm-up discards the correlated first outputs of nearby seeds.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in (0, 1): never 0, so log() below is finite. */
  nextUniform(): number {
    return (this.nextUint32() + 0.5) * INV_2_32;
  }

  /** Standard normal by Box-Muller, both outputs used. */
  nextNormal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const r = Math.sqrt(-2 * Math.log(this.nextUniform()));
    const theta = TWO_PI * this.nextUniform();
    this.spare = r * Math.sin(theta);
    this.hasSpare = true;
    return r * Math.cos(theta);
  }

  /** Fills `out` with mean + std * N(0, 1). */
  fillNormal(out: Float32Array, mean: number, std: number): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.nextNormal();
  }
}
