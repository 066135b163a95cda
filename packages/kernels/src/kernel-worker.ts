/**
 * The loop of one kernel worker thread, free of platform APIs: kernel-worker-node.ts (worker_threads) and
 * kernel-worker-web.ts (Web Worker) give it a port. It instantiates the kernel module on every arena it is sent and
 * runs the chunks it claims from the control block (see thread-control.ts).
 */
import { instantiateKernels } from './kernel-exports.js';
import { claimChunk, controlViews, Ctl, kernelFunctionNames, recordError, type ControlViews } from './thread-control.js';

/** Messages from the runtime to a worker. */
export type ToWorker =
  | { kind: 'init'; control: SharedArrayBuffer; module: WebAssembly.Module; spinMicros: number }
  | { kind: 'arena'; index: number; memory: WebAssembly.Memory }
  | { kind: 'drop-arena'; index: number };

/** Messages from a worker to the runtime. */
export type FromWorker = { kind: 'ready' } | { kind: 'arena-ready'; index: number } | { kind: 'failed'; message: string };

export interface WorkerPort {
  post(message: FromWorker): void;
  onMessage(handler: (message: ToWorker) => void): void;
}

type KernelFn = (...args: number[]) => unknown;

export function runKernelWorker(port: WorkerPort): void {
  let v: ControlViews | undefined;
  let module: WebAssembly.Module | undefined;
  let names: string[] = [];
  let spinMicros = 50;
  /** Per arena index: the instance's functions in kernelFunctionNames order. */
  const fns: KernelFn[][] = [];
  /** Per arena index: its memory, whose size as this thread sees it an error reports. */
  const memories: WebAssembly.Memory[] = [];
  let seen = 0;
  let processed = 0;
  const callArgs: number[] = [];

  port.onMessage((msg) => {
    try {
      if (msg.kind === 'init') {
        v = controlViews(msg.control);
        module = msg.module;
        names = kernelFunctionNames(module);
        spinMicros = msg.spinMicros;
        seen = Atomics.load(v.ctl, Ctl.Gen);
        port.post({ kind: 'ready' });
      } else if (msg.kind === 'drop-arena') {
        processed++;
        delete fns[msg.index]; // the instance, and with it the worker's hold on the memory
        delete memories[msg.index];
      } else {
        processed++;
        const exports = instantiateKernels(module!, msg.memory) as unknown as Record<string, KernelFn>;
        fns[msg.index] = names.map((n) => exports[n]);
        memories[msg.index] = msg.memory;
        port.post({ kind: 'arena-ready', index: msg.index });
      }
    } catch (err) {
      port.post({ kind: 'failed', message: (err as Error)?.message ?? String(err) });
    }
    serve();
  });

  /** Runs jobs until a message waits to be read (returns to the event loop) or the runtime shuts down. */
  function serve(): void {
    const c = v!;
    const ctl = c.ctl;
    for (;;) {
      if (Atomics.load(ctl, Ctl.Shutdown) !== 0) return;
      if (Atomics.load(ctl, Ctl.MsgSeq) !== processed) return;
      const gen = Atomics.load(ctl, Ctl.Gen);
      if (gen === seen) {
        waitForJob(ctl, seen, spinMicros);
        continue;
      }
      seen = gen;
      runJob(c, gen, fns, memories, names, callArgs);
    }
  }
}

// Spin briefly (a decode step issues products microseconds apart), then sleep until the next job.
function waitForJob(ctl: Int32Array, seen: number, spinMicros: number): void {
  const deadline = performance.now() + spinMicros / 1000;
  for (let i = 0; ; i++) {
    if (Atomics.load(ctl, Ctl.Gen) !== seen) return;
    if ((i & 255) === 255 && performance.now() > deadline) break;
  }
  // Counted before the wait re-checks Gen, so a caller that stores Gen and then sees no sleeper cannot strand us.
  Atomics.add(ctl, Ctl.Sleepers, 1);
  Atomics.wait(ctl, Ctl.Gen, seen);
  Atomics.sub(ctl, Ctl.Sleepers, 1);
}

/**
 * Runs the chunks of job `gen` this thread can claim, with the arenas' functions (fns, in kernelFunctionNames order
 * `names`) and callArgs as a reused argument array.
 */
function runJob(c: ControlViews, gen: number, fns: KernelFn[][], memories: WebAssembly.Memory[], names: string[], callArgs: number[]): void {
  const ctl = c.ctl;
  // Read the job, then claim: a claim succeeds only while the claim word still carries this generation, which
  // proves the words read were this job's (the caller moves the claim word to the next generation before it
  // rewrites any of them: publishJob).
  const arena = ctl[Ctl.Arena];
  const fnIndex = ctl[Ctl.Fn];
  const nArgs = ctl[Ctl.NArgs];
  const rangeAt = ctl[Ctl.RangeAt];
  const count = ctl[Ctl.Count];
  const chunk = ctl[Ctl.ChunkSize];
  const chunks = ctl[Ctl.Chunks];
  callArgs.length = nArgs + 2;
  for (let i = 0, j = 0; i < nArgs + 2; i++) {
    if (i === rangeAt || i === rangeAt + 1) continue;
    callArgs[i] = c.args[j++];
  }
  let fn: KernelFn | undefined;
  for (;;) {
    const k = claimChunk(ctl, gen, chunks);
    if (k < 0) return;
    if (Atomics.load(ctl, Ctl.Err) === 0) {
      try {
        fn ??= fns[arena]?.[fnIndex];
        if (!fn) throw new Error(`arena ${arena} or kernel function ${names[fnIndex] ?? fnIndex} is not known to this thread`);
        callArgs[rangeAt] = k * chunk;
        callArgs[rangeAt + 1] = Math.min(count, (k + 1) * chunk);
        fn(...callArgs);
      } catch (err) {
        // The arena's size as this thread sees it: another thread's grow reaches a worker's view of a shared memory
        // lazily in some engines, and an out-of-bounds trap here with the caller's chunks fine would be that.
        const seen = memories[arena]?.buffer.byteLength;
        recordError(c, `${names[fnIndex] ?? 'kernel'} failed on a worker thread: ${(err as Error)?.message ?? String(err)} (arena ${arena}, ${seen ?? '?'} bytes as that thread sees it)`);
      }
    }
    Atomics.add(ctl, Ctl.WorkerChunks, 1);
    if (Atomics.add(ctl, Ctl.Done, 1) + 1 === chunks) Atomics.notify(ctl, Ctl.Done);
  }
}
