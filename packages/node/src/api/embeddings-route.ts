import type { ServerResponse } from 'node:http';
import { readJsonBody, sendAnswer, type ApiRouter } from './api-router.js';
import { checkOllamaModel } from './ollama-generation-routes.js';
import { ollamaErrors } from './ollama-errors.js';
import { checkKeepAlive } from './ollama-request.js';
import { invalidRequest, OpenAIError } from './openai-errors.js';
import { MAX_CHOICES, optionalBoolean, requireObject, type JsonObject } from './openai-request.js';
import { checkModel, requireGenerator, withSlot, type ServingContext } from './serve-generation.js';

/** Most inputs one request may embed. */
export const MAX_EMBEDDING_INPUTS = 256;
/**
 * Inputs in flight through the pipeline at once (each its own sequence, batched with each other at every stage). A
 * request holds one queue slot, so this bounds its KV caches as `n` does (MAX_CHOICES) for a chat request.
 */
const IN_FLIGHT = MAX_CHOICES;

const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/** `input`: a string, strings, token ids or arrays of token ids (OpenAI); a string or strings (Ollama). */
function parseInputs(value: unknown, tokensAllowed: boolean): (string | number[])[] {
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isSafeInteger(t) && (t as number) >= 0);
  let inputs: (string | number[])[];
  if (typeof value === 'string') inputs = [value];
  else if (tokensAllowed && isIds(value)) inputs = [value];
  else if (Array.isArray(value) && value.length > 0 && value.every((x) => typeof x === 'string' || (tokensAllowed && isIds(x)))) inputs = value as (string | number[])[];
  else throw invalidRequest(`"input" must be a string or a non-empty array of strings${tokensAllowed ? ' (or token ids)' : ''}`, 'input', value === undefined ? 'missing_required_parameter' : 'invalid_type');
  if (inputs.length > MAX_EMBEDDING_INPUTS) throw invalidRequest(`"input" holds ${inputs.length} inputs; at most ${MAX_EMBEDDING_INPUTS} per request`, 'input');
  return inputs;
}

interface Embedded {
  vectors: Float32Array[];
  promptTokens: number;
  /** From arrival to the pipeline slot, and in all (ms). */
  waitMs: number;
  totalMs: number;
}

/**
 * Embeds every input through the node's generator (the ring of stages, like any request's prompt: the last stage
 * pools the final-normed hidden states), up to IN_FLIGHT at once so the stages batch them. Null when the client left.
 */
async function embedAll(ctx: ServingContext, res: ServerResponse, inputs: readonly (string | number[])[], truncate: boolean): Promise<Embedded | null> {
  const arrived = performance.now();
  const generator = requireGenerator(ctx);
  const limit = ctx.contextLength;
  const tokenLists = inputs.map((input, i) => {
    const param = inputs.length === 1 ? 'input' : `input[${i}]`;
    let tokens = typeof input === 'string' ? generator.tokenizer.encode(input) : input;
    // Truncation keeps the beginning, as Ollama's `truncate` does.
    if (truncate && tokens.length > limit) tokens = tokens.slice(0, limit);
    if (tokens.length > limit) throw new OpenAIError(400, `${param} has ${tokens.length} tokens; this model's context is ${limit}: shorten it${truncate ? '' : ' or allow truncation'}`, 'invalid_request_error', 'context_length_exceeded', param);
    if (tokens.length === 0) throw invalidRequest(`${param} is empty (and the model adds no BOS token)`, param);
    const vocab = generator.tokenizer.vocabSize;
    if (tokens.some((t) => t >= vocab)) throw invalidRequest(`token ids in ${param} must be below the vocabulary size ${vocab}`, param);
    return tokens;
  });
  let out: Embedded | null = null;
  await withSlot(
    ctx,
    res,
    'embeddings',
    async (signal, done) => {
      const waitMs = performance.now() - arrived;
      const vectors: Float32Array[] = new Array(tokenLists.length);
      let next = 0;
      const worker = async () => {
        while (next < tokenLists.length && !signal.aborted) {
          const i = next++;
          vectors[i] = await generator.embed({ tokens: tokenLists[i], signal });
        }
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, tokenLists.length) }, worker));
      const promptTokens = tokenLists.reduce((a, t) => a + t.length, 0);
      ctx.metrics.generations.inc({ endpoint: 'embeddings', finish: 'stop' });
      ctx.metrics.promptTokens.inc(promptTokens);
      done();
      out = { vectors, promptTokens, waitMs, totalMs: performance.now() - arrived };
    },
    () => false,
  );
  return out;
}

