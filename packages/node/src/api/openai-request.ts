import { validateSampling, type SamplingParams } from '../engine/sampler.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import { invalidRequest } from './openai-errors.js';
import { parseSpeculate } from './speculation-usage.js';

/** The fields /v1/chat/completions and /v1/completions share, validated. */
export interface GenerationParams {
  model: string;
  /** null: the endpoint's default. */
  maxTokens: number | null;
  sampling: SamplingParams;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** llama.cpp's `ignore_eos` extension: generate exactly max_tokens. */
  ignoreEos: boolean;
  /** Choices to generate for the one prompt (`n`). */
  n: number;
  /** edge-node's `speculate` extension: speculative decoding on or off for this request (absent: the node's `--speculate`). */
  speculate?: boolean;
  /** OpenAI's Predicted Outputs: the output expected (text, or token ids as an extension), drafted from first. */
  prediction?: string | number[];
}

/** Most choices one request may ask for (`n`): each runs as its own sequence through the pipeline. */
export const MAX_CHOICES = 8;

export type JsonObject = Record<string, unknown>;

/** A JSON object (not null, not an array): what every dialect's request fields are checked against. */
export function isJsonObject(x: unknown): x is JsonObject {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function requireObject(body: unknown): JsonObject {
  if (!isJsonObject(body)) throw invalidRequest('the request body must be a JSON object', null, 'invalid_json');
  return body as JsonObject;
}

export function optionalNumber(b: JsonObject, field: string, min: number, max: number, fallback: number, integer = false): number {
  const v = b[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`"${field}" must be a number (got ${JSON.stringify(v)})`, field, 'invalid_type');
  if (integer && !Number.isSafeInteger(v)) throw invalidRequest(`"${field}" must be a whole number (got ${v})`, field, 'invalid_type');
  if (v < min || v > max) throw invalidRequest(`"${field}" must be between ${min} and ${max} (got ${v})`, field);
  return v;
}

export function optionalBoolean(b: JsonObject, field: string, fallback: boolean): boolean {
  const v = b[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw invalidRequest(`"${field}" must be true or false (got ${JSON.stringify(v)})`, field, 'invalid_type');
  return v;
}

/** Parses model, max_tokens / max_completion_tokens, sampling fields, stop, stream, stream_options and n. */
export function parseGenerationParams(b: JsonObject): GenerationParams {
  if (b.model === undefined || b.model === null) throw invalidRequest('"model" is required (GET /v1/models lists the model this cluster serves)', 'model', 'missing_required_parameter');
  if (typeof b.model !== 'string' || b.model.length === 0) throw invalidRequest('"model" must be a non-empty string', 'model', 'invalid_type');
  const n = optionalNumber(b, 'n', 1, MAX_CHOICES, 1, true);

  const maxField = b.max_completion_tokens !== undefined && b.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const rawMax = b[maxField];
  const maxTokens = rawMax === undefined || rawMax === null ? null : optionalNumber(b, maxField, 1, Number.MAX_SAFE_INTEGER, 1, true);

  const temperature = optionalNumber(b, 'temperature', 0, 2, 1);
  const topP = optionalNumber(b, 'top_p', 0, 1, 1);
  if (topP === 0) throw invalidRequest('"top_p" must be greater than 0', 'top_p');
  const sampling: SamplingParams = {
    temperature,
    topP,
    // OpenAI has neither; llama.cpp-style extensions, off unless asked.
    topK: optionalNumber(b, 'top_k', 0, Number.MAX_SAFE_INTEGER, 0, true),
    minP: optionalNumber(b, 'min_p', 0, 1, 0),
    repetitionPenalty: optionalNumber(b, b.repetition_penalty !== undefined ? 'repetition_penalty' : 'repeat_penalty', 0.01, 10, 1),
    frequencyPenalty: optionalNumber(b, 'frequency_penalty', -2, 2, 0),
    presencePenalty: optionalNumber(b, 'presence_penalty', -2, 2, 0),
    penaltyLastN: 64,
    seed: b.seed === undefined || b.seed === null ? null : optionalNumber(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0, true),
  };
  validateSampling(sampling);

  let stop: string[] = [];
  if (typeof b.stop === 'string') stop = [b.stop];
  else if (Array.isArray(b.stop)) {
    if (!b.stop.every((s): s is string => typeof s === 'string')) throw invalidRequest('"stop" must be a string or an array of strings', 'stop', 'invalid_type');
    if (b.stop.length > 4) throw invalidRequest(`"stop" takes at most 4 strings (got ${b.stop.length})`, 'stop');
    stop = b.stop;
  } else if (b.stop !== undefined && b.stop !== null) throw invalidRequest('"stop" must be a string or an array of strings', 'stop', 'invalid_type');
  stop = stop.filter((s) => s.length > 0);

  const stream = optionalBoolean(b, 'stream', false);
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (typeof b.stream_options !== 'object' || Array.isArray(b.stream_options)) throw invalidRequest('"stream_options" must be an object', 'stream_options', 'invalid_type');
    includeUsage = optionalBoolean(b.stream_options as JsonObject, 'include_usage', false);
  }
  const speculate = parseSpeculate(b, 'speculate');
  const prediction = parsePrediction(b.prediction);
  return {
    model: b.model,
    maxTokens,
    sampling,
    stop,
    stream,
    includeUsage,
    ignoreEos: optionalBoolean(b, 'ignore_eos', false),
    n,
    ...(speculate !== undefined ? { speculate } : {}),
    ...(prediction !== undefined ? { prediction } : {}),
  };
}

/** `prediction`: { type: "content", content: text | [{ type: "text", text }] | token ids (an extension) }. */
function parsePrediction(v: unknown): string | number[] | undefined {
  if (v === undefined || v === null) return undefined;
  const shape = '"prediction" must be { "type": "content", "content": text, text parts or token ids }';
  if (typeof v !== 'object' || Array.isArray(v) || (v as JsonObject).type !== 'content') throw invalidRequest(shape, 'prediction', 'invalid_type');
  const content = (v as JsonObject).content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content) && content.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)) return content as number[];
  if (Array.isArray(content) && content.every((p) => typeof p === 'object' && p !== null && (p as JsonObject).type === 'text' && typeof (p as JsonObject).text === 'string')) {
    return content.map((p) => (p as { text: string }).text).join('');
  }
  throw invalidRequest(shape, 'prediction.content', 'invalid_type');
}

