import { readJsonBody, sendAnswer, type ApiRouter } from './api-router.js';
import { chatRendering, renderChatPrompt } from './chat-prompt.js';
import { generateAnswer } from './generation-events.js';
import { requireObject } from './openai-request.js';
import { ResponsesAnswer } from './responses-answer.js';
import { parseResponsesRequest } from './responses-request.js';
import { ResponsesStream } from './responses-stream.js';
import { checkModel, recordGeneration, requireGenerator, tokenBudget, tokenizePrompt, withSlot, type ServingContext } from './serve-generation.js';

/**
 * POST /v1/responses: OpenAI's Responses API over the same pipeline — text or item input, `instructions`,
 * function tools, `text.format` structured output, streamed as typed events (`response.created` …
 * `response.output_text.delta` … `response.completed`). Responses are not stored: `previous_response_id` and
 * `store: true` are refused.
 */
export function addResponsesRoute(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  const rendering = chatRendering(ctx);
  router.add('POST', '/v1/responses', async (req, res) => {
    const arrived = performance.now();
    const r = parseResponsesRequest(requireObject(await readJsonBody(req, maxBodyBytes)));
    checkModel(ctx, r.model);
    const generator = requireGenerator(ctx);
    const chat = renderChatPrompt(rendering(), r);
    const promptTokens = tokenizePrompt(ctx, chat.prompt, chat.addBos, 'input');
    const maxTokens = tokenBudget(ctx, promptTokens.length, r.maxOutputTokens ?? ctx.contextLength, chat.grammar, 'max_output_tokens');
    const answer = new ResponsesAnswer(ctx.modelId, r, chat.grammar !== null);
    const stream = r.stream ? new ResponsesStream(res, answer) : null;

    await withSlot(
      ctx,
      res,
      'responses',
      async (signal, done) => {
        stream?.start();
        const out = await generateAnswer(
          generator,
          { promptTokens, maxTokens, sampling: r.sampling, stop: chat.extraStop, requestId: answer.id, signal, grammar: chat.grammar, tools: chat.tools, ...(r.speculate !== undefined ? { speculate: r.speculate } : {}) },
          stream ? (e) => stream.event(e) : null,
        );
        recordGeneration(ctx, 'responses', [out.result], arrived);
        done();
        if (stream) stream.finish(out);
        else sendAnswer(res, answer.final(out.result, out.content, out.calls));
      },
      (e) => {
        if (!stream) return false;
        stream.error(e);
        return true;
      },
    );
  });
}
