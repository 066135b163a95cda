import { randomUUID } from 'node:crypto';
import type { GenerationResult } from '../engine/generate.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { chatRendering, renderChatPrompt } from './chat-prompt.js';
import { invalidRequest, OpenAIError } from './openai-errors.js';
import { optionalBoolean, optionalNumber, parseMessages, requireObject, type JsonObject } from './openai-request.js';
import { checkModel, recordGeneration, requireGenerator, tokenBudget, tokenizePrompt, withSlot, type ServingContext } from './serve-generation.js';
import { SseWriter } from './sse-writer.js';
import { validateSampling, type SamplingParams } from '../engine/sampler.js';
import { parseResponseFormat } from './structured-output.js';
import { generateAnswer, type GenerationEvent } from './generation-events.js';
import { parseToolChoice, parseTools, type ParsedToolCall } from './tool-calls.js';

const isObject = (x: unknown): x is JsonObject => typeof x === 'object' && x !== null && !Array.isArray(x);
const shortId = () => randomUUID().replaceAll('-', '');

/**
 * The Responses API's `input` as chat messages: a string is one user turn; an array holds messages (`content` a
 * string or input_text/output_text parts), `function_call` items (a past call of the model) and
 * `function_call_output` items (the tool's answer).
 */
export function parseResponsesInput(input: unknown, instructions: string | null): ChatMessage[] {
  const head: ChatMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
  if (typeof input === 'string') return [...head, { role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw invalidRequest('"input" must be a string or a non-empty array of input items', 'input', input === undefined ? 'missing_required_parameter' : 'invalid_type');
  const asChat: unknown[] = [];
  input.forEach((item: unknown, i) => {
    const at = `input[${i}]`;
    if (!isObject(item)) throw invalidRequest(`${at} must be an object`, at, 'invalid_type');
    const type = item.type ?? 'message';
    if (type === 'message') {
      const content = Array.isArray(item.content)
        ? item.content.map((p: unknown, j) => {
            if (!isObject(p) || (p.type !== 'input_text' && p.type !== 'output_text' && p.type !== 'text') || typeof p.text !== 'string') {
              throw invalidRequest(`${at}.content[${j}] must be a text part ({ "type": "input_text", "text": … }): this model takes only text`, `${at}.content[${j}]`, 'unsupported_value');
            }
            return { type: 'text', text: p.text };
          })
        : item.content;
      asChat.push({ role: item.role, content });
    } else if (type === 'function_call') {
      if (typeof item.call_id !== 'string' || typeof item.name !== 'string' || typeof item.arguments !== 'string') throw invalidRequest(`${at} must have "call_id", "name" and "arguments"`, at, 'invalid_type');
      const prev = asChat.at(-1) as JsonObject | undefined;
      const call = { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } };
      if (prev && prev.role === 'assistant' && Array.isArray(prev.tool_calls)) prev.tool_calls.push(call);
      else asChat.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (type === 'function_call_output') {
      if (typeof item.call_id !== 'string') throw invalidRequest(`${at}.call_id is required`, `${at}.call_id`, 'missing_required_parameter');
      asChat.push({ role: 'tool', tool_call_id: item.call_id, content: typeof item.output === 'string' ? item.output : JSON.stringify(item.output ?? '') });
    } else throw invalidRequest(`${at}.type ${JSON.stringify(type)} is not supported (message, function_call, function_call_output)`, `${at}.type`, 'unsupported_value');
  });
  return [...head, ...parseMessages(asChat, 'input')];
}

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
    const b = requireObject(await readJsonBody(req, maxBodyBytes));
    if (typeof b.model !== 'string' || b.model === '') throw invalidRequest('"model" is required (GET /v1/models lists the model this cluster serves)', 'model', b.model === undefined ? 'missing_required_parameter' : 'invalid_type');
    if (b.previous_response_id !== undefined && b.previous_response_id !== null) throw invalidRequest('responses are not stored here: send the whole conversation in "input" instead of "previous_response_id"', 'previous_response_id', 'unsupported_value');
    if (b.background === true) throw invalidRequest('"background" responses are not supported', 'background', 'unsupported_value');
    if (b.instructions !== undefined && b.instructions !== null && typeof b.instructions !== 'string') throw invalidRequest('"instructions" must be a string', 'instructions', 'invalid_type');
    const instructions = (b.instructions as string | null | undefined) ?? null;
    const messages = parseResponsesInput(b.input, instructions);
    const defs = parseTools(b.tools);
    const choice = parseToolChoice(b.tool_choice, defs);
    const parallel = optionalBoolean(b, 'parallel_tool_calls', true);
    const textOpt = b.text === undefined || b.text === null ? {} : isObject(b.text) ? b.text : (() => { throw invalidRequest('"text" must be an object like { "format": { "type": "json_schema", … } }', 'text', 'invalid_type'); })();
    const format = parseResponseFormat(textOpt.format, 'text.format');
    const stream = optionalBoolean(b, 'stream', false);
    const maxOutput = b.max_output_tokens === undefined || b.max_output_tokens === null ? null : optionalNumber(b, 'max_output_tokens', 1, Number.MAX_SAFE_INTEGER, 1, true);
    const sampling: SamplingParams = {
      temperature: optionalNumber(b, 'temperature', 0, 2, 1),
      topP: optionalNumber(b, 'top_p', 0, 1, 1),
      topK: 0,
      minP: 0,
      repetitionPenalty: 1,
      frequencyPenalty: 0,
      presencePenalty: 0,
      penaltyLastN: 64,
      seed: b.seed === undefined || b.seed === null ? null : optionalNumber(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0, true),
    };
    if (sampling.topP === 0) throw invalidRequest('"top_p" must be greater than 0', 'top_p');
    validateSampling(sampling);
    checkModel(ctx, b.model);
    const generator = requireGenerator(ctx);

    const chat = renderChatPrompt(rendering(), { messages, tools: defs, choice, format });
    const { prompt, addBos, grammar } = chat;
    const promptTokens = tokenizePrompt(ctx, prompt, addBos, 'input');
    const maxTokens = tokenBudget(ctx, promptTokens.length, maxOutput ?? ctx.contextLength, grammar, 'max_output_tokens');

    const id = `resp_${shortId()}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const msgId = `msg_${shortId()}`;
    const base = {
      id,
      object: 'response',
      created_at: createdAt,
      model: ctx.modelId,
      instructions,
      max_output_tokens: maxOutput,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      parallel_tool_calls: parallel,
      tool_choice: choice.mode === 'named' ? { type: 'function', name: choice.name } : choice.mode,
      tools: defs.map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters, strict: t.strict })),
      text: { format: isObject(textOpt.format) ? textOpt.format : { type: 'text' } },
      previous_response_id: null,
      reasoning: null,
      store: false,
      truncation: 'disabled',
      user: null,
      metadata: isObject(b.metadata) ? b.metadata : {},
      error: null,
    };
    const messageItem = (text: string, status: string) => ({
      type: 'message',
      id: msgId,
      status,
      role: 'assistant',
      content: status === 'in_progress' ? [] : [{ type: 'output_text', text, annotations: [], logprobs: [] }],
    });
    const callItem = (c: ParsedToolCall, status: string) => ({ type: 'function_call', id: `fc_${c.id.slice(5)}`, call_id: c.id, name: c.name, arguments: status === 'in_progress' ? '' : c.arguments, status });
    const finalResponse = (result: GenerationResult, content: string | null, calls: ParsedToolCall[]) => {
      const output: object[] = [];
      if (content !== null && content !== '' ) output.push(messageItem(content, 'completed'));
      if (calls.length === 0 && output.length === 0) output.push(messageItem('', 'completed'));
      for (const c of calls) output.push(callItem(c, 'completed'));
      const incomplete = result.finishReason === 'length' && calls.length === 0 && !grammar;
      return {
        ...base,
        status: incomplete ? 'incomplete' : 'completed',
        incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
        output,
        usage: {
          input_tokens: result.promptTokens.length,
          input_tokens_details: { cached_tokens: result.cachedTokens ?? 0 },
          output_tokens: result.tokens.length,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: result.promptTokens.length + result.tokens.length,
        },
      };
    };

    const sse = stream ? new SseWriter(res) : null;
    let seq = 0;
    const emit = (type: string, data: object) => sse?.sendEvent(type, { type, sequence_number: seq++, ...data });

    await withSlot(
      ctx,
      res,
      'responses',
      async (signal, done) => {
        const inProgress = { ...base, status: 'in_progress', incomplete_details: null, output: [], usage: null };
        emit('response.created', { response: inProgress });
        emit('response.in_progress', { response: inProgress });
        // The shared answer's events as Responses items: the message (opened by its first text), then each call.
        let opened = false;
        let closed = false;
        let text = '';
        let calls = 0;
        let call: { outputIndex: number; itemId: string; id: string; name: string; args: string } | null = null;
        const openMessage = () => {
          if (opened) return;
          opened = true;
          emit('response.output_item.added', { output_index: 0, item: messageItem('', 'in_progress') });
          emit('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
        };
        const closeMessage = () => {
          if (!opened || closed) return;
          closed = true;
          emit('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text, logprobs: [] });
          emit('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text, annotations: [], logprobs: [] } });
          emit('response.output_item.done', { output_index: 0, item: messageItem(text, 'completed') });
        };
        const closeCall = () => {
          if (!call) return;
          const c = { id: call.id, name: call.name, arguments: call.args };
          emit('response.function_call_arguments.done', { item_id: call.itemId, output_index: call.outputIndex, name: c.name, arguments: c.arguments });
          emit('response.output_item.done', { output_index: call.outputIndex, item: callItem(c, 'completed') });
          call = null;
        };
        const onEvent = (e: GenerationEvent) => {
          if (e.type === 'text') {
            if (e.text === '') return;
            openMessage();
            text += e.text;
            emit('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: e.text, logprobs: [] });
          } else if (e.type === 'tool_call') {
            closeMessage();
            closeCall();
            call = { outputIndex: calls++ + (opened ? 1 : 0), itemId: `fc_${e.id.slice(5)}`, id: e.id, name: e.name, args: '' };
            emit('response.output_item.added', { output_index: call.outputIndex, item: callItem({ id: e.id, name: e.name, arguments: '' }, 'in_progress') });
          } else if (call) {
            call.args += e.text;
            emit('response.function_call_arguments.delta', { item_id: call.itemId, output_index: call.outputIndex, delta: e.text });
          }
        };
        const out = await generateAnswer(
          generator,
          { promptTokens, maxTokens, sampling, stop: chat.extraStop, requestId: id, signal, grammar, tools: chat.tools },
          sse ? onEvent : null,
        );
        recordGeneration(ctx, 'responses', [out.result], arrived);
        done();
        if (!sse) {
          const body = JSON.stringify(finalResponse(out.result, out.content, out.calls));
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
          res.end(body);
          return;
        }
        closeCall();
        if (out.calls.length === 0) openMessage();
        closeMessage();
        const final = finalResponse(out.result, opened ? text : null, out.calls);
        emit(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final });
        sse.end();
      },
      (e: OpenAIError) => {
        if (!sse) return false;
        emit('error', { code: e.body.error.code, message: e.body.error.message, param: e.body.error.param, error: e.body.error });
        sse.end();
        return true;
      },
    );
  });
}
