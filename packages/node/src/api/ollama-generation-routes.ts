import type { ServerResponse } from 'node:http';
import type { GenerationResult } from '../engine/generate.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import { readJsonBody, sendAnswer, type ApiRouter } from './api-router.js';
import { chatRendering, renderChatPrompt, type ChatPrompt } from './chat-prompt.js';
import { generateAnswer, type GenerationEvent } from './generation-events.js';
import { NdjsonWriter } from './ndjson-writer.js';
import { ollamaErrorBody, ollamaErrors, ollamaModelNotFound } from './ollama-errors.js';
import { checkKeepAlive, parseOllamaFormat, parseOllamaMessages, parseOllamaOptions, refuseImages, type OllamaOptions } from './ollama-request.js';
import { invalidRequest, OpenAIError } from './openai-errors.js';
import { optionalBoolean, requireObject, type JsonObject } from './openai-request.js';
import { recordGeneration, requireGenerator, tokenBudget, tokenizePrompt, withSlot, type Endpoint, type ServingContext } from './serve-generation.js';
import { requestedSpeculation } from './speculation-usage.js';
import { parseToolChoice, parseTools } from './tool-calls.js';
import { callAsText, toolInput } from './tool-input.js';

/** Ollama's model names carry a tag; the one model here is `<id>:latest`. */
export const OLLAMA_TAG = ':latest';

/** The request's `model` (required), checked against the served model with or without its tag. */
export function checkOllamaModel(ctx: ServingContext, b: JsonObject): string {
  const model = b.model ?? b.name;
  if (model === undefined || model === null || model === '') throw invalidRequest('"model" is required', 'model', 'missing_required_parameter');
  if (typeof model !== 'string') throw invalidRequest(`"model" must be a string (got ${JSON.stringify(model)})`, 'model', 'invalid_type');
  const g = requireGenerator(ctx);
  const bare = model.endsWith(OLLAMA_TAG) ? model.slice(0, -OLLAMA_TAG.length) : model;
  if (bare !== ctx.modelId && bare !== g.modelName) throw ollamaModelNotFound(model, `${ctx.modelId}${OLLAMA_TAG}`);
  return model;
}

const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/** Ollama's timing fields, measured: load is the wait for a pipeline slot (Ollama counts its scheduler's wait there too). */
function timings(result: GenerationResult, arrived: number, started: number) {
  return {
    total_duration: ns(performance.now() - arrived),
    load_duration: ns(started - arrived),
    prompt_eval_count: result.promptTokens.length,
    prompt_eval_duration: ns(result.timings.prefillMs),
    eval_count: result.tokens.length,
    eval_duration: ns(result.timings.decodeMs),
  };
}

interface OllamaJob {
  endpoint: Extract<Endpoint, 'ollama_chat' | 'ollama_generate'>;
  model: string;
  promptTokens: number[];
  options: OllamaOptions;
  grammar: GrammarSpec | null;
  extraStop: string[];
  chat: ChatPrompt | null;
  stream: boolean;
  arrived: number;
}

function checkContext(ctx: ServingContext, job: Pick<OllamaJob, 'promptTokens' | 'options' | 'grammar'>): number {
  const numCtx = job.options.numCtx ?? ctx.contextLength;
  if (job.promptTokens.length >= numCtx) {
    throw new OpenAIError(400, `the prompt has ${job.promptTokens.length} tokens, which does not fit options.num_ctx ${numCtx}: shorten it or raise num_ctx (at most ${ctx.contextLength})`, 'invalid_request_error', 'context_length_exceeded', 'options.num_ctx');
  }
  return tokenBudget(ctx, job.promptTokens.length, Math.min(job.options.maxTokens ?? Number.MAX_SAFE_INTEGER, numCtx - job.promptTokens.length), job.grammar, 'options.num_predict');
}

