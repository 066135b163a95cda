import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelConfigFromHf } from '../src/model/hf-config.js';
import { llama3RopeDivisors, matchLlama3Scaling } from '../src/model/llama3-rope-factors.js';
import { readGgufHeader } from '../src/model/gguf-reader.js';
import { openModel } from '../src/model/open-model.js';
import { ModelFileError, UnsupportedArchitectureError } from '../src/model/model-errors.js';
import { f16ToF32, f32ToF16 } from '../src/model/half-float.js';
import type { RopeScalingLlama3 } from '../src/model/model-config.js';

const llamaConfig = {
  model_type: 'llama',
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  vocab_size: 49152,
  bos_token_id: 1,
  eos_token_id: 2,
  tie_word_embeddings: true,
};

describe('modelConfigFromHf', () => {
  it('llama: head_dim falls back to hidden/heads; add_bos defaults true; untied by default', () => {
    const c = modelConfigFromHf(llamaConfig, null, 'config.json', 'smol');
    expect(c).toMatchObject({ architecture: 'llama', headDim: 64, numKvHeads: 3, ropeTheta: 100000, tiedEmbeddings: true, addBosToken: true, attentionBias: false });
    const { tie_word_embeddings: _, ...untied } = llamaConfig;
    expect(modelConfigFromHf(untied, null, 'config.json', 'smol').tiedEmbeddings).toBe(false);
    expect(modelConfigFromHf({ ...llamaConfig, head_dim: 128 }, null, 'c', 'n').headDim).toBe(128);
    expect(modelConfigFromHf(llamaConfig, { add_bos_token: false }, 'c', 'n').addBosToken).toBe(false);
  });

  it('qwen2: attention bias, no BOS by default, eos list; mistral maps to llama', () => {
    const q = modelConfigFromHf({ ...llamaConfig, model_type: 'qwen2', eos_token_id: [151645, 151643], bos_token_id: null }, {}, 'c', 'q');
    expect(q).toMatchObject({ architecture: 'qwen2', attentionBias: true, addBosToken: false, bosTokenId: null, eosTokenIds: [151645, 151643] });
    expect(modelConfigFromHf({ ...llamaConfig, model_type: 'mistral' }, null, 'c', 'm').architecture).toBe('llama');
  });

  it('llama3 rope scaling under rope_type or type', () => {
    const rs = { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const want: RopeScalingLlama3 = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    expect(modelConfigFromHf({ ...llamaConfig, rope_scaling: { ...rs, rope_type: 'llama3' } }, null, 'c', 'n').ropeScaling).toEqual(want);
    expect(modelConfigFromHf({ ...llamaConfig, rope_scaling: { ...rs, type: 'llama3' } }, null, 'c', 'n').ropeScaling).toEqual(want);
    expect(() => modelConfigFromHf({ ...llamaConfig, rope_scaling: { rope_type: 'yarn', factor: 4 } }, null, 'c', 'n')).toThrow(/rope_scaling type "yarn" is not supported/);
    expect(() => modelConfigFromHf({ ...llamaConfig, rope_scaling: { rope_type: 'llama3', factor: 8 } }, null, 'c', 'n')).toThrow(/missing "low_freq_factor"/);
  });

  it('errors name the file and the field', () => {
    expect(() => modelConfigFromHf({ ...llamaConfig, model_type: 'gpt2' }, null, '/m/config.json', 'n')).toThrow(UnsupportedArchitectureError);
    expect(() => modelConfigFromHf({ ...llamaConfig, hidden_size: '576' }, null, '/m/config.json', 'n')).toThrow('/m/config.json: "hidden_size" is "576", expected a positive integer');
    const { vocab_size: _, ...noVocab } = llamaConfig;
    expect(() => modelConfigFromHf(noVocab, null, '/m/config.json', 'n')).toThrow('/m/config.json: missing "vocab_size"');
    expect(() => modelConfigFromHf({ ...llamaConfig, num_key_value_heads: 4 }, null, 'c', 'n')).toThrow(/not a multiple of num_key_value_heads 4/);
    expect(() => modelConfigFromHf([], null, 'c', 'n')).toThrow(ModelFileError);
  });
});

describe('llama3 RoPE factors', () => {
  it('computes the divisors: 1 for short wavelengths, factor for long ones, smooth in between', () => {
    const f = llama3RopeDivisors({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 }, 64, 500000);
    expect(f.length).toBe(32);
    expect(f[0]).toBe(1);
    expect(f[31]).toBe(32);
    const mid = [...f].filter((x) => x > 1 && x < 32);
    expect(mid.length).toBeGreaterThan(0);
    for (let i = 1; i < 32; i++) expect(f[i]).toBeGreaterThanOrEqual(f[i - 1]);
  });

  it('recovers the parameters from the precomputed divisors, and refuses others', () => {
    const s: RopeScalingLlama3 = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const f = llama3RopeDivisors(s, 128, 500000);
    expect(f[0]).toBe(1);
    expect(f[63]).toBe(8);
    expect(f.some((v) => v > 1 && v < 8)).toBe(true); // the smooth ramp is exercised
    expect(matchLlama3Scaling(f, 128, 500000)).toEqual(s);
    expect(matchLlama3Scaling(f.map((v, i) => (i === 20 ? v * 1.05 : v)), 128, 500000)).toBeNull();
  });
});

// ---- A minimal GGUF writer for fixtures the real files do not cover (qwen2, big vocab, Q4_0/F16/BF16, llama3). ----

type Meta = [key: string, type: number, value: unknown];
interface RawGgufTensor {
  name: string;
  ne: number[];
  typeId: number;
  data: Uint8Array;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function str(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([u64(bytes.length), bytes]);
}

function encodeValue(type: number, value: unknown): Buffer {
  const b = Buffer.alloc(8);
  switch (type) {
    case 0: b.writeUInt8(value as number); return b.subarray(0, 1);
    case 1: b.writeInt8(value as number); return b.subarray(0, 1);
    case 2: b.writeUInt16LE(value as number); return b.subarray(0, 2);
    case 3: b.writeInt16LE(value as number); return b.subarray(0, 2);
    case 4: return u32(value as number);
    case 5: b.writeInt32LE(value as number); return b.subarray(0, 4);
    case 6: b.writeFloatLE(value as number); return b.subarray(0, 4);
    case 7: return Buffer.from([value ? 1 : 0]);
    case 8: return str(value as string);
    case 10: return u64(value as bigint);
    case 11: b.writeBigInt64LE(BigInt(value as bigint)); return b;
    case 12: b.writeDoubleLE(value as number); return b;
    case 9: {
      const [itemType, items] = value as [number, unknown[]];
      return Buffer.concat([u32(itemType), u64(items.length), ...items.map((v) => encodeValue(itemType, v))]);
    }
    default: throw new Error(`bad type ${type}`);
  }
}

function buildGguf(metadata: Meta[], tensors: RawGgufTensor[], alignment = 32): Buffer {
  const meta = alignment === 32 ? metadata : [...metadata, ['general.alignment', 4, alignment] as Meta];
  const parts: Buffer[] = [Buffer.from('GGUF'), u32(3), u64(tensors.length), u64(meta.length)];
  for (const [k, t, v] of meta) parts.push(str(k), u32(t), encodeValue(t, v));
  let rel = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(rel);
    parts.push(str(t.name), u32(t.ne.length), ...t.ne.map((d) => u64(d)), u32(t.typeId), u64(rel));
    rel = Math.ceil((rel + t.data.byteLength) / alignment) * alignment;
  }
  const head = Buffer.concat(parts);
  const dataOffset = Math.ceil(head.length / alignment) * alignment;
  const out = Buffer.alloc(dataOffset + rel);
  head.copy(out, 0);
  tensors.forEach((t, i) => out.set(t.data, dataOffset + offsets[i]));
  return out;
}

let seed = 7;
function values(n: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    v[i] = seed / 2 ** 31 - 0.5;
  }
  return v;
}
const F32 = (ne: number[], name: string): RawGgufTensor => ({ name, ne, typeId: 0, data: new Uint8Array(values(ne.reduce((a, b) => a * b, 1)).buffer) });
function F16(ne: number[], name: string): RawGgufTensor {
  const v = values(ne.reduce((a, b) => a * b, 1));
  return { name, ne, typeId: 1, data: new Uint8Array(Uint16Array.from(v, f32ToF16).buffer) };
}
function BF16(ne: number[], name: string): RawGgufTensor {
  const v = values(ne.reduce((a, b) => a * b, 1));
  return { name, ne, typeId: 30, data: new Uint8Array(Uint16Array.from(new Uint32Array(v.buffer), (x) => x >>> 16).buffer) };
}
/** Q4_0 blocks with scale 0.5 and nibble pattern (i % 16) — values are (i % 16 - 8) * 0.5 across each block. */
function Q4(ne: number[], name: string): RawGgufTensor {
  const blocks = ne.reduce((a, b) => a * b, 1) / 32;
  const data = new Uint8Array(blocks * 18);
  for (let b = 0; b < blocks; b++) {
    data[b * 18] = 0x00;
    data[b * 18 + 1] = 0x38; // f16 0.5
    for (let j = 0; j < 16; j++) data[b * 18 + 2 + j] = (j % 16) | (((j + 3) % 16) << 4);
  }
  return { name, ne, typeId: 2, data };
}

