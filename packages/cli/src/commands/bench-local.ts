import { GREEDY, LocalModel, benchPromptIds, generate, type EngineOptions, type ExecutionRequest, type TokenExecutor } from '@edge-node/node';

export interface LocalRun {
  ttftMs: number;
  prefillMs: number;
  prefillTokPerS: number;
  decodeMs: number;
  decodeTokPerS: number;
  tokenLatencyMs: number;
  stepMs: number[];
  /** The generation loop's own time before each decode step (sampling, stop checks, the token's text). */
  loopMs: number[];
}

/** Times every decode step of the executor it wraps, and the generation loop's time before it. */
class TimedExecutor implements TokenExecutor {
  stepMs: number[] = [];
  loopMs: number[] = [];
  private returnedAt = 0;
  constructor(private readonly inner: TokenExecutor) {}
  async begin(request: ExecutionRequest): Promise<number> {
    const first = await this.inner.begin(request);
    this.returnedAt = performance.now();
    return first;
  }
  async step(requestId: string, token: number): Promise<number> {
    const t0 = performance.now();
    this.loopMs.push(t0 - this.returnedAt);
    const next = await this.inner.step(requestId, token);
    this.returnedAt = performance.now();
    this.stepMs.push(this.returnedAt - t0);
    return next;
  }
  end(requestId: string): Promise<void> {
    return this.inner.end(requestId);
  }
}

/**
 * The same model on one device in this process, without any network: the engine's own executor, the same prompt
 * ids as the cluster gets (same seed), a warm-up run, then `runs` runs.
 */
export async function measureLocal(modelPath: string, promptTokens: number, genTokens: number, runs: number, engine: EngineOptions = {}): Promise<{ runs: LocalRun[]; promptIds: number[] }> {
  const local = await LocalModel.open(modelPath, { ...engine, contextLength: promptTokens + genTokens + 1 });
  try {
    const c = local.model.config;
    const avoid = [...(c.bosTokenId === null ? [] : [c.bosTokenId]), ...c.eosTokenIds, ...local.tokenizer.eosIds];
    const promptIds = benchPromptIds(promptTokens, Math.min(c.vocabSize, local.tokenizer.vocabSize), 1, avoid);
    const out: LocalRun[] = [];
    for (let r = 0; r <= runs; r++) {
      const timed = new TimedExecutor(local.executor);
      const result = await generate(timed, local.tokenizer, {
        prompt: promptIds,
        addBos: false,
        maxTokens: genTokens,
        sampling: { ...GREEDY },
        ignoreEos: true,
        contextLength: local.contextLength,
      });
      const t = result.timings;
      // Run 0 is the warm-up.
      if (r > 0) {
        out.push({
          ttftMs: t.ttftMs,
          prefillMs: t.prefillMs,
          prefillTokPerS: t.prefillTokPerS,
          decodeMs: t.decodeMs,
          decodeTokPerS: t.decodeTokPerS,
          tokenLatencyMs: result.tokens.length > 1 ? t.decodeMs / (result.tokens.length - 1) : Number.NaN,
          stepMs: timed.stepMs,
          loopMs: timed.loopMs,
        });
      }
    }
    return { runs: out, promptIds };
  } finally {
    await local.close();
  }
}
