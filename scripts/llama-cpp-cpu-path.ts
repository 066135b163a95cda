/**
 * Which CPU code llama.cpp (node-llama-cpp's prebuilt linux-x64 binary) runs on this machine: the ggml CPU backend
 * variant it loads (one of the libggml-cpu-*.so files, chosen by CPU features), what its loader logs about buffer
 * types (CPU_REPACK = weights repacked for the batched kernels), and then a prefill of --prompt-tokens tokens
 * (--repeat times) or --decode-tokens one-token steps, so that a profiler can name the matrix-product kernels:
 *
 *   npx tsx scripts/llama-cpp-cpu-path.ts --model FILE
 *   perf record -o /tmp/prefill.data -- npx tsx scripts/llama-cpp-cpu-path.ts --model FILE --repeat 4
 *   perf report -i /tmp/prefill.data --no-children --sort dso,symbol | head -30
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '1' },
    'prompt-tokens': { type: 'string', default: '128' },
    repeat: { type: 'string', default: '1' },
    'decode-tokens': { type: 'string', default: '0' },
  },
});
if (!values.model) throw new Error('usage: npx tsx scripts/llama-cpp-cpu-path.ts --model FILE [--threads 1] [--prompt-tokens 128] [--repeat 1] [--decode-tokens 0]');

const log: string[] = [];
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.debug, progressLogs: false, logger: (_level, message) => void log.push(message) });
const model = await llama.loadModel({ modelPath: values.model, gpuLayers: 0 });

// The CPU variant is a shared library the loader picked; /proc/self/maps names it.
const variants = [...new Set(readFileSync('/proc/self/maps', 'utf8').match(/libggml-cpu-[\w-]+\.so/g) ?? [])];
console.log(`ggml CPU backend variant mapped: ${variants.join(', ') || 'none found'}`);
const interesting = /CPU_REPACK|AMX|buffer size|ggml_backend_load|llamafile|extra buffer/i;
for (const line of log.filter((l) => interesting.test(l))) console.log(`  ${line.trim()}`);
const repacked = log.filter((l) => /repack tensor/.test(l));
for (const line of repacked.slice(0, 3)) console.log(`  ${line.trim()}`);
console.log(`  ${repacked.length} tensors repacked (${[...new Set(repacked.map((l) => / with (\S+)/.exec(l)?.[1]))].join(', ') || 'none'})`);
console.log(`system info: ${llama.systemInfo}`);

const threads = Number(values.threads);
const n = Number(values['prompt-tokens']);
const ids = Array.from({ length: n }, (_, i) => (3 + ((i * 37 + 11) % 480)) as Token);
const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads, sequences: 1 });
const seq = ctx.getSequence();
const decode = Number(values['decode-tokens']);
if (decode > 0) {
  // One-row products only: a 1-token prompt, then one pass per token.
  let k = 0;
  const t0 = performance.now();
  for await (const _ of seq.evaluate([ids[0]], { temperature: 0, yieldEogToken: true })) if (++k >= decode) break;
  console.log(`decode: ${k} tokens in ${(performance.now() - t0).toFixed(0)} ms`);
} else {
  for (let r = 0; r < Number(values.repeat); r++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    console.log(`prefill: ${n} tokens in ${(performance.now() - t0).toFixed(0)} ms`);
  }
}
await ctx.dispose();
await model.dispose();