function checkDimensions(b: JsonObject, hidden: number): void {
  if (b.dimensions === undefined || b.dimensions === null) return;
  if (b.dimensions !== hidden) throw invalidRequest(`"dimensions" must be the model's hidden size ${hidden} (got ${JSON.stringify(b.dimensions)}): this model's embeddings cannot be shortened`, 'dimensions', typeof b.dimensions === 'number' ? 'unsupported_value' : 'invalid_type');
}

/**
 * Embeddings from the model's last hidden state (final-normed, mean-pooled over the input's tokens, L2-normalised:
 * llama.cpp's embedding mode for a decoder model), computed through the pipeline: POST /v1/embeddings (OpenAI),
 * POST /api/embed and the older POST /api/embeddings (Ollama).
 */
export function addEmbeddingsRoutes(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  router.add('POST', '/v1/embeddings', async (req, res) => {
    const b = requireObject(await readJsonBody(req, maxBodyBytes));
    if (typeof b.model !== 'string' || b.model === '') throw invalidRequest('"model" is required (GET /v1/models lists the model this cluster serves)', 'model', b.model === undefined ? 'missing_required_parameter' : 'invalid_type');
    const inputs = parseInputs(b.input, true);
    const format = b.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw invalidRequest('"encoding_format" must be "float" or "base64"', 'encoding_format');
    checkModel(ctx, b.model);
    checkDimensions(b, requireGenerator(ctx).config.hiddenSize);
    const done = await embedAll(ctx, res, inputs, false);
    if (!done) return undefined;
    const { vectors, promptTokens } = done;
    sendAnswer(res, {
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v) })),
      model: ctx.modelId,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
    return undefined;
  });

  router.add(
    'POST',
    '/api/embed',
    async (req, res) => {
      const b = requireObject(await readJsonBody(req, maxBodyBytes));
      const inputs = parseInputs(b.input, false);
      const truncate = optionalBoolean(b, 'truncate', true);
      checkKeepAlive(b.keep_alive);
      const model = checkOllamaModel(ctx, b);
      checkDimensions(b, requireGenerator(ctx).config.hiddenSize);
      const done = await embedAll(ctx, res, inputs, truncate);
      if (!done) return undefined;
      sendAnswer(res, { model, embeddings: done.vectors.map((v) => Array.from(v)), total_duration: ns(done.totalMs), load_duration: ns(done.waitMs), prompt_eval_count: done.promptTokens });
      return undefined;
    },
    { errors: ollamaErrors },
  );

  router.add(
    'POST',
    '/api/embeddings',
    async (req, res) => {
      const b = requireObject(await readJsonBody(req, maxBodyBytes));
      if (typeof b.prompt !== 'string') throw invalidRequest('"prompt" must be a string', 'prompt', b.prompt === undefined ? 'missing_required_parameter' : 'invalid_type');
      checkKeepAlive(b.keep_alive);
      checkOllamaModel(ctx, b);
      const done = await embedAll(ctx, res, [b.prompt], true);
      if (!done) return undefined;
      sendAnswer(res, { embedding: Array.from(done.vectors[0]) });
      return undefined;
    },
    { errors: ollamaErrors },
  );
}
