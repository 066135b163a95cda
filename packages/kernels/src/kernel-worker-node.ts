// Entry of a kernel worker under Node's worker_threads (see thread-host.ts).
import { parentPort } from 'node:worker_threads';
import { runKernelWorker, type ToWorker } from './kernel-worker.js';

const port = parentPort;
if (!port) throw new Error('kernel-worker-node.js runs only as a worker thread');
runKernelWorker({
  post: (m) => port.postMessage(m),
  onMessage: (h) => port.on('message', (m: ToWorker) => h(m)),
});
