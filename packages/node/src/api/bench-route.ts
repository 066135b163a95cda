import type { PrefixCacheReport } from '../engine/prefix-cache.js';
import { randomUUID } from 'node:crypto';
import type { BenchHop, BenchProbe, BenchRoute, BenchTopology, BenchTrace, StepTiming } from '../engine/bench-probe.js';
import type { GenerationTimings } from '../engine/generate.js';
import type { Generator } from '../engine/generator.js';
import type { SpeculationStats } from '../engine/speculation.js';
import { GREEDY } from '../engine/sampler.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { OpenAIError, invalidRequest } from './openai-errors.js';
import { optionalBoolean, type JsonObject } from './openai-request.js';
import { acquireSlot, requireGenerator, type ServingContext } from './serve-generation.js';

/** The route `edge-node bench` drives: exact-length prompts, EOS ignored, greedy, every step's timing. */
export const BENCH_PATH = '/v1/edge-node/bench';

/** Most runs one bench request may ask for (each is a whole generation). */
export const MAX_BENCH_RUNS = 100;

export interface BenchRouteOptions {
  maxBodyBytes?: number;
}

/** One run's figures: the generation's own timings, and what the bench adds. */
export interface BenchRun extends GenerationTimings {
  promptTokens: number;
  generatedTokens: number;
  /** Wait for a pipeline slot before the run started. */
  queueWaitMs: number;
  /** Prompt tokens taken from the stages' prefix caches (0 unless the request asked for `prefix_cache`). */
  cachedTokens: number;
  /** Step 0 is the prefill; then one per decode step. */
  steps: StepTiming[];
  /** With `speculate`: tokens drafted and accepted, and the decode's walks (and the tokens they returned). */
  speculation?: SpeculationStats;
}

export interface BenchResponse {
  model: string;
  coordinator: string;
  route: BenchRoute;
  hops: BenchHop[];
  runs: BenchRun[];
  /** The coordinator's prefix cache after the runs: its stage's blocks and bytes, its requests' hits. */
  prefixCache: PrefixCacheReport | null;
}

/** GET: what a client needs to predict this cluster's figures with the partitioner. */
export interface BenchInfo extends BenchTopology {
  model: string;
  contextLength: number;
}

interface BenchBody {
  promptTokens: number;
  genTokens: number;
  runs: number;
  seed: number;
  /** Let runs take prompt positions from the stages' prefix caches (default false: each run computes its prompt). */
  prefixCache: boolean;
  /** Speculative decoding for the runs (default false: the figures are of plain decode steps). */
  speculate: boolean;
  /** `random` ids (default) or a `quoting` text: a passage repeated, which prompt lookup can draft from. */
  prompt: BenchPromptKind;
}

/** What a bench prompt is made of. */
export type BenchPromptKind = 'random' | 'quoting';

/** The passage a `quoting` bench prompt repeats: the answer of a model that reads it keeps quoting it. */
const QUOTED_PASSAGE = ' Tom had a big red ball. Tom liked to play with the ball in the park. One day, Tom lost the ball.';

function intField(body: Record<string, unknown>, key: string, min: number, max: number, fallback?: number): number {
  const v = body[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidRequest(`"${key}" must be a whole number from ${min} to ${max}`, key);
  }
  return v;
}

function parseBody(raw: unknown, contextLength: number): BenchBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidRequest('the body must be a JSON object');
  const body = raw as JsonObject;
  const promptTokens = intField(body, 'prompt_tokens', 1, contextLength - 1);
  const genTokens = intField(body, 'gen_tokens', 1, contextLength - promptTokens);
  const prefixCache = optionalBoolean(body, 'prefix_cache', false);
  const speculate = optionalBoolean(body, 'speculate', false);
  const prompt = body.prompt ?? 'random';
  if (prompt !== 'random' && prompt !== 'quoting') throw invalidRequest('"prompt" must be "random" (token ids) or "quoting" (a passage repeated)', 'prompt');
  return { promptTokens, genTokens, runs: intField(body, 'runs', 1, MAX_BENCH_RUNS, 1), seed: intField(body, 'seed', 0, 0xffffffff, 1), prefixCache, speculate, prompt };
}

/**
 * Token ids of exactly `n` positions, pseudo-random but the same for a seed, and never BOS or EOS ids (which
 * some models treat specially even in the middle of a prompt). Nothing is prepended.
 */
export function benchPromptIds(n: number, vocabSize: number, seed: number, avoid: readonly number[] = []): number[] {
  const skip = new Set(avoid);
  const ids: number[] = [];
  let s = seed >>> 0 || 1;
  while (ids.length < n) {
    // xorshift32: deterministic without a dependency.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const id = s % vocabSize;
    if (!skip.has(id)) ids.push(id);
  }
  return ids;
}

