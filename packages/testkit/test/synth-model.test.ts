import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyntheticModelError } from '../src/synth-errors.js';
import { generateSyntheticModel, ggufRowToHfRow, syntheticTensorValues } from '../src/synthetic-model.js';
import type { SyntheticModel } from '../src/synthetic-model.js';
import { parseGguf } from './support/gguf-test-parser.js';

const SHARED = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';
const SMOLLM_TOKENIZER = join(SHARED, 'smollm2-135m-instruct-tokenizer');

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synth-model-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type StTensor = { dtype: string; shape: number[]; data_offsets: [number, number] };

/** Parses a safetensors file independently: 8-byte header length, JSON header, raw data. */
async function readSafetensors(path: string): Promise<{ header: Record<string, StTensor>; meta: Record<string, string>; data: Buffer }> {
  const buf = await readFile(path);
  const n = Number(buf.readBigUInt64LE(0));
  const json = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  expect((8 + n) % 8).toBe(0);
  const meta = json.__metadata__ as Record<string, string>;
  delete json.__metadata__;
  return { header: json as Record<string, StTensor>, meta, data: buf.subarray(8 + n) };
}

function f32At(data: Buffer, t: StTensor): Float32Array {
  const [a, b] = t.data_offsets;
  const copy = Buffer.from(data.subarray(a, b));
  return new Float32Array(copy.buffer, copy.byteOffset, (b - a) / 4);
}

const HF_TO_GGUF: Array<[RegExp, string]> = [
  [/^model\.embed_tokens\.weight$/, 'token_embd.weight'],
  [/^model\.norm\.weight$/, 'output_norm.weight'],
  [/^lm_head\.weight$/, 'output.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'blk.$1.attn_norm.weight'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'blk.$1.ffn_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$/, 'blk.$1.attn_q.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)$/, 'blk.$1.attn_k.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)$/, 'blk.$1.attn_v.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$/, 'blk.$1.attn_output.weight'],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, 'blk.$1.ffn_gate.weight'],
  [/^model\.layers\.(\d+)\.mlp\.up_proj\.weight$/, 'blk.$1.ffn_up.weight'],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, 'blk.$1.ffn_down.weight'],
];

function ggufName(hf: string): string {
  for (const [re, to] of HF_TO_GGUF) if (re.test(hf)) return hf.replace(re, to);
  throw new Error(`unmapped ${hf}`);
}

/** Compares every tensor of a GGUF F32 model with the same-seed safetensors model, undoing the Q/K permutation. */
async function expectSameModel(g: SyntheticModel, s: SyntheticModel): Promise<void> {
  const buf = new Uint8Array(await readFile(g.path));
  const parsed = parseGguf(buf);
  const st = await readSafetensors(join(s.path, 'model.safetensors'));
  const ggufTensors = new Map(parsed.tensors.map((t) => [t.name, t]));
  const hfNames = Object.keys(st.header);
  expect(hfNames.length).toBe(parsed.tensors.filter((t) => t.name !== 'rope_freqs.weight').length);
  const c = g.config;
  for (const hf of hfNames) {
    const info = st.header[hf];
    const gt = ggufTensors.get(ggufName(hf));
    expect(gt, hf).toBeDefined();
    expect([...gt!.ne].reverse()).toEqual(info.shape);
    expect(gt!.type).toBe(0);
    const hv = f32At(st.data, info);
    const start = parsed.dataOffset + gt!.offset;
    const gv = new Float32Array(buf.slice(start, start + hv.length * 4).buffer);
    const isQ = /attn_q\./.test(gt!.name);
    const isK = /attn_k\./.test(gt!.name);
    const permute = c.architecture === 'llama' && (isQ || isK);
    const rowLen = info.shape.length === 2 ? info.shape[1] : 1;
    const rows = info.shape[0];
    for (let r = 0; r < rows; r++) {
      const hr = permute ? ggufRowToHfRow(r, c.headDim) : r;
      for (let j = 0; j < rowLen; j++) {
        if (gv[r * rowLen + j] !== hv[hr * rowLen + j]) {
          throw new Error(`${hf} differs at gguf row ${r} col ${j}: ${gv[r * rowLen + j]} vs ${hv[hr * rowLen + j]}`);
        }
      }
    }
  }
}

