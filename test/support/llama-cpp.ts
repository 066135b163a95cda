/**
 * llama.cpp (through the npm package node-llama-cpp, prebuilt CPU binary) as a test oracle and speed
 * baseline: load a GGUF, tokenize, greedy-decode from given token ids, read raw logits, time prefill/decode.
 * Nothing here adds BOS: callers pass exactly the token ids to evaluate.
 */
import type { ControlledEvaluateInputItem, Llama, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';

/** node-llama-cpp or its prebuilt binary is not available on this machine. */
export class LlamaCppUnavailableError extends Error {
  override name = 'LlamaCppUnavailableError';
}

type NodeLlamaCpp = typeof import('node-llama-cpp');

let modulePromise: Promise<NodeLlamaCpp> | null = null;
let llamaPromise: Promise<Llama> | null = null;

async function loadModule(): Promise<NodeLlamaCpp> {
  modulePromise ??= import('node-llama-cpp').catch((err: unknown) => {
    modulePromise = null;
    throw new LlamaCppUnavailableError(
      `node-llama-cpp is not installed (${(err as Error).message}); run \`npm install --save-dev node-llama-cpp\` at the repo root`,
    );
  });
  return modulePromise;
}

/** The process-wide llama.cpp binding: CPU only, prebuilt binary only (building needs the network). */
export async function getLlamaCpp(): Promise<Llama> {
  llamaPromise ??= (async () => {
    const m = await loadModule();
    try {
      return await m.getLlama({ gpu: false, build: 'never', logLevel: m.LlamaLogLevel.error, progressLogs: false });
    } catch (err) {
      llamaPromise = null;
      throw new LlamaCppUnavailableError(
        `node-llama-cpp has no usable prebuilt llama.cpp binary here (${(err as Error).message}); ` +
          'install @node-llama-cpp/linux-x64 (an optional dependency of node-llama-cpp)',
      );
    }
  })();
  return llamaPromise;
}

export interface LlamaCppRunOptions {
  /** CPU threads llama.cpp uses (default 1, so numbers are comparable across machines). */
  threads?: number;
  /** KV cache size in tokens (default: just enough for the call, rounded up to 256). */
  contextSize?: number;
  /**
   * KV cache element type. Default 'F32' so llama.cpp is an exact float32 oracle; llama.cpp's own default
   * is 'F16', which rounds every cached K/V and changes greedy tokens of random-weight models.
   */
  kvCacheType?: 'F32' | 'F16';
  /** A LoRA adapter file applied on the context (llama.cpp's --lora / --lora-scaled), scale 1 unless given. */
  lora?: { path: string; scale?: number };
}

export interface LlamaCppSpeed {
  promptTokens: number;
  decodeTokens: number;
  threads: number;
  prefillMs: number;
  decodeMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

export interface LlamaCppModel {
  readonly path: string;
  readonly vocabSize: number;
  readonly bosToken: number | null;
  readonly eosToken: number | null;
  /** What llama.cpp would do for a raw prompt (tokenizer.ggml.add_bos_token); the wrapper never adds it itself. */
  readonly addsBos: boolean;
  readonly trainContextSize: number;
  /** Token ids of `text` (no BOS). `special`: parse special-token text like "<|im_start|>". */
  tokenize(text: string, special?: boolean): number[];
  detokenize(ids: readonly number[], special?: boolean): string;
  /** Greedy (argmax) continuation of `promptIds` for exactly `count` tokens; EOS does not stop it. */
  greedy(promptIds: readonly number[], count: number, options?: LlamaCppRunOptions): Promise<number[]>;
  /** Raw logits (before any sampling) for the next token after each prompt position, or only the last. */
  logits(promptIds: readonly number[], options?: LlamaCppRunOptions & { allPositions?: false }): Promise<Float32Array>;
  logits(promptIds: readonly number[], options: LlamaCppRunOptions & { allPositions: true }): Promise<Float32Array[]>;
  /** Times prefill of `promptIds` and decode of `decodeTokens` more greedy tokens. */
  measureSpeed(promptIds: readonly number[], decodeTokens: number, options?: LlamaCppRunOptions): Promise<LlamaCppSpeed>;
  close(): Promise<void>;
}

/** node-llama-cpp brands token ids; ours are plain numbers. */
const asTokens = (ids: readonly number[]): Token[] => ids as unknown as Token[];

function roundContext(tokens: number): number {
  return Math.max(256, Math.ceil(tokens / 256) * 256);
}

function checkIds(ids: readonly number[], vocabSize: number): void {
  if (ids.length === 0) throw new RangeError('give at least one token id (e.g. BOS)');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`token id ${id} is outside the vocab (0..${vocabSize - 1})`);
  }
}

