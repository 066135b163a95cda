/**
 * Which build of the kernels this runtime runs. The relaxed-SIMD build's int8 dot product
 * (i32x4.relaxed_dot_i8x16_i7x16_add_s) is 2–3× the SIMD128 path's on Node 22/24 and Chromium, but a runtime may
 * lack it (old browsers), gate it behind a flag, or implement a draft with other sums (Node 20's V8 11.3). So the
 * build is used only when it validates, instantiates and computes a known product exactly; otherwise SIMD128, which
 * gives the same bits everywhere (see assembly/quant/int-dot.ts), and the device profile says which (`isa`).
 */
import { compileKernelBuild, KERNEL_RELAXED_UNSHARED_WASM_URL, kernelWasmUrl } from './kernel-module.js';
import { instantiateKernels } from './kernel-exports.js';
import { detectWasmFeatures } from './wasm-features.js';

export type KernelIsa = 'relaxed-simd' | 'simd128';
export const KERNEL_ISAS: readonly KernelIsa[] = ['relaxed-simd', 'simd128'];

export interface KernelIsaChoice {
  isa: KernelIsa;
  /** Why, in a few words, for logs and `edge-node status`. */
  reason: string;
}

export class KernelIsaError extends Error {
  override name = 'KernelIsaError';
}

/** EDGE_NODE_KERNEL_ISA=simd128 (or relaxed-simd) asks for a build: to compare them, or to rule one out. */
export const KERNEL_ISA_ENV = 'EDGE_NODE_KERNEL_ISA';

let choice: Promise<KernelIsaChoice> | undefined;

/** The build to run, probed once per process (and per worker thread, which is handed its parent's module instead). */
export function chooseKernelIsa(): Promise<KernelIsaChoice> {
  choice ??= decide();
  return choice;
}

/** The kernels this runtime runs and which build they are: the one chooseKernelIsa picks, for this memory kind. */
export async function loadKernels(isa?: KernelIsa): Promise<{ module: WebAssembly.Module; isa: KernelIsa }> {
  const chosen = isa ?? (await chooseKernelIsa()).isa;
  return { module: await compileKernelBuild(kernelWasmUrl(chosen)), isa: chosen };
}

/** The compiled module of loadKernels. */
export async function loadKernelModule(isa?: KernelIsa): Promise<WebAssembly.Module> {
  return (await loadKernels(isa)).module;
}

function requestedIsa(): KernelIsa | undefined {
  const env = typeof process !== 'undefined' ? process.env?.[KERNEL_ISA_ENV] : undefined;
  if (env === undefined || env === '') return undefined;
  if (!(KERNEL_ISAS as readonly string[]).includes(env)) {
    throw new KernelIsaError(`${KERNEL_ISA_ENV}=${env} is not a kernel build; use one of ${KERNEL_ISAS.join(', ')}`);
  }
  return env as KernelIsa;
}

async function decide(): Promise<KernelIsaChoice> {
  const asked = requestedIsa();
  if (asked === 'simd128') return { isa: 'simd128', reason: `${KERNEL_ISA_ENV}=simd128` };
  const failure = await probeRelaxed();
  if (failure === undefined) return { isa: 'relaxed-simd', reason: asked ? `${KERNEL_ISA_ENV}=relaxed-simd` : 'relaxed SIMD passed its probe' };
  if (asked) throw new KernelIsaError(`${KERNEL_ISA_ENV}=relaxed-simd, but this runtime cannot run that build: ${failure}`);
  return { isa: 'simd128', reason: failure };
}

/**
 * Runs the relaxed build's Q8_0 product on a row whose answer is known exactly: weights over the whole int8 range
 * (−128 included) against activations that quantise to themselves (scale 1). Undefined when it passes, else why not.
 */
export async function probeRelaxed(): Promise<string | undefined> {
  if (!detectWasmFeatures().relaxedSimd) return 'relaxed SIMD is not in this runtime (Node ≥ 22, Chromium ≥ 114)';
  let module: WebAssembly.Module;
  try {
    module = await compileKernelBuild(KERNEL_RELAXED_UNSHARED_WASM_URL);
  } catch (err) {
    return `the relaxed build does not compile here (${(err as Error).message})`;
  }
  try {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
    const k = instantiateKernels(module, memory);
    const cols = 64;
    const base = (k.heap_base() + 63) & ~63;
    const w = base;
    const x = w + 4 * 34; // two rows of two blocks
    const out = x + cols * 4;
    const bytes = new Uint8Array(memory.buffer);
    const xs = new Float32Array(memory.buffer, x, cols);
    const want = [0, 0];
    for (let j = 0; j < cols; j++) xs[j] = j % 32 === 5 ? 127 : ((j * 53) % 255) - 127; // |x| ≤ 127, 127 in each block
    for (let r = 0; r < 2; r++) {
      for (let b = 0; b < cols / 32; b++) {
        const p = w + (r * 2 + b) * 34;
        bytes[p] = 0x00;
        bytes[p + 1] = 0x3c; // f16 1.0
        for (let j = 0; j < 32; j++) {
          const q = r === 0 ? ((j * 37 + b * 11) % 256) - 128 : j === 7 ? -128 : 127 - j * 8;
          bytes[p + 2 + j] = q & 0xff;
          want[r] += q * xs[b * 32 + j];
        }
      }
    }
    const fmt = k.act_format(8);
    const act = out + 64;
    k.prepare_act(fmt, x, 1, cols, act);
    k.matmul(8, w, cols, 0, 2, act, k.act_row_bytes(fmt, cols), 1, out, 2);
    const got = Array.from(new Float32Array(memory.buffer, out, 2));
    if (got[0] !== want[0] || got[1] !== want[1]) return `the relaxed build computes other sums here (${got.join(', ')} instead of ${want.join(', ')})`;
    return undefined;
  } catch (err) {
    return `the relaxed build failed its probe (${(err as Error).message})`;
  }
}
