import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { anthropicErrorBody, anthropicErrors } from './anthropic-errors.js';
import { parseAnthropicConversation, parseAnthropicRequest, toolUseId, type AnthropicRequest } from './anthropic-request.js';
import { readJsonBody, sendAnswer, type ApiRouter } from './api-router.js';
import { chatRendering, renderChatPrompt, type ChatPrompt, type ChatRendering } from './chat-prompt.js';
import { generateAnswer, type AnswerOutcome, type GenerationEvent } from './generation-events.js';
import { invalidRequest } from './openai-errors.js';
import { requireObject, type JsonObject } from './openai-request.js';
import { checkModel, recordGeneration, requireGenerator, tokenBudget, tokenizePrompt, withSlot, type ServingContext } from './serve-generation.js';
import { requestedSpeculation, type SpeculationUsage } from './speculation-usage.js';
import { SseWriter } from './sse-writer.js';
import { callAsText, toolInput } from './tool-input.js';

type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

/** A message's usage; the total prompt is input_tokens + cache_read_input_tokens (nothing here writes a cache for a fee). */
interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** edge-node's extension, when the request asked for speculation (`speculate: true`). */
  speculation?: SpeculationUsage;
}

type ContentBlock = { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

/** How the shared answer ended, in Anthropic's words (a stop string of the client's is `stop_sequence`). */
export function anthropicStopReason(out: Pick<AnswerOutcome, 'result'>, req: Pick<AnthropicRequest, 'stopSequences'>, hasToolUse: boolean): { stop_reason: StopReason; stop_sequence: string | null } {
  if (hasToolUse) return { stop_reason: 'tool_use', stop_sequence: null };
  if (out.result.finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  const s = out.result.stopString;
  if (s !== undefined && req.stopSequences.includes(s)) return { stop_reason: 'stop_sequence', stop_sequence: s };
  return { stop_reason: 'end_turn', stop_sequence: null };
}

/**
 * The answer's content blocks: its text, then one `tool_use` per call whose input parses and validates against its
 * tool's `input_schema` (always so for a forced call; a free `auto` call that does not stays text).
 */
function contentBlocks(out: AnswerOutcome, chat: ChatPrompt): ContentBlock[] {
  let text = out.calls.length > 0 ? (out.content ?? '') : out.result.text;
  const uses: ContentBlock[] = [];
  for (const c of out.calls) {
    const input = toolInput(c, chat.tools.defs);
    if (input) uses.push({ type: 'tool_use', id: toolUseId(c.id), name: c.name, input });
    else text += (text ? '\n' : '') + callAsText(c);
  }
  return [...(text !== '' || uses.length === 0 ? [{ type: 'text' as const, text }] : []), ...uses];
}

/** POST /v1/messages/count_tokens: the prompt's tokens as /v1/messages would render it. */
function countTokens(ctx: ServingContext, rendering: () => ChatRendering, b: JsonObject): { input_tokens: number } {
  if (typeof b.model !== 'string' || b.model === '') throw invalidRequest('"model" is required: the model to count for', 'model', 'missing_required_parameter');
  const { conversation, prefill } = parseAnthropicConversation(b);
  checkModel(ctx, b.model);
  const chat = renderChatPrompt(rendering(), conversation);
  const tokens = requireGenerator(ctx).tokenizer.encode(chat.prompt + prefill, chat.addBos === undefined ? {} : { addBos: chat.addBos });
  return { input_tokens: tokens.length };
}

/**
 * The stream's last blocks: a free call is judged once whole (does its input validate?) and sent as a tool_use or
 * kept as text; a forced call has streamed live.
 */
function finishStream(stream: AnthropicStream, out: AnswerOutcome, r: AnthropicRequest, chat: ChatPrompt, forced: boolean, usage: AnthropicUsage): void {
  let hasToolUse = forced && out.calls.length > 0;
  if (!forced) {
    for (const c of out.calls) {
      const input = toolInput(c, chat.tools.defs);
      if (input) {
        stream.toolUse(toolUseId(c.id), c.name);
        stream.inputJson(JSON.stringify(input));
        hasToolUse = true;
      } else stream.text((stream.wroteText ? '\n' : '') + callAsText(c));
    }
  }
  stream.finish(anthropicStopReason(out, r, hasToolUse), usage);
}

/** The whole message as JSON, with the request id header Anthropic's API sends. */
function sendMessage(res: ServerResponse, id: string, model: string, out: AnswerOutcome, r: AnthropicRequest, chat: ChatPrompt, usage: AnthropicUsage): void {
  const content = contentBlocks(out, chat);
  const body = { id, type: 'message', role: 'assistant', model, content, ...anthropicStopReason(out, r, content.some((c) => c.type === 'tool_use')), usage };
  sendAnswer(res, body, { 'request-id': `req_${id.slice(4)}` });
}

/** Generates one message: streamed as Anthropic's events, or answered whole. */
async function serveMessage(ctx: ServingContext, res: ServerResponse, r: AnthropicRequest, chat: ChatPrompt, arrived: number): Promise<void> {
  const generator = requireGenerator(ctx);
  const promptTokens = tokenizePrompt(ctx, chat.prompt + r.prefill, chat.addBos, 'messages');
  const maxTokens = tokenBudget(ctx, promptTokens.length, r.maxTokens, chat.grammar, 'max_tokens');
  const id = `msg_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
  const forced = chat.tools.choice.mode === 'required' || chat.tools.choice.mode === 'named';
  const stream = r.stream ? new AnthropicStream(res, id, ctx.modelId) : null;
  const onEvent = (e: GenerationEvent) => {
    if (!stream) return;
    if (e.type === 'text') stream.text(e.text);
    // A forced call streams live; a free call is judged (does its input validate?) once it is whole.
    else if (forced && e.type === 'tool_call') stream.toolUse(toolUseId(e.id), e.name);
    else if (forced && e.type === 'tool_arguments') stream.inputJson(e.text);
  };
  await withSlot(
    ctx,
    res,
    'anthropic',
    async (signal, done) => {
      stream?.start(promptTokens.length);
      const out = await generateAnswer(
        generator,
        { promptTokens, maxTokens, sampling: r.sampling, stop: [...r.stopSequences, ...chat.extraStop], requestId: id, signal, grammar: chat.grammar, tools: chat.tools, ...(r.speculate !== undefined ? { speculate: r.speculate } : {}) },
        stream ? onEvent : null,
      );
      recordGeneration(ctx, 'anthropic', [out.result], arrived);
      done();
      // Anthropic counts prompt tokens read from a cache apart: input_tokens is the rest (the total is their sum).
      const cached = out.result.cachedTokens ?? 0;
      const usage: AnthropicUsage = {
        input_tokens: promptTokens.length - cached,
        output_tokens: out.result.tokens.length,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        ...requestedSpeculation(r.speculate, [out.result]),
      };
      if (stream) finishStream(stream, out, r, chat, forced, usage);
      else sendMessage(res, id, ctx.modelId, out, r, chat, usage);
    },
    (e) => {
      if (!stream) return false;
      stream.error(anthropicErrorBody(e));
      return true;
    },
  );
}

/**
 * POST /v1/messages (Anthropic Messages) and POST /v1/messages/count_tokens: a translation of Anthropic's request
 * onto the shared conversation, sampling and answer events, and of those events back into Anthropic's message and
 * its stream (`message_start`, `content_block_start`, `ping`, `content_block_delta` with `text_delta` /
 * `input_json_delta`, `content_block_stop`, `message_delta`, `message_stop`; `error`). Errors in Anthropic's shape.
 */
export function addAnthropicMessagesRoutes(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  const rendering = chatRendering(ctx);
  router.add('POST', '/v1/messages/count_tokens', async (req) => countTokens(ctx, rendering, requireObject(await readJsonBody(req, maxBodyBytes))), { errors: anthropicErrors });
  router.add(
    'POST',
    '/v1/messages',
    async (req, res) => {
      const arrived = performance.now();
      const r = parseAnthropicRequest(requireObject(await readJsonBody(req, maxBodyBytes)));
      checkModel(ctx, r.model);
      await serveMessage(ctx, res, r, renderChatPrompt(rendering(), r.conversation), arrived);
    },
    { errors: anthropicErrors },
  );
}

/** Anthropic's event stream for one message: blocks open and close in order, each with its index. */
class AnthropicStream {
  private readonly sse: SseWriter;
  private index = -1;
  private open: 'text' | 'tool_use' | null = null;
  private pinged = false;
  /** Some answer text was sent (a call kept as text then goes on a new line, as in the JSON answer). */
  wroteText = false;

  constructor(
    res: ServerResponse,
    private readonly id: string,
    private readonly model: string,
  ) {
    this.sse = new SseWriter(res);
  }

  private send(type: string, data: object): void {
    this.sse.sendEvent(type, { type, ...data });
  }

  start(inputTokens: number): void {
    this.send('message_start', {
      message: { id: this.id, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: inputTokens, output_tokens: 0 } },
    });
  }

  private openBlock(block: object, kind: 'text' | 'tool_use'): void {
    this.close();
    this.index++;
    this.open = kind;
    this.send('content_block_start', { index: this.index, content_block: block });
    // Where Anthropic's API sends its ping: after the first block opens.
    if (!this.pinged) {
      this.pinged = true;
      this.send('ping', {});
    }
  }

  private close(): void {
    if (this.open === null) return;
    this.send('content_block_stop', { index: this.index });
    this.open = null;
  }

  text(text: string): void {
    if (text === '') return;
    if (this.open !== 'text') this.openBlock({ type: 'text', text: '' }, 'text');
    this.send('content_block_delta', { index: this.index, delta: { type: 'text_delta', text } });
    this.wroteText = true;
  }

  toolUse(id: string, name: string): void {
    this.openBlock({ type: 'tool_use', id, name, input: {} }, 'tool_use');
  }

  inputJson(partial: string): void {
    if (partial !== '') this.send('content_block_delta', { index: this.index, delta: { type: 'input_json_delta', partial_json: partial } });
  }

  /**
   * The last events. message_start said the whole prompt as input_tokens (the cache is known only once the request
   * opened); message_delta's usage is cumulative and carries the split, as Anthropic's does.
   */
  finish(stop: { stop_reason: StopReason; stop_sequence: string | null }, usage: AnthropicUsage): void {
    // An answer with no text and no call still has its (empty) text block, as the JSON answer does.
    if (this.index < 0) this.openBlock({ type: 'text', text: '' }, 'text');
    this.close();
    this.send('message_delta', { delta: stop, usage });
    this.send('message_stop', {});
    this.sse.end();
  }

  error(body: object): void {
    this.sse.sendEvent('error', body);
    this.sse.end();
  }
}
