import type { KernelIsa } from './kernel-isa.js';
import { detectWasmFeatures } from './wasm-features.js';
/**
 * The compiled kernels (wasm/kernels*.wasm, built by `npm run build` from assembly/ with npm's assemblyscript).
 * Compiled once per process; every arena and every worker thread instantiates the same module. Two builds of the same
 * source: SIMD128, and relaxed SIMD (int8 dot products), which kernel-isa.ts chooses when the runtime passes its probe.
 */
const compiled = new Map<string, Promise<WebAssembly.Module>>();

export const KERNEL_WASM_URL = new URL('../wasm/kernels.wasm', import.meta.url);
/** The same kernels over a non-shared memory: one thread, for pages without cross-origin isolation. */
export const KERNEL_UNSHARED_WASM_URL = new URL('../wasm/kernels-unshared.wasm', import.meta.url);
/** The relaxed-SIMD builds of the same source (same outputs, bit for bit). */
export const KERNEL_RELAXED_WASM_URL = new URL('../wasm/kernels-relaxed.wasm', import.meta.url);
export const KERNEL_RELAXED_UNSHARED_WASM_URL = new URL('../wasm/kernels-relaxed-unshared.wasm', import.meta.url);

/**
 * Whether this context may use shared WebAssembly memory: always in Node; in a page only when cross-origin isolated
 * (COOP/COEP headers on a secure origin). Without it arenas use plain memories and the unshared module.
 */
export const SHARED_MEMORY_AVAILABLE: boolean =
  typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;

export class KernelModuleError extends Error {
  override name = 'KernelModuleError';
}

/** The build of the kernels for an instruction set and memory kind. */
export function kernelWasmUrl(isa: KernelIsa, shared: boolean = SHARED_MEMORY_AVAILABLE): URL {
  if (isa === 'relaxed-simd') return shared ? KERNEL_RELAXED_WASM_URL : KERNEL_RELAXED_UNSHARED_WASM_URL;
  return shared ? KERNEL_WASM_URL : KERNEL_UNSHARED_WASM_URL;
}

/** Compiles one build (cached per URL). */
export function compileKernelBuild(url: URL): Promise<WebAssembly.Module> {
  let m = compiled.get(url.href);
  if (!m) {
    m = compile(url).catch((err: unknown) => {
      compiled.delete(url.href);
      throw err;
    });
    compiled.set(url.href, m);
  }
  return m;
}

async function compile(url: URL): Promise<WebAssembly.Module> {
  if (!detectWasmFeatures().simd128) {
    throw new KernelModuleError('this JavaScript runtime has no WebAssembly SIMD128, which the kernels need (Node ≥ 16.4, Chrome ≥ 91, Firefox ≥ 89, Safari ≥ 16.4)');
  }
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  if (isNode) {
    const { readFile } = await import('node:fs/promises');
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(await readFile(url));
    } catch (err) {
      throw new KernelModuleError(`cannot read the kernels at ${url.pathname} (${(err as Error).message}); run \`npm run build\` first`);
    }
    return WebAssembly.compile(bytes);
  }
  return WebAssembly.compileStreaming(fetch(url));
}
