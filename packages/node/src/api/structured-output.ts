import { Ajv } from 'ajv';
import { compileJsonSchema, GrammarSchemaError } from '../grammar/json-schema-compiler.js';
import type { GrammarSpec } from '../grammar/grammar-spec.js';
import { invalidRequest } from './openai-errors.js';
import { isJsonObject } from './openai-request.js';

type Json = Record<string, unknown>;

/**
 * Parses a structured-output format into the grammar the sampler enforces: `{type: "text"}` (none),
 * `{type: "json_object"}` (any JSON object), `{type: "json_schema", json_schema: {name, schema, strict}}` (chat) or
 * the Responses API's flat `{type: "json_schema", name, schema, strict}`. The grammar enforces the schema whether
 * or not `strict` is set; a schema it cannot enforce is a 400 that names the keyword.
 */
export function parseResponseFormat(value: unknown, param: string): GrammarSpec | null {
  if (value === undefined || value === null) return null;
  if (!isJsonObject(value)) throw invalidRequest(`"${param}" must be an object like { "type": "json_schema", … }`, param, 'invalid_type');
  switch (value.type) {
    case 'text':
      return null;
    case 'json_object':
      return { type: 'json', schema: null };
    case 'json_schema': {
      const nested = isJsonObject(value.json_schema);
      const spec: Json = nested ? (value.json_schema as Json) : value;
      const at = nested ? `${param}.json_schema` : param;
      if (typeof spec.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(spec.name)) throw invalidRequest(`${at}.name must be 1–64 letters, digits, "_" or "-"`, `${at}.name`, spec.name === undefined ? 'missing_required_parameter' : 'invalid_value');
      const schema = spec.schema ?? { type: 'object' };
      if (!isJsonObject(schema)) throw invalidRequest(`${at}.schema must be a JSON Schema object`, `${at}.schema`, 'invalid_type');
      checkEnforceableSchema(schema, `${at}.schema`);
      return { type: 'json', schema };
    }
    default:
      throw invalidRequest(`${param}.type must be "text", "json_object" or "json_schema" (got ${JSON.stringify(value.type)})`, `${param}.type`, 'invalid_value');
  }
}

/** Checks a schema against the JSON Schema meta-schema (ajv), so a malformed one gets the validator's exact words. */
const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });

/** Throws a 400 (naming `param`) when `schema` is not a valid JSON Schema or cannot be enforced by the grammar. */
export function checkEnforceableSchema(schema: object, param: string): void {
  try {
    ajv.compile(schema);
  } catch (err) {
    throw invalidRequest(`${param} is not a valid JSON Schema: ${(err as Error).message}`, param, 'invalid_value');
  }
  try {
    compileJsonSchema(schema);
  } catch (err) {
    if (err instanceof GrammarSchemaError) throw invalidRequest(`${param}: ${err.message}`, param, 'invalid_value');
    throw err;
  }
}

/** Fewest tokens a grammar's output can take (one per byte at worst): max_tokens below it cannot work. */
export function grammarMinTokens(spec: GrammarSpec): number {
  const g = compileJsonSchema(spec.schema);
  const enc = new TextEncoder();
  return g.minBytes[g.root] + enc.encode(spec.prefix ?? '').length + enc.encode(spec.suffix ?? '').length;
}
