import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGguf, type GgufEncodedTensor, type GgufEncodedValue } from '../src/model/gguf-encoder.js';
import { parseGgufBytes } from '../src/model/gguf-reader.js';
import { f16ToF32, f32ToF16 } from '../src/model/half-float.js';
import { readLoraAdapter, writeLoraAdapter } from '../src/model/lora-adapter-file.js';
import { loraScale, sliceLoraAdapter, type LoraAdapter } from '../src/model/lora-adapter.js';
import { LoraAdapterError, ModelFileError } from '../src/model/model-errors.js';
import type { ModelFile } from '../src/model/model-file.js';
import { openModel } from '../src/model/open-model.js';
import { randomLoraAdapter } from './support/random-lora.js';

const STORIES = join(import.meta.dirname, '..', 'models', 'stories260K.gguf');

let base: ModelFile;
let dir = '';
beforeAll(async () => {
  base = await openModel(STORIES);
  dir = await mkdtemp(join(tmpdir(), 'lora-file-'));
});
afterAll(async () => {
  await base.close();
  await rm(dir, { recursive: true, force: true });
});

const META: Array<[string, GgufEncodedValue]> = [
  ['general.type', { type: 'string', value: 'adapter' }],
  ['general.architecture', { type: 'string', value: 'llama' }],
  ['adapter.type', { type: 'string', value: 'lora' }],
  ['adapter.lora.alpha', { type: 'f32', value: 8 }],
];

function f32Tensor(name: string, ne: number[], fill = 0.5): GgufEncodedTensor {
  const values = new Float32Array(ne.reduce((a, b) => a * b, 1)).fill(fill);
  return { name, ne, typeId: 0, data: new Uint8Array(values.buffer) };
}

/** An adapter file on blk.0.attn_q.weight ([64, 64] in stories260K) with rank 4, changed by the test. */
function file(meta = META, tensors = [f32Tensor('blk.0.attn_q.weight.lora_a', [64, 4]), f32Tensor('blk.0.attn_q.weight.lora_b', [4, 64])]): Uint8Array {
  return encodeGguf(meta, tensors);
}

async function refusal(bytes: Uint8Array): Promise<LoraAdapterError> {
  const err = await readLoraAdapter(bytes, base, 'bad.gguf').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LoraAdapterError);
  return err as LoraAdapterError;
}