async function withContext<T>(model: LlamaModel, tokens: number, options: LlamaCppRunOptions, fn: (ctx: LlamaContext) => Promise<T>): Promise<T> {
  const contextSize = options.contextSize ?? roundContext(tokens);
  const ctx = await model.createContext({
    contextSize,
    batchSize: Math.min(contextSize, 2048),
    threads: options.threads ?? 1,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: options.kvCacheType ?? 'F32',
    experimentalKvCacheValueType: options.kvCacheType ?? 'F32',
    ...(options.lora ? { lora: { adapters: [{ filePath: options.lora.path, scale: options.lora.scale ?? 1 }] } } : {}),
  });
  try {
    return await fn(ctx);
  } finally {
    await ctx.dispose();
  }
}

/** Loads a GGUF file into llama.cpp (CPU, memory-mapped). */
export async function loadLlamaCppModel(path: string): Promise<LlamaCppModel> {
  const llama = await getLlamaCpp();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  // The logits width is the embedding's row count (the tokenizer list can be shorter or longer).
  const embd = (model.fileInfo.fullTensorInfo ?? model.fileInfo.tensorInfo ?? []).find((t) => t.name === 'token_embd.weight');
  const vocabSize = embd ? Number(embd.dimensions[1]) : model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
  if (!vocabSize) throw new Error(`${path}: cannot tell the vocab size (no token_embd.weight)`);

  const logitsVector = (map: Map<number, number> | undefined): Float32Array => {
    if (!map) throw new Error('llama.cpp returned no logits');
    const out = new Float32Array(vocabSize);
    for (const [id, value] of map) out[id] = value;
    return out;
  };

  const api: LlamaCppModel = {
    path,
    vocabSize,
    bosToken: model.tokens.bos,
    eosToken: model.tokens.eos,
    addsBos: model.tokens.shouldPrependBosToken,
    trainContextSize: model.trainContextSize,
    tokenize: (text, special = false) => model.tokenize(text, special) as number[],
    detokenize: (ids, special = false) => model.detokenize(asTokens(ids), special),

    async greedy(promptIds, count, options = {}) {
      checkIds(promptIds, vocabSize);
      return withContext(model, promptIds.length + count, options, async (ctx) => {
        const seq = ctx.getSequence();
        const out: number[] = [];
        if (count <= 0) return out;
        for await (const token of seq.evaluate(asTokens(promptIds), { temperature: 0, yieldEogToken: true })) {
          out.push(token);
          if (out.length >= count) break;
        }
        return out;
      });
    },

    async logits(promptIds: readonly number[], options: LlamaCppRunOptions & { allPositions?: boolean } = {}): Promise<never> {
      checkIds(promptIds, vocabSize);
      const all = options.allPositions === true;
      const result = await withContext(model, promptIds.length + 1, options, async (ctx) => {
        const seq = ctx.getSequence();
        const input: ControlledEvaluateInputItem[] = asTokens(promptIds).map((id, i) =>
          all || i === promptIds.length - 1 ? [id, { generateNext: { logits: true } }] : id,
        );
        const res = await seq.controlledEvaluate(input);
        if (!all) return logitsVector(res[promptIds.length - 1]?.next.logits);
        return promptIds.map((_, i) => logitsVector(res[i]?.next.logits));
      });
      return result as never;
    },

    async measureSpeed(promptIds, decodeTokens, options = {}) {
      checkIds(promptIds, vocabSize);
      const threads = options.threads ?? 1;
      return withContext(model, promptIds.length + decodeTokens + 1, { ...options, threads }, async (ctx) => {
        const seq = ctx.getSequence();
        // Warm-up outside the timings: first-touch of the mapped weights and thread pool start.
        await seq.evaluateWithoutGeneratingNewTokens(asTokens([promptIds[0]]));
        await seq.clearHistory();
        const t0 = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(asTokens(promptIds));
        const t1 = performance.now();
        // Decode: each step evaluates the previously sampled token; the first step samples from the prompt's logits.
        let generated = 0;
        let last = promptIds[promptIds.length - 1];
        await seq.eraseContextTokenRanges([{ start: promptIds.length - 1, end: promptIds.length }]);
        const t2 = performance.now();
        for await (const token of seq.evaluate(asTokens([last]), { temperature: 0, yieldEogToken: true })) {
          last = token;
          generated++;
          if (generated >= decodeTokens) break;
        }
        const t3 = performance.now();
        const prefillMs = t1 - t0;
        const decodeMs = t3 - t2;
        return {
          promptTokens: promptIds.length,
          decodeTokens: generated,
          threads,
          prefillMs,
          decodeMs,
          prefillTokensPerSecond: (promptIds.length / prefillMs) * 1000,
          decodeTokensPerSecond: (generated / decodeMs) * 1000,
        };
      });
    },

    async close() {
      await model.dispose();
    },
  };
  return api;
}
