/**
 * Compiles a JSON Schema (the subset OpenAI's structured outputs accept, plus a little) into a grammar graph: a flat
 * list of nodes that reference each other by index, so `$ref` recursion needs no special case. The graph is what the
 * byte-level JSON automaton (`json-grammar.ts`) walks. Pure: no I/O, deterministic, bounded by explicit limits.
 *
 * What the output looks like, by design (all of it valid JSON, none of it relying on the model's good will):
 * - compact: no whitespace between tokens;
 * - object properties in the schema's declared order; optional ones may be left out, undeclared ones never appear
 *   (for a schema without `properties`, any keys with any values);
 * - strings without `\u` escapes; numbers with at most 15 integer digits, 15 decimals and a 2-digit exponent.
 */

export class GrammarSchemaError extends Error {
  override name = 'GrammarSchemaError';
  constructor(
    message: string,
    /** JSON pointer of the offending part of the schema. */
    readonly path: string,
  ) {
    super(path ? `${message} (at ${path})` : message);
  }
}

export interface ObjectProperty {
  key: string;
  /** `"key":` as UTF-8 bytes, what the automaton matches. */
  keyBytes: Uint8Array;
  node: number;
  required: boolean;
}

export type GrammarNode =
  | { kind: 'object'; props: ObjectProperty[] }
  /** Any keys (strings) with values of `values`. */
  | { kind: 'freeObject'; values: number }
  | { kind: 'array'; items: number; minItems: number; maxItems: number }
  | { kind: 'string'; minLength: number; maxLength: number }
  | { kind: 'number'; integer: boolean; nonNegative: boolean }
  /** One of fixed byte strings (enum, const, true/false/null). */
  | { kind: 'literal'; options: Uint8Array[] }
  | { kind: 'union'; options: number[] }
  /** Any JSON value. */
  | { kind: 'any' };

export interface GrammarGraph {
  nodes: GrammarNode[];
  root: number;
  /** Fewest bytes that form a valid value of each node. */
  minBytes: number[];
}

export interface CompileLimits {
  /** Most nodes a schema may compile to. */
  maxNodes: number;
  /** Most options of an integer range compiled to a literal set. */
  maxIntegerRange: number;
}

const DEFAULT_LIMITS: CompileLimits = { maxNodes: 2000, maxIntegerRange: 256 };
const utf8 = new TextEncoder();

type Schema = Record<string, unknown>;

/** Keywords that only annotate: accepted and ignored. */
const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'examples', 'default', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions', 'strict', 'name']);
/** Keywords the grammar enforces (per type below). */
const HANDLED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems', 'minLength', 'maxLength',
  'enum', 'const', 'anyOf', 'oneOf', '$ref', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'nullable',
]);

