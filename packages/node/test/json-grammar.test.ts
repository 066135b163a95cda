import { Ajv } from 'ajv';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/engine/sampler.js';
import { GrammarConstraint, GrammarViolationError } from '../src/grammar/grammar-constraint.js';
import { compileJsonSchema, GrammarSchemaError } from '../src/grammar/json-schema-compiler.js';
import { JsonGrammar } from '../src/grammar/json-grammar.js';
import { buildTokenVocabulary, vocabularyFromBytes, type TokenVocabulary } from '../src/grammar/token-vocabulary.js';
import { openModel } from '../src/model/open-model.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';

const MODELS = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const utf8 = new TextEncoder();

const WEATHER = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 40 },
    unit: { enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer', minimum: 1, maximum: 14 },
    hourly: { type: 'boolean' },
  },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1 },
    age: { type: 'number' },
    tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 },
    address: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/address' }] },
    note: { type: ['string', 'null'] },
  },
  required: ['name', 'age', 'tags', 'address'],
  $defs: { address: { type: 'object', properties: { street: { type: 'string' }, zip: { type: 'string', minLength: 5, maxLength: 5 } }, required: ['zip'] } },
};
const TREE = {
  $ref: '#/$defs/node',
  $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v'] } },
};
const SCHEMAS: [string, unknown][] = [
  ['weather', WEATHER],
  ['person', PERSON],
  ['tree', TREE],
  ['json_object', null],
];

/** Draws uniformly among the allowed tokens until EOS or the budget: the worst "model" the grammar can meet. */
function randomWalk(vocab: TokenVocabulary, schema: unknown, budget: number, seed: number, prefix?: string): { bytes: number[]; steps: number; ended: boolean } {
  const c = new GrammarConstraint(compileJsonSchema(schema), vocab, prefix ? { prefix } : {});
  const rnd = mulberry32(seed);
  const bytes: number[] = [];
  for (let steps = 0; steps < budget; steps++) {
    const allowed = c.allowed(budget - steps);
    expect(allowed.length).toBeGreaterThan(0);
    const t = allowed[Math.floor(rnd() * allowed.length)];
    if (vocab.eosIds.includes(t)) return { bytes, steps, ended: true };
    c.accept(t);
    bytes.push(...vocab.bytes[t]!);
  }
  return { bytes, steps: budget, ended: false };
}

describe('JSON grammar (pure automaton)', () => {
  const ajv = new Ajv({ strict: false });
  it('accepts exactly the compact JSON a schema allows, byte by byte', () => {
    const g = new JsonGrammar(compileJsonSchema(WEATHER));
    const accepts = (s: string) => {
      const st = g.advanceBytes(g.initial(), utf8.encode(s));
      return st.length > 0 && g.canEnd(st);
    };
    expect(accepts('{"city":"Oslo","unit":"celsius"}')).toBe(true);
    expect(accepts('{"city":"Oslo","unit":"celsius","days":14,"hourly":false}')).toBe(true);
    expect(accepts('{"city":"Oslo","unit":"kelvin"}')).toBe(false);
    expect(accepts('{"city":"Oslo"}')).toBe(false); // unit is required
    expect(accepts('{"unit":"celsius","city":"Oslo"}')).toBe(false); // declared order
    expect(accepts('{"city":"Oslo","unit":"celsius","days":15}')).toBe(false);
    expect(accepts('{"city":"Oslo","unit":"celsius","extra":1}')).toBe(false);
    expect(accepts('{"city":"Os\nlo","unit":"celsius"}')).toBe(false); // raw control character
    expect(accepts('{"city":"Os\\"lo","unit":"celsius"}')).toBe(true);
    const any = new JsonGrammar(compileJsonSchema(null));
    const st = any.advanceBytes(any.initial(), utf8.encode('{"a":[1,-2.5e+3,true,null,{"b":"ü"}],"c":{}}'));
    expect(any.canEnd(st)).toBe(true);
    expect(any.advanceBytes(any.initial(), utf8.encode('[1]'))).toHaveLength(0); // json_object: an object
  });

  it('knows the fewest bytes that finish an output, at every prefix of a valid one', () => {
    const g = new JsonGrammar(compileJsonSchema(PERSON));
    expect(g.minCloseBytes(g.initial())).toBe('{"name":"a","age":0,"tags":[""],"address":null}'.length);
    const text = '{"name":"Ann","age":31.5,"tags":["x","y"],"address":{"zip":"12345"},"note":null}';
    let st = g.initial();
    for (let i = 0; i < text.length; i++) {
      st = g.advance(st, text.charCodeAt(i));
      expect(st.length, text.slice(0, i + 1)).toBeGreaterThan(0);
      expect(g.minCloseBytes(st)).toBeLessThanOrEqual(text.length - i - 1);
    }
    expect(g.minCloseBytes(st)).toBe(0);
  });

  it('names what it cannot enforce', () => {
    expect(() => compileJsonSchema({ type: 'string', pattern: '^a+$' })).toThrow(GrammarSchemaError);
    expect(() => compileJsonSchema({ type: 'string', pattern: '^a+$' })).toThrow(/"pattern"/);
    expect(() => compileJsonSchema({ type: 'number', minimum: 0.5 })).toThrow(/numeric bounds/);
    expect(() => compileJsonSchema({ $ref: '#/$defs/x' })).toThrow(/points nowhere/);
    expect(() => compileJsonSchema({ $ref: '#/$defs/x', $defs: { x: { type: 'object', properties: { x: { $ref: '#/$defs/x' } }, required: ['x'] } } })).toThrow(/no finite value/);
    expect(() => compileJsonSchema({ type: 'object', properties: {}, required: ['a'] })).toThrow(/"a" is not in "properties"/);
  });

  for (const [name, schema] of SCHEMAS) {
    it(`random walks through a byte vocabulary always end in valid JSON (${name})`, () => {
      // A vocabulary of the 256 single bytes plus a few multi-byte tokens.
      const pieces: Uint8Array[] = [...Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)), ...['{"', '":', '","', 'true', '"}', ' the', 'é'].map((s) => utf8.encode(s))];
      const vocab = vocabularyFromBytes([...pieces, null], [pieces.length]);
      const validate = schema === null ? (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v) : ajv.compile(schema as object);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 50, max: 300 }), (seed, budget) => {
          const { bytes } = randomWalk(vocab, schema, budget, seed);
          const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)));
          expect(validate(value)).toBe(true);
        }),
        { numRuns: 40 },
      );
    });
  }

  it('refuses a token the grammar does not allow', () => {
    const pieces = [utf8.encode('{'), utf8.encode('x')];
    const c = new GrammarConstraint(compileJsonSchema(null), vocabularyFromBytes([...pieces, null], [2]));
    expect(c.allowed(10)).toEqual([0]);
    expect(() => c.accept(1)).toThrow(GrammarViolationError);
  });
});