/**
 * GET/POST /v1/edge-node/bench. POST { prompt_tokens, gen_tokens, runs?, seed?, prefix_cache?, speculate?, prompt? }
 * runs `runs` generations one after another through the cluster's current plan (each waits for a pipeline slot like
 * any request) and answers every step's round trip and per-stage compute (with `speculate`, the run's drafts), the
 * route, and the bytes of every hop. GET answers the model's shape and the members' measured profiles (the
 * partitioner's inputs) so a client can put predictions beside the figures.
 */
export function addBenchRoute(router: ApiRouter, ctx: ServingContext, opts: BenchRouteOptions = {}): void {
  router.add('GET', BENCH_PATH, () => {
    const { probe } = benchProbe(ctx);
    const info: BenchInfo = { model: ctx.modelId, contextLength: ctx.contextLength, ...probe.topology() };
    return info;
  });

  router.add('POST', BENCH_PATH, async (req, res) => {
    const { generator, probe } = benchProbe(ctx);
    const body = parseBody(await readJsonBody(req, opts.maxBodyBytes), ctx.contextLength);
    const prompt = benchPrompt(generator, body);
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });

    const runs: BenchRun[] = [];
    let last: BenchTrace | undefined;
    for (let r = 0; r < body.runs; r++) {
      const run = await runInSlot(ctx, probe, prompt, body, abort.signal);
      if (!run) return undefined;
      runs.push(run.figures);
      last = run.trace;
    }
    if (!last) throw new OpenAIError(500, 'the pipeline reported no route for the bench run', 'server_error', 'internal_error');
    const response: BenchResponse = {
      model: ctx.modelId,
      coordinator: probe.topology().coordinator,
      route: last.route,
      hops: last.hops(),
      runs,
      prefixCache: generator.prefixCache?.() ?? null,
    };
    return response;
  });
}

/** The node's generator and its bench probe (501 when the generator has none). */
function benchProbe(ctx: ServingContext): { generator: Generator; probe: BenchProbe } {
  const generator = requireGenerator(ctx);
  if (!generator.bench) throw new OpenAIError(501, 'this node\'s generator cannot run bench requests', 'invalid_request_error', 'bench_unsupported');
  return { generator, probe: generator.bench };
}

/**
 * The request's prompt: its exact length of ids, none of them BOS or EOS — from the body's seed, or the quoted
 * passage's tokens repeated (cut at the length).
 */
function benchPrompt(generator: Generator, body: BenchBody): number[] {
  const config = generator.config;
  const avoid = [...(config.bosTokenId === null ? [] : [config.bosTokenId]), ...config.eosTokenIds, ...generator.tokenizer.eosIds];
  if (body.prompt === 'random') return benchPromptIds(body.promptTokens, Math.min(config.vocabSize, generator.tokenizer.vocabSize), body.seed, avoid);
  const passage = generator.tokenizer.encode(QUOTED_PASSAGE, { addBos: false }).filter((t) => !avoid.includes(t));
  if (passage.length === 0) throw invalidRequest('this model\'s tokenizer gives no tokens for the quoted passage: use "prompt": "random"', 'prompt');
  return Array.from({ length: body.promptTokens }, (_, i) => passage[i % passage.length]);
}

/** One run, after waiting for a pipeline slot like any request (null: the client went away meanwhile). */
async function runInSlot(ctx: ServingContext, probe: BenchProbe, prompt: number[], body: BenchBody, signal: AbortSignal): Promise<{ figures: BenchRun; trace: BenchTrace } | null> {
  const waitStart = performance.now();
  const release = await acquireSlot(ctx.queue, signal);
  if (!release) return null;
  const queueWaitMs = performance.now() - waitStart;
  try {
    const trace = await probe.run({
      prompt,
      addBos: false,
      maxTokens: body.genTokens,
      sampling: { ...GREEDY },
      ignoreEos: true,
      signal,
      requestId: `bench-${randomUUID()}`,
      // Runs repeat one prompt: from the second on it would come from the prefix cache, unless asked to measure that.
      prefixCache: body.prefixCache,
      speculate: body.speculate,
    });
    const result = trace.result;
    if (result.tokens.length !== body.genTokens) {
      throw new OpenAIError(500, `the run generated ${result.tokens.length} tokens instead of ${body.genTokens}`, 'server_error', 'internal_error');
    }
    const t = result.timings;
    const figures: BenchRun = {
      promptTokens: prompt.length,
      generatedTokens: result.tokens.length,
      ttftMs: t.ttftMs,
      prefillMs: t.prefillMs,
      prefillTokPerS: t.prefillTokPerS,
      decodeMs: t.decodeMs,
      decodeTokPerS: t.decodeTokPerS,
      totalMs: t.totalMs,
      queueWaitMs,
      cachedTokens: result.cachedTokens ?? 0,
      steps: trace.steps,
      ...(result.speculation ? { speculation: result.speculation } : {}),
    };
    return { figures, trace };
  } finally {
    release();
  }
}
