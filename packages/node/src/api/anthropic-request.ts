import type { SamplingParams } from '../engine/sampler.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import type { ChatConversation } from './chat-prompt.js';
import { invalidRequest } from './openai-errors.js';
import { optionalBoolean, optionalNumber, type JsonObject, isJsonObject } from './openai-request.js';
import { parseSpeculate } from './speculation-usage.js';
import { checkEnforceableSchema } from './structured-output.js';
import type { ToolChoice, ToolDef } from './tool-calls.js';

/** An Anthropic Messages request, translated onto the shared conversation and sampling types. */
export interface AnthropicRequest {
  model: string;
  conversation: ChatConversation;
  /** Text of a last assistant turn: the answer continues it (Anthropic's "prefill"). */
  prefill: string;
  maxTokens: number;
  sampling: SamplingParams;
  stopSequences: string[];
  stream: boolean;
  /** edge-node's `speculate` extension: speculative decoding on or off for this request (absent: the node's default). */
  speculate?: boolean;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Tool ids as Anthropic writes them (`toolu_…`), from the shared call ids (`call_…`). */
export function toolUseId(callId: string): string {
  return callId.startsWith('call_') ? `toolu_${callId.slice(5)}` : callId;
}

function requireString(b: JsonObject, field: string): string {
  const v = b[field];
  if (v === undefined || v === null) throw invalidRequest(`"${field}" is required`, field, 'missing_required_parameter');
  if (typeof v !== 'string' || v === '') throw invalidRequest(`"${field}" must be a non-empty string (got ${JSON.stringify(v)})`, field, 'invalid_type');
  return v;
}

/** Text of `system` or a tool result: a string or an array of text blocks. */
function textOf(value: unknown, param: string): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    return value
      .map((b: unknown, i) => {
        if (!isJsonObject(b) || b.type !== 'text' || typeof b.text !== 'string') {
          throw invalidRequest(`${param}[${i}] must be a text block { "type": "text", "text": "…" }: this model takes only text`, `${param}[${i}]`, isJsonObject(b) && b.type !== 'text' ? 'unsupported_value' : 'invalid_type');
        }
        return b.text;
      })
      .join('\n');
  }
  throw invalidRequest(`${param} must be a string or an array of text blocks`, param, 'invalid_type');
}

/** Content blocks a conversation may hold that carry nothing for a text model's prompt. */
const SKIPPED_BLOCKS = new Set(['thinking', 'redacted_thinking']);

/**
 * `messages`: user and assistant turns whose content is a string or blocks. Assistant `tool_use` blocks become the
 * turn's tool calls; user `tool_result` blocks become tool turns (answering the call of that id); text blocks are
 * the turn's text. Images and documents are refused: the models served here read text only.
 */
