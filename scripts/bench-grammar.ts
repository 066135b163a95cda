// Cost of constrained sampling per token: the time to compute the allowed-token mask (GrammarConstraint.allowedMask)
// at every step of JSON outputs, on the stories260K vocabulary (512 SentencePiece pieces with byte fallback) and on
// SmolLM2's 49,152-entry byte-level BPE vocabulary. The walk draws uniformly among the allowed tokens (a worst case
// for the masker: long strings of random pieces, every kind of state). Prints median, p95, max per step and the
// one-off cost of building a vocabulary's trie.
//   npx tsx scripts/bench-grammar.ts [--steps N]
import { GrammarConstraint } from '../packages/node/src/grammar/grammar-constraint.js';
import { compileJsonSchema } from '../packages/node/src/grammar/json-schema-compiler.js';
import { buildTokenVocabulary } from '../packages/node/src/grammar/token-vocabulary.js';
import { mulberry32 } from '../packages/node/src/engine/sampler.js';
import { openModel } from '../packages/node/src/model/open-model.js';
import { loadTokenizer } from '../packages/node/src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../packages/node/src/tokenizer/tokenizer.js';

const MODELS = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const stepsArg = process.argv.indexOf('--steps');
const TARGET_STEPS = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : 2000;

const SCHEMAS: [string, unknown][] = [
  ['tool call', { type: 'object', properties: { name: { const: 'get_weather' }, arguments: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'unit'] } }, required: ['name', 'arguments'] }],
  ['person', { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, pets: { type: 'array', items: { type: 'string' } }, home: { anyOf: [{ type: 'null' }, { type: 'object', properties: { town: { type: 'string' } }, required: ['town'] }] } }, required: ['name', 'age', 'pets', 'home'] }],
  ['json_object', null],
];

async function stories(): Promise<Tokenizer> {
  const m = await openModel(`${MODELS}/stories260k/stories260K.gguf`);
  const t = await loadTokenizer(m.tokenizer);
  await m.close();
  return t;
}

const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const fmt = (x: number) => x.toFixed(3);

for (const [name, load] of [['stories260K (SPM, 512)', stories], ['SmolLM2 (byte-level BPE, 49152)', () => loadTokenizer({ kind: 'tokenizer-json', path: `${MODELS}/smollm2-135m-instruct-tokenizer/tokenizer.json`, configPath: null })]] as const) {
  const tok = await load();
  const t0 = performance.now();
  const vocab = buildTokenVocabulary(tok);
  const buildMs = performance.now() - t0;
  console.log(`\n${name}: vocabulary trie built in ${buildMs.toFixed(0)} ms (once per node)`);
  for (const [label, schema] of SCHEMAS) {
    const times: number[] = [];
    let outputs = 0;
    const rnd = mulberry32(1);
    while (times.length < TARGET_STEPS) {
      const budget = 200;
      const c = new GrammarConstraint(compileJsonSchema(schema), vocab);
      for (let i = 0; i < budget; i++) {
        const s = performance.now();
        const mask = c.allowedMask(budget - i);
        times.push(performance.now() - s);
        const allowed: number[] = [];
        for (let k = 0; k < mask.length; k++) if (mask[k]) allowed.push(k);
        const t = allowed[Math.floor(rnd() * allowed.length)];
        if (vocab.eosIds.includes(t)) break;
        c.accept(t);
      }
      outputs++;
    }
    times.sort((a, b) => a - b);
    console.log(`  ${label.padEnd(12)} ${times.length} steps in ${outputs} outputs: median ${fmt(q(times, 0.5))} ms, p95 ${fmt(q(times, 0.95))} ms, max ${fmt(times.at(-1)!)} ms per token`);
  }
}
