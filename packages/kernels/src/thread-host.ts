/**
 * Starting kernel worker threads: the one platform seam of the threaded runtime. Under Node a worker_threads Worker
 * (unref'd while idle, so kernel threads never keep a process alive); in a browser a module Web Worker.
 *
 * Which worker file: the built package starts dist/kernel-worker-node.js (or -web.js) beside this file. When this file
 * runs from its TypeScript source (vitest resolves the "source" export condition; tsx), there is no .js beside it, so
 * the .ts worker is started through a one-line bootstrap that registers tsx's loader in the worker first (tsx is a
 * dev dependency; the built package never takes that path). A browser bundle passes its own `workerUrl` (the bundled
 * kernel-worker-web entry), since bundlers rename files.
 */
import type { FromWorker, ToWorker } from './kernel-worker.js';

export interface KernelThread {
  post(message: ToWorker): void;
  /** Messages, and a failure of the thread itself (a crash, an exit, a script that failed to load). */
  listen(onMessage: (m: FromWorker) => void, onFailure: (err: Error) => void): void;
  /**
   * Whether the thread keeps the process alive: only while the runtime awaits it (start, a new arena); an idle
   * kernel thread must not stop the process from exiting. No-op in a browser.
   */
  keepAlive(on: boolean): void;
  terminate(): Promise<void>;
}

export type SpawnKernelThread = (workerUrl?: URL) => Promise<KernelThread>;

export const isNodeRuntime = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

export const spawnKernelThread: SpawnKernelThread = isNodeRuntime ? spawnNodeThread : spawnWebThread;

async function spawnNodeThread(workerUrl?: URL): Promise<KernelThread> {
  const { Worker } = await import('node:worker_threads');
  let worker: InstanceType<typeof Worker>;
  if (workerUrl) worker = new Worker(workerUrl);
  else if (import.meta.url.endsWith('.ts')) {
    const { createRequire } = await import('node:module');
    const { dirname, join } = await import('node:path');
    const { pathToFileURL } = await import('node:url');
    const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
    const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
    const entry = new URL('./kernel-worker-node.ts', import.meta.url).href;
    const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
    worker = new Worker(boot, { eval: true });
  } else worker = new Worker(new URL('./kernel-worker-node.js', import.meta.url));
  let terminated = false;
  return {
    post: (m) => worker.postMessage(m),
    listen(onMessage, onFailure) {
      worker.on('message', onMessage);
      worker.on('error', (err: Error) => onFailure(err));
      worker.on('exit', (code: number) => {
        if (!terminated) onFailure(new Error(`a kernel worker thread exited (code ${code})`));
      });
    },
    keepAlive(on) {
      if (on) worker.ref();
      else worker.unref();
    },
    async terminate() {
      terminated = true;
      await worker.terminate();
    },
  };
}

async function spawnWebThread(workerUrl?: URL): Promise<KernelThread> {
  const worker = new Worker(workerUrl ?? new URL('./kernel-worker-web.js', import.meta.url), { type: 'module' });
  return {
    post: (m) => worker.postMessage(m),
    listen(onMessage, onFailure) {
      worker.addEventListener('message', (e: MessageEvent<FromWorker>) => onMessage(e.data));
      worker.addEventListener('error', (e: ErrorEvent) => onFailure(new Error(`a kernel worker failed: ${e.message}`)));
    },
    keepAlive() {},
    async terminate() {
      worker.terminate();
    },
  };
}
