import { randomUUID } from 'node:crypto';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import type { ChatMessage, ChatTemplate, ChatTool } from '../tokenizer/chat-template.js';
import { invalidRequest } from './openai-errors.js';
import { checkEnforceableSchema } from './structured-output.js';
import { isJsonObject } from './openai-request.js';

/**
 * Tool calling: the tools a request offers, how they reach the prompt, the grammar that forces a call, and reading
 * calls back out of what the model wrote.
 *
 * Two output conventions are understood: Hermes (`<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, what
 * Qwen2.5, SmolLM3 and Hermes-style templates teach; also our fallback) and Llama 3.x (a bare
 * `{"name": …, "parameters": {…}}`, chosen when the template speaks of `<|python_tag|>` or "parameters").
 */

export interface ToolDef {
  name: string;
  description?: string;
  /** JSON Schema of the arguments (an object schema). */
  parameters: Record<string, unknown>;
  strict: boolean;
}

export type ToolChoice = { mode: 'none' } | { mode: 'auto' } | { mode: 'required' } | { mode: 'named'; name: string };

export type ToolCallFormat = 'hermes' | 'llama3';

export interface ParsedToolCall {
  id: string;
  name: string;
  /** The arguments as a JSON text (what OpenAI's API returns). */
  arguments: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HERMES_OPEN = '<tool_call>';
const HERMES_CLOSE = '</tool_call>';

type Json = Record<string, unknown>;

/**
 * Parses `tools`: chat completions nest each function (`{type: "function", function: {name, …}}`); the Responses
 * API flattens it (`{type: "function", name, …}`). Each tool's parameters must compile to a grammar, so a forced
 * call can be guaranteed; a schema the grammar cannot enforce is a 400 naming the tool.
 */
export function parseTools(value: unknown, param = 'tools'): ToolDef[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidRequest(`"${param}" must be an array of tools`, param, 'invalid_type');
  if (value.length > 128) throw invalidRequest(`"${param}" takes at most 128 tools (got ${value.length})`, param);
  const names = new Set<string>();
  return value.map((t: unknown, i) => {
    const at = `${param}[${i}]`;
    if (!isJsonObject(t)) throw invalidRequest(`${at} must be an object like { "type": "function", "function": { "name": … } }`, at, 'invalid_type');
    if (t.type !== 'function') throw invalidRequest(`${at}.type ${JSON.stringify(t.type)} is not supported: only "function" tools`, `${at}.type`, 'unsupported_value');
    const nested = isJsonObject(t.function);
    const fn: Json = nested ? (t.function as Json) : t;
    const fnAt = nested ? `${at}.function` : at;
    if (typeof fn.name !== 'string' || !NAME.test(fn.name)) throw invalidRequest(`${fnAt}.name must be 1–64 letters, digits, "_" or "-"`, `${fnAt}.name`, fn.name === undefined ? 'missing_required_parameter' : 'invalid_value');
    if (names.has(fn.name)) throw invalidRequest(`two tools are named "${fn.name}"`, `${fnAt}.name`);
    names.add(fn.name);
    const parameters = fn.parameters ?? { type: 'object', properties: {} };
    if (!isJsonObject(parameters)) throw invalidRequest(`${fnAt}.parameters must be a JSON Schema object`, `${fnAt}.parameters`, 'invalid_type');
    checkEnforceableSchema(parameters, `${fnAt}.parameters`);
    if (fn.description !== undefined && typeof fn.description !== 'string') throw invalidRequest(`${fnAt}.description must be a string`, `${fnAt}.description`, 'invalid_type');
    return { name: fn.name, ...(typeof fn.description === 'string' ? { description: fn.description } : {}), parameters, strict: fn.strict === true };
  });
}

/** Parses `tool_choice` ("none" | "auto" | "required" | a named function, nested or flat). Default: auto with tools. */
export function parseToolChoice(value: unknown, tools: readonly ToolDef[], param = 'tool_choice'): ToolChoice {
  if (value === undefined || value === null) return { mode: tools.length > 0 ? 'auto' : 'none' };
  if (value === 'none' || value === 'auto' || value === 'required') {
    if (value !== 'none' && tools.length === 0) throw invalidRequest(`"${param}" is "${value}" but no "tools" were given`, param);
    return { mode: value };
  }
  if (isJsonObject(value) && value.type === 'function') {
    const name = isJsonObject(value.function) ? value.function.name : value.name;
    if (typeof name !== 'string') throw invalidRequest(`"${param}" names no function`, param, 'invalid_value');
    if (!tools.some((t) => t.name === name)) throw invalidRequest(`"${param}" names the function "${name}", which is not among "tools"`, param, 'invalid_value');
    return { mode: 'named', name };
  }
  throw invalidRequest(`"${param}" must be "none", "auto", "required" or { "type": "function", "function": { "name": … } }`, param, 'invalid_value');
}

/** Which output convention the model's template teaches. */
export function toolCallFormat(template: ChatTemplate): ToolCallFormat {
  const src = template.text ?? '';
  if (src.includes(HERMES_OPEN)) return 'hermes';
  if (src.includes('<|python_tag|>') || (template.takesTools && src.includes('"parameters"'))) return 'llama3';
  return 'hermes';
}

/**
 * The grammar of a forced call (tool_choice "required" or a named function): one call to one of the allowed tools,
 * its arguments valid against that tool's schema. Null when the model may answer freely.
 */
export function toolCallGrammar(tools: readonly ToolDef[], choice: ToolChoice, format: ToolCallFormat): GrammarSpec | null {
  if (choice.mode !== 'required' && choice.mode !== 'named') return null;
  const allowed = choice.mode === 'named' ? tools.filter((t) => t.name === choice.name) : tools;
  const argsKey = format === 'llama3' ? 'parameters' : 'arguments';
  const calls = allowed.map((t) => ({
    type: 'object',
    properties: { name: { const: t.name }, [argsKey]: t.parameters },
    required: ['name', argsKey],
  }));
  const schema = calls.length === 1 ? calls[0] : { anyOf: calls };
  return format === 'hermes' ? { type: 'json', schema, prefix: `${HERMES_OPEN}\n`, suffix: `\n${HERMES_CLOSE}` } : { type: 'json', schema };
}

/** Tool instructions for a model whose template does not render tools (the documented fallback). */
export function toolsSystemText(tools: readonly ToolDef[]): string {
  const list = tools.map((t) => JSON.stringify({ type: 'function', function: { name: t.name, description: t.description ?? '', parameters: t.parameters } })).join('\n');
  return (
    'You may call functions. Their signatures:\n<tools>\n' +
    list +
    '\n</tools>\nTo call one, answer with\n<tool_call>\n{"name": <function name>, "arguments": <arguments object>}\n</tool_call>'
  );
}

/**
 * The conversation as the template should see it. A template that takes tools gets them (and the messages'
 * tool_calls and tool turns) as they are. Otherwise the tools are described in the system message, past calls are
 * written in the Hermes form and tool results become user turns in `<tool_response>` tags.
 */
export function renderWithTools(template: ChatTemplate, messages: readonly ChatMessage[], tools: readonly ToolDef[], choice: ToolChoice): string {
  const offered = choice.mode === 'none' ? [] : tools;
  const chatTools: ChatTool[] = offered.map((t) => ({ type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters } }));
  if (template.takesTools) return template.render(messages, true, chatTools);
  const out: ChatMessage[] = messages.map((m) => {
    if (m.role === 'assistant' && m.tool_calls && m.tool_calls.length > 0) {
      const calls = m.tool_calls.map((c) => `${HERMES_OPEN}\n${JSON.stringify({ name: c.function.name, arguments: c.function.arguments })}\n${HERMES_CLOSE}`).join('\n');
      return { role: 'assistant', content: m.content ? `${m.content}\n${calls}` : calls };
    }
    if (m.role === 'tool') return template.isFallback ? { role: 'tool', content: m.content } : { role: 'user', content: `<tool_response>\n${m.content}\n</tool_response>` };
    return { role: m.role, content: m.content };
  });
  if (offered.length > 0) {
    const text = toolsSystemText(offered);
    if (out[0]?.role === 'system') out[0] = { role: 'system', content: `${out[0].content}\n\n${text}` };
    else out.unshift({ role: 'system', content: text });
  }
  return template.render(out, true);
}