export function parseAnthropicMessages(value: unknown): { messages: ChatMessage[]; prefill: string } {
  if (!Array.isArray(value) || value.length === 0) throw invalidRequest('"messages" must be a non-empty array of { role, content }', 'messages', value === undefined ? 'missing_required_parameter' : 'invalid_type');
  const out: ChatMessage[] = [];
  const callNames = new Map<string, string>();
  value.forEach((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isJsonObject(m)) throw invalidRequest(`${at} must be an object with "role" and "content"`, at, 'invalid_type');
    if (m.role !== 'user' && m.role !== 'assistant') throw invalidRequest(`${at}.role must be "user" or "assistant" (got ${JSON.stringify(m.role)}); the system prompt goes in "system"`, `${at}.role`);
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: m.content });
      return;
    }
    if (!Array.isArray(m.content)) throw invalidRequest(`${at}.content must be a string or an array of content blocks`, `${at}.content`, m.content === undefined ? 'missing_required_parameter' : 'invalid_type');
    let text = '';
    const calls: NonNullable<ChatMessage['tool_calls']> = [];
    m.content.forEach((b: unknown, j) => {
      const bat = `${at}.content[${j}]`;
      if (!isJsonObject(b) || typeof b.type !== 'string') throw invalidRequest(`${bat} must be a content block with a "type"`, bat, 'invalid_type');
      if (b.type === 'text') {
        if (typeof b.text !== 'string') throw invalidRequest(`${bat}.text must be a string`, `${bat}.text`, 'invalid_type');
        text += b.text;
      } else if (b.type === 'tool_use' && m.role === 'assistant') {
        if (typeof b.id !== 'string' || typeof b.name !== 'string' || !isJsonObject(b.input)) throw invalidRequest(`${bat} must be { "type": "tool_use", "id", "name", "input": { … } }`, bat, 'invalid_type');
        callNames.set(b.id, b.name);
        calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: b.input } });
      } else if (b.type === 'tool_result' && m.role === 'user') {
        if (typeof b.tool_use_id !== 'string') throw invalidRequest(`${bat}.tool_use_id is required`, `${bat}.tool_use_id`, 'missing_required_parameter');
        const content = b.content === undefined ? '' : textOf(b.content, `${bat}.content`);
        const name = callNames.get(b.tool_use_id);
        if (b.is_error !== undefined && typeof b.is_error !== 'boolean') throw invalidRequest(`${bat}.is_error must be true or false`, `${bat}.is_error`, 'invalid_type');
        out.push({ role: 'tool', content: b.is_error === true ? `Error: ${content}` : content, tool_call_id: b.tool_use_id, ...(name ? { name } : {}) });
      } else if (SKIPPED_BLOCKS.has(b.type) && m.role === 'assistant') {
        // Earlier reasoning: not part of what this model reads.
      } else {
        throw invalidRequest(`${bat} has type ${JSON.stringify(b.type)}, which a ${m.role} turn cannot carry here (text${m.role === 'assistant' ? ', tool_use' : ', tool_result'}): this model takes only text`, `${bat}.type`, 'unsupported_value');
      }
    });
    if (calls.length > 0) out.push({ role: 'assistant', content: text, tool_calls: calls });
    else if (text !== '' || !m.content.some((b) => isJsonObject(b) && b.type === 'tool_result')) out.push({ role: m.role, content: text });
  });
  // A last assistant turn without calls is a prefill: the answer continues its text.
  const last = out.at(-1);
  if (last && last.role === 'assistant' && !last.tool_calls) {
    out.pop();
    if (out.length === 0) throw invalidRequest('"messages" must hold a user turn before the assistant one', 'messages');
    return { messages: out, prefill: last.content.replace(/\s+$/, '') };
  }
  return { messages: out, prefill: '' };
}

/** `tools`: custom tools `{ name, description, input_schema }`; server tools (web search, bash, …) are not available. */
export function parseAnthropicTools(value: unknown): ToolDef[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidRequest('"tools" must be an array', 'tools', 'invalid_type');
  const names = new Set<string>();
  return value.map((t: unknown, i) => {
    const at = `tools[${i}]`;
    if (!isJsonObject(t)) throw invalidRequest(`${at} must be an object { "name", "description", "input_schema" }`, at, 'invalid_type');
    if (t.type !== undefined && t.type !== null && t.type !== 'custom') throw invalidRequest(`${at}.type ${JSON.stringify(t.type)} is a server tool, which this node does not run: only custom tools (name, input_schema)`, `${at}.type`, 'unsupported_value');
    if (typeof t.name !== 'string' || !NAME.test(t.name)) throw invalidRequest(`${at}.name must be 1–64 letters, digits, "_" or "-"`, `${at}.name`, t.name === undefined ? 'missing_required_parameter' : 'invalid_value');
    if (names.has(t.name)) throw invalidRequest(`two tools are named "${t.name}"`, `${at}.name`);
    names.add(t.name);
    if (t.description !== undefined && typeof t.description !== 'string') throw invalidRequest(`${at}.description must be a string`, `${at}.description`, 'invalid_type');
    if (!isJsonObject(t.input_schema)) throw invalidRequest(`${at}.input_schema must be a JSON Schema object`, `${at}.input_schema`, t.input_schema === undefined ? 'missing_required_parameter' : 'invalid_type');
    if (t.input_schema.type !== 'object') throw invalidRequest(`${at}.input_schema.type must be "object"`, `${at}.input_schema.type`);
    // The grammar must be able to enforce the schema: a forced call's input then always validates.
    checkEnforceableSchema(t.input_schema, `${at}.input_schema`);
    return { name: t.name, ...(typeof t.description === 'string' ? { description: t.description } : {}), parameters: t.input_schema, strict: true };
  });
}