describe('grammar over real vocabularies', () => {
  const cases: [string, () => Promise<Tokenizer>, number][] = [
    ['stories260K (SentencePiece, byte fallback)', async () => {
      const m = await openModel(`${MODELS}/stories260k/stories260K.gguf`);
      const t = await loadTokenizer(m.tokenizer);
      await m.close();
      return t;
    }, 20],
    ['SmolLM2 (byte-level BPE, 49k)', () => loadTokenizer({ kind: 'tokenizer-json', path: `${MODELS}/smollm2-135m-instruct-tokenizer/tokenizer.json`, configPath: null }), 5],
  ];
  for (const [name, load, seeds] of cases) {
    describe(name, () => {
      let tok: Tokenizer;
      let vocab: TokenVocabulary;
      beforeAll(async () => {
        tok = await load();
        vocab = buildTokenVocabulary(tok);
      });
      it('token bytes decode to the tokenizer\'s own text', () => {
        expect(vocab.hasAsciiBytes).toBe(true);
        const ids = tok.encode('{"city": "Zürich", "n": 12}', { addBos: false });
        const bytes = ids.flatMap((id) => [...(vocab.bytes[id] ?? [])]);
        expect(new TextDecoder().decode(Uint8Array.from(bytes)).trimStart()).toBe('{"city": "Zürich", "n": 12}');
      });
      it(`random walks give JSON that validates, and finish within the budget (${seeds} seeds per schema)`, () => {
        const ajv = new Ajv({ strict: false });
        for (const [, schema] of SCHEMAS) {
          const validate = schema === null ? () => true : ajv.compile(schema as object);
          for (let seed = 0; seed < seeds; seed++) {
            const budget = new JsonGrammar(compileJsonSchema(schema)).graph.minBytes[compileJsonSchema(schema).root] + (seed % 2 ? 12 : 0) + seed * 7;
            const { bytes, steps } = randomWalk(vocab, schema, budget, seed, seed % 2 ? '<tool_call>\n' : undefined);
            let text = new TextDecoder().decode(Uint8Array.from(bytes));
            if (seed % 2) {
              expect(text.startsWith('<tool_call>\n')).toBe(true);
              text = text.slice('<tool_call>\n'.length);
            }
            expect(steps).toBeLessThanOrEqual(budget);
            expect(validate(JSON.parse(text))).toBe(true);
          }
        }
      });
    });
  }
});
