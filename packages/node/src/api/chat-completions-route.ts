import { ChatTemplate } from '../tokenizer/chat-template.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { parseGenerationParams, parseMessages, requireObject } from './openai-request.js';
import { checkModel, requirePipeline, serveGeneration, type ServingContext } from './serve-generation.js';

/**
 * POST /v1/chat/completions: renders `messages` with the model's chat template (or the plain "User:/Assistant:"
 * transcript for models without one) and generates the assistant's turn, as JSON or streamed.
 */
export function addChatCompletionsRoute(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  let template: { chat: ChatTemplate; bosText: string | null } | null = null;
  const chatTemplate = () => {
    if (!template) {
      const p = requirePipeline(ctx);
      const t = p.tokenizer;
      const bosText = t.bosId === null ? null : t.tokenToPiece(t.bosId);
      const eosText = t.eosIds.length > 0 ? t.tokenToPiece(t.eosIds[0]) : '';
      template = { chat: new ChatTemplate(p.model.chatTemplate, bosText ?? '', eosText), bosText };
    }
    return template;
  };

  router.add('POST', '/v1/chat/completions', async (req, res) => {
    const body = requireObject(await readJsonBody(req, maxBodyBytes));
    const params = parseGenerationParams(body);
    const messages = parseMessages(body.messages);
    checkModel(ctx, params.model);
    const { chat, bosText } = chatTemplate();
    const prompt = chat.render(messages, true);
    // A template that writes the BOS token itself must not get a second one from the tokenizer.
    const addBos = !chat.isFallback && bosText && prompt.startsWith(bosText) ? false : undefined;
    await serveGeneration(ctx, req, res, {
      endpoint: 'chat',
      prompt,
      ...(addBos === undefined ? {} : { addBos }),
      params,
      // A base model continuing the plain transcript would go on to write the user's next turn.
      ...(chat.isFallback ? { extraStop: ['\nUser:'] } : {}),
      defaultMaxTokens: ctx.contextLength,
    });
  });
}
