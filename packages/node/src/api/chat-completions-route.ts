import { ChatTemplate } from '../tokenizer/chat-template.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { invalidRequest } from './openai-errors.js';
import { parseChatLogprobs, parseGenerationParams, parseMessages, requireObject } from './openai-request.js';
import { checkModel, requireGenerator, serveGeneration, type ServingContext } from './serve-generation.js';
import { parseResponseFormat } from './structured-output.js';
import { parseToolChoice, parseTools, renderWithTools, toolCallFormat, toolCallGrammar } from './tool-calls.js';

/** The model's chat template (parsed once) and the BOS text it may write itself. */
export interface ChatRendering {
  chat: ChatTemplate;
  bosText: string | null;
}

export function chatRendering(ctx: ServingContext): () => ChatRendering {
  let template: ChatRendering | null = null;
  return () => {
    if (!template) {
      const g = requireGenerator(ctx);
      const t = g.tokenizer;
      const bosText = t.bosId === null ? null : t.tokenToPiece(t.bosId);
      const eosText = t.eosIds.length > 0 ? t.tokenToPiece(t.eosIds[0]) : '';
      template = { chat: new ChatTemplate(g.chatTemplate, bosText ?? '', eosText), bosText };
    }
    return template;
  };
}

/** A template that writes the BOS token itself must not get a second one from the tokenizer. */
export function addBosFor(r: ChatRendering, prompt: string): boolean | undefined {
  return !r.chat.isFallback && r.bosText && prompt.startsWith(r.bosText) ? false : undefined;
}

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
    const r = rendering();
    const prompt = defs.length > 0 || messages.some((m) => m.role === 'tool' || m.tool_calls) ? renderWithTools(r.chat, messages, defs, choice) : r.chat.render(messages, true);
    const callFormat = toolCallFormat(r.chat);
    const grammar = toolCallGrammar(defs, choice, callFormat) ?? format;
    const addBos = addBosFor(r, prompt);
    await serveGeneration(ctx, req, res, {
      endpoint: 'chat',
      prompt,
      ...(addBos === undefined ? {} : { addBos }),
      params,
      // A base model continuing the plain transcript would go on to write the user's next turn.
      ...(r.chat.isFallback ? { extraStop: ['\nUser:'] } : {}),
      defaultMaxTokens: ctx.contextLength,
      grammar,
      ...(logprobs !== undefined ? { logprobs } : {}),
      tools: { defs, choice, format: callFormat },
    });
  });
}
