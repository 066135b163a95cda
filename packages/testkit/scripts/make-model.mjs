#!/usr/bin/env node
// Writes a random-weight model of a real shape (see packages/testkit/src/synthetic-presets.ts).
//   node packages/testkit/scripts/make-model.mjs --preset smollm2-135m --format gguf --dtype F32 --out /tmp/x.gguf
//   node packages/testkit/scripts/make-model.mjs --preset tiny-qwen2.5 --format safetensors --out /tmp/qwen-hf --shard-mb 1
// Needs `npm run build` first (it imports packages/testkit/dist).
import { parseArgs } from 'node:util';

const USAGE = `usage: node packages/testkit/scripts/make-model.mjs --preset NAME --out PATH [options]
  --preset NAME        ${'one of the presets listed below'}
  --format gguf|safetensors   (default gguf; safetensors writes a folder)
  --dtype F32|F16|BF16|Q8_0   (default F32; Q8_0 is GGUF only)
  --seed N             (default 0)
  --layers N           override the number of layers
  --tokenizer DIR      embed a Hugging Face tokenizer folder (e.g. /work/shared/models/smollm2-135m-instruct-tokenizer)
  --tokenizer-pre NAME GGUF tokenizer.ggml.pre (detected when omitted)
  --no-pad-vocab       shrink the model's vocab to the tokenizer's (default: pad the tokenizer to the preset's vocab)
  --shard-mb N         safetensors: shard into files of at most N MB`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      preset: { type: 'string' },
      format: { type: 'string', default: 'gguf' },
      dtype: { type: 'string', default: 'F32' },
      seed: { type: 'string', default: '0' },
      layers: { type: 'string' },
      tokenizer: { type: 'string' },
      'tokenizer-pre': { type: 'string' },
      'no-pad-vocab': { type: 'boolean', default: false },
      'shard-mb': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}

let synth;
try {
  synth = await import('../dist/index.js');
} catch (err) {
  console.error(`cannot load packages/testkit/dist (${err.message}); run \`npm run build\` first`);
  process.exit(1);
}

if (args.help || !args.preset || !args.out) {
  console.error(`${USAGE}\npresets: ${synth.SYNTHETIC_PRESET_NAMES.join(', ')}`);
  process.exit(args.help ? 0 : 2);
}

const t0 = performance.now();
try {
  const model = await synth.generateSyntheticModel({
    preset: args.preset,
    format: args.format,
    dtype: args.dtype,
    seed: Number(args.seed),
    outPath: args.out,
    ...(args.layers ? { numLayers: Number(args.layers) } : {}),
    ...(args.tokenizer ? { tokenizerDir: args.tokenizer } : {}),
    ...(args['tokenizer-pre'] ? { tokenizerPre: args['tokenizer-pre'] } : {}),
    ...(args['no-pad-vocab'] ? { padVocab: false } : {}),
    ...(args['shard-mb'] ? { maxShardBytes: Number(args['shard-mb']) * 1e6 } : {}),
  });
  const c = model.config;
  console.log(
    `${model.path}: ${model.format} ${model.dtype}, ${(model.bytes / 1e6).toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s\n` +
      `  ${c.architecture} hidden ${c.hiddenSize}, ${c.numLayers} layers, heads ${c.numHeads}/${c.numKvHeads}, ffn ${c.intermediateSize}, ` +
      `vocab ${c.vocabSize}, ${c.tiedEmbeddings ? 'tied' : 'untied'}, seed ${model.seed}`,
  );
} catch (err) {
  console.error(`${err.name ?? 'Error'}: ${err.message}`);
  process.exit(1);
}
