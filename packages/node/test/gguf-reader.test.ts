import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGgufHeader } from '../src/model/gguf-reader.js';
import { openModel } from '../src/model/open-model.js';
import {
  ModelFileError,
  TensorShapeError,
  TruncatedModelFileError,
  UnsupportedArchitectureError,
  UnsupportedTensorTypeError,
} from '../src/model/model-errors.js';
import { f16ToF32 } from '../src/model/half-float.js';
import type { ModelFile } from '../src/model/model-file.js';

const DIR = '/work/shared/models/stories260k';
const F32 = join(DIR, 'stories260K.gguf');
const Q8 = join(DIR, 'stories260K-Q8_0.gguf');

const LAYER_TENSORS = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];

describe('GGUF header', () => {
  it('parses stories260K metadata and tensor index without touching tensor data', async () => {
    const h = await readGgufHeader(F32);
    expect(h.version).toBe(3);
    expect(h.alignment).toBe(32);
    expect(h.metadata.get('general.architecture')).toBe('llama');
    expect(h.metadata.get('llama.embedding_length')).toBe(64);
    const tokens = h.metadata.get('tokenizer.ggml.tokens');
    expect(Array.isArray(tokens) && tokens.length).toBe(512);
    expect((tokens as string[]).slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(h.tensors).toHaveLength(3 + 5 * 9);
    expect(h.dataOffset % 32).toBe(0);
    expect(Math.min(...h.tensors.map((t) => t.offset))).toBe(h.dataOffset);
    expect(h.headerBytesRead).toBeLessThan(h.fileSize / 4);
    // Tensors tile the data section back to back (each 32-aligned) up to the end of the file.
    const end = Math.max(...h.tensors.map((t) => t.offset + t.byteLength));
    expect(end).toBe(h.fileSize);
  });
});

describe('openModel on stories260K GGUF', () => {
  let f32: ModelFile;
  let q8: ModelFile;
  beforeAll(async () => {
    f32 = await openModel(F32);
    q8 = await openModel(Q8);
  });
  afterAll(async () => {
    await f32.close();
    await q8.close();
  });

  it('derives the config from metadata', () => {
    for (const m of [f32, q8]) {
      expect(m.format).toBe('gguf');
      expect(m.ropeLayout).toBe('interleaved');
      expect(m.tokenizer.kind).toBe('gguf');
      const c = m.config;
      expect(c).toMatchObject({
        architecture: 'llama',
        hiddenSize: 64,
        numLayers: 5,
        numHeads: 8,
        numKvHeads: 4,
        headDim: 8,
        intermediateSize: 172,
        vocabSize: 512,
        contextLength: 2048,
        ropeTheta: 10000,
        ropeScaling: null,
        attentionBias: false,
        bosTokenId: 1,
        eosTokenIds: [2],
        addBosToken: true,
      });
      expect(c.rmsNormEps).toBeCloseTo(1e-5, 10);
      // This conversion ships output.weight explicitly, so the GGUF is not tied in file terms.
      expect(c.tiedEmbeddings).toBe(false);
    }
    expect(f32.chatTemplate).toBeNull();
  });

  it('indexes every tensor with its PyTorch-order shape', () => {
    const shape = (n: string) => f32.tensors.get(n)?.shape;
    expect(shape('token_embd.weight')).toEqual([512, 64]);
    expect(shape('output.weight')).toEqual([512, 64]);
    expect(shape('output_norm.weight')).toEqual([64]);
    for (let i = 0; i < 5; i++) {
      expect(shape(`blk.${i}.attn_q.weight`)).toEqual([64, 64]);
      expect(shape(`blk.${i}.attn_k.weight`)).toEqual([32, 64]);
      expect(shape(`blk.${i}.attn_v.weight`)).toEqual([32, 64]);
      expect(shape(`blk.${i}.attn_output.weight`)).toEqual([64, 64]);
      expect(shape(`blk.${i}.ffn_gate.weight`)).toEqual([172, 64]);
      expect(shape(`blk.${i}.ffn_up.weight`)).toEqual([172, 64]);
      expect(shape(`blk.${i}.ffn_down.weight`)).toEqual([64, 172]);
      expect(shape(`blk.${i}.attn_norm.weight`)).toEqual([64]);
      expect(shape(`blk.${i}.ffn_norm.weight`)).toEqual([64]);
    }
    expect(q8.tensors.get('blk.0.attn_q.weight')?.dtype).toBe('Q8_0');
    expect(q8.tensors.get('blk.0.ffn_down.weight')?.dtype).toBe('F32');
    expect(q8.tensors.get('blk.0.attn_q.weight')?.byteLength).toBe((64 * 64 * 34) / 32);
  });

  it('F32 output.weight equals token_embd (the llama2.c model is tied in substance)', async () => {
    const embd = await f32.readTensor('token_embd.weight');
    const out = await f32.readTensor('output.weight');
    expect(embd).toHaveLength(512 * 64);
    expect(out).toEqual(embd);
  });

  it('Q8_0 tensors dequantise to within half a quantisation step of the F32 ones', async () => {
    let checked = 0;
    for (const [name, info] of q8.tensors) {
      const ref = await f32.readTensor(name);
      const got = await q8.readTensor(name);
      expect(got.length).toBe(ref.length);
      if (info.dtype === 'F32') {
        expect(got).toEqual(ref);
        continue;
      }
      expect(info.dtype).toBe('Q8_0');
      checked++;
      let worst = 0;
      for (let b = 0; b < ref.length / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(ref[b * 32 + j]));
        const d = amax / 127;
        for (let j = 0; j < 32; j++) {
          const err = Math.abs(got[b * 32 + j] - ref[b * 32 + j]);
          // d/2 from rounding, plus the f16 rounding of the scale itself (|q| <= 127, rel. error 2^-11).
          expect(err).toBeLessThanOrEqual(d * 0.5 + 127 * d * 2 ** -11 + 1e-9);
          if (d > 0) worst = Math.max(worst, err / d);
        }
      }
      expect(worst).toBeGreaterThan(0.3); // really quantised, not a copy
    }
    expect(checked).toBe(2 + 5 * 6);
  });

  it('readTensor reads only that tensor: one positioned read of exactly its bytes', async () => {
    const probe = await open(Q8, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const spy = vi.spyOn(proto, 'read');
    try {
      const model = await openModel(Q8);
      const size = (await stat(Q8)).size;
      const headerBytes = spy.mock.calls.reduce((s, c) => s + Number(c[2]), 0);
      expect(headerBytes).toBeLessThan(size / 4);
      spy.mockClear();

      for (const name of ['blk.3.attn_k.weight', 'blk.3.ffn_down.weight']) {
        const info = model.tensors.get(name);
        if (info === undefined) throw new Error(`missing ${name}`);
        spy.mockClear();
        await model.readTensor(name);
        expect(spy).toHaveBeenCalledTimes(1);
        const [, , length, position] = spy.mock.calls[0];
        expect(length).toBe(info.byteLength);
        expect(position).toBe(info.offset);
      }
      await model.close();
    } finally {
      spy.mockRestore();
    }
  });

  it('unknown tensor names and reads after close are errors, not crashes', async () => {
    const m = await openModel(F32);
    await expect(m.readTensor('blk.9.attn_q.weight')).rejects.toThrow(/has no tensor named blk\.9\.attn_q\.weight/);
    await m.close();
    await expect(m.readTensor('token_embd.weight')).rejects.toThrow(ModelFileError);
  });
});

describe('corrupt GGUF files', () => {
  let dir: string;
  let original: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edge-node-gguf-'));
    original = await readFile(F32);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function variant(name: string, edit: (b: Buffer) => Buffer): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, edit(Buffer.from(original)));
    return path;
  }

  /** Offset of the value of metadata `key` (after its type tag). */
  function valueOffset(b: Buffer, key: string): number {
    const at = b.indexOf(Buffer.from(key, 'utf8'));
    if (at < 0) throw new Error(`no key ${key}`);
    return at + key.length + 4;
  }

  /** Offset of the type field in tensor info `name`. */
  function tensorTypeOffset(b: Buffer, name: string): number {
    const at = b.indexOf(Buffer.from(name, 'utf8')) + name.length;
    const nDims = b.readUInt32LE(at);
    return at + 4 + 8 * nDims;
  }

  it('bad magic', async () => {
    const p = await variant('magic.gguf', (b) => (b.write('GGUX', 0), b));
    await expect(openModel(p)).rejects.toThrow(ModelFileError);
    await expect(openModel(p)).rejects.toThrow(`${p}: not a GGUF file`);
  });

  it('a llama2.c checkpoint and an empty file are refused with the reason', async () => {
    await expect(openModel(join(DIR, 'stories260K.bin'))).rejects.toThrow(/stories260K\.bin: not a GGUF file \(magic bytes 0x/);
    const empty = await variant('empty.gguf', (b) => b.subarray(0, 0));
    const err = await openModel(empty).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedModelFileError);
    expect((err as Error).message).toMatch(/empty\.gguf: GGUF header cut short: reading magic at byte 0 needs 4 bytes but the file is 0 bytes/);
  });

  it('unsupported versions; v2 reads like v3', async () => {
    const v1 = await variant('v1.gguf', (b) => (b.writeUInt32LE(1, 4), b));
    await expect(openModel(v1)).rejects.toThrow(/unsupported GGUF version 1/);
    const v4 = await variant('v4.gguf', (b) => (b.writeUInt32LE(4, 4), b));
    await expect(openModel(v4)).rejects.toThrow(/unsupported GGUF version 4/);
    const v2 = await variant('v2.gguf', (b) => (b.writeUInt32LE(2, 4), b));
    const m = await openModel(v2);
    expect(m.config.hiddenSize).toBe(64);
    expect((await m.readTensor('blk.4.ffn_norm.weight')).length).toBe(64);
    await m.close();
  });

  it('tensor data past EOF', async () => {
    const p = await variant('cut-data.gguf', (b) => b.subarray(0, b.length - 1000));
    const err = await openModel(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedModelFileError);
    expect((err as Error).message).toMatch(/cut-data\.gguf: tensor blk\.4\.\w+\.weight occupies bytes \d+\.\.\d+ but the file is only 1184376 bytes/);
  });

  it('header cut short', async () => {
    const p = await variant('cut-header.gguf', (b) => b.subarray(0, 5000));
    const err = await openModel(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedModelFileError);
    expect((err as Error).message).toMatch(/GGUF header cut short/);
  });

  it('absurd counts and lengths fail before allocating', async () => {
    const tensors = await variant('tensor-count.gguf', (b) => (b.writeBigUInt64LE(1n << 40n, 8), b));
    await expect(openModel(tensors)).rejects.toThrow(/tensor count is 1099511627776 .* cannot fit/);
    const keyLen = await variant('key-len.gguf', (b) => (b.writeBigUInt64LE(1n << 62n, 24), b));
    await expect(openModel(keyLen)).rejects.toThrow(/length of metadata key #0 is 4611686018427387904/);
    const arr = await variant('array-count.gguf', (b) => (b.writeBigUInt64LE(1n << 50n, valueOffset(b, 'tokenizer.ggml.tokens') + 4), b));
    await expect(openModel(arr)).rejects.toThrow(/element count of tokenizer\.ggml\.tokens is 1125899906842624/);
  });

  it('config that does not match the tensors', async () => {
    const p = await variant('ffn.gguf', (b) => (b.writeUInt32LE(173, valueOffset(b, 'llama.feed_forward_length')), b));
    const err = await openModel(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TensorShapeError);
    expect((err as Error).message).toMatch(/tensor blk\.0\.ffn_gate\.weight: shape \[172, 64\] does not match the config .* implies \[173, 64\]/);
    const layers = await variant('layers.gguf', (b) => (b.writeUInt32LE(6, valueOffset(b, 'llama.block_count')), b));
    await expect(openModel(layers)).rejects.toThrow(/tensor blk\.5\.attn_norm\.weight: missing/);
  });

  it('unknown architecture', async () => {
    const p = await variant('arch.gguf', (b) => (b.write('gemma', valueOffset(b, 'general.architecture') + 8), b));
    const err = await openModel(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedArchitectureError);
    expect((err as Error).message).toMatch(/architecture "gemma" is not supported/);
  });

  it('unsupported tensor type names the type and tensor', async () => {
    // IQ4_NL (type 20, 18 bytes per 32 values) keeps the tensor inside the file, so the type check itself must fire.
    const p = await variant('iq4nl.gguf', (b) => (b.writeUInt32LE(20, tensorTypeOffset(b, 'blk.0.attn_q.weight')), b));
    const err = await openModel(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedTensorTypeError);
    expect((err as Error).message).toMatch(/tensor blk\.0\.attn_q\.weight has type IQ4_NL/);
    const bad = await variant('type99.gguf', (b) => (b.writeUInt32LE(99, tensorTypeOffset(b, 'blk.0.attn_q.weight')), b));
    await expect(openModel(bad)).rejects.toThrow(/unknown GGML type id 99/);
  });

  it('f16 scale reads agree with the Q8 file bytes (sanity of the fixture offsets)', async () => {
    const h = await readGgufHeader(Q8);
    const t = h.tensors.find((x) => x.name === 'blk.0.attn_v.weight');
    if (t === undefined) throw new Error('missing');
    const bytes = (await readFile(Q8)).subarray(t.offset, t.offset + 34);
    const m = await openModel(Q8);
    const v = await m.readTensor('blk.0.attn_v.weight');
    await m.close();
    const d = f16ToF32(bytes[0] | (bytes[1] << 8));
    expect(v[5]).toBe(((bytes[7] << 24) >> 24) * d);
  });
});
