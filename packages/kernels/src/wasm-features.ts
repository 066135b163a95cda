/**
 * What this JavaScript engine's WebAssembly offers the kernels, found by validating one-instruction modules (no
 * compilation, no timing). The kernels need SIMD128; relaxed SIMD is a first filter for the relaxed build, which
 * kernel-isa.ts then probes for exact sums before using it.
 */
export interface WasmFeatures {
  simd128: boolean;
  /** Node ≥ 22 has it by default; Node 20 with `--experimental-wasm-relaxed-simd`. */
  relaxedSimd: boolean;
}

// (module (func (result v128) <body>)): header, type () → v128, one function, a code section holding the body.
function moduleWithBody(body: number[]): Uint8Array<ArrayBuffer> {
  const entry = [body.length + 1, 0, ...body];
  return new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, entry.length + 1, 1, ...entry]);
}

const I32_CONST_0 = [0x41, 0];
const I8X16_SPLAT = [0xfd, 0x0f];
const END = [0x0b];
/** i32.const 0; i8x16.splat */
const SIMD_PROBE = moduleWithBody([...I32_CONST_0, ...I8X16_SPLAT, ...END]);
/** …twice, then i8x16.relaxed_swizzle (0xfd 0x100) */
const RELAXED_PROBE = moduleWithBody([...I32_CONST_0, ...I8X16_SPLAT, ...I32_CONST_0, ...I8X16_SPLAT, 0xfd, 0x80, 0x02, ...END]);

export function detectWasmFeatures(): WasmFeatures {
  return { simd128: WebAssembly.validate(SIMD_PROBE), relaxedSimd: WebAssembly.validate(RELAXED_PROBE) };
}

/** One line for logs and benchmark headers. */
export function describeWasmFeatures(f: WasmFeatures): string {
  if (!f.simd128) return 'no WebAssembly SIMD128 (the kernels need it)';
  return `simd128; relaxed SIMD ${f.relaxedSimd ? 'validates' : 'not in this runtime'}`;
}