const ROLES: Record<string, ChatMessage['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant', tool: 'tool' };

/**
 * Parses `messages`: roles system/developer/user/assistant/tool, content a string or an array of text parts; an
 * assistant turn may carry `tool_calls` (arguments as JSON text), a tool turn answers one by `tool_call_id`.
 */
export function parseMessages(value: unknown, param0 = 'messages'): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw invalidRequest(`"${param0}" must be a non-empty array of { role, content }`, param0, value === undefined ? 'missing_required_parameter' : 'invalid_type');
  const callNames = new Map<string, string>();
  return value.map((m: unknown, i) => {
    const param = `${param0}[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw invalidRequest(`${param} must be an object with "role" and "content"`, param, 'invalid_type');
    const msg = m as JsonObject;
    const role = typeof msg.role === 'string' ? ROLES[msg.role] : undefined;
    if (!role) throw invalidRequest(`${param}.role must be "system", "developer", "user", "assistant" or "tool" (got ${JSON.stringify(msg.role)})`, `${param}.role`);
    const out: ChatMessage = { role, content: parseContent(msg.content, role, `${param}.content`) };
    if (role === 'assistant' && msg.tool_calls !== undefined && msg.tool_calls !== null) {
      if (!Array.isArray(msg.tool_calls)) throw invalidRequest(`${param}.tool_calls must be an array`, `${param}.tool_calls`, 'invalid_type');
      out.tool_calls = msg.tool_calls.map((c: unknown, j) => {
        const at = `${param}.tool_calls[${j}]`;
        const call = c as JsonObject | null;
        const fn = call?.function as JsonObject | undefined;
        if (!call || typeof call.id !== 'string' || !fn || typeof fn.name !== 'string' || typeof fn.arguments !== 'string') {
          throw invalidRequest(`${at} must be { "id", "type": "function", "function": { "name", "arguments": "<JSON text>" } }`, at, 'invalid_type');
        }
        let args: unknown;
        try {
          args = JSON.parse(fn.arguments);
        } catch {
          throw invalidRequest(`${at}.function.arguments is not valid JSON`, `${at}.function.arguments`);
        }
        callNames.set(call.id, fn.name);
        return { id: call.id, type: 'function' as const, function: { name: fn.name, arguments: args } };
      });
    }
    if (role === 'tool') {
      if (typeof msg.tool_call_id !== 'string') throw invalidRequest(`${param}.tool_call_id is required on a tool message`, `${param}.tool_call_id`, 'missing_required_parameter');
      out.tool_call_id = msg.tool_call_id;
      const name = callNames.get(msg.tool_call_id);
      if (name) out.name = name;
    }
    return out;
  });
}

/** Chat's `logprobs` (boolean) and `top_logprobs` (0–20): the number of alternatives, or undefined when off. */
export function parseChatLogprobs(b: JsonObject): number | undefined {
  const on = optionalBoolean(b, 'logprobs', false);
  const top = b.top_logprobs === undefined || b.top_logprobs === null ? undefined : optionalNumber(b, 'top_logprobs', 0, 20, 0, true);
  if (top !== undefined && !on) throw invalidRequest('"top_logprobs" needs "logprobs": true', 'top_logprobs');
  return on ? (top ?? 0) : undefined;
}

/** Completions' `logprobs` (0–5 alternatives), or undefined when off. */
export function parseCompletionLogprobs(b: JsonObject): number | undefined {
  return b.logprobs === undefined || b.logprobs === null ? undefined : optionalNumber(b, 'logprobs', 0, 5, 0, true);
}

function parseContent(content: unknown, role: string, param: string): string {
  if (typeof content === 'string') return content;
  // An assistant turn that only called tools has null content.
  if ((content === null || content === undefined) && role === 'assistant') return '';
  if (typeof content === 'object' && content !== null && !Array.isArray(content) && role === 'tool') return JSON.stringify(content);
  if (Array.isArray(content)) {
    return content
      .map((part: unknown, j) => {
        const p = part as JsonObject | null;
        if (typeof p !== 'object' || p === null) throw invalidRequest(`${param}[${j}] must be an object like { "type": "text", "text": "…" }`, `${param}[${j}]`, 'invalid_type');
        if (p.type !== 'text') throw invalidRequest(`${param}[${j}] has type ${JSON.stringify(p.type)}: this model takes only text parts`, `${param}[${j}].type`, 'unsupported_value');
        if (typeof p.text !== 'string') throw invalidRequest(`${param}[${j}].text must be a string`, `${param}[${j}].text`, 'invalid_type');
        return p.text;
      })
      .join('');
  }
  throw invalidRequest(`${param} must be a string or an array of text parts`, param, content === undefined ? 'missing_required_parameter' : 'invalid_type');
}

/** `prompt` of /v1/completions: a string, an array holding one string, or token ids. */
export function parsePrompt(value: unknown): string | number[] {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    if (value.length === 1 && typeof value[0] === 'string') return value[0];
    if (value.length > 0 && value.every((t) => Number.isInteger(t) && (t as number) >= 0)) return value as number[];
    if (value.length > 1 && value.every((t) => typeof t === 'string')) throw invalidRequest('only one prompt per request is supported', 'prompt', 'unsupported_value');
  }
  throw invalidRequest('"prompt" must be a string (or an array of token ids)', 'prompt', value === undefined ? 'missing_required_parameter' : 'invalid_type');
}
