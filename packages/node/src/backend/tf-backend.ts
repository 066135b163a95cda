import * as tf from '@tensorflow/tfjs-core';

/**
 * Which tfjs backend runs the kernels. `node` is @tensorflow/tfjs-node (native libtensorflow, an optional dependency),
 * `wasm` is @tensorflow/tfjs-backend-wasm with SIMD, `cpu` is the pure-JS backend (about 15x slower: only on request).
 */
export type BackendName = 'node' | 'wasm' | 'cpu';

export const BACKEND_NAMES: readonly BackendName[] = ['node', 'wasm', 'cpu'];

/** tfjs's own name for each backend. */
const TF_NAME: Record<BackendName, string> = { node: 'tensorflow', wasm: 'wasm', cpu: 'cpu' };

export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(
    readonly backend: BackendName,
    reason: string,
  ) {
    super(`the tfjs "${backend}" backend cannot start: ${reason}`);
  }
}

export interface ActiveBackend {
  name: BackendName;
  /** Why this backend was chosen, for logs and `edge-node status`. */
  reason: string;
}

let active: ActiveBackend | null = null;

async function registerNode(): Promise<void> {
  try {
    // Optional dependency: its install script downloads libtensorflow, which fails on machines without internet.
    const moduleName = '@tensorflow/tfjs-node';
    await import(moduleName);
  } catch (err) {
    throw new BackendUnavailableError('node', `@tensorflow/tfjs-node is not installed or does not load (${(err as Error).message.split('\n')[0]})`);
  }
}

async function registerWasm(): Promise<void> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    throw new BackendUnavailableError('wasm', `@tensorflow/tfjs-backend-wasm does not load (${(err as Error).message})`);
  }
}

async function registerCpu(): Promise<void> {
  try {
    await import('@tensorflow/tfjs-backend-cpu');
  } catch (err) {
    throw new BackendUnavailableError('cpu', `@tensorflow/tfjs-backend-cpu does not load (${(err as Error).message})`);
  }
}

async function activate(name: BackendName): Promise<void> {
  if (name === 'node') await registerNode();
  else if (name === 'wasm') await registerWasm();
  else await registerCpu();
  let ok: boolean;
  try {
    ok = await tf.setBackend(TF_NAME[name]);
  } catch (err) {
    throw new BackendUnavailableError(name, (err as Error).message);
  }
  // setBackend resolves false (and tfjs quietly keeps whatever it had) when initialisation fails: check both.
  if (!ok || tf.getBackend() !== TF_NAME[name]) {
    throw new BackendUnavailableError(name, `tf.setBackend('${TF_NAME[name]}') failed (active backend: ${tf.getBackend() ?? 'none'})`);
  }
  await tf.ready();
}

async function nodeBackendInstalled(): Promise<boolean> {
  try {
    const { createRequire } = await import('node:module');
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the tfjs backend once per process. With no request: tfjs-node when installed, else wasm. A requested
 * backend that cannot start is an error, never a silent fallback. Calling again with a different request fails.
 */
export async function initBackend(requested?: BackendName): Promise<ActiveBackend> {
  if (active) {
    if (requested && requested !== active.name) {
      throw new BackendUnavailableError(requested, `this process already runs the "${active.name}" backend`);
    }
    return active;
  }
  if (requested) {
    await activate(requested);
    active = { name: requested, reason: 'requested with --backend' };
  } else if (await nodeBackendInstalled()) {
    await activate('node');
    active = { name: 'node', reason: '@tensorflow/tfjs-node is installed' };
  } else {
    await activate('wasm');
    active = { name: 'wasm', reason: '@tensorflow/tfjs-node is not installed; using WebAssembly (SIMD)' };
  }
  return active;
}

export function activeBackend(): ActiveBackend | null {
  return active;
}

export function parseBackendName(value: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName;
  throw new BackendUnavailableError(value as BackendName, `unknown backend "${value}" (choose node, wasm or cpu)`);
}
