import { validateSampling, type SamplingParams } from '../engine/sampler.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import type { ChatConversation } from './chat-prompt.js';
import { invalidRequest } from './openai-errors.js';
import { optionalBoolean, optionalNumber, parseMessages, type JsonObject, isJsonObject } from './openai-request.js';
import { parseSpeculate } from './speculation-usage.js';
import { parseResponseFormat } from './structured-output.js';
import { parseToolChoice, parseTools } from './tool-calls.js';


/** A Responses API request, checked: what the route generates from and what its response object echoes. */
export interface ResponsesRequest extends ChatConversation {
  model: string;
  instructions: string | null;
  parallelToolCalls: boolean;
  /** `text.format` as the client sent it, echoed (its grammar is the conversation's `format`). */
  textFormat: JsonObject | null;
  stream: boolean;
  maxOutputTokens: number | null;
  sampling: SamplingParams;
  metadata: JsonObject;
  /** edge-node's `speculate` extension: speculative decoding on or off for this request (absent: the node's default). */
  speculate?: boolean;
}

/**
 * The Responses API's `input` as chat messages: a string is one user turn; an array holds messages (`content` a
 * string or input_text/output_text parts), `function_call` items (a past call of the model) and
 * `function_call_output` items (the tool's answer).
 */
function parseResponsesInput(input: unknown, instructions: string | null): ChatMessage[] {
  const head: ChatMessage[] = instructions ? [{ role: 'system', content: instructions }] : [];
  if (typeof input === 'string') return [...head, { role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw invalidRequest('"input" must be a string or a non-empty array of input items', 'input', input === undefined ? 'missing_required_parameter' : 'invalid_type');
  const asChat: unknown[] = [];
  input.forEach((item: unknown, i) => {
    const at = `input[${i}]`;
    if (!isJsonObject(item)) throw invalidRequest(`${at} must be an object`, at, 'invalid_type');
    const type = item.type ?? 'message';
    if (type === 'message') {
      const content = Array.isArray(item.content)
        ? item.content.map((p: unknown, j) => {
            if (!isJsonObject(p) || (p.type !== 'input_text' && p.type !== 'output_text' && p.type !== 'text') || typeof p.text !== 'string') {
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

/** Fields of the Responses API this node cannot honour (it stores nothing): refused with what to do instead. */
function refuseStored(b: JsonObject): void {
  if (b.previous_response_id !== undefined && b.previous_response_id !== null) throw invalidRequest('responses are not stored here: send the whole conversation in "input" instead of "previous_response_id"', 'previous_response_id', 'unsupported_value');
  if (b.background === true) throw invalidRequest('"background" responses are not supported', 'background', 'unsupported_value');
}

/** The sampling fields the Responses API has (temperature, top_p, seed); the others stay neutral. */
function parseResponsesSampling(b: JsonObject): SamplingParams {
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
  return sampling;
}

/** Checks a POST /v1/responses body field by field, in the order its errors are reported. */
export function parseResponsesRequest(b: JsonObject): ResponsesRequest {
  if (typeof b.model !== 'string' || b.model === '') throw invalidRequest('"model" is required (GET /v1/models lists the model this cluster serves)', 'model', b.model === undefined ? 'missing_required_parameter' : 'invalid_type');
  refuseStored(b);
  if (b.instructions !== undefined && b.instructions !== null && typeof b.instructions !== 'string') throw invalidRequest('"instructions" must be a string', 'instructions', 'invalid_type');
  const instructions = (b.instructions as string | null | undefined) ?? null;
  const messages = parseResponsesInput(b.input, instructions);
  const tools = parseTools(b.tools);
  const choice = parseToolChoice(b.tool_choice, tools);
  const parallelToolCalls = optionalBoolean(b, 'parallel_tool_calls', true);
  const text = b.text === undefined || b.text === null ? {} : isJsonObject(b.text) ? b.text : (() => { throw invalidRequest('"text" must be an object like { "format": { "type": "json_schema", … } }', 'text', 'invalid_type'); })();
  const format = parseResponseFormat(text.format, 'text.format');
  const stream = optionalBoolean(b, 'stream', false);
  const maxOutputTokens = b.max_output_tokens === undefined || b.max_output_tokens === null ? null : optionalNumber(b, 'max_output_tokens', 1, Number.MAX_SAFE_INTEGER, 1, true);
  const sampling = parseResponsesSampling(b);
  const speculate = parseSpeculate(b, 'speculate');
  return {
    model: b.model,
    instructions,
    messages,
    tools,
    choice,
    parallelToolCalls,
    textFormat: isJsonObject(text.format) ? text.format : null,
    format,
    stream,
    maxOutputTokens,
    sampling,
    metadata: isJsonObject(b.metadata) ? b.metadata : {},
    ...(speculate !== undefined ? { speculate } : {}),
  };
}
