import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GenerationResult } from '../engine/generate.js';
import type { TokenLogprob } from '../engine/sampler.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { Generator } from '../engine/generator.js';
import type { ApiMetrics } from './api-metrics.js';
import { OpenAIError, invalidRequest, toOpenAIError } from './openai-errors.js';
import type { GenerationParams } from './openai-request.js';
import { QueueWaitAbortedError, type RequestQueue } from './request-queue.js';
import { SseWriter } from './sse-writer.js';
import { grammarMinTokens } from './structured-output.js';
import { generateAnswer, type AnswerOutcome, type GenerationEvent } from './generation-events.js';
import type { ToolCallFormat, ToolChoice, ToolDef } from './tool-calls.js';

/** What every generation route needs from the node. */
export interface ServingContext {
  /** null when the node has no model (it only relays): generation answers 503. */
  generator: Generator | null;
  /** The id clients pass as `model` (also accepted: the model's own name). */
  modelId: string;
  queue: RequestQueue;
  metrics: ApiMetrics;
  contextLength: number;
  /** The model file or folder this node was started with (absent: its layers came from peers). */
  modelPath?: string;
}

/** The metrics label of a generation route (every dialect counts under its own). */
export type Endpoint = 'chat' | 'completions' | 'responses' | 'anthropic' | 'ollama_chat' | 'ollama_generate' | 'embeddings';

export interface GenerationJob {
  endpoint: 'chat' | 'completions';
  prompt: string | number[];
  /** Prepend BOS to a text prompt (default: what the model asks for). */
  addBos?: boolean;
  params: GenerationParams;
  /** Stop strings the route adds to the client's (e.g. the next turn of the plain chat transcript). */
  extraStop?: string[];
  /** Used when the client gives no max_tokens. */
  defaultMaxTokens: number;
  /** Constrained sampling (structured output, forced tool calls). */
  grammar?: GrammarSpec | null;
  /** Log-probabilities with this many alternatives. */
  logprobs?: number;
  /** Chat only: the tools offered; calls are read out of the answer. */
  tools?: { defs: ToolDef[]; choice: ToolChoice; format: ToolCallFormat };
}

/** 503 unless the node has a model; otherwise what generates with it. */
export function requireGenerator(ctx: ServingContext): Generator {
  if (!ctx.generator) {
    throw new OpenAIError(503, 'this node has no model loaded (start it with --model PATH); it only relays for the cluster', 'service_unavailable', 'model_not_loaded');
  }
  return ctx.generator;
}

/** 404 unless `model` names the model this cluster serves. */
export function checkModel(ctx: ServingContext, model: string): void {
  const p = requireGenerator(ctx);
  if (model !== ctx.modelId && model !== p.modelName) {
    throw new OpenAIError(404, `the model "${model}" does not exist here; this cluster serves "${ctx.modelId}"`, 'invalid_request_error', 'model_not_found', 'model');
  }
}

/** Tokenizes a prompt and checks it against the context (400s name `param`). */
export function tokenizePrompt(ctx: ServingContext, prompt: string | number[], addBos: boolean | undefined, param: string): number[] {
  const generator = requireGenerator(ctx);
  const tokens = typeof prompt === 'string' ? generator.tokenizer.encode(prompt, addBos === undefined ? {} : { addBos }) : prompt;
  const vocab = generator.tokenizer.vocabSize;
  if (typeof prompt !== 'string' && tokens.some((t) => t >= vocab)) throw invalidRequest(`token ids in "${param}" must be below the vocabulary size ${vocab}`, param);
  if (tokens.length === 0) throw invalidRequest(`the ${param} is empty`, param);
  if (tokens.length >= ctx.contextLength) {
    throw new OpenAIError(
      400,
      `this model's context is ${ctx.contextLength} tokens, and the ${param} has ${tokens.length} tokens: shorten it (at least one token must be left to generate)`,
      'invalid_request_error',
      'context_length_exceeded',
      param,
    );
  }
  return tokens;
}