/** Runs one Ollama generation over the shared answer events; NDJSON lines when streaming, one object otherwise. */
async function serveOllama(ctx: ServingContext, res: ServerResponse, job: OllamaJob): Promise<void> {
  const generator = requireGenerator(ctx);
  const maxTokens = checkContext(ctx, job);
  const isChat = job.endpoint === 'ollama_chat';
  const out = job.stream ? new NdjsonWriter(res) : null;
  const line = (text: string, extra: object = {}) =>
    isChat ? { model: job.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: text, ...extra }, done: false } : { model: job.model, created_at: new Date().toISOString(), response: text, done: false };
  const tools = job.chat?.tools;
  await withSlot(
    ctx,
    res,
    job.endpoint,
    async (signal, done) => {
      const started = performance.now();
      out?.start();
      const onEvent = (e: GenerationEvent) => {
        // Ollama sends calls whole, once parsed: they are taken from the outcome below.
        if (e.type === 'text') out?.send(line(e.text));
      };
      const answer = await generateAnswer(
        generator,
        {
          promptTokens: job.promptTokens,
          maxTokens,
          sampling: job.options.sampling,
          stop: [...job.options.stop, ...job.extraStop],
          requestId: `ollama-${Math.random().toString(36).slice(2)}`,
          signal,
          grammar: job.grammar,
          ...(tools ? { tools } : {}),
          ...(job.options.speculate !== undefined ? { speculate: job.options.speculate } : {}),
        },
        out ? onEvent : null,
      );
      recordGeneration(ctx, job.endpoint, [answer.result], job.arrived);
      done();
      let text = answer.calls.length > 0 ? (answer.content ?? '') : answer.result.text;
      const calls: object[] = [];
      let extraText = '';
      answer.calls.forEach((c) => {
        const args = tools ? toolInput(c, tools.defs) : null;
        if (args) calls.push({ id: c.id, function: { index: calls.length, name: c.name, arguments: args } });
        else extraText += (text || extraText ? '\n' : '') + callAsText(c);
      });
      text += extraText;
      const final = {
        model: job.model,
        created_at: new Date().toISOString(),
        ...(isChat ? { message: { role: 'assistant', content: out ? '' : text, ...(calls.length > 0 && !out ? { tool_calls: calls } : {}) } } : { response: out ? '' : text }),
        done: true,
        done_reason: answer.result.finishReason,
        ...(isChat ? {} : { context: [...answer.result.promptTokens, ...answer.result.tokens] }),
        ...timings(answer.result, job.arrived, started),
        // edge-node's extension, when the request asked for speculation (`options.speculate: true`).
        ...requestedSpeculation(job.options.speculate, [answer.result]),
      };
      if (out) {
        if (extraText) out.send(line(extraText));
        if (calls.length > 0) out.send(line('', { tool_calls: calls }));
        out.end(final);
        return;
      }
      sendAnswer(res, final);
    },
    (e) => {
      if (!out) return false;
      out.end(ollamaErrorBody(e));
      return true;
    },
  );
}

/** A request with nothing to generate loads the model, as Ollama answers it (`done_reason: "load"`). */
function loaded(model: string, chat: boolean): object {
  return { model, created_at: new Date().toISOString(), ...(chat ? { message: { role: 'assistant', content: '' } } : { response: '' }), done: true, done_reason: 'load' };
}

/** Fields Ollama has that this node cannot honour: refused with a reason rather than ignored. */
function refuseUnavailable(b: JsonObject): void {
  if (b.think === true || typeof b.think === 'string') throw invalidRequest('"think" is not available: the models served here do not reason in a separate field', 'think', 'unsupported_value');
  if (b.logprobs === true) throw invalidRequest('"logprobs" is not available on the Ollama routes here: use POST /v1/chat/completions with "logprobs": true', 'logprobs', 'unsupported_value');
}

/** The fields both generation routes take, checked in the order their errors are reported. */
function parseSharedFields(ctx: ServingContext, b: JsonObject): { format: GrammarSpec | null; options: OllamaOptions; stream: boolean; model: string } {
  const format = parseOllamaFormat(b.format);
  const options = parseOllamaOptions(b.options, ctx.contextLength);
  checkKeepAlive(b.keep_alive);
  refuseUnavailable(b);
  const stream = optionalBoolean(b, 'stream', true);
  const model = checkOllamaModel(ctx, b);
  return { format, options, stream, model };
}