function isSchema(x: unknown): x is Schema {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function ptr(path: string, key: string | number): string {
  return `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;
}

/** A JSON value's compact serialisation, as a literal the grammar can match. */
function literalBytes(value: unknown, path: string): Uint8Array {
  const text = JSON.stringify(value);
  if (text === undefined) throw new GrammarSchemaError('enum and const values must be JSON values', path);
  if (/\\u/.test(text)) throw new GrammarSchemaError('enum and const strings may not hold control characters', path);
  return utf8.encode(text);
}

/** A keyword's whole number ≥ 0, or `fallback` when the schema leaves it out. */
function wholeNumber(s: Schema, key: string, path: string, fallback: number): number {
  const v = s[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new GrammarSchemaError(`"${key}" must be a whole number ≥ 0`, ptr(path, key));
  return v;
}

/** The types a schema allows (none: any value), from `type`, `nullable`, or what `properties` / `items` imply. */
function schemaTypes(s: Schema, path: string): string[] {
  let types: string[];
  if (typeof s.type === 'string') types = [s.type];
  else if (Array.isArray(s.type) && s.type.every((t) => typeof t === 'string') && s.type.length > 0) types = s.type as string[];
  else if (s.type === undefined) types = s.properties !== undefined ? ['object'] : s.items !== undefined ? ['array'] : [];
  else throw new GrammarSchemaError('"type" must be a type name or a list of them', ptr(path, 'type'));
  if (s.nullable === true && !types.includes('null')) types = [...types, 'null'];
  return types;
}

interface NumericBounds {
  lo: number | undefined;
  hi: number | undefined;
  xlo: number | undefined;
  xhi: number | undefined;
}

/** `minimum`, `maximum` and their exclusive forms, each a finite number or absent. */
function numericBounds(s: Schema, path: string): NumericBounds {
  const bound = (k: string): number | undefined => {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new GrammarSchemaError(`"${k}" must be a number`, ptr(path, k));
    return v;
  };
  return { lo: bound('minimum'), hi: bound('maximum'), xlo: bound('exclusiveMinimum'), xhi: bound('exclusiveMaximum') };
}

/**
 * Compiles `schema` (null = any JSON object, the `json_object` response format). Throws GrammarSchemaError naming
 * the keyword and place it cannot enforce, so a client learns exactly what to change.
 */
export function compileJsonSchema(schema: unknown, limits: Partial<CompileLimits> = {}): GrammarGraph {
  const compiler = new SchemaCompiler(schema, { ...DEFAULT_LIMITS, ...limits });
  const root = compiler.compile(schema === null || schema === undefined ? { type: 'object' } : schema, '');
  const graph: GrammarGraph = { nodes: compiler.nodes, root, minBytes: computeMinBytes(compiler.nodes) };
  if (!Number.isFinite(graph.minBytes[root])) throw new GrammarSchemaError('the schema admits no finite value (a required property refers back to itself)', '');
  return graph;
}

/**
 * One schema's compilation: the graph's nodes in the order they are added (a node that contains others reserves its
 * slot first, so a `$ref` back to it finds it), and the `$ref` targets already compiled.
 */
class SchemaCompiler {
  readonly nodes: GrammarNode[] = [];
  private readonly byRef = new Map<string, number>();

  constructor(
    private readonly rootSchema: unknown,
    private readonly lim: CompileLimits,
  ) {}

  private add(n: GrammarNode): number {
    if (this.nodes.length >= this.lim.maxNodes) throw new GrammarSchemaError(`the schema is too large (more than ${this.lim.maxNodes} parts)`, '');
    this.nodes.push(n);
    return this.nodes.length - 1;
  }

  /** Reserves a slot (for $ref targets, which may refer to themselves). */
  private reserve(): number {
    return this.add({ kind: 'any' });
  }

  compile(s: unknown, path: string): number {
    if (s === true || (isSchema(s) && Object.keys(s).every((k) => ANNOTATIONS.has(k)))) return this.add({ kind: 'any' });
    if (!isSchema(s)) throw new GrammarSchemaError('a schema must be an object (or true)', path);
    for (const k of Object.keys(s)) {
      if (!ANNOTATIONS.has(k) && !HANDLED.has(k) && !k.startsWith('x-')) {
        throw new GrammarSchemaError(`the keyword "${k}" cannot be enforced by constrained sampling; leave it out`, ptr(path, k));
      }
    }
    if (typeof s.$ref === 'string') return this.resolveRef(s.$ref, ptr(path, '$ref'));
    if (s.const !== undefined) return this.add({ kind: 'literal', options: [literalBytes(s.const, ptr(path, 'const'))] });
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) throw new GrammarSchemaError('"enum" must be a non-empty array', ptr(path, 'enum'));
      return this.add({ kind: 'literal', options: s.enum.map((v, i) => literalBytes(v, ptr(ptr(path, 'enum'), i))) });
    }
    const alternatives = s.anyOf ?? s.oneOf;
    if (alternatives !== undefined) return this.compileAlternatives(s, alternatives, path);
    const types = schemaTypes(s, path);
    if (types.length === 0) return this.add({ kind: 'any' });
    if (types.length === 1) return this.compileType(s, types[0], path);
    const slot = this.reserve();
    this.nodes[slot] = { kind: 'union', options: types.map((t) => this.compileType(s, t, path)) };
    return slot;
  }

  private resolveRef(ref: string, path: string): number {
    const known = this.byRef.get(ref);
    if (known !== undefined) return known;
    if (!ref.startsWith('#')) throw new GrammarSchemaError(`only local references ("#/$defs/…") are supported, not ${JSON.stringify(ref)}`, path);
    let target: unknown = this.rootSchema;
    for (const raw of ref.slice(1).split('/').filter((s) => s !== '')) {
      const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
      target = isSchema(target) ? target[part] : undefined;
    }
    if (target === undefined) throw new GrammarSchemaError(`the reference ${JSON.stringify(ref)} points nowhere`, path);
    const slot = this.reserve();
    this.byRef.set(ref, slot);
    this.nodes[slot] = this.nodes[this.compile(target, ref)];
    return slot;
  }

  /** `anyOf` (or `oneOf`, which the output cannot tell apart: one of its options is what is written). */
  private compileAlternatives(s: Schema, alternatives: unknown, path: string): number {
    const key = s.anyOf !== undefined ? 'anyOf' : 'oneOf';
    if (!Array.isArray(alternatives) || alternatives.length === 0) throw new GrammarSchemaError(`"${key}" must be a non-empty array of schemas`, ptr(path, key));
    const slot = this.reserve();
    const options = alternatives.map((a, i) => this.compile(a, ptr(ptr(path, key), i)));
    this.nodes[slot] = { kind: 'union', options };
    return slot;
  }

  private compileType(s: Schema, type: string, path: string): number {
    switch (type) {
      case 'null':
        return this.add({ kind: 'literal', options: [utf8.encode('null')] });
      case 'boolean':
        return this.add({ kind: 'literal', options: [utf8.encode('true'), utf8.encode('false')] });
      case 'string':
        return this.compileString(s, path);
      case 'integer':
      case 'number':
        return this.compileNumber(s, type === 'integer', path);
      case 'array':
        return this.compileArray(s, path);
      case 'object':
        return this.compileObject(s, path);
      default:
        throw new GrammarSchemaError(`unknown type ${JSON.stringify(type)}`, ptr(path, 'type'));
    }
  }

  private compileString(s: Schema, path: string): number {
    const minLength = wholeNumber(s, 'minLength', path, 0);
    const maxLength = wholeNumber(s, 'maxLength', path, Number.MAX_SAFE_INTEGER);
    if (maxLength < minLength) throw new GrammarSchemaError('"maxLength" is below "minLength"', ptr(path, 'maxLength'));
    return this.add({ kind: 'string', minLength, maxLength });
  }

  private compileArray(s: Schema, path: string): number {
    const minItems = wholeNumber(s, 'minItems', path, 0);
    const maxItems = wholeNumber(s, 'maxItems', path, Number.MAX_SAFE_INTEGER);
    if (maxItems < minItems) throw new GrammarSchemaError('"maxItems" is below "minItems"', ptr(path, 'maxItems'));
    if (Array.isArray(s.items)) throw new GrammarSchemaError('tuple "items" (an array of schemas) is not supported', ptr(path, 'items'));
    const slot = this.reserve();
    const items = s.items === undefined ? this.add({ kind: 'any' }) : this.compile(s.items, ptr(path, 'items'));
    this.nodes[slot] = { kind: 'array', items, minItems, maxItems };
    return slot;
  }

  private compileObject(s: Schema, path: string): number {
    const slot = this.reserve();
    const props = s.properties;
    if (props === undefined) {
      const ap = s.additionalProperties;
      const values = ap === undefined || ap === true ? this.add({ kind: 'any' }) : ap === false ? -1 : this.compile(ap, ptr(path, 'additionalProperties'));
      this.nodes[slot] = values < 0 ? { kind: 'object', props: [] } : { kind: 'freeObject', values };
      return slot;
    }
    if (!isSchema(props)) throw new GrammarSchemaError('"properties" must be an object', ptr(path, 'properties'));
    const required = s.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string')) throw new GrammarSchemaError('"required" must be an array of property names', ptr(path, 'required'));
    for (const r of required as string[]) {
      if (!(r in props)) throw new GrammarSchemaError(`the required property "${r}" is not in "properties"`, ptr(path, 'required'));
    }
    const list: ObjectProperty[] = Object.entries(props).map(([key, sub]) => {
      const keyText = JSON.stringify(key);
      if (/\\u/.test(keyText)) throw new GrammarSchemaError('property names may not hold control characters', ptr(ptr(path, 'properties'), key));
      return { key, keyBytes: utf8.encode(`${keyText}:`), node: this.compile(sub, ptr(ptr(path, 'properties'), key)), required: (required as string[]).includes(key) };
    });
    this.nodes[slot] = { kind: 'object', props: list };
    return slot;
  }

  /** Numbers: bounds only where the grammar can hold them (a small integer range as literals, or "minimum": 0). */
  private compileNumber(s: Schema, integer: boolean, path: string): number {
    const bounds = numericBounds(s, path);
    let { lo, hi } = bounds;
    const { xlo, xhi } = bounds;
    if (xlo === undefined && xhi === undefined && lo === undefined && hi === undefined) return this.add({ kind: 'number', integer, nonNegative: false });
    if (integer) {
      if (xlo !== undefined) lo = Math.max(lo ?? -Infinity, Math.floor(xlo) + 1);
      if (xhi !== undefined) hi = Math.min(hi ?? Infinity, Math.ceil(xhi) - 1);
      const from = lo === undefined ? undefined : Math.ceil(lo);
      const to = hi === undefined ? undefined : Math.floor(hi);
      if (from !== undefined && to !== undefined) {
        if (to < from) throw new GrammarSchemaError('no integer lies between "minimum" and "maximum"', path);
        if (to - from < this.lim.maxIntegerRange) {
          const options: Uint8Array[] = [];
          for (let v = from; v <= to; v++) options.push(utf8.encode(String(v)));
          return this.add({ kind: 'literal', options });
        }
      }
      if (to === undefined && from !== undefined && from === 0) return this.add({ kind: 'number', integer, nonNegative: true });
    } else if (xhi === undefined && hi === undefined && lo === 0 && xlo === undefined) {
      return this.add({ kind: 'number', integer, nonNegative: true });
    }
    throw new GrammarSchemaError(
      `numeric bounds are enforced for integers with a range of fewer than ${this.lim.maxIntegerRange} values or "minimum": 0 (and for numbers "minimum": 0); use an enum or drop the bound`,
      path,
    );
  }
}

/** Bytes of the shortest remaining properties of an object from property `from` on (commas, keys, values, `}`). */
export function objectTailBytes(props: readonly ObjectProperty[], from: number, needComma: boolean, minBytes: readonly number[]): number {
  let total = 1;
  let comma = needComma;
  for (let j = from; j < props.length; j++) {
    if (!props[j].required) continue;
    total += (comma ? 1 : 0) + props[j].keyBytes.length + minBytes[props[j].node];
    comma = true;
  }
  return total;
}

/** Fewest bytes of a valid value per node: a fixpoint, since references may be recursive. */
function computeMinBytes(nodes: GrammarNode[]): number[] {
  const min = nodes.map(() => Infinity);
  for (let round = 0; round < nodes.length + 2; round++) {
    let changed = false;
    nodes.forEach((n, i) => {
      let v: number;
      switch (n.kind) {
        case 'object':
          v = 1 + objectTailBytes(n.props, 0, false, min);
          break;
        case 'freeObject':
          v = 2;
          break;
        case 'array':
          v = n.minItems === 0 ? 2 : 2 + n.minItems * min[n.items] + (n.minItems - 1);
          break;
        case 'string':
          v = 2 + n.minLength;
          break;
        case 'number':
          v = 1;
          break;
        case 'literal':
          v = Math.min(...n.options.map((o) => o.length));
          break;
        case 'union':
          v = Math.min(...n.options.map((o) => min[o]));
          break;
        case 'any':
          v = 1;
          break;
      }
      if (v < min[i]) {
        min[i] = v;
        changed = true;
      }
    });
    if (!changed) break;
  }
  return min;
}
