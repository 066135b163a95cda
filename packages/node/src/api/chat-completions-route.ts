import { readJsonBody, type ApiRouter } from './api-router.js';
import { invalidRequest } from './openai-errors.js';
import { parseChatLogprobs, parseGenerationParams, parseMessages, requireObject } from './openai-request.js';
import { chatRendering, renderChatPrompt } from './chat-prompt.js';
import { checkModel, serveGeneration, type ServingContext } from './serve-generation.js';
import { parseResponseFormat } from './structured-output.js';
import { parseToolChoice, parseTools } from './tool-calls.js';

/**
 * POST /v1/chat/completions: renders `messages` (and `tools`) with the model's chat template (or the plain
 * "User:/Assistant:" transcript for models without one) and generates the assistant's turn, as JSON or streamed.
 * `response_format` and forced tool calls are enforced by constrained sampling.
 */
export function addChatCompletionsRoute(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  const rendering = chatRendering(ctx);
  router.add('POST', '/v1/chat/completions', async (req, res) => {
    const body = requireObject(await readJsonBody(req, maxBodyBytes));
    const params = parseGenerationParams(body);
    const messages = parseMessages(body.messages);
    const defs = parseTools(body.tools);
    const choice = parseToolChoice(body.tool_choice, defs);
    if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null && typeof body.parallel_tool_calls !== 'boolean') {
      throw invalidRequest('"parallel_tool_calls" must be true or false', 'parallel_tool_calls', 'invalid_type');
    }
    const format = parseResponseFormat(body.response_format, 'response_format');
    const logprobs = parseChatLogprobs(body);
    checkModel(ctx, params.model);
    const chat = renderChatPrompt(rendering(), { messages, tools: defs, choice, format });
    await serveGeneration(ctx, req, res, {
      endpoint: 'chat',
      prompt: chat.prompt,
      ...(chat.addBos === undefined ? {} : { addBos: chat.addBos }),
      params,
      extraStop: chat.extraStop,
      defaultMaxTokens: ctx.contextLength,
      grammar: chat.grammar,
      ...(logprobs !== undefined ? { logprobs } : {}),
      tools: chat.tools,
    });
  });
}
