import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FinishReason } from '../engine/generate.js';
import type { ClusterPipeline } from '../pipeline/cluster-pipeline.js';
import type { ApiMetrics } from './api-metrics.js';
import { OpenAIError, invalidRequest, toOpenAIError } from './openai-errors.js';
import type { GenerationParams } from './openai-request.js';
import { QueueWaitAbortedError, type RequestQueue } from './request-queue.js';
import { SseWriter } from './sse-writer.js';

/** What every generation route needs from the node. */
export interface ServingContext {
  /** null when the node has no model (it only relays): generation answers 503. */
  pipeline: ClusterPipeline | null;
  /** The id clients pass as `model` (also accepted: the model's own name). */
  modelId: string;
  queue: RequestQueue;
  metrics: ApiMetrics;
  contextLength: number;
}

export type Endpoint = 'chat' | 'completions';

export interface GenerationJob {
  endpoint: Endpoint;
  prompt: string | number[];
  /** Prepend BOS to a text prompt (default: what the model asks for). */
  addBos?: boolean;
  params: GenerationParams;
  /** Stop strings the route adds to the client's (e.g. the next turn of the plain chat transcript). */
  extraStop?: string[];
  /** Used when the client gives no max_tokens. */
  defaultMaxTokens: number;
}

/** 503 unless the node has a model; otherwise the pipeline. */
export function requirePipeline(ctx: ServingContext): ClusterPipeline {
  if (!ctx.pipeline) {
    throw new OpenAIError(503, 'this node has no model loaded (start it with --model PATH); it only relays for the cluster', 'service_unavailable', 'model_not_loaded');
  }
  return ctx.pipeline;
}

/** 404 unless `model` names the model this cluster serves. */
export function checkModel(ctx: ServingContext, model: string): void {
  const p = requirePipeline(ctx);
  if (model !== ctx.modelId && model !== p.modelName) {
    throw new OpenAIError(404, `the model "${model}" does not exist here; this cluster serves "${ctx.modelId}"`, 'invalid_request_error', 'model_not_found', 'model');
  }
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/**
 * Runs one generation for an HTTP request: tokenizes and checks the prompt against the context, waits for a slot
 * in the queue, runs it through the pipeline and answers as JSON or as Server-Sent Events. A client that goes away
 * aborts the generation, which ends the request on every stage (their KV caches are freed).
 */
export async function serveGeneration(ctx: ServingContext, req: IncomingMessage, res: ServerResponse, job: GenerationJob): Promise<void> {
  const pipeline = requirePipeline(ctx);
  const arrived = performance.now();
  const { params } = job;
  const promptParam = job.endpoint === 'chat' ? 'messages' : 'prompt';
  const promptTokens =
    typeof job.prompt === 'string' ? pipeline.tokenizer.encode(job.prompt, job.addBos === undefined ? {} : { addBos: job.addBos }) : job.prompt;
  const vocab = pipeline.tokenizer.vocabSize;
  if (typeof job.prompt !== 'string' && promptTokens.some((t) => t >= vocab)) throw invalidRequest(`token ids in "prompt" must be below the vocabulary size ${vocab}`, 'prompt');
  if (promptTokens.length === 0) throw invalidRequest(`the ${promptParam} is empty`, promptParam);
  if (promptTokens.length >= ctx.contextLength) {
    throw new OpenAIError(
      400,
      `this model's context is ${ctx.contextLength} tokens, and the ${promptParam} has ${promptTokens.length} tokens: shorten it (at least one token must be left to generate)`,
      'invalid_request_error',
      'context_length_exceeded',
      promptParam,
    );
  }

  const id = `${job.endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const model = ctx.modelId;
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
      ctx.metrics.generations.inc({ endpoint: job.endpoint, finish: 'cancelled' });
      return;
    }
    throw err;
  }

  const sse = params.stream ? new SseWriter(res) : null;
  const chunk = (delta: { role?: string; content?: string } | null, finish: FinishReason | null, text?: string) =>
    job.endpoint === 'chat'
      ? {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          system_fingerprint: null,
          choices: [{ index: 0, delta: delta ?? {}, logprobs: null, finish_reason: finish }],
          ...(params.includeUsage ? { usage: null } : {}),
        }
      : {
          id,
          object: 'text_completion',
          created,
          model,
          choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: finish }],
          ...(params.includeUsage ? { usage: null } : {}),
        };
  try {
    if (sse && job.endpoint === 'chat') sse.send(chunk({ role: 'assistant', content: '' }, null));
    else sse?.start();
    const result = await pipeline.generate({
      prompt: promptTokens,
      maxTokens: params.maxTokens ?? job.defaultMaxTokens,
      sampling: params.sampling,
      stop: [...params.stop, ...(job.extraStop ?? [])],
      ignoreEos: params.ignoreEos,
      signal: abort.signal,
      requestId: id,
      ...(sse ? { onText: (delta: string) => sse.send(chunk({ content: delta }, null, delta)) } : {}),
    });
    const usage: Usage = {
      prompt_tokens: result.promptTokens.length,
      completion_tokens: result.tokens.length,
      total_tokens: result.promptTokens.length + result.tokens.length,
    };
    const m = ctx.metrics;
    m.generations.inc({ endpoint: job.endpoint, finish: result.finishReason });
    m.promptTokens.inc({}, usage.prompt_tokens);
    m.completionTokens.inc({}, usage.completion_tokens);
    m.ttft.observe((result.timings.ttftMs + (performance.now() - arrived - result.timings.totalMs)) / 1000);
    finished = true;
    if (sse) {
      sse.send(chunk(null, result.finishReason));
      if (params.includeUsage) sse.send({ ...chunk(null, null), choices: [], usage });
      sse.done();
      return;
    }
    const choice =
      job.endpoint === 'chat'
        ? { index: 0, message: { role: 'assistant', content: result.text, refusal: null }, logprobs: null, finish_reason: result.finishReason }
        : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason };
    const body = {
      id,
      object: job.endpoint === 'chat' ? 'chat.completion' : 'text_completion',
      created,
      model,
      system_fingerprint: null,
      choices: [choice],
      usage,
    };
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  } catch (err) {
    if (abort.signal.aborted) {
      ctx.metrics.generations.inc({ endpoint: job.endpoint, finish: 'cancelled' });
      return;
    }
    ctx.metrics.generations.inc({ endpoint: job.endpoint, finish: 'error' });
    let e = toOpenAIError(err);
    // The request was valid: a failure inside the cluster is "cannot serve now", not a bug of the API.
    if (e.status === 500) e = new OpenAIError(503, `the cluster could not finish this request: ${(err as Error).message}`, 'service_unavailable', 'cluster_unavailable');
    finished = true;
    if (!sse) throw e;
    sse.send(e.body);
    sse.end();
  } finally {
    release();
  }
}