const COMPACT_CALL_HEAD = /^\{"name":"([A-Za-z0-9_-]{1,64})","(?:arguments|parameters)":/;

export function newCallId(): string {
  return `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`;
}

/**
 * A call from parsed JSON. The arguments keep the model's own text when the call is in the compact form the
 * grammar writes (so what was streamed piece by piece is exactly the final `arguments`); otherwise re-serialised.
 */
function callFrom(value: unknown, tools: readonly ToolDef[], raw?: string): ParsedToolCall | null {
  if (!isJsonObject(value) || typeof value.name !== 'string' || !tools.some((t) => t.name === value.name)) return null;
  const args = value.arguments ?? value.parameters ?? {};
  const head = raw === undefined ? null : COMPACT_CALL_HEAD.exec(raw);
  const text = head && raw!.endsWith('}') ? raw!.slice(head[0].length, -1) : typeof args === 'string' ? args : JSON.stringify(args);
  return { id: newCallId(), name: value.name, arguments: text };
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Reads tool calls out of generated text: every `<tool_call>…</tool_call>` block naming an offered tool (an
 * unterminated last block too), or a whole answer that is one Llama-style JSON call. What is not a call stays content.
 */
export function parseToolCalls(text: string, tools: readonly ToolDef[]): { content: string | null; calls: ParsedToolCall[] } {
  const calls: ParsedToolCall[] = [];
  let content = '';
  let rest = text;
  for (;;) {
    const at = rest.indexOf(HERMES_OPEN);
    if (at < 0) break;
    const end = rest.indexOf(HERMES_CLOSE, at);
    const body = rest.slice(at + HERMES_OPEN.length, end < 0 ? undefined : end);
    const call = callFrom(tryJson(body.trim()), tools, body.trim());
    if (!call) break;
    calls.push(call);
    content += rest.slice(0, at);
    rest = end < 0 ? '' : rest.slice(end + HERMES_CLOSE.length);
  }
  content += rest;
  if (calls.length === 0) {
    const bare = content.trim().replace(/^<\|python_tag\|>/, '');
    const call = bare.startsWith('{') ? callFrom(tryJson(bare), tools, bare) : null;
    if (call) return { content: null, calls: [call] };
  }
  const trimmed = content.trim();
  return { content: calls.length > 0 && trimmed === '' ? null : calls.length > 0 ? trimmed : text, calls };
}

/**
 * Streaming with tools: passes content through but holds back, from the first sign of a tool call (`<tool_call>`
 * or a leading `{` of a Llama-style call), everything to the end, where `parseToolCalls` reads it.
 */
export class ToolCallStreamFilter {
  private held = '';
  private holding = false;
  private sawContent = false;

  push(delta: string): string {
    if (this.holding) {
      this.held += delta;
      return '';
    }
    const text = this.held + delta;
    this.held = '';
    if (!this.sawContent && text.trimStart().startsWith('{')) {
      this.holding = true;
      this.held = text;
      return '';
    }
    const at = text.indexOf(HERMES_OPEN);
    if (at >= 0) {
      this.holding = true;
      this.held = text.slice(at);
      return this.emit(text.slice(0, at));
    }
    // Keep a tail that could grow into "<tool_call>" (or, before any content, a leading "{").
    for (let k = Math.min(HERMES_OPEN.length - 1, text.length); k > 0; k--) {
      if (HERMES_OPEN.startsWith(text.slice(-k))) {
        this.held = text.slice(-k);
        return this.emit(text.slice(0, -k));
      }
    }
    if (!this.sawContent && text.trim() === '') {
      this.held = text;
      return '';
    }
    return this.emit(text);
  }

  /** The text held back (a tool call, or a tail that turned out not to be one). */
  flush(): string {
    const h = this.held;
    this.held = '';
    return h;
  }

  private emit(s: string): string {
    if (s.trim() !== '') this.sawContent = true;
    return s;
  }
}

/**
 * Streams a forced call (its output is fixed by the grammar: `<tool_call>\n{"name":"…","arguments":` … `}\n</tool_call>`,
 * or the Llama form) as it is generated: the name as soon as it is complete, then the argument text piece by piece,
 * holding back only what may be the closing suffix.
 */
export class ForcedCallStreamer {
  private text = '';
  private head: { name: string; at: number } | null = null;
  private sent = 0;
  private readonly lead: string;
  private readonly tail: number;

  constructor(format: ToolCallFormat) {
    this.lead = format === 'hermes' ? `${HERMES_OPEN}\n` : '';
    this.tail = format === 'hermes' ? 1 + `\n${HERMES_CLOSE}`.length : 1;
  }

  /** New text in; out: the call's name once known (`name`), and argument text ready to send. */
  push(delta: string): { name?: string; args: string } {
    this.text += delta;
    let name: string | undefined;
    if (!this.head) {
      const m = this.text.startsWith(this.lead) ? COMPACT_CALL_HEAD.exec(this.text.slice(this.lead.length)) : null;
      if (!m) return { args: '' };
      this.head = { name: m[1], at: this.lead.length + m[0].length };
      name = m[1];
      this.sent = this.head.at;
    }
    const ready = Math.max(this.sent, this.text.length - this.tail);
    const args = this.text.slice(this.sent, ready);
    this.sent = ready;
    return { ...(name ? { name } : {}), args };
  }

  /** Argument text sent so far (to check against the final call). */
  get streamed(): string {
    return this.head ? this.text.slice(this.head.at, this.sent) : '';
  }

  get started(): boolean {
    return this.head !== null;
  }
}