/** The tokens a request may generate, checked against what its grammar needs at the least. */
export function tokenBudget(ctx: ServingContext, promptTokens: number, requested: number, grammar: GrammarSpec | null | undefined, param: string): number {
  const budget = Math.min(requested, ctx.contextLength - promptTokens);
  if (grammar) {
    const need = grammarMinTokens(grammar);
    if (need > budget) {
      throw invalidRequest(
        `the required output format needs at least ${need} tokens, but only ${budget} may be generated (${param}${budget < requested ? ' and the context left after the prompt' : ''}): raise ${param}`,
        param,
      );
    }
  }
  return budget;
}

/**
 * Runs `work` in a pipeline slot: waits in the queue (a client that leaves while waiting is dropped), aborts the
 * work when the client goes away, and turns failures inside the cluster into 503s. Returns false when cancelled.
 */
export async function withSlot(
  ctx: ServingContext,
  res: ServerResponse,
  endpoint: Endpoint,
  work: (signal: AbortSignal, done: () => void) => Promise<void>,
  onError: (e: OpenAIError) => boolean,
): Promise<void> {
  const abort = new AbortController();
  let finished = false;
  res.once('close', () => {
    if (!finished) abort.abort();
  });
  let release: () => void;
  try {
    release = await ctx.queue.acquire(abort.signal);
  } catch (err) {
    if (err instanceof QueueWaitAbortedError) {
      ctx.metrics.generations.inc({ endpoint, finish: 'cancelled' });
      return;
    }
    throw err;
  }
  try {
    await work(abort.signal, () => (finished = true));
  } catch (err) {
    if (abort.signal.aborted) {
      ctx.metrics.generations.inc({ endpoint, finish: 'cancelled' });
      return;
    }
    ctx.metrics.generations.inc({ endpoint, finish: 'error' });
    let e = toOpenAIError(err);
    // The request was valid: a failure inside the cluster is "cannot serve now", not a bug of the API.
    if (e.status === 500) e = new OpenAIError(503, `the cluster could not finish this request: ${(err as Error).message}`, 'service_unavailable', 'cluster_unavailable');
    finished = true;
    if (!onError(e)) throw e;
  } finally {
    release();
  }
}

/** Counts a finished generation in the metrics. */
export function recordGeneration(ctx: ServingContext, endpoint: Endpoint, results: readonly GenerationResult[], arrived: number): void {
  const m = ctx.metrics;
  for (const r of results) {
    m.generations.inc({ endpoint, finish: r.finishReason });
    m.completionTokens.inc({}, r.tokens.length);
  }
  if (results.length > 0) {
    const r = results[0];
    m.promptTokens.inc(r.promptTokens.length);
    m.ttft.observe((r.timings.ttftMs + (performance.now() - arrived - r.timings.totalMs)) / 1000);
  }
}

/** How a token looks in a logprobs entry: its text and its UTF-8 bytes. */
export function tokenText(generator: Generator, id: number): { token: string; bytes: number[] } {
  const b = generator.vocabulary().bytes[id];
  if (b) return { token: Buffer.from(b).toString('utf8'), bytes: [...b] };
  const piece = generator.tokenizer.tokenToPiece(id);
  return { token: piece, bytes: [...Buffer.from(piece, 'utf8')] };
}

/** Chat's logprobs entries (`choices[].logprobs.content`). */
export function chatLogprobs(generator: Generator, lps: readonly TokenLogprob[]): object[] {
  return lps.map((lp) => ({
    ...tokenText(generator, lp.token),
    logprob: lp.logprob,
    top_logprobs: lp.top.map((t) => ({ ...tokenText(generator, t.token), logprob: t.logprob })),
  }));
}

