/** The functions assembly/index.ts exports; pointers are byte offsets into the arena's memory. */
export interface KernelExports {
  act_format(type: number): number;
  act_row_bytes(fmt: number, cols: number): number;
  prepare_act(fmt: number, x: number, rows: number, cols: number, dst: number): void;
  dequant(type: number, src: number, dst: number, n: number): void;
  matmul(type: number, w: number, cols: number, row0: number, row1: number, act: number, actBytes: number, nAct: number, out: number, outStride: number): void;
  heap_base(): number;
}

export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort: () => {
        throw new Error('kernel abort');
      },
    },
  });
  return instance.exports as unknown as KernelExports;
}
