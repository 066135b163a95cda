// Entry of a kernel worker as a module Web Worker (browsers; see thread-host.ts). No Node API here.
import { runKernelWorker, type ToWorker, type FromWorker } from './kernel-worker.js';

interface WorkerScope {
  postMessage(m: FromWorker): void;
  addEventListener(type: 'message', h: (e: MessageEvent<ToWorker>) => void): void;
}
const scope = globalThis as unknown as WorkerScope;
runKernelWorker({
  post: (m) => scope.postMessage(m),
  onMessage: (h) => scope.addEventListener('message', (e) => h(e.data)),
});
