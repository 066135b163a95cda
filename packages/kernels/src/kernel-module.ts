/**
 * The compiled kernels (wasm/kernels.wasm, built by `npm run build` from assembly/ with npm's assemblyscript). Compiled
 * once per process; every arena and every worker thread instantiates the same module.
 */
let compiled: Promise<WebAssembly.Module> | undefined;

export const KERNEL_WASM_URL = new URL('../wasm/kernels.wasm', import.meta.url);

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
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  if (isNode) {
    const { readFile } = await import('node:fs/promises');
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(await readFile(KERNEL_WASM_URL));
    } catch (err) {
      throw new KernelModuleError(`cannot read the kernels at ${KERNEL_WASM_URL.pathname} (${(err as Error).message}); run \`npm run build\` first`);
    }
    return WebAssembly.compile(bytes);
  }
  return WebAssembly.compileStreaming(fetch(KERNEL_WASM_URL));
}
