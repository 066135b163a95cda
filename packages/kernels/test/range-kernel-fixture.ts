// A small kernel module built in the test with npm's assemblyscript, with the ABI of the real kernels (imported
// shared memory, heap_base) and range kernels (…args, start, end) that the real module does not have (yet):
// parallelFor and error propagation are tested with it.
import asc from 'assemblyscript/asc';

const SOURCE = `
let isCaller: i32 = 0; // a wasm global: one per instance, so one per thread

export function heap_base(): usize { return __heap_base; }
export function init_tables(): void {}
export function mark_caller(): void { isCaller = 1; }

/** dst[i] = f32(i) * scale + first for i in [start, end). */
export function fill_index(dst: usize, scale: f32, first: f32, start: i32, end: i32): void {
  for (let i = start; i < end; i++) store<f32>(dst + (<usize>i << 2), <f32>i * scale + first);
}

/** Traps on every item run by a thread other than the caller; the caller dawdles so that workers claim items. */
export function trap_on_worker(sink: usize, start: i32, end: i32): void {
  if (isCaller == 0) unreachable();
  for (let i = start; i < end; i++) {
    let s: i32 = 0;
    for (let k = 0; k < 200000; k++) s += k ^ i;
    store<i32>(sink, s);
  }
}

/** Traps when the range holds item bad. */
export function trap_at(bad: i32, start: i32, end: i32): void {
  if (bad >= start && bad < end) unreachable();
}
`;

export async function compileRangeKernels(): Promise<WebAssembly.Module> {
  const { error, stderr, binary } = await asc.compileString(
    { 'range.ts': SOURCE },
    {
      optimizeLevel: 2,
      runtime: 'stub',
      enable: ['simd', 'threads'],
      importMemory: true,
      noExportMemory: true,
      sharedMemory: true,
      maximumMemory: 65536,
      memoryBase: 1024,
    },
  );
  if (error || !binary) throw new Error(`range kernel fixture: ${error?.message} ${stderr.toString()}`);
  return WebAssembly.compile(new Uint8Array(binary));
}
