// Page side of scripts/wllama-baseline.ts: llama.cpp's WebAssembly build (@wllama/wllama) on one GGUF, CPU only.
// '@wllama/wllama' stays external in the bundle: the page's import map points it at the package's own ESM file, served
// unchanged from node_modules.
import { Wllama, type WllamaLogger } from '@wllama/wllama';
import type { WllamaBenchMark, WllamaPageBench, WllamaPageReply, WllamaPageRequest, WllamaPageRun } from './wllama-bench-protocol.js';

const mark = (label: string): Promise<void> => (globalThis as unknown as { benchMark: WllamaBenchMark }).benchMark(label);

const bench: WllamaPageBench = async (req: WllamaPageRequest): Promise<WllamaPageReply> => {
  const warnings: string[] = [];
  const text = (args: unknown[]) => args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  const logger: WllamaLogger = {
    debug: () => {},
    log: () => {},
    warn: (...args: unknown[]) => void warnings.push(text(args)),
    error: (...args: unknown[]) => void warnings.push(text(args)),
  };

  let t = performance.now();
  let blob: Blob;
  try {
    const res = await fetch(req.modelUrl);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    blob = await res.blob();
  } catch (err) {
    return { ok: false, stage: 'fetch', message: `${req.modelUrl}: ${(err as Error).message}` };
  }
  const fetchMs = performance.now() - t;

  const wllama = new Wllama({ default: req.wasmUrl }, { logger });
  t = performance.now();
  try {
    await wllama.loadModel([blob], {
      n_threads: req.threads,
      n_ctx: req.contextLength,
      n_batch: req.contextLength,
      n_ubatch: req.contextLength,
      // CPU only (this build also has a WebGPU backend); one slot, so the prompt is one batch of one sequence.
      n_gpu_layers: 0,
      n_parallel: 1,
      seed: 0,
    });
  } catch (err) {
    return { ok: false, stage: 'load', message: (err as Error).message };
  }
  const loadMs = performance.now() - t;

  const once = async (prompt: string, promptTokens: number | null, genTokens: number): Promise<WllamaPageRun> => {
    const t0 = performance.now();
    const res = await wllama.createCompletion({
      prompt,
      max_tokens: genTokens,
      temperature: 0,
      top_k: 1,
      ignore_eos: true,
      // llama-server's option (wllama's type omits it): without it a run would find its prompt, or the warm-up's
      // first words, in the KV cache and prefill less.
      ...({ cache_prompt: false } as object),
    });
    const pageMs = performance.now() - t0;
    const tm = res.timings;
    if (!tm) throw new Error('createCompletion returned no timings');
    if (promptTokens !== null && tm.prompt_n !== promptTokens) throw new Error(`llama.cpp evaluated ${tm.prompt_n} prompt tokens, expected ${promptTokens}`);
    if (tm.predicted_n !== genTokens) throw new Error(`llama.cpp generated ${tm.predicted_n} tokens, expected ${genTokens}`);
    return { promptN: tm.prompt_n, promptMs: tm.prompt_ms, predictedN: tm.predicted_n, predictedMs: tm.predicted_ms, pageMs };
  };
  try {
    await once(req.warmUpText, null, 2);
    const runs: WllamaPageRun[] = [];
    // The Node side reads the renderer's CPU time at these two marks (threads busy = CPU time / wall time).
    await mark('runs-start');
    for (let i = 0; i < req.runs; i++) runs.push(await once(req.promptText, req.promptTokens, req.genTokens));
    await mark('runs-end');
    return {
      ok: true,
      result: {
        crossOriginIsolated: globalThis.crossOriginIsolated,
        multiThread: wllama.isMultithread(),
        threadsUsed: wllama.getNumThreads(),
        jspi: 'Suspending' in WebAssembly,
        libllamaVersion: Wllama.getLibllamaVersion(),
        fetchMs,
        loadMs,
        runs,
        warnings,
      },
    };
  } catch (err) {
    return { ok: false, stage: 'run', message: (err as Error).stack ?? (err as Error).message };
  } finally {
    await wllama.exit();
  }
};

(globalThis as unknown as { wllamaBench: WllamaPageBench }).wllamaBench = bench;
