import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel } from '../src/model/open-model.js';
import { readSafetensorsHeader, type SafetensorsTensor } from '../src/model/safetensors-reader.js';
import { canonicalTensorName } from '../src/model/hf-tensor-names.js';
import {
  ModelFileError,
  TensorShapeError,
  TruncatedModelFileError,
  UnsupportedArchitectureError,
  UnsupportedTensorTypeError,
} from '../src/model/model-errors.js';
import { bf16ToF32, f16ToF32, f32ToF16 } from '../src/model/half-float.js';
import type { ModelFile } from '../src/model/model-file.js';

const HF = '/work/shared/models/stories260k-hf';
const GGUF = '/work/shared/models/stories260k/stories260K.gguf';

interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Minimal safetensors writer for test fixtures (header padded to 8 bytes as the format recommends). */
async function writeSafetensors(path: string, tensors: RawTensor[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(path, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => t.data)]));
}

async function readRawTensors(file: string): Promise<RawTensor[]> {
  const [header, bytes] = await Promise.all([readSafetensorsHeader(file), readFile(file)]);
  return header.tensors.map((t: SafetensorsTensor) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: new Uint8Array(bytes.subarray(t.offset, t.offset + t.byteLength)),
  }));
}

/** A copy of the stories260k-hf folder's small files in a temp dir, with the given weights. */
async function makeFolder(parent: string, name: string, shards: Record<string, RawTensor[]>, index = false): Promise<string> {
  const dir = join(parent, name);
  await mkdir(dir);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(join(HF, f), join(dir, f));
  const weightMap: Record<string, string> = {};
  for (const [file, tensors] of Object.entries(shards)) {
    await writeSafetensors(join(dir, file), tensors);
    for (const t of tensors) weightMap[t.name] = file;
  }
  if (index) await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return dir;
}