/** `tool_choice`: `{type: "auto" | "any" | "none"}` or `{type: "tool", name}`. Default: auto with tools. */
export function parseAnthropicToolChoice(value: unknown, tools: readonly ToolDef[]): ToolChoice {
  if (value === undefined || value === null) return { mode: tools.length > 0 ? 'auto' : 'none' };
  if (!isJsonObject(value)) throw invalidRequest('"tool_choice" must be an object like { "type": "auto" }', 'tool_choice', 'invalid_type');
  if (value.disable_parallel_tool_use !== undefined && typeof value.disable_parallel_tool_use !== 'boolean') throw invalidRequest('tool_choice.disable_parallel_tool_use must be true or false', 'tool_choice.disable_parallel_tool_use', 'invalid_type');
  switch (value.type) {
    case 'none':
      return { mode: 'none' };
    case 'auto':
    case 'any':
      if (tools.length === 0) throw invalidRequest(`tool_choice is "${value.type}" but no "tools" were given`, 'tool_choice');
      return { mode: value.type === 'any' ? 'required' : 'auto' };
    case 'tool':
      if (typeof value.name !== 'string') throw invalidRequest('tool_choice of type "tool" needs the tool\'s "name"', 'tool_choice.name', 'missing_required_parameter');
      if (!tools.some((t) => t.name === value.name)) throw invalidRequest(`tool_choice names the tool "${value.name}", which is not among "tools"`, 'tool_choice.name');
      return { mode: 'named', name: value.name };
    default:
      throw invalidRequest(`tool_choice.type must be "auto", "any", "tool" or "none" (got ${JSON.stringify(value.type)})`, 'tool_choice.type');
  }
}

/** The conversation part of a request (shared by /v1/messages and /v1/messages/count_tokens). */
export function parseAnthropicConversation(b: JsonObject): { conversation: ChatConversation; prefill: string } {
  const { messages, prefill } = parseAnthropicMessages(b.messages);
  if (b.system !== undefined && b.system !== null) {
    const system = textOf(b.system, 'system');
    if (system !== '') messages.unshift({ role: 'system', content: system });
  }
  const tools = parseAnthropicTools(b.tools);
  const choice = parseAnthropicToolChoice(b.tool_choice, tools);
  if (isJsonObject(b.thinking) && b.thinking.type === 'enabled') throw invalidRequest('extended thinking is not available: the models served here do not reason in separate blocks', 'thinking', 'unsupported_value');
  return { conversation: { messages, tools, choice, format: null }, prefill };
}

/** Parses a POST /v1/messages body. */
export function parseAnthropicRequest(b: JsonObject): AnthropicRequest {
  const model = requireString(b, 'model');
  if (b.max_tokens === undefined || b.max_tokens === null) throw invalidRequest('"max_tokens" is required: the most tokens to generate', 'max_tokens', 'missing_required_parameter');
  const maxTokens = optionalNumber(b, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, 1, true);
  const { conversation, prefill } = parseAnthropicConversation(b);
  if (b.metadata !== undefined && b.metadata !== null) {
    if (!isJsonObject(b.metadata)) throw invalidRequest('"metadata" must be an object like { "user_id": "…" }', 'metadata', 'invalid_type');
    if (b.metadata.user_id !== undefined && b.metadata.user_id !== null && typeof b.metadata.user_id !== 'string') throw invalidRequest('metadata.user_id must be a string', 'metadata.user_id', 'invalid_type');
  }
  let stopSequences: string[] = [];
  if (b.stop_sequences !== undefined && b.stop_sequences !== null) {
    if (!Array.isArray(b.stop_sequences) || !b.stop_sequences.every((s): s is string => typeof s === 'string')) throw invalidRequest('"stop_sequences" must be an array of strings', 'stop_sequences', 'invalid_type');
    stopSequences = b.stop_sequences.filter((s) => s.length > 0);
  }
  const topP = optionalNumber(b, 'top_p', 0, 1, 1);
  if (topP === 0) throw invalidRequest('"top_p" must be greater than 0', 'top_p');
  const sampling: SamplingParams = {
    temperature: optionalNumber(b, 'temperature', 0, 1, 1),
    topP,
    topK: optionalNumber(b, 'top_k', 0, Number.MAX_SAFE_INTEGER, 0, true),
    minP: 0,
    repetitionPenalty: 1,
    frequencyPenalty: 0,
    presencePenalty: 0,
    penaltyLastN: 64,
    seed: null,
  };
  const speculate = parseSpeculate(b, 'speculate');
  return { model, conversation, prefill, maxTokens, sampling, stopSequences, stream: optionalBoolean(b, 'stream', false), ...(speculate !== undefined ? { speculate } : {}) };
}