/**
 * POST /api/chat and POST /api/generate, Ollama's generation routes, as translations onto the shared conversation,
 * sampling and answer events (streamed as NDJSON unless `stream: false`). Errors are `{"error": "…"}`.
 */
export function addOllamaGenerationRoutes(router: ApiRouter, ctx: ServingContext, maxBodyBytes?: number): void {
  const rendering = chatRendering(ctx);

  router.add(
    'POST',
    '/api/chat',
    async (req, res) => {
      const arrived = performance.now();
      const b = requireObject(await readJsonBody(req, maxBodyBytes));
      const messages = parseOllamaMessages(b.messages ?? []);
      const defs = parseTools(b.tools);
      // An extension (Ollama has none): OpenAI's tool_choice, so a client can force a call, which the constrained
      // sampler then writes under the tool's schema. Default: the model decides, as on Ollama.
      const choice = parseToolChoice(b.tool_choice, defs);
      const { format, options, stream, model } = parseSharedFields(ctx, b);
      if (messages.length === 0) return loaded(model, true);
      const chat = renderChatPrompt(rendering(), { messages, tools: defs, choice, format });
      const promptTokens = tokenizePrompt(ctx, chat.prompt, chat.addBos, 'messages');
      await serveOllama(ctx, res, { endpoint: 'ollama_chat', model, promptTokens, options, grammar: chat.grammar, extraStop: chat.extraStop, chat, stream, arrived });
      return undefined;
    },
    { errors: ollamaErrors },
  );

  router.add(
    'POST',
    '/api/generate',
    async (req, res) => {
      const arrived = performance.now();
      const b = requireObject(await readJsonBody(req, maxBodyBytes));
      if (b.prompt !== undefined && b.prompt !== null && typeof b.prompt !== 'string') throw invalidRequest('"prompt" must be a string', 'prompt', 'invalid_type');
      if (b.system !== undefined && b.system !== null && typeof b.system !== 'string') throw invalidRequest('"system" must be a string', 'system', 'invalid_type');
      if (typeof b.suffix === 'string' && b.suffix !== '') throw invalidRequest('"suffix" (fill in the middle) is not available for this model', 'suffix', 'unsupported_value');
      if (typeof b.template === 'string' && b.template !== '') throw invalidRequest('"template" is not supported: send the prompt with "raw": true instead', 'template', 'unsupported_value');
      refuseImages(b.images, 'images');
      const raw = optionalBoolean(b, 'raw', false);
      let context: number[] = [];
      if (b.context !== undefined && b.context !== null) {
        if (!Array.isArray(b.context) || !b.context.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) throw invalidRequest('"context" must be the token ids a previous answer returned', 'context', 'invalid_type');
        context = b.context as number[];
      }
      const { format, options, stream, model } = parseSharedFields(ctx, b);
      const prompt = (b.prompt as string | undefined) ?? '';
      if (prompt === '' && context.length === 0) return loaded(model, false);
      const generator = requireGenerator(ctx);
      let text = prompt;
      let addBos: boolean | undefined;
      let extraStop: string[] = [];
      if (!raw) {
        // Not raw: the prompt is the user's turn of the model's chat template, as Ollama renders it.
        const system = (b.system as string | undefined) ?? '';
        const chat = renderChatPrompt(rendering(), { messages: [...(system ? [{ role: 'system' as const, content: system }] : []), { role: 'user', content: prompt }], tools: [], choice: { mode: 'none' }, format: null });
        text = chat.prompt;
        addBos = chat.addBos;
        extraStop = chat.extraStop;
      }
      // A previous answer's context continues: its tokens, then the new turn without a second BOS.
      const tokens = context.length > 0 ? [...context, ...generator.tokenizer.encode(text, { addBos: false })] : generator.tokenizer.encode(text, addBos === undefined ? {} : { addBos });
      const promptTokens = tokenizePrompt(ctx, tokens, undefined, 'prompt');
      await serveOllama(ctx, res, { endpoint: 'ollama_generate', model, promptTokens, options, grammar: format, extraStop, chat: null, stream, arrived });
      return undefined;
    },
    { errors: ollamaErrors },
  );
}