/** GGUF (llama.cpp) Q/K row order from HF rotate_half order: row 2i+j of a head = HF row j*hd/2 + i. */
function hfToInterleavedRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const dst = (h * headDim + 2 * i + j) * cols;
        const src = (h * headDim + j * (headDim / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

describe('canonicalTensorName', () => {
  it('maps Hugging Face names to llama.cpp names', () => {
    expect(canonicalTensorName('model.embed_tokens.weight')).toBe('token_embd.weight');
    expect(canonicalTensorName('lm_head.weight')).toBe('output.weight');
    expect(canonicalTensorName('model.norm.weight')).toBe('output_norm.weight');
    expect(canonicalTensorName('model.layers.12.self_attn.k_proj.bias')).toBe('blk.12.attn_k.bias');
    expect(canonicalTensorName('model.layers.0.self_attn.o_proj.weight')).toBe('blk.0.attn_output.weight');
    expect(canonicalTensorName('model.layers.3.post_attention_layernorm.weight')).toBe('blk.3.ffn_norm.weight');
    expect(canonicalTensorName('model.layers.3.mlp.down_proj.weight')).toBe('blk.3.ffn_down.weight');
    expect(canonicalTensorName('model.layers.0.self_attn.rotary_emb.inv_freq')).toBeNull();
    expect(canonicalTensorName('model.layers.0.constructor')).toBeNull();
  });
});

describe('openModel on stories260k-hf', () => {
  let hf: ModelFile;
  let gguf: ModelFile;
  beforeAll(async () => {
    hf = await openModel(HF);
    gguf = await openModel(GGUF);
  });
  afterAll(async () => {
    await hf.close();
    await gguf.close();
  });

  it('derives the config from config.json and tokenizer_config.json', () => {
    expect(hf.format).toBe('safetensors');
    expect(hf.ropeLayout).toBe('half');
    expect(hf.config).toEqual({
      architecture: 'llama',
      name: 'stories260k-hf',
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      contextLength: 512,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      tiedEmbeddings: true,
      attentionBias: false,
      bosTokenId: 1,
      eosTokenIds: [2],
      addBosToken: true,
    });
    expect(hf.tokenizer).toEqual({ kind: 'tokenizer-json', path: join(HF, 'tokenizer.json'), configPath: join(HF, 'tokenizer_config.json') });
    expect(hf.chatTemplate).toBeNull();
    expect(hf.tensors.has('output.weight')).toBe(false);
    expect(hf.tensors.size).toBe(2 + 5 * 9);
    expect(hf.tensors.get('blk.2.ffn_down.weight')?.shape).toEqual([64, 172]);
    expect(hf.tensors.get('blk.2.attn_k.weight')?.shape).toEqual([32, 64]);
  });

  it('gives exactly the GGUF weights: identical tensors, q/k modulo the RoPE row permutation', async () => {
    expect(await hf.readTensor('token_embd.weight')).toEqual(await gguf.readTensor('token_embd.weight'));
    let compared = 0;
    for (const name of hf.tensors.keys()) {
      const a = await hf.readTensor(name);
      const b = await gguf.readTensor(name);
      if (/attn_q\.weight$/.test(name)) {
        expect(a).not.toEqual(b);
        expect(hfToInterleavedRows(a, 8, 8, 64)).toEqual(b);
      } else if (/attn_k\.weight$/.test(name)) {
        expect(hfToInterleavedRows(a, 4, 8, 64)).toEqual(b);
      } else {
        expect(a).toEqual(b);
      }
      compared++;
    }
    expect(compared).toBe(47);
  });

  it('readTensor issues one positioned read of exactly the tensor bytes', async () => {
    const probe = await open(GGUF, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const spy = vi.spyOn(proto, 'read');
    try {
      const info = hf.tensors.get('blk.1.ffn_gate.weight');
      if (info === undefined) throw new Error('missing');
      await hf.readTensor('blk.1.ffn_gate.weight');
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.calls[0].slice(2)).toEqual([info.byteLength, info.offset]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('safetensors folders built in a temp dir', () => {
  let tmp: string;
  let raw: RawTensor[];
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'edge-node-st-'));
    raw = await readRawTensors(join(HF, 'model.safetensors'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('reads sharded weights with an index, and converts BF16/F16 tensors', async () => {
    const embed = raw.find((t) => t.name === 'model.embed_tokens.weight');
    const norm = raw.find((t) => t.name === 'model.norm.weight');
    if (embed === undefined || norm === undefined) throw new Error('fixture lacks tensors');
    const embedF32 = new Float32Array(embed.data.slice().buffer);
    const normF32 = new Float32Array(norm.data.slice().buffer);
    const bf16 = new Uint16Array(embedF32.length);
    const embedBits = new Uint32Array(embedF32.buffer);
    for (let i = 0; i < bf16.length; i++) bf16[i] = embedBits[i] >>> 16;
    const f16 = new Uint16Array(normF32.length);
    for (let i = 0; i < f16.length; i++) f16[i] = f32ToF16(normF32[i]);

    const converted = raw.map((t) =>
      t === embed ? { ...t, dtype: 'BF16', data: new Uint8Array(bf16.buffer) } : t === norm ? { ...t, dtype: 'F16', data: new Uint8Array(f16.buffer) } : t,
    );
    const half = Math.floor(converted.length / 2);
    const dir = await makeFolder(
      tmp,
      'sharded',
      { 'model-00001-of-00002.safetensors': converted.slice(0, half), 'model-00002-of-00002.safetensors': converted.slice(half) },
      true,
    );
    const m = await openModel(dir);
    try {
      const files = new Set([...m.tensors.values()].map((t) => t.file));
      expect(files.size).toBe(2);
      expect(m.tensors.get('token_embd.weight')?.dtype).toBe('BF16');
      const e = await m.readTensor('token_embd.weight');
      expect(Array.from(e.subarray(0, 64))).toEqual(Array.from(bf16.subarray(0, 64), bf16ToF32));
      for (let i = 0; i < e.length; i++) expect(Math.abs(e[i] - embedF32[i])).toBeLessThanOrEqual(Math.abs(embedF32[i]) * 2 ** -7);
      const n = await m.readTensor('output_norm.weight');
      expect(Array.from(n)).toEqual(Array.from(f16, f16ToF32));
      const ref = await openModel(HF);
      expect(await m.readTensor('blk.4.attn_v.weight')).toEqual(await ref.readTensor('blk.4.attn_v.weight'));
      await ref.close();
    } finally {
      await m.close();
    }
  });

  it('takes the chat template from tokenizer_config (named list → "default") or chat_template.jinja', async () => {
    const dir = await makeFolder(tmp, 'template', { 'model.safetensors': raw });
    const jinja = await readFile('/work/shared/models/smollm2-135m-instruct-tokenizer/chat_template.jinja', 'utf8');
    await writeFile(join(dir, 'chat_template.jinja'), jinja);
    let m = await openModel(dir);
    expect(m.chatTemplate).toBe(jinja);
    await m.close();
    const tc = JSON.parse(await readFile(join(HF, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    tc.chat_template = [
      { name: 'tool_use', template: 'TOOLS' },
      { name: 'default', template: 'DEFAULT {{ messages }}' },
    ];
    tc.add_bos_token = false;
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
    m = await openModel(join(dir, 'model.safetensors')); // a .safetensors path opens its folder
    expect(m.chatTemplate).toBe('DEFAULT {{ messages }}');
    expect(m.config.addBosToken).toBe(false);
    await m.close();
  });

  it('missing config.json, malformed JSON, unknown model_type', async () => {
    const dir = await makeFolder(tmp, 'configs', { 'model.safetensors': raw });
    const config = await readFile(join(dir, 'config.json'), 'utf8');
    await rm(join(dir, 'config.json'));
    await expect(openModel(dir)).rejects.toThrow(`${dir}: has no config.json`);

    await writeFile(join(dir, 'config.json'), config.slice(0, 100));
    const err = await openModel(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFileError);
    expect((err as Error).message).toMatch(/config\.json: is not valid JSON/);

    await writeFile(join(dir, 'config.json'), config.replace('"model_type": "llama"', '"model_type": "gemma2"'));
    await expect(openModel(dir)).rejects.toThrow(UnsupportedArchitectureError);
    await expect(openModel(dir)).rejects.toThrow(/architecture "gemma2" is not supported/);

    await writeFile(join(dir, 'config.json'), config.replace('"intermediate_size": 172', '"intermediate_size": 128'));
    const shapeErr = await openModel(dir).catch((e: unknown) => e);
    expect(shapeErr).toBeInstanceOf(TensorShapeError);
    expect((shapeErr as Error).message).toMatch(/model\.safetensors: tensor blk\.0\.ffn_gate\.weight: shape \[172, 64\] does not match the config \(.*ffn 128.*\), which implies \[128, 64\]/);

    await writeFile(join(dir, 'config.json'), config.replace('"tie_word_embeddings": true', '"tie_word_embeddings": false'));
    await expect(openModel(dir)).rejects.toThrow(/tensor output\.weight: missing/);
  });

  it('corrupt safetensors headers and data', async () => {
    const dir = await makeFolder(tmp, 'corrupt', { 'model.safetensors': raw });
    const file = join(dir, 'model.safetensors');
    const good = await readFile(file);

    const absurd = Buffer.from(good);
    absurd.writeBigUInt64LE(1n << 56n, 0);
    await writeFile(file, absurd);
    await expect(openModel(dir)).rejects.toThrow(/safetensors header length 72057594037927936 is absurd/);

    await writeFile(file, good.subarray(0, good.length - 100));
    const cut = await openModel(dir).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(TruncatedModelFileError);
    expect((cut as Error).message).toMatch(/model\.safetensors: tensor model\.norm\.weight ends at data byte 1040128 but the data section holds only 1040028 bytes/);

    await writeFile(file, good.subarray(0, 200));
    await expect(openModel(dir)).rejects.toThrow(TruncatedModelFileError);

    const garbled = Buffer.from(good);
    garbled.write('#', 8);
    await writeFile(file, garbled);
    await expect(openModel(dir)).rejects.toThrow(/safetensors header is not valid JSON/);

    await writeSafetensors(file, raw.map((t) => (t.name === 'model.layers.2.mlp.up_proj.weight' ? { ...t, dtype: 'I32' } : t)));
    const dtype = await openModel(dir).catch((e: unknown) => e);
    expect(dtype).toBeInstanceOf(UnsupportedTensorTypeError);
    expect((dtype as Error).message).toMatch(/tensor blk\.2\.ffn_up\.weight has type I32/);

    await writeSafetensors(file, raw.map((t) => (t.name === 'model.norm.weight' ? { ...t, shape: [32] } : t)));
    await expect(openModel(dir)).rejects.toThrow(/tensor model\.norm\.weight \(F32 \[32\]\) should occupy 128 bytes but data_offsets span 256/);
  });
});