describe('LoRA adapter file (llama.cpp GGUF)', () => {
  it('writes the llama.cpp layout and reads back the same adapter, F32 bit for bit', async () => {
    const adapter = randomLoraAdapter(base, { rank: 4, alpha: 8, seed: 7 });
    const bytes = writeLoraAdapter(adapter, base);
    const header = parseGgufBytes(bytes, 'written');
    expect(header.metadata.get('general.type')).toBe('adapter');
    expect(header.metadata.get('general.architecture')).toBe('llama');
    expect(header.metadata.get('adapter.type')).toBe('lora');
    expect(header.metadata.get('adapter.lora.alpha')).toBe(8);
    expect(header.tensors).toHaveLength(5 * 7 * 2);
    // ggml ne order: lora_a [n_in, r], lora_b [r, n_out]; ffn_down is [64 out, 172 in].
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    expect(byName.get('blk.2.ffn_down.weight.lora_a')?.ne).toEqual([172, 4]);
    expect(byName.get('blk.2.ffn_down.weight.lora_b')?.ne).toEqual([4, 64]);
    expect(byName.get('blk.0.attn_k.weight.lora_b')?.ne).toEqual([4, 32]);

    const path = join(dir, 'a.gguf');
    await writeFile(path, bytes);
    const back = await readLoraAdapter(path, base);
    expect(back.alpha).toBe(8);
    expect([...back.tensors.keys()].sort()).toEqual([...adapter.tensors.keys()].sort());
    for (const [name, pair] of adapter.tensors) {
      const got = back.tensors.get(name)!;
      expect(got.rank).toBe(4);
      expect(Buffer.from(got.a.buffer).equals(Buffer.from(pair.a.buffer))).toBe(true);
      expect(Buffer.from(got.b.buffer).equals(Buffer.from(pair.b.buffer))).toBe(true);
    }
  });

  it('writes and reads F16, each value rounded to half precision', async () => {
    const adapter = randomLoraAdapter(base, { rank: 2, alpha: 0, seed: 3, layers: [4] });
    const back = await readLoraAdapter(writeLoraAdapter(adapter, base, 'F16'), base);
    const pair = adapter.tensors.get('blk.4.ffn_up.weight')!;
    const got = back.tensors.get('blk.4.ffn_up.weight')!;
    expect(Array.from(got.b)).toEqual(Array.from(pair.b, (v) => f16ToF32(f32ToF16(v))));
    expect(got.b).not.toEqual(pair.b);
    // The pairs remember they were F16 (the forward rounds their inputs as ggml does), and are written back as F16.
    expect([got.aType, got.bType]).toEqual(['F16', 'F16']);
    const f16 = writeLoraAdapter(adapter, base, 'F16');
    expect(Buffer.from(writeLoraAdapter(back, base)).equals(Buffer.from(f16))).toBe(true);
    expect(parseGgufBytes(writeLoraAdapter(back, base), 'again').tensors.every((t) => t.type.name === 'F16')).toBe(true);
  });

  it('computes the scale as llama.cpp: user scale × alpha / rank, the user scale alone when alpha is 0', () => {
    expect(loraScale(16, 8, 1)).toBe(2);
    expect(loraScale(8, 3, 0.5)).toBe(Math.fround(4 / 3));
    expect(loraScale(0, 8, 0.75)).toBe(0.75);
  });

  it('slices an adapter to a stage’s layers', () => {
    const adapter = randomLoraAdapter(base, { rank: 2, alpha: 4, seed: 1 });
    const slice = sliceLoraAdapter(adapter, 1, 3);
    expect(slice.alpha).toBe(4);
    expect([...slice.tensors.keys()].every((n) => n.startsWith('blk.1.') || n.startsWith('blk.2.'))).toBe(true);
    expect(slice.tensors.size).toBe(14);
  });

  it('skips *_norm.weight tensors as llama.cpp does', async () => {
    const bytes = file(META, [f32Tensor('blk.0.attn_q.weight.lora_a', [64, 4]), f32Tensor('blk.0.attn_q.weight.lora_b', [4, 64]), f32Tensor('blk.0.attn_norm.weight', [64])]);
    expect([...(await readLoraAdapter(bytes, base)).tensors.keys()]).toEqual(['blk.0.attn_q.weight']);
  });

  const refusals: Array<[string, () => Uint8Array, RegExp]> = [
    ['a model given as an adapter', () => file([['general.type', { type: 'string', value: 'model' }], ...META.slice(1)]), /general\.type is model, expected "adapter"/],
    ['another architecture', () => file([META[0], ['general.architecture', { type: 'string', value: 'qwen2' }], META[2], META[3]]), /general\.architecture is qwen2 but the base model .* is llama/],
    ['adapter.type not lora', () => file([...META.slice(0, 2), ['adapter.type', { type: 'string', value: 'cvec' }], META[3]]), /adapter\.type is cvec/],
    ['a tensor the base lacks', () => file(META, [f32Tensor('blk.9.attn_q.weight.lora_a', [64, 4]), f32Tensor('blk.9.attn_q.weight.lora_b', [4, 64])]), /blk\.9\.attn_q\.weight: the base model .* has no tensor/],
    ['lora_a of the wrong width', () => file(META, [f32Tensor('blk.0.attn_q.weight.lora_a', [172, 4]), f32Tensor('blk.0.attn_q.weight.lora_b', [4, 64])]), /blk\.0\.attn_q\.weight: lora_a has ne \[172, 4\], expected \[64, rank\]/],
    ['lora_b of the wrong height', () => file(META, [f32Tensor('blk.0.attn_k.weight.lora_a', [64, 4]), f32Tensor('blk.0.attn_k.weight.lora_b', [4, 64])]), /blk\.0\.attn_k\.weight: lora_b has ne \[4, 64\], expected \[rank, 32\]/],
    ['ranks that differ', () => file(META, [f32Tensor('blk.0.attn_q.weight.lora_a', [64, 4]), f32Tensor('blk.0.attn_q.weight.lora_b', [8, 64])]), /lora_a's rank 4 \(ne\[1\]\) differs from lora_b's 8/],
    ['half a pair', () => file(META, [f32Tensor('blk.0.attn_q.weight.lora_a', [64, 4])]), /blk\.0\.attn_q\.weight: the pair lacks its lora_b/],
    ['a tensor with an unknown suffix', () => file(META, [f32Tensor('blk.0.attn_q.weight', [64, 64])]), /blk\.0\.attn_q\.weight: has an unexpected suffix/],
    ['an adapted tensor the forward does not adapt', () => file(META, [f32Tensor('output.weight.lora_a', [64, 4]), f32Tensor('output.weight.lora_b', [4, 512])]), /output\.weight: edge-node applies LoRA only to blk\.N\./],
    ['a non-finite value', () => file(META, [f32Tensor('blk.0.attn_q.weight.lora_a', [64, 4]), f32Tensor('blk.0.attn_q.weight.lora_b', [4, 64], Number.NaN)]), /blk\.0\.attn_q\.weight\.lora_b: value #0 is NaN/],
    ['no pairs at all', () => file(META, []), /has no LoRA tensors/],
    ['a quantised tensor', () => file(META, [{ name: 'blk.0.attn_q.weight.lora_a', ne: [64, 4], typeId: 8, data: new Uint8Array(8 * 34) }, f32Tensor('blk.0.attn_q.weight.lora_b', [4, 64])]), /has type Q8_0; edge-node reads LoRA tensors in F32, F16 or BF16/],
  ];
  for (const [what, bytes, message] of refusals) {
    it(`refuses ${what}, naming what is wrong`, async () => {
      expect((await refusal(bytes())).message).toMatch(message);
    });
  }

  it('refuses a truncated file and a missing one with a ModelFileError', async () => {
    const bytes = writeLoraAdapter(randomLoraAdapter(base, { rank: 2, alpha: 2, seed: 5, layers: [0] }), base);
    await expect(readLoraAdapter(bytes.subarray(0, bytes.byteLength - 100), base, 'cut.gguf')).rejects.toThrow(/cut\.gguf: .*truncated/);
    await expect(readLoraAdapter(bytes.subarray(0, 40), base, 'cut.gguf')).rejects.toBeInstanceOf(ModelFileError);
    await expect(readLoraAdapter(join(dir, 'absent.gguf'), base)).rejects.toThrow(/absent\.gguf: no such file/);
  });

  it('refuses to write an adapter that does not fit its base', () => {
    const adapter: LoraAdapter = { alpha: 4, tensors: new Map([['blk.0.ffn_up.weight', { rank: 2, a: new Float32Array(2 * 64), b: new Float32Array(10) }]]) };
    expect(() => writeLoraAdapter(adapter, base)).toThrow(/blk\.0\.ffn_up\.weight: lora_b has 10 values, expected 172 outputs/);
    expect(() => writeLoraAdapter({ alpha: Number.POSITIVE_INFINITY, tensors: adapter.tensors }, base)).toThrow(/alpha is Infinity/);
  });
});
