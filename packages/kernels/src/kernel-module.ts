import { detectWasmFeatures } from './wasm-features.js';
/**
 * The compiled kernels (wasm/kernels.wasm, built by `npm run build` from assembly/ with npm's assemblyscript). Compiled
 * once per process; every arena and every worker thread instantiates the same module.
 */
let compiled: Promise<WebAssembly.Module> | undefined;

export const KERNEL_WASM_URL = new URL('../wasm/kernels.wasm', import.meta.url);
/** The same kernels over a non-shared memory: one thread, for pages without cross-origin isolation. */
export const KERNEL_UNSHARED_WASM_URL = new URL('../wasm/kernels-unshared.wasm', import.meta.url);

/**
 * Whether this context may use shared WebAssembly memory: always in Node; in a page only when cross-origin isolated
 * (COOP/COEP headers on a secure origin). Without it arenas use plain memories and the unshared module.
 */
export const SHARED_MEMORY_AVAILABLE: boolean =
  typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;

export class KernelModuleError extends Error {
  override name = 'KernelModuleError';
}

export function loadKernelModule(): Promise<WebAssembly.Module> {
  compiled ??= compile().catch((err: unknown) => {
    compiled = undefined;
    throw err;
  });
  return compiled;
}

async function compile(): Promise<WebAssembly.Module> {
  if (!detectWasmFeatures().simd128) {
    throw new KernelModuleError('this JavaScript runtime has no WebAssembly SIMD128, which the kernels need (Node ≥ 16.4, Chrome ≥ 91, Firefox ≥ 89, Safari ≥ 16.4)');
  }
  const url = SHARED_MEMORY_AVAILABLE ? KERNEL_WASM_URL : KERNEL_UNSHARED_WASM_URL;
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