describe('generateSyntheticModel', () => {
  it('writes the same llama model (llama3 rope scaling) to F32 GGUF and safetensors, Q/K permuted as convert_hf_to_gguf', async () => {
    const opts = { preset: 'tiny-llama-3.2', dtype: 'F32', seed: 7 } as const;
    const g = await generateSyntheticModel({ ...opts, format: 'gguf', outPath: join(dir, 'l32.gguf') });
    const s = await generateSyntheticModel({ ...opts, format: 'safetensors', outPath: join(dir, 'l32-hf') });
    expect(g.ropeLayout).toBe('interleaved');
    expect(s.ropeLayout).toBe('half');
    await expectSameModel(g, s);
    // The permutation really moved rows (a no-op permutation would also "match").
    const hfQ = syntheticTensorValues(g.config, 7, 'blk.0.attn_q.weight', 'hf');
    const ggQ = syntheticTensorValues(g.config, 7, 'blk.0.attn_q.weight', 'gguf');
    expect(ggQ.subarray(g.config.hiddenSize, 2 * g.config.hiddenSize)).not.toEqual(hfQ.subarray(g.config.hiddenSize, 2 * g.config.hiddenSize));

    const parsed = parseGguf(new Uint8Array(await readFile(g.path)));
    expect(parsed.metadata.get('general.architecture')).toBe('llama');
    expect(parsed.metadata.get('llama.block_count')).toBe(3);
    expect(parsed.metadata.get('llama.rope.freq_base')).toBe(500000);
    const rope = parsed.tensors.find((t) => t.name === 'rope_freqs.weight');
    expect(rope?.ne).toEqual([8]);
    const cfg = JSON.parse(await readFile(join(s.path, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.rope_scaling).toEqual({ rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(cfg.tie_word_embeddings).toBe(true);
    expect(cfg.vocab_size).toBe(512);
    expect(existsSync(join(s.path, 'tokenizer.json'))).toBe(true);
  });

  it('writes qwen2 q/k/v biases and keeps Q/K rows unpermuted (NEOX RoPE) in GGUF', async () => {
    const opts = { preset: 'tiny-qwen2.5', seed: 3 } as const;
    const g = await generateSyntheticModel({ ...opts, format: 'gguf', outPath: join(dir, 'q.gguf') });
    const s = await generateSyntheticModel({ ...opts, format: 'safetensors', outPath: join(dir, 'q-hf') });
    expect(g.ropeLayout).toBe('half');
    await expectSameModel(g, s);
    const st = await readSafetensors(join(s.path, 'model.safetensors'));
    expect(st.header['model.layers.0.self_attn.k_proj.bias'].shape).toEqual([32]);
    const cfg = JSON.parse(await readFile(join(s.path, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.model_type).toBe('qwen2');
    expect(cfg.architectures).toEqual(['Qwen2ForCausalLM']);
  });

  it('is deterministic in the seed', async () => {
    const a = await generateSyntheticModel({ preset: 'tiny-tinyllama', format: 'gguf', seed: 11, outPath: join(dir, 'a.gguf') });
    const b = await generateSyntheticModel({ preset: 'tiny-tinyllama', format: 'gguf', seed: 11, outPath: join(dir, 'b.gguf') });
    const c = await generateSyntheticModel({ preset: 'tiny-tinyllama', format: 'gguf', seed: 12, outPath: join(dir, 'c.gguf') });
    const [ba, bb, bc] = await Promise.all([a, b, c].map((m) => readFile(m.path)));
    expect(ba.equals(bb)).toBe(true);
    expect(ba.length).toBe(bc.length);
    expect(ba.equals(bc)).toBe(false);
  });

  it('stores 2-D weights as Q8_0 and vectors as F32 in a Q8_0 GGUF', async () => {
    const m = await generateSyntheticModel({ preset: 'tiny-tinyllama', format: 'gguf', dtype: 'Q8_0', outPath: join(dir, 'q8.gguf') });
    const parsed = parseGguf(new Uint8Array(await readFile(m.path)));
    expect(parsed.metadata.get('general.file_type')).toBe(7);
    for (const t of parsed.tensors) expect([t.name, t.type]).toEqual([t.name, t.ne.length === 1 ? 0 : 8]);
    expect(parsed.tensors.some((t) => t.name === 'output.weight')).toBe(true);
  });

  it('shards safetensors with an index, stores F16/BF16 as rounded float32, and overrides numLayers', async () => {
    const m = await generateSyntheticModel({
      preset: 'tiny-mistral',
      numLayers: 5,
      format: 'safetensors',
      dtype: 'BF16',
      outPath: join(dir, 'sharded'),
      maxShardBytes: 200_000,
    });
    expect(m.config.numLayers).toBe(5);
    const index = JSON.parse(await readFile(join(m.path, 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    const shardFiles = [...new Set(Object.values(index.weight_map))];
    expect(shardFiles.length).toBeGreaterThan(1);
    expect(Object.keys(index.weight_map)).toContain('model.layers.4.mlp.down_proj.weight');
    expect(Object.keys(index.weight_map)).toContain('lm_head.weight');
    let total = 0;
    for (const f of shardFiles) {
      const st = await readSafetensors(join(m.path, f));
      for (const [name, t] of Object.entries(st.header)) {
        expect(index.weight_map[name]).toBe(f);
        expect(t.dtype).toBe('BF16');
        total += t.data_offsets[1] - t.data_offsets[0];
      }
      const down = st.header['model.layers.0.mlp.down_proj.weight'];
      if (down) {
        const want = syntheticTensorValues(m.config, 0, 'model.layers.0.mlp.down_proj.weight', 'hf');
        for (let i = 0; i < 64; i++) {
          const bits = st.data.readUInt16LE(down.data_offsets[0] + 2 * i);
          const got = new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
          expect(Math.abs(got - want[i])).toBeLessThanOrEqual(Math.abs(want[i]) * 2 ** -8);
        }
      }
    }
    expect(total).toBe(index.metadata.total_size);
  });

  it('embeds a byte-level BPE tokenizer folder in GGUF (gpt2 model, smollm pre, merges, chat template)', async () => {
    if (!existsSync(SMOLLM_TOKENIZER)) return expect.fail(`missing ${SMOLLM_TOKENIZER}`);
    const m = await generateSyntheticModel({ preset: 'tiny-smollm2', format: 'gguf', tokenizerDir: SMOLLM_TOKENIZER, outPath: join(dir, 'sm.gguf') });
    expect(m.config.vocabSize).toBe(49152);
    expect(m.config.bosTokenId).toBe(1);
    expect(m.config.eosTokenIds).toEqual([2]);
    expect(m.config.addBosToken).toBe(false);
    const parsed = parseGguf(new Uint8Array(await readFile(m.path)));
    expect(parsed.metadata.get('tokenizer.ggml.model')).toBe('gpt2');
    expect(parsed.metadata.get('tokenizer.ggml.pre')).toBe('smollm');
    const tokens = parsed.metadata.get('tokenizer.ggml.tokens') as string[];
    expect(tokens.length).toBe(49152);
    expect(tokens[1]).toBe('<|im_start|>');
    expect((parsed.metadata.get('tokenizer.ggml.token_type') as number[])[1]).toBe(3);
    expect((parsed.metadata.get('tokenizer.ggml.merges') as string[])[0]).toBe('Ġ t');
    expect(parsed.metadata.get('tokenizer.chat_template')).toContain('<|im_start|>');
    expect(parsed.tensors.find((t) => t.name === 'token_embd.weight')?.ne).toEqual([96, 49152]);
  });

  it('pads the built-in vocab with unused tokens to the configured size, or shrinks the model with padVocab false', async () => {
    const padded = await generateSyntheticModel({ preset: 'tiny-tinyllama', config: { vocabSize: 1000 }, format: 'gguf', outPath: join(dir, 'pad.gguf') });
    expect(padded.config.vocabSize).toBe(1000);
    const p = parseGguf(new Uint8Array(await readFile(padded.path)));
    const tokens = p.metadata.get('tokenizer.ggml.tokens') as string[];
    expect(tokens.length).toBe(1000);
    expect(tokens[999]).toBe('[PAD999]');
    expect((p.metadata.get('tokenizer.ggml.token_type') as number[])[999]).toBe(5);
    expect(p.tensors.find((t) => t.name === 'output.weight')?.ne).toEqual([64, 1000]);
    const shrunk = await generateSyntheticModel({ preset: 'tiny-tinyllama', config: { vocabSize: 1000 }, padVocab: false, format: 'gguf', outPath: join(dir, 'shrunk.gguf') });
    expect(shrunk.config.vocabSize).toBe(512);
  });

  it('refuses unknown presets and Q8_0 safetensors with actionable errors', async () => {
    await expect(generateSyntheticModel({ preset: 'nope' as 'tiny-mistral', format: 'gguf', outPath: join(dir, 'x.gguf') })).rejects.toThrow(
      /unknown preset "nope" \(known: smollm2-135m/,
    );
    await expect(
      generateSyntheticModel({ preset: 'tiny-mistral', format: 'safetensors', dtype: 'Q8_0', outPath: join(dir, 'x') }),
    ).rejects.toBeInstanceOf(SyntheticModelError);
  });
});
