import { readJsonBody, type ApiRouter } from './api-router.js';
import { parseCompletionLogprobs, parseGenerationParams, parsePrompt, requireObject } from './openai-request.js';
import { parseResponseFormat } from './structured-output.js';
import { checkModel, serveGeneration, type ServingContext } from './serve-generation.js';

/** OpenAI's default for the legacy completions endpoint. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

/** POST /v1/completions: continues `prompt` (text or token ids), as JSON or streamed (`choices[0].text`). */
export function addCompletionsRoute(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  router.add('POST', '/v1/completions', async (req, res) => {
    const body = requireObject(await readJsonBody(req, maxBodyBytes));
    const params = parseGenerationParams(body);
    const prompt = parsePrompt(body.prompt);
    const logprobs = parseCompletionLogprobs(body);
    // An extension (llama.cpp's server has it too): structured output for plain completions.
    const grammar = parseResponseFormat(body.response_format, 'response_format');
    checkModel(ctx, params.model);
    await serveGeneration(ctx, req, res, {
      endpoint: 'completions',
      prompt,
      params,
      defaultMaxTokens: DEFAULT_COMPLETION_MAX_TOKENS,
      grammar,
      ...(logprobs !== undefined ? { logprobs } : {}),
    });
  });
}