describe('GGUF fixtures built in a temp dir', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'edge-node-cfg-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('qwen2 with a 40k vocabulary (multi-read header), biases, Q4_0/F16/BF16 tensors, every metadata type', async () => {
    const vocab = 40000;
    const [h, heads, kv, hd, ffn] = [32, 4, 2, 8, 64];
    const tokens = Array.from({ length: vocab }, (_, i) => (i === 1 ? 'Ġhello▁世界' : i === 2 ? 'long'.repeat(30) : `tok_${i}`));
    const metadata: Meta[] = [
      ['general.architecture', 8, 'qwen2'],
      ['general.name', 8, 'tiny-qwen'],
      ['qwen2.block_count', 4, 1],
      ['qwen2.context_length', 4, 32768],
      ['qwen2.embedding_length', 4, h],
      ['qwen2.feed_forward_length', 4, ffn],
      ['qwen2.attention.head_count', 4, heads],
      ['qwen2.attention.head_count_kv', 4, kv],
      ['qwen2.rope.freq_base', 6, 1000000],
      ['qwen2.attention.layer_norm_rms_epsilon', 6, 1e-6],
      ['tokenizer.ggml.model', 8, 'gpt2'],
      ['tokenizer.ggml.tokens', 9, [8, tokens]],
      ['tokenizer.ggml.token_type', 9, [5, tokens.map(() => 1)]],
      ['tokenizer.ggml.eos_token_id', 4, 39999],
      ['tokenizer.ggml.eot_token_id', 4, 39998],
      ['tokenizer.ggml.bos_token_id', 4, 39997],
      ['tokenizer.chat_template', 8, '{% for m in messages %}{{ m.content }}{% endfor %}'],
      ['test.u8', 0, 200],
      ['test.i8', 1, -5],
      ['test.u16', 2, 65535],
      ['test.i16', 3, -300],
      ['test.i32', 5, -70000],
      ['test.bool', 7, true],
      ['test.u64', 10, 1n << 60n],
      ['test.i64', 11, -42n],
      ['test.f64', 12, 0.1],
      ['test.nested', 9, [9, [[4, [1, 2]], [8, ['a']]]]],
    ];
    const tensors: RawGgufTensor[] = [
      F16([h, vocab], 'token_embd.weight'),
      F32([h], 'output_norm.weight'),
      Q4([h, vocab], 'output.weight'),
      F32([h], 'blk.0.attn_norm.weight'),
      BF16([h, heads * hd], 'blk.0.attn_q.weight'),
      F32([heads * hd], 'blk.0.attn_q.bias'),
      Q4([h, kv * hd], 'blk.0.attn_k.weight'),
      F32([kv * hd], 'blk.0.attn_k.bias'),
      F16([h, kv * hd], 'blk.0.attn_v.weight'),
      F32([kv * hd], 'blk.0.attn_v.bias'),
      Q4([heads * hd, h], 'blk.0.attn_output.weight'),
      F32([h], 'blk.0.ffn_norm.weight'),
      Q4([h, ffn], 'blk.0.ffn_gate.weight'),
      Q4([h, ffn], 'blk.0.ffn_up.weight'),
      Q4([ffn, h], 'blk.0.ffn_down.weight'),
    ];
    const file = join(tmp, 'qwen.gguf');
    const bytes = buildGguf(metadata, tensors, 64);
    await writeFile(file, bytes);

    const header = await readGgufHeader(file);
    expect(header.alignment).toBe(64);
    expect(header.dataOffset).toBeGreaterThan(64 * 1024 * 4); // forces several header reads
    expect(header.headerBytesRead).toBeGreaterThanOrEqual(header.dataOffset - 64);
    expect(header.headerBytesRead).toBeLessThan(bytes.length);
    const md = header.metadata;
    expect([md.get('test.u8'), md.get('test.i8'), md.get('test.u16'), md.get('test.i16'), md.get('test.i32')]).toEqual([200, -5, 65535, -300, -70000]);
    expect([md.get('test.bool'), md.get('test.u64'), md.get('test.i64'), md.get('test.f64')]).toEqual([true, 1n << 60n, -42, 0.1]);
    expect(md.get('test.nested')).toEqual([[1, 2], ['a']]);
    expect((md.get('tokenizer.ggml.tokens') as string[]).slice(0, 3)).toEqual(['tok_0', 'Ġhello▁世界', 'long'.repeat(30)]);
    expect((md.get('tokenizer.ggml.tokens') as string[])[39999]).toBe('tok_39999');

    const m = await openModel(tmp); // a folder with exactly one .gguf
    try {
      expect(m.ropeLayout).toBe('half');
      expect(m.chatTemplate).toBe('{% for m in messages %}{{ m.content }}{% endfor %}');
      expect(m.config).toEqual({
        architecture: 'qwen2',
        name: 'tiny-qwen',
        hiddenSize: h,
        intermediateSize: ffn,
        numLayers: 1,
        numHeads: heads,
        numKvHeads: kv,
        headDim: hd,
        vocabSize: vocab,
        contextLength: 32768,
        rmsNormEps: Math.fround(1e-6),
        ropeTheta: 1000000,
        ropeScaling: null,
        tiedEmbeddings: false,
        attentionBias: true,
        bosTokenId: 39997,
        eosTokenIds: [39999, 39998],
        addBosToken: false,
      });
      const down = await m.readTensor('blk.0.ffn_down.weight');
      expect(m.tensors.get('blk.0.ffn_down.weight')?.shape).toEqual([h, ffn]);
      expect(Array.from(down.subarray(0, 32))).toEqual(Array.from({ length: 32 }, (_, i) => ((i < 16 ? i : (i - 16 + 3) % 16) - 8) * 0.5));
      const v = await m.readTensor('blk.0.attn_v.weight');
      const vRaw = tensors[8].data;
      expect(v[7]).toBe(f16ToF32(vRaw[14] | (vRaw[15] << 8)));
      const q = await m.readTensor('blk.0.attn_q.weight');
      const qRaw = tensors[4].data;
      expect(new Uint32Array(q.buffer)[3]).toBe(((qRaw[6] | (qRaw[7] << 8)) << 16) >>> 0);
      expect(await m.readTensor('blk.0.attn_k.bias')).toEqual(new Float32Array(tensors[7].data.slice().buffer));
    } finally {
      await m.close();
    }
  });

  it('llama3 scaling from rope_freqs.weight; several .gguf in a folder is an error', async () => {
    const [h, heads, hd, ffn, vocab] = [128, 2, 64, 32, 8];
    const scaling: RopeScalingLlama3 = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const metadata: Meta[] = [
      ['general.architecture', 8, 'llama'],
      ['llama.block_count', 4, 1],
      ['llama.context_length', 4, 131072],
      ['llama.embedding_length', 4, h],
      ['llama.feed_forward_length', 4, ffn],
      ['llama.attention.head_count', 4, heads],
      ['llama.attention.head_count_kv', 4, 1],
      ['llama.rope.freq_base', 6, 500000],
      ['llama.rope.dimension_count', 4, hd],
      ['tokenizer.ggml.add_bos_token', 7, false],
    ];
    const layer = (b: string): RawGgufTensor[] => [
      F32([h], `${b}attn_norm.weight`),
      F32([h, heads * hd], `${b}attn_q.weight`),
      F32([h, hd], `${b}attn_k.weight`),
      F32([h, hd], `${b}attn_v.weight`),
      F32([heads * hd, h], `${b}attn_output.weight`),
      F32([h], `${b}ffn_norm.weight`),
      F32([h, ffn], `${b}ffn_gate.weight`),
      F32([h, ffn], `${b}ffn_up.weight`),
      F32([ffn, h], `${b}ffn_down.weight`),
    ];
    const freqs = llama3RopeDivisors(scaling, hd, 500000);
    const build = (f: Float32Array): Buffer =>
      buildGguf(metadata, [
        F32([h, vocab], 'token_embd.weight'),
        F32([h], 'output_norm.weight'),
        { name: 'rope_freqs.weight', ne: [hd / 2], typeId: 0, data: new Uint8Array(f.buffer) },
        ...layer('blk.0.'),
      ]);
    const dir = join(tmp, 'llama3');
    await mkdir(dir);
    await writeFile(join(dir, 'a.gguf'), build(freqs));
    const m = await openModel(join(dir, 'a.gguf'));
    expect(m.config.ropeScaling).toEqual(scaling);
    expect(m.config.tiedEmbeddings).toBe(true);
    expect(m.config.addBosToken).toBe(false);
    expect(m.config.name).toBe('a');
    await m.close();

    await writeFile(join(dir, 'b.gguf'), build(freqs.map((x) => x * 1.5)));
    await expect(openModel(join(dir, 'b.gguf'))).rejects.toThrow(/rope_freqs\.weight does not match Llama 3 RoPE scaling/);
    await expect(openModel(dir)).rejects.toThrow(/contains several \.gguf files \(a\.gguf, b\.gguf\)/);
    await expect(openModel(join(dir, 'nope.gguf'))).rejects.toThrow(`${join(dir, 'nope.gguf')}: does not exist`);
  });
});
