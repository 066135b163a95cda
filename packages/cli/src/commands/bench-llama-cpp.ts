/**
 * llama.cpp on the same GGUF, through the optional npm package node-llama-cpp (prebuilt CPU binary). It is loaded
 * only when asked for, so the CLI works without it; the types below are the few calls used, so the build does not
 * need it either.
 */

/** node-llama-cpp (or its prebuilt binary) is not available. */
export class LlamaCppUnavailableError extends Error {
  override name = 'LlamaCppUnavailableError';
}

interface LlamaSequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncIterable<number>;
  clearHistory(): Promise<void>;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(options: { contextSize: number; batchSize: number; threads: number; sequences: number; flashAttention: boolean }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface NodeLlamaCppModule {
  getLlama(options: { gpu: false; build: 'never'; logLevel: unknown; progressLogs: boolean }): Promise<Llama>;
  LlamaLogLevel: { error: unknown };
}

export interface LlamaCppRun {
  ttftMs: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMs: number;
  decodeTokPerS: number;
  /** ms of each decode step. */
  stepMs: number[];
}

export interface LlamaCppBench {
  /** A warm-up, then `runs` runs of an exact prompt and `genTokens` generated tokens (EOS does not stop it). */
  measure(promptIds: readonly number[], genTokens: number, runs: number): Promise<LlamaCppRun[]>;
  close(): Promise<void>;
}

// A variable specifier: TypeScript does not resolve it, so the CLI builds and runs without the package.
const MODULE = 'node-llama-cpp';

export async function openLlamaCpp(ggufPath: string, threads: number): Promise<LlamaCppBench> {
  let mod: NodeLlamaCppModule;
  try {
    mod = (await import(MODULE)) as NodeLlamaCppModule;
  } catch (err) {
    throw new LlamaCppUnavailableError(
      `the llama.cpp baseline needs the npm package node-llama-cpp, which is not installed here (${(err as Error).message.split('\n')[0]}); ` +
        'install it with `npm install node-llama-cpp` (the prebuilt CPU binary comes with it) or leave out --baseline llama.cpp',
    );
  }
  let llama: Llama;
  try {
    llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error, progressLogs: false });
  } catch (err) {
    throw new LlamaCppUnavailableError(
      `node-llama-cpp has no prebuilt llama.cpp binary for this machine (${(err as Error).message.split('\n')[0]}); install @node-llama-cpp/linux-x64 (or your platform's) or leave out --baseline llama.cpp`,
    );
  }
  const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
  return {
    async measure(promptIds, genTokens, runs) {
      const contextSize = Math.max(256, Math.ceil((promptIds.length + genTokens + 1) / 256) * 256);
      const ctx = await model.createContext({ contextSize, batchSize: Math.min(contextSize, 2048), threads, sequences: 1, flashAttention: false });
      try {
        const seq = ctx.getSequence();
        const out: LlamaCppRun[] = [];
        for (let r = 0; r <= runs; r++) {
          await seq.clearHistory();
          const t0 = performance.now();
          await seq.evaluateWithoutGeneratingNewTokens([...promptIds]);
          const t1 = performance.now();
          // Decode: re-evaluate the prompt's last position to sample the first token, then one step per token.
          await seq.eraseContextTokenRanges([{ start: promptIds.length - 1, end: promptIds.length }]);
          const stepMs: number[] = [];
          let last = performance.now();
          let generated = 0;
          for await (const _token of seq.evaluate([promptIds[promptIds.length - 1]], { temperature: 0, yieldEogToken: true })) {
            const now = performance.now();
            if (generated > 0) stepMs.push(now - last);
            last = now;
            generated++;
            if (generated >= genTokens) break;
          }
          const decodeMs = stepMs.reduce((a, b) => a + b, 0);
          // Run 0 is the warm-up (first touch of the mapped weights, thread start).
          if (r > 0) {
            out.push({
              // The prefill's last logits give the first token; re-evaluating that position is only this API's way.
              ttftMs: t1 - t0,
              prefillMs: t1 - t0,
              prefillTokPerS: (promptIds.length / (t1 - t0)) * 1000,
              decodeMs,
              decodeTokPerS: stepMs.length > 0 ? (stepMs.length / decodeMs) * 1000 : 0,
              stepMs,
            });
          }
        }
        return out;
      } finally {
        await ctx.dispose();
      }
    },
    async close() {
      await model.dispose();
      await llama.dispose();
    },
  };
}
