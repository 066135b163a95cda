import { validateSampling, type SamplingParams } from '../engine/sampler.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import { invalidRequest } from './openai-errors.js';
import { isJsonObject, type JsonObject } from './openai-request.js';
import { parseSpeculate } from './speculation-usage.js';
import { checkEnforceableSchema } from './structured-output.js';

/** Ollama's `options`, translated onto the shared sampling parameters and limits. */
export interface OllamaOptions {
  sampling: SamplingParams;
  /** `num_predict`; null: until the context is full (-1, -2 or absent). */
  maxTokens: number | null;
  stop: string[];
  /** `num_ctx`: this request's context (prompt + answer); null: the node's. */
  numCtx: number | null;
  /** edge-node's `speculate` option: speculative decoding on or off for this request (absent: the node's default). */
  speculate?: boolean;
}


/**
 * Ollama's defaults (its `DefaultOptions`): temperature 0.8, top_k 40, top_p 0.9, min_p 0, repeat_penalty 1.1 over
 * the last 64 tokens, a random seed. So `temperature: 0` alone is greedy with Ollama's repeat penalty, as on Ollama;
 * add `repeat_penalty: 1` for the plain argmax the other dialects give at temperature 0.
 */
export function parseOllamaOptions(value: unknown, contextLength: number): OllamaOptions {
  if (value !== undefined && value !== null && !isJsonObject(value)) throw invalidRequest('"options" must be an object like { "temperature": 0.7 }', 'options', 'invalid_type');
  const o: JsonObject = isJsonObject(value) ? value : {};
  const num = (field: string, min: number, max: number, fallback: number, integer = false): number => {
    const v = o[field];
    if (v === undefined || v === null) return fallback;
    const p = `options.${field}`;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidRequest(`${p} must be a number (got ${JSON.stringify(v)})`, p, 'invalid_type');
    if (integer && !Number.isSafeInteger(v)) throw invalidRequest(`${p} must be a whole number (got ${v})`, p, 'invalid_type');
    if (v < min || v > max) throw invalidRequest(`${p} must be between ${min} and ${max} (got ${v})`, p);
    return v;
  };
  const topP = num('top_p', 0, 1, 0.9);
  if (topP === 0) throw invalidRequest('options.top_p must be greater than 0', 'options.top_p');
  const seed = num('seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, -1, true);
  const sampling: SamplingParams = {
    temperature: num('temperature', 0, 100, 0.8),
    topP,
    topK: num('top_k', 0, Number.MAX_SAFE_INTEGER, 40, true),
    minP: num('min_p', 0, 1, 0),
    repetitionPenalty: num('repeat_penalty', 0.01, 10, 1.1),
    frequencyPenalty: num('frequency_penalty', -2, 2, 0),
    presencePenalty: num('presence_penalty', -2, 2, 0),
    penaltyLastN: num('repeat_last_n', 0, contextLength, 64, true),
    // Ollama's seed -1 is "random".
    seed: seed === -1 ? null : seed,
  };
  validateSampling(sampling);
  const predict = num('num_predict', -2, Number.MAX_SAFE_INTEGER, -1, true);
  if (predict === 0) throw invalidRequest('options.num_predict must be at least 1 (or -1: until the context is full)', 'options.num_predict');
  const numCtx = o.num_ctx === undefined || o.num_ctx === null ? null : num('num_ctx', 1, Number.MAX_SAFE_INTEGER, contextLength, true);
  if (numCtx !== null && numCtx > contextLength) {
    throw invalidRequest(`options.num_ctx is ${numCtx}, above this model's context of ${contextLength} tokens here: ask for at most ${contextLength}`, 'options.num_ctx', 'context_length_exceeded');
  }
  let stop: string[] = [];
  if (o.stop !== undefined && o.stop !== null) {
    if (typeof o.stop === 'string') stop = [o.stop];
    else if (Array.isArray(o.stop) && o.stop.every((s): s is string => typeof s === 'string')) stop = o.stop;
    else throw invalidRequest('options.stop must be an array of strings', 'options.stop', 'invalid_type');
  }
  const speculate = parseSpeculate(o, 'speculate', 'options.speculate');
  return { sampling, maxTokens: predict < 0 ? null : predict, stop: stop.filter((s) => s !== ''), numCtx, ...(speculate !== undefined ? { speculate } : {}) };
}

/** `format`: "json" (any JSON value as an object) or a JSON Schema, enforced by the constrained sampler. */
export function parseOllamaFormat(value: unknown): GrammarSpec | null {
  if (value === undefined || value === null || value === '') return null;
  if (value === 'json') return { type: 'json', schema: null };
  if (isJsonObject(value)) {
    checkEnforceableSchema(value, 'format');
    return { type: 'json', schema: value };
  }
  throw invalidRequest(`"format" must be "json" or a JSON Schema object (got ${JSON.stringify(value)})`, 'format', 'invalid_type');
}

/** `keep_alive`: a duration ("5m", "1h", "0") or seconds. Accepted and checked; the model here is never unloaded. */
export function checkKeepAlive(value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value === 'number' && Number.isFinite(value)) return;
  if (typeof value === 'string' && /^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h)?)+$/.test(value)) return;
  throw invalidRequest(`"keep_alive" must be a duration such as "5m" or a number of seconds (got ${JSON.stringify(value)})`, 'keep_alive', 'invalid_type');
}