/** The legacy completions logprobs object. */
function completionLogprobs(generator: Generator, lps: readonly TokenLogprob[], startOffset: number): object {
  let offset = startOffset;
  const text_offset: number[] = [];
  const tokens = lps.map((lp) => {
    const t = tokenText(generator, lp.token).token;
    text_offset.push(offset);
    offset += t.length;
    return t;
  });
  return {
    tokens,
    token_logprobs: lps.map((lp) => lp.logprob),
    top_logprobs: lps.map((lp) => Object.fromEntries(lp.top.map((t) => [tokenText(generator, t.token).token, t.logprob]))),
    text_offset,
  };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens the stages took from their prefix caches instead of computing them. */
  prompt_tokens_details: { cached_tokens: number };
  /**
   * With speculative decoding asked for (`speculate: true` or a `prediction`): drafted tokens the model accepted and
   * rejected (OpenAI's predicted-output fields), and edge-node's `speculation` extension with the decode's walks.
   */
  completion_tokens_details?: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
  speculation?: { drafted_tokens: number; accepted_tokens: number; decode_walks: number; tokens_per_walk: number };
}

/** A prediction's token ids: its text tokenized as a continuation (no BOS), or the ids given, checked. */
function predictionTokens(generator: Generator, prediction: string | number[]): number[] {
  const vocab = generator.tokenizer.vocabSize;
  if (typeof prediction === 'string') return generator.tokenizer.encode(prediction, { addBos: false });
  if (prediction.some((t) => t >= vocab)) throw invalidRequest(`token ids in "prediction.content" must be below the vocabulary size ${vocab}`, 'prediction.content');
  return prediction;
}

/** The usage fields of the answers' speculation (none when no choice speculated). */
function speculationUsage(results: readonly GenerationResult[]): Pick<Usage, 'completion_tokens_details' | 'speculation'> {
  const stats = results.map((r) => r.speculation).filter((s) => s !== undefined);
  if (stats.length === 0) return {};
  const drafted = stats.reduce((n, s) => n + s.drafted, 0);
  const accepted = stats.reduce((n, s) => n + s.accepted, 0);
  const walks = stats.reduce((n, s) => n + s.walks, 0);
  const tokens = stats.reduce((n, s) => n + s.tokens, 0);
  return {
    completion_tokens_details: { accepted_prediction_tokens: accepted, rejected_prediction_tokens: drafted - accepted },
    speculation: { drafted_tokens: drafted, accepted_tokens: accepted, decode_walks: walks, tokens_per_walk: walks > 0 ? tokens / walks : 0 },
  };
}

/**
 * Runs one generation request for an HTTP client: tokenizes and checks the prompt against the context, waits for a
 * slot in the queue, runs its `n` choices through the pipeline (each its own sequence, interleaved with the other
 * requests) and answers as JSON or as Server-Sent Events. A client that goes away aborts every choice, which ends
 * the request on every stage (their KV caches are freed).
 */
