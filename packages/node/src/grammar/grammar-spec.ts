/**
 * The constraint a request's output must satisfy, as it travels to the last pipeline stage (the `open` block of the
 * first activation frame): JSON matching `schema` (null: any JSON object), optionally between a literal prefix and
 * suffix (e.g. `<tool_call>\n` … `\n</tool_call>` for a Hermes-style tool call). The stage compiles it itself.
 */
export interface GrammarSpec {
  type: 'json';
  /** A JSON Schema, or null for any JSON object (`response_format: json_object`). */
  schema: unknown;
  prefix?: string;
  suffix?: string;
}

export class GrammarSpecError extends Error {
  override name = 'GrammarSpecError';
}

/** Largest serialised spec a stage accepts (a schema is small; this bounds what a peer can make us compile). */
export const MAX_GRAMMAR_SPEC_CHARS = 64 * 1024;

/** Validates a spec received from a peer (shape and size only; compiling it checks the schema). */
export function parseGrammarSpec(v: unknown): GrammarSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new GrammarSpecError('the grammar must be an object');
  const o = v as Record<string, unknown>;
  if (o.type !== 'json') throw new GrammarSpecError(`grammar type ${JSON.stringify(o.type)} is not supported (only "json")`);
  const text = JSON.stringify(o.schema ?? null);
  if (text.length > MAX_GRAMMAR_SPEC_CHARS) throw new GrammarSpecError(`the grammar's schema is larger than ${MAX_GRAMMAR_SPEC_CHARS} characters`);
  const lit = (k: 'prefix' | 'suffix') => {
    const x = o[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'string' || x.length > 256) throw new GrammarSpecError(`grammar.${k} must be a string of at most 256 characters`);
    return x;
  };
  const prefix = lit('prefix');
  const suffix = lit('suffix');
  return { type: 'json', schema: o.schema ?? null, ...(prefix ? { prefix } : {}), ...(suffix ? { suffix } : {}) };
}
