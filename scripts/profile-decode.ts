// One-thread decode of a GGUF file for S seconds, through the executor `edge-node run` uses (as bench-engine's child
// times it): a target for perf with V8's jitdump, to see where a decode token's time goes end to end.
//   perf record -k 1 -F 2000 -D 4000 -o /tmp/d.data node_modules/.bin/node --perf-prof --perf-prof-path=/tmp --import tsx \
//     scripts/profile-decode.ts FILE [seconds]          (-D 4000: the load is left out; Node 24, the project's:
//     a system Node 20 has no relaxed SIMD and loads the SIMD128 build)
//   perf inject --jit -i /tmp/d.data -o /tmp/d.jit.data && perf report -i /tmp/d.jit.data --no-children --sort sym
// Wasm functions are numbered: `node packages/kernels/scripts/wasm-function-names.mjs` names them.
import { LocalModel } from '../packages/node/src/engine/local-model.js';
import { GREEDY } from '../packages/node/src/engine/sampler.js';

const [file, secondsArg] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-decode.ts FILE [seconds]');
const seconds = Number(secondsArg ?? 10);
const prompt = Array.from({ length: 16 }, (_, i) => 3 + ((i * 37 + 11) % 480));
const model = await LocalModel.open(file, { threads: 1, contextLength: 1024 });
const exec = model.executor;
let steps = 0, requests = 0;
const cpu0 = process.cpuUsage();
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  // A short prompt and 128 steps a request: prefill stays a few % of the samples (its batch products are other
  // functions). Positions 16–144: bench:engine decodes at 128–160, so attention has a little more of its time.
  const id = `r${requests++}`;
  let token = await exec.begin({ id, promptTokens: prompt, sampling: GREEDY, contextLength: prompt.length + 129 });
  for (let i = 0; i < 128; i++, steps++) token = await exec.step(id, token);
  await exec.end(id);
}
const cpu = process.cpuUsage(cpu0);
console.log(`${steps} decode steps in ${requests} requests, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} CPU-s`);
await model.close();
