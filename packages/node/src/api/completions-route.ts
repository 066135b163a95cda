import { randomUUID } from 'node:crypto';
import { DEFAULT_SAMPLING, GREEDY, type SamplingParams } from '../engine/sampler.js';
import type { ClusterPipeline } from '../pipeline/cluster-pipeline.js';
import { HttpError, readJsonBody, type ApiRouter } from './api-router.js';

/**
 * POST /v1/completions (non-streaming): `prompt`, `max_tokens`, `temperature`, `seed`, through the cluster pipeline.
 * The OpenAI-compatible API (streaming, chat, errors in OpenAI's shape) builds on this.
 */
export function addCompletionsRoute(router: ApiRouter, pipeline: ClusterPipeline): void {
  router.add('POST', '/v1/completions', async (req) => {
    const body = await readJsonBody(req);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (typeof b.prompt !== 'string') throw new HttpError(400, '"prompt" must be a string');
    const maxTokens = b.max_tokens === undefined ? 16 : b.max_tokens;
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) throw new HttpError(400, '"max_tokens" must be a whole number ≥ 1');
    const temperature = b.temperature === undefined ? 1 : b.temperature;
    if (typeof temperature !== 'number' || temperature < 0 || temperature > 2) throw new HttpError(400, '"temperature" must be a number in [0, 2]');
    if (b.seed !== undefined && (typeof b.seed !== 'number' || !Number.isInteger(b.seed))) throw new HttpError(400, '"seed" must be an integer');
    const sampling: SamplingParams =
      temperature === 0 ? { ...GREEDY } : { ...DEFAULT_SAMPLING, temperature, topK: 0, topP: 1, minP: 0, seed: (b.seed as number | undefined) ?? null };
    const id = `cmpl-${randomUUID()}`;
    try {
      // ignore_eos (llama.cpp's server field): generate exactly max_tokens, for benchmarks and tests.
      const result = await pipeline.generate({ prompt: b.prompt, maxTokens, sampling, requestId: id, ignoreEos: b.ignore_eos === true });
      return {
        id,
        object: 'text_completion',
        created: Math.floor(Date.now() / 1000),
        model: pipeline.modelName,
        choices: [{ index: 0, text: result.text, finish_reason: result.finishReason, logprobs: null }],
        usage: { prompt_tokens: result.promptTokens.length, completion_tokens: result.tokens.length, total_tokens: result.promptTokens.length + result.tokens.length },
      };
    } catch (err) {
      const e = err as Error;
      if (e.name === 'ContextLengthError' || e.name === 'PromptError') throw new HttpError(400, e.message);
      if (e.name === 'ClusterNotReadyError' || e.name === 'ModelDoesNotFitError') throw new HttpError(503, e.message);
      throw new HttpError(503, `the cluster could not finish this request: ${e.message}`);
    }
  });
}