export async function serveGeneration(ctx: ServingContext, req: IncomingMessage, res: ServerResponse, job: GenerationJob): Promise<void> {
  void req;
  const generator = requireGenerator(ctx);
  const arrived = performance.now();
  const { params } = job;
  const chat = job.endpoint === 'chat';
  const promptParam = chat ? 'messages' : 'prompt';
  const promptTokens = tokenizePrompt(ctx, job.prompt, job.addBos, promptParam);
  const maxParam = chat ? 'max_tokens' : 'max_tokens';
  const maxTokens = tokenBudget(ctx, promptTokens.length, params.maxTokens ?? job.defaultMaxTokens, job.grammar, maxParam);
  const prediction = params.prediction === undefined ? undefined : predictionTokens(generator, params.prediction);

  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const model = ctx.modelId;
  const sse = params.stream ? new SseWriter(res) : null;

  const chunk = (index: number, delta: object | null, finish: string | null, extra: { text?: string; logprobs?: object | null } = {}) =>
    chat
      ? {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          system_fingerprint: null,
          choices: [{ index, delta: delta ?? {}, logprobs: extra.logprobs ?? null, finish_reason: finish }],
          ...(params.includeUsage ? { usage: null } : {}),
        }
      : {
          id,
          object: 'text_completion',
          created,
          model,
          choices: [{ index, text: extra.text ?? '', logprobs: extra.logprobs ?? null, finish_reason: finish }],
          ...(params.includeUsage ? { usage: null } : {}),
        };

  const streamLogprobs = (lps: TokenLogprob[], offset: number) =>
    job.logprobs === undefined || lps.length === 0 ? null : chat ? { content: chatLogprobs(generator, lps), refusal: null } : completionLogprobs(generator, lps, offset);

  /** One choice, streamed (when asked) as it is generated: the shared answer's events as OpenAI chunks. */
  const runChoice = async (index: number, signal: AbortSignal): Promise<AnswerOutcome> => {
    let streamed = 0;
    const onEvent = (e: GenerationEvent) => {
      if (!sse) return;
      if (e.type === 'text') {
        sse.send(chunk(index, { content: e.text }, null, { text: e.text, logprobs: streamLogprobs(e.logprobs, streamed) }));
        streamed += e.text.length;
      } else if (e.type === 'tool_call') sse.send(chunk(index, { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] }, null));
      else sse.send(chunk(index, { tool_calls: [{ index: e.index, function: { arguments: e.text } }] }, null));
    };
    if (sse && chat) sse.send(chunk(index, { role: 'assistant', content: '' }, null));
    const seed = params.sampling.seed;
    const out = await generateAnswer(
      generator,
      {
        promptTokens,
        maxTokens,
        sampling: seed === null || index === 0 ? params.sampling : { ...params.sampling, seed: seed + index },
        stop: [...params.stop, ...(job.extraStop ?? [])],
        ignoreEos: params.ignoreEos,
        signal,
        requestId: params.n > 1 ? `${id}.${index}` : id,
        grammar: job.grammar ?? null,
        ...(job.logprobs !== undefined ? { logprobs: job.logprobs } : {}),
        ...(job.tools ? { tools: job.tools } : {}),
        // The choices of n > 1 share their prompt only when they start from an empty cache (docs/batching.md): a
        // cached prefix would have each of them compute the rest of it, which may cost more than the prompt once.
        ...(params.n > 1 ? { prefixCache: false } : {}),
        ...(params.speculate !== undefined ? { speculate: params.speculate } : {}),
        ...(prediction ? { prediction } : {}),
      },
      sse ? onEvent : null,
    );
    if (sse) sse.send(chunk(index, null, out.finish, { logprobs: streamLogprobs(out.trailingLogprobs, streamed) }));
    return out;
  };

  await withSlot(
    ctx,
    res,
    job.endpoint,
    async (signal, done) => {
      sse?.start();
      const outs = await Promise.all(Array.from({ length: params.n }, (_, i) => runChoice(i, signal)));
      const results = outs.map((o) => o.result);
      recordGeneration(ctx, job.endpoint, results, arrived);
      const completion = results.reduce((a, r) => a + r.tokens.length, 0);
      // The choices share one prompt: its cached part is counted once, as its tokens are.
      const usage: Usage = { prompt_tokens: promptTokens.length, completion_tokens: completion, total_tokens: promptTokens.length + completion, prompt_tokens_details: { cached_tokens: results[0]?.cachedTokens ?? 0 },
        // Reported when the request asked for speculation (its counts vary run to run with the measured pass cost:
        // a client comparing usage of identical default requests sees identical objects); /metrics counts all.
        ...(params.speculate === true || params.prediction !== undefined ? speculationUsage(results) : {}),
      };
      done();
      if (sse) {
        if (params.includeUsage) sse.send({ ...chunk(0, null, null), choices: [], usage });
        sse.done();
        return;
      }
      const choices = outs.map(({ result, calls, content }, index) => {
        const lps = job.logprobs === undefined ? null : chat ? { content: chatLogprobs(generator, result.logprobs ?? []), refusal: null } : completionLogprobs(generator, result.logprobs ?? [], 0);
        if (!chat) return { index, text: result.text, logprobs: lps, finish_reason: result.finishReason };
        const message =
          calls.length > 0
            ? { role: 'assistant', content, refusal: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
            : { role: 'assistant', content: result.text, refusal: null };
        return { index, message, logprobs: lps, finish_reason: calls.length > 0 ? 'tool_calls' : result.finishReason };
      });
      const body = { id, object: chat ? 'chat.completion' : 'text_completion', created, model, system_fingerprint: null, choices, usage };
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
    (e) => {
      if (!sse) return false;
      sse.send(e.body);
      sse.end();
      return true;
    },
  );
}
