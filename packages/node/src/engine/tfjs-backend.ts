import { LoraAdapterError } from '../model/model-errors.js';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeBackend, ProbeMatrix, ProductProbe } from './compute-backend.js';
import type { EngineOptions } from './engine-options.js';
import { TfjsShard } from './tfjs-shard.js';
import { checkTfjsWeightTypes } from './tfjs-weight-types.js';
import { loadTfjsWeights } from './tfjs-weights.js';

/** tfjs could not start the backend it was asked for (it never computes on another one instead). */
export class TfjsBackendError extends Error {
  override name = 'TfjsBackendError';
}

interface StartedTfjs {
  name: 'tfjs-node' | 'tfjs-wasm';
  isa: string;
  threads: number;
  /** Why this tfjs backend, for logs. */
  reason: string;
}

/** tfjs is one engine per process: started once, shared by every shard. */
let started: Promise<StartedTfjs> | null = null;

/**
 * tfjs for the engine: @tensorflow/tfjs-node (native TensorFlow) when it can be imported, else
 * @tensorflow/tfjs-backend-wasm. tfjs-node is an optional runtime import, not a dependency (its install downloads
 * libtensorflow). Whatever tfjs would fall back to when a backend fails to start (its slow `cpu` backend) is refused
 * with a TfjsBackendError instead.
 */
export async function startTfjsBackend(opts: EngineOptions = {}): Promise<ComputeBackend> {
  started ??= startTfjs().catch((err: unknown) => {
    started = null;
    throw err;
  });
  const t = await started;
  return {
    name: t.name,
    isa: t.isa,
    threads: t.threads,
    kvCache: 'f32',
    summary: `${t.name} (${t.isa}, ${t.threads} thread${t.threads === 1 ? '' : 's'}; ${t.reason}${opts.threads !== undefined && opts.threads !== t.threads ? `; --threads ${opts.threads} does not apply to it` : ''})`,
    checkModel: checkTfjsWeightTypes,
    loadShard: async (model, range, lora) => {
      if (lora) throw new LoraAdapterError(model.path, `the ${t.name} backend cannot apply a LoRA adapter; serve it with the default kernels backend`);
      return new TfjsShard(await loadTfjsWeights(model, range), model.ropeLayout);
    },
    probe: () => tfjsProbe,
    // tfjs stays initialised for the process; each shard frees its own tensors.
    close: () => Promise.resolve(),
  };
}

async function startTfjs(): Promise<StartedTfjs> {
  let nodeMissing: string;
  try {
    // A name in a variable: neither tsc nor a bundler should try to resolve this optional package.
    const tfjsNode = '@tensorflow/tfjs-node';
    await import(tfjsNode);
    await activate('tensorflow', '@tensorflow/tfjs-node');
    return { name: 'tfjs-node', isa: 'native', threads: os.availableParallelism(), reason: '@tensorflow/tfjs-node is installed' };
  } catch (err) {
    if (err instanceof TfjsBackendError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    nodeMissing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' ? 'not installed' : `does not load: ${(err as Error).message.split('\n')[0]}`;
  }
  // Its Emscripten module rethrows every uncaught exception and rejection of the process from handlers of its own
  // (printing its whole minified source): those handlers are removed once it has started.
  const before = { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') };
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    throw new TfjsBackendError(`@tensorflow/tfjs-backend-wasm does not load (${(err as Error).message.split('\n')[0]})`);
  }
  try {
    await activate('wasm', '@tensorflow/tfjs-backend-wasm');
  } finally {
    for (const l of process.listeners('uncaughtException')) if (!before.uncaughtException.includes(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection')) if (!before.unhandledRejection.includes(l)) process.removeListener('unhandledRejection', l);
  }
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  // Under Node, tfjs-backend-wasm runs one thread (its threaded build needs Web Workers).
  return { name: 'tfjs-wasm', isa: simd ? 'simd128' : 'wasm', threads: 1, reason: `@tensorflow/tfjs-node ${nodeMissing}` };
}

/** Makes `backend` tfjs's backend, or throws: never leaves tfjs on another one. */
async function activate(backend: string, pkg: string): Promise<void> {
  if (!tf.findBackendFactory(backend)) {
    throw new TfjsBackendError(`${pkg} loaded but registered no "${backend}" backend with this @tensorflow/tfjs-core ${tf.version_core} (install a ${pkg} of the same version)`);
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(backend);
    await tf.ready();
  } catch (err) {
    throw new TfjsBackendError(`${pkg} did not start: ${(err as Error).message}`);
  }
  // setBackend resolves false (and tfjs keeps or picks another backend) when initialisation fails: check both.
  if (!ok || tf.getBackend() !== backend) {
    const current = tf.getBackend();
    throw new TfjsBackendError(
      `${pkg} did not start: tfjs would run on ${current ? `its "${current}" backend` : 'no backend'} instead of "${backend}", and edge-node does not compute on a fallback`,
    );
  }
}

/** F32 products as the shards run them: activations [rows, in] times weights [in, out]. */
const tfjsProbe: ProductProbe = {
  weightBytes: (rows, cols) => rows * cols * 4,
  async matrix(rows: number, cols: number, activationRows: number): Promise<ProbeMatrix> {
    const w = tf.randomUniform([cols, rows], -0.05, 0.05) as tf.Tensor2D;
    const x = tf.randomUniform([activationRows, cols], -0.5, 0.5) as tf.Tensor2D;
    const slices = new Map<number, tf.Tensor2D>([[activationRows, x]]);
    return {
      run(n: number): void {
        let xs = slices.get(n);
        if (!xs) slices.set(n, (xs = tf.slice(x, [0, 0], [n, cols])));
        const out = tf.matMul(xs, w);
        out.dataSync();
        out.dispose();
      },
      release: async () => {
        for (const t of [w, ...slices.values()]) t.dispose();
      },
    };
  },
};
