import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GenerationResult } from '../engine/generate.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { Generator } from '../engine/generator.js';
import type { ApiMetrics } from './api-metrics.js';
import { sendAnswer } from './api-router.js';
import { OpenAIError, invalidRequest, toOpenAIError } from './openai-errors.js';
import type { GenerationParams } from './openai-request.js';
import { QueueWaitAbortedError, type RequestQueue } from './request-queue.js';
import { SseWriter } from './sse-writer.js';
import { grammarMinTokens } from './structured-output.js';
import { generateAnswer, type AnswerJob, type AnswerOutcome, type GenerationEvent } from './generation-events.js';
import { llamaTimings } from './llama-timings.js';
import { OpenAIAnswer } from './openai-answer.js';
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

/** A pipeline slot's release, once the queue grants one; null when the client went away while waiting. */
export async function acquireSlot(queue: RequestQueue, signal: AbortSignal): Promise<(() => void) | null> {
  try {
    return await queue.acquire(signal);
  } catch (err) {
    if (err instanceof QueueWaitAbortedError) return null;
    throw err;
  }
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
  const release = await acquireSlot(ctx.queue, abort.signal);
  if (!release) {
    ctx.metrics.generations.inc({ endpoint, finish: 'cancelled' });
    return;
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

/** A prediction's token ids: its text tokenized as a continuation (no BOS), or the ids given, checked. */
function predictionTokens(generator: Generator, prediction: string | number[]): number[] {
  const vocab = generator.tokenizer.vocabSize;
  if (typeof prediction === 'string') return generator.tokenizer.encode(prediction, { addBos: false });
  if (prediction.some((t) => t >= vocab)) throw invalidRequest(`token ids in "prediction.content" must be below the vocabulary size ${vocab}`, 'prediction.content');
  return prediction;
}

/** A request's prompt and budget, checked: what each of its choices generates from. */
interface CheckedPrompt {
  promptTokens: number[];
  maxTokens: number;
  prediction: number[] | undefined;
}

function checkPrompt(ctx: ServingContext, generator: Generator, job: GenerationJob): CheckedPrompt {
  const { params } = job;
  const promptTokens = tokenizePrompt(ctx, job.prompt, job.addBos, job.endpoint === 'chat' ? 'messages' : 'prompt');
  const maxTokens = tokenBudget(ctx, promptTokens.length, params.maxTokens ?? job.defaultMaxTokens, job.grammar, 'max_tokens');
  const prediction = params.prediction === undefined ? undefined : predictionTokens(generator, params.prediction);
  return { promptTokens, maxTokens, prediction };
}

/** Choice `index` of the request as one answer of the pipeline's. */
function choiceJob(job: GenerationJob, prompt: CheckedPrompt, id: string, index: number, signal: AbortSignal): AnswerJob {
  const { params } = job;
  const seed = params.sampling.seed;
  return {
    promptTokens: prompt.promptTokens,
    maxTokens: prompt.maxTokens,
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
    ...(prompt.prediction ? { prediction: prompt.prediction } : {}),
  };
}

/** One choice, streamed (when asked) as it is generated: the shared answer's events as OpenAI chunks. */
async function runChoice(generator: Generator, answer: OpenAIAnswer, sse: SseWriter | null, job: AnswerJob, index: number, chat: boolean): Promise<AnswerOutcome> {
  let streamed = 0;
  const onEvent = (e: GenerationEvent) => {
    if (!sse) return;
    if (e.type === 'text') {
      sse.send(answer.chunk(index, { content: e.text }, null, { text: e.text, logprobs: answer.streamLogprobs(e.logprobs, streamed) }));
      streamed += e.text.length;
    } else if (e.type === 'tool_call') sse.send(answer.chunk(index, { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] }, null));
    else sse.send(answer.chunk(index, { tool_calls: [{ index: e.index, function: { arguments: e.text } }] }, null));
  };
  if (sse && chat) sse.send(answer.chunk(index, { role: 'assistant', content: '' }, null));
  const out = await generateAnswer(generator, job, sse ? onEvent : null);
  if (sse) sse.send(answer.chunk(index, null, out.finish, { logprobs: answer.streamLogprobs(out.trailingLogprobs, streamed) }));
  return out;
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
  const prompt = checkPrompt(ctx, generator, job);
  const answer = new OpenAIAnswer(chat, ctx.modelId, generator, params, job.logprobs);
  const sse = params.stream ? new SseWriter(res) : null;

  await withSlot(
    ctx,
    res,
    job.endpoint,
    async (signal, done) => {
      sse?.start();
      const outs = await Promise.all(Array.from({ length: params.n }, (_, i) => runChoice(generator, answer, sse, choiceJob(job, prompt, answer.id, i, signal), i, chat)));
      const results = outs.map((o) => o.result);
      recordGeneration(ctx, job.endpoint, results, arrived);
      const usage = answer.usage(prompt.promptTokens.length, results);
      const timings = llamaTimings(prompt.promptTokens.length, results);
      done();
      if (!sse) return sendAnswer(res, { ...answer.completion(outs, usage), ...timings });
      const usageChunk = answer.usageChunk(usage, timings);
      if (usageChunk) sse.send(usageChunk);
      sse.done();
    },
    (e) => {
      if (!sse) return false;
      sse.send(e.body);
      sse.end();
      return true;
    },
  );
}
