import { GREEDY, LocalModel, benchPromptIds, generate, type EngineOptions, type ExecutionRequest, type TokenExecutor } from '@edge-node/node';
import { MIN_MEASURE_MS } from './bench-options.js';

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
 * How long this process's row warms up at least. It is slower for a while after the process idled (as it has,
 * waiting for the nodes to stop): three runs of ~25 ms (stories260K) after a single warm-up read 0.19–0.57 ms a token
 * within one set.
 */
const WARM_UP_MS = 500;
/** The most runs the row takes, however short. */
const MAX_RUNS = 400;

/**
 * The same model on one device in this process, without any network: the engine's own executor, the same prompt
 * ids as the cluster gets (same seed), warm-up runs (at least one, for WARM_UP_MS), then `runs` runs, repeated until
 * they have lasted MIN_MEASURE_MS (at most MAX_RUNS).
 */
export async function measureLocal(modelPath: string, promptTokens: number, genTokens: number, runs: number, engine: EngineOptions = {}): Promise<{ runs: LocalRun[]; promptIds: number[] }> {
  const local = await LocalModel.open(modelPath, { ...engine, contextLength: promptTokens + genTokens + 1 });
  try {
    const c = local.model.config;
    const avoid = [...(c.bosTokenId === null ? [] : [c.bosTokenId]), ...c.eosTokenIds, ...local.tokenizer.eosIds];
    const promptIds = benchPromptIds(promptTokens, Math.min(c.vocabSize, local.tokenizer.vocabSize), 1, avoid);
    const once = async (): Promise<LocalRun> => {
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
      return {
        ttftMs: t.ttftMs,
        prefillMs: t.prefillMs,
        prefillTokPerS: t.prefillTokPerS,
        decodeMs: t.decodeMs,
        decodeTokPerS: t.decodeTokPerS,
        tokenLatencyMs: result.tokens.length > 1 ? t.decodeMs / (result.tokens.length - 1) : Number.NaN,
        stepMs: timed.stepMs,
        loopMs: timed.loopMs,
      };
    };
    const warmUntil = performance.now() + WARM_UP_MS;
    do await once();
    while (performance.now() < warmUntil);
    const out: LocalRun[] = [];
    const measureUntil = performance.now() + MIN_MEASURE_MS;
    while (out.length < runs || (performance.now() < measureUntil && out.length < MAX_RUNS)) out.push(await once());
    return { runs: out, promptIds };
  } finally {
    await local.close();
  }
}
