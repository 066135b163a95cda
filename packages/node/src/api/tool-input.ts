import { Ajv, type ValidateFunction } from 'ajv';
import type { ParsedToolCall, ToolDef } from './tool-calls.js';

const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });
const validators = new WeakMap<object, ValidateFunction>();

/**
 * A call's arguments as the object the dialects that send objects (Anthropic's `input`, Ollama's `arguments`)
 * need, checked against the tool's schema. A forced call always passes (the grammar wrote it); a call the model
 * wrote freely (`auto`) that does not parse to an object or does not validate gives null, and the caller keeps it
 * as text instead of handing the client input its tool cannot take.
 */
export function toolInput(call: ParsedToolCall, tools: readonly ToolDef[]): Record<string, unknown> | null {
  const tool = tools.find((t) => t.name === call.name);
  if (!tool) return null;
  let value: unknown;
  try {
    value = JSON.parse(call.arguments);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  let validate = validators.get(tool.parameters);
  if (!validate) {
    validate = ajv.compile(tool.parameters);
    validators.set(tool.parameters, validate);
  }
  return validate(value) ? (value as Record<string, unknown>) : null;
}

/** How a call the client cannot be given as a call is kept in the text: the form the model wrote it in. */
export function callAsText(call: ParsedToolCall): string {
  return `<tool_call>\n{"name":${JSON.stringify(call.name)},"arguments":${call.arguments}}\n</tool_call>`;
}