/** Images cannot be read by the models served here: refused rather than silently dropped. */
export function refuseImages(value: unknown, param: string): void {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) return;
  throw invalidRequest(`${param}: this model reads text only, it cannot take images`, param, 'unsupported_value');
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/**
 * `messages`: `{role, content, images?, tool_calls?: [{function: {name, arguments: {…}}}], tool_name?}`. Calls get
 * ids (Ollama's have none) and a tool turn answers the latest call of its tool.
 */
export function parseOllamaMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) throw invalidRequest('"messages" must be an array of { role, content }', 'messages', value === undefined ? 'missing_required_parameter' : 'invalid_type');
  const lastCall = new Map<string, string>();
  let calls = 0;
  return value.map((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isJsonObject(m)) throw invalidRequest(`${at} must be an object with "role" and "content"`, at, 'invalid_type');
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) throw invalidRequest(`${at}.role must be "system", "user", "assistant" or "tool" (got ${JSON.stringify(m.role)})`, `${at}.role`);
    const role = m.role as ChatMessage['role'];
    if (m.content !== undefined && m.content !== null && typeof m.content !== 'string') throw invalidRequest(`${at}.content must be a string`, `${at}.content`, 'invalid_type');
    refuseImages(m.images, `${at}.images`);
    const out: ChatMessage = { role, content: typeof m.content === 'string' ? m.content : '' };
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (role !== 'assistant' || !Array.isArray(m.tool_calls)) throw invalidRequest(`${at}.tool_calls must be an array on an assistant message`, `${at}.tool_calls`, 'invalid_type');
      out.tool_calls = m.tool_calls.map((c: unknown, j) => {
        const fn = isJsonObject(c) && isJsonObject(c.function) ? c.function : null;
        if (!fn || typeof fn.name !== 'string' || (fn.arguments !== undefined && !isJsonObject(fn.arguments))) {
          throw invalidRequest(`${at}.tool_calls[${j}] must be { "function": { "name", "arguments": { … } } }`, `${at}.tool_calls[${j}]`, 'invalid_type');
        }
        const id = isJsonObject(c) && typeof c.id === 'string' ? c.id : `call_${++calls}`;
        lastCall.set(fn.name, id);
        return { id, type: 'function' as const, function: { name: fn.name, arguments: fn.arguments ?? {} } };
      });
    }
    if (role === 'tool') {
      const name = typeof m.tool_name === 'string' ? m.tool_name : typeof m.name === 'string' ? m.name : undefined;
      if (name !== undefined) {
        out.name = name;
        const id = lastCall.get(name);
        if (id) out.tool_call_id = id;
      }
    }
    return out;
  });
}
