// What scripts/wllama-baseline.ts asks of its page (scripts/browser/wllama-bench-entry.ts) and what the page answers.
// Both sides import these types; only JSON crosses between them (page.evaluate).

export interface WllamaPageRequest {
  /** Absolute URLs on the loopback server. */
  wasmUrl: string;
  modelUrl: string;
  threads: number;
  contextLength: number;
  /** A text that the model's tokenizer makes exactly `promptTokens` tokens of (wllama 3 takes text, not ids). */
  promptText: string;
  promptTokens: number;
  /** A few words for the warm-up run. */
  warmUpText: string;
  genTokens: number;
  /** Measured runs after one short warm-up run. */
  runs: number;
}

/** One completion, timed by llama.cpp's server loop inside the wasm and by the page around the call. */
export interface WllamaPageRun {
  /** llama.cpp's own counts and times (server-context `timings`): prompt_ms ends when the first token is sampled, so
   *  predicted_ms covers predicted_n − 1 forward passes. */
  promptN: number;
  promptMs: number;
  predictedN: number;
  predictedMs: number;
  /** performance.now() around createCompletion: everything above plus wllama's worker round trips. */
  pageMs: number;
}

export interface WllamaPageResult {
  crossOriginIsolated: boolean;
  /** What wllama says after loading: the pthread build is in use, and with how many threads. */
  multiThread: boolean;
  threadsUsed: number;
  /** JSPI and memory64 are what wllama's default (non-"compat") wasm needs. */
  jspi: boolean;
  libllamaVersion: string;
  fetchMs: number;
  loadMs: number;
  runs: WllamaPageRun[];
  /** wllama's warnings and errors during the run. */
  warnings: string[];
}

/** The page's answer: a result, or where and why it failed. */
export type WllamaPageReply = { ok: true; result: WllamaPageResult } | { ok: false; stage: 'fetch' | 'load' | 'run'; message: string };

/** The function the page puts on globalThis. */
export type WllamaPageBench = (req: WllamaPageRequest) => Promise<WllamaPageReply>;

/** The function the Node side exposes to the page (playwright's exposeFunction): a named moment of the run. */
export type WllamaBenchMark = (label: string) => Promise<void>;
