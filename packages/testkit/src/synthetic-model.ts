import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { llama3RopeDivisors, type ModelConfig, type RopeLayout } from '@edge-node/node';
import { gguf, writeGguf } from './gguf-writer.js';
import type { GgufMetadataValue, GgufTensorSource } from './gguf-writer.js';
import { hfConfigJson } from './hf-config-json.js';
import { writeSafetensors } from './safetensors-writer.js';
import type { SafetensorsTensorSource } from './safetensors-writer.js';
import { hashString, SeededRandom } from './seeded-random.js';
import { SyntheticModelError } from './synth-errors.js';
import { isSyntheticPresetName, SYNTHETIC_PRESETS, SYNTHETIC_PRESET_NAMES } from './synthetic-presets.js';
import type { SyntheticPresetName } from './synthetic-presets.js';
import { loadBuiltinLlamaTokenizer, loadTokenizerDir, padTokenizer, tokenizerGgufMetadata } from './synthetic-tokenizer.js';
import type { SyntheticTokenizer } from './synthetic-tokenizer.js';
import { Q8_0_BLOCK } from './tensor-encoding.js';
import type { EncodedDType } from './tensor-encoding.js';

/**
 * Random-weight models of real shapes, written as GGUF (llama.cpp layout) or Hugging Face safetensors.
 * The weights are a pure function of (seed, tensor name, row), defined in Hugging Face order; the GGUF
 * llama writer permutes Q/K rows exactly as convert_hf_to_gguf does, so both files hold the same model.
 */

export type SyntheticFormat = 'gguf' | 'safetensors';
/** F32/F16/BF16 in either format; Q8_0 GGUF only (2-D weights Q8_0, vectors F32, as llama.cpp's convert). */
export type SyntheticDType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

export interface SyntheticModelOptions {
  /** A named shape; `config` fields override it. One of preset/config is required. */
  preset?: SyntheticPresetName;
  config?: Partial<ModelConfig>;
  /** Shortcut for config.numLayers (e.g. a 30-layer tiny model). */
  numLayers?: number;
  format: SyntheticFormat;
  dtype?: SyntheticDType;
  seed?: number;
  /** GGUF: the .gguf file. safetensors: the folder (created). */
  outPath: string;
  /** Hugging Face tokenizer folder to embed (byte-level BPE). Default: the built-in 512-piece SentencePiece vocab. */
  tokenizerDir?: string;
  /** GGUF tokenizer.ggml.pre; detected from tokenizer.json when omitted ("smollm" for SmolLM2). */
  tokenizerPre?: string;
  /**
   * Keep the configured vocab size when the tokenizer has fewer tokens, padding the tokenizer with unused
   * "[PADi]" tokens (as convert_hf_to_gguf does for Qwen), so real presets keep their real LM-head size.
   * false: shrink the model's vocab to the tokenizer's (e.g. 512 with the built-in vocab). Default true.
   */
  padVocab?: boolean;
  /** safetensors only: shard into files of at most this many bytes (plus model.safetensors.index.json). */
  maxShardBytes?: number;
}

export interface SyntheticModel {
  /** The .gguf file or the safetensors folder. */
  path: string;
  format: SyntheticFormat;
  dtype: SyntheticDType;
  seed: number;
  /** The model as generated (vocab and special tokens follow the embedded tokenizer). */
  config: ModelConfig;
  /** Q/K row order in the written file. */
  ropeLayout: RopeLayout;
  /** Every file written. */
  files: string[];
  /** Total bytes written. */
  bytes: number;
}

/** One tensor of the synthetic model, named canonically (llama.cpp names), shaped [out, in]. */
export interface SyntheticTensorPlan {
  name: string;
  /** Hugging Face name, or null for GGUF-only tensors (rope_freqs.weight). */
  hfName: string | null;
  shape: number[];
  mean: number;
  std: number;
  /** For attn_q/attn_k: heads of the RoPE row permutation between HF and GGUF llama layouts. */
  ropeHeads: number | null;
  /** Deterministic values instead of random ones. */
  fixed: Float32Array | null;
}

/** Resolves preset + overrides into a validated config (before the tokenizer adjusts the vocab). */
export function resolveSyntheticConfig(options: Pick<SyntheticModelOptions, 'preset' | 'config' | 'numLayers'>): ModelConfig {
  if (options.preset !== undefined && !isSyntheticPresetName(options.preset)) {
    throw new SyntheticModelError(`unknown preset "${String(options.preset)}" (known: ${SYNTHETIC_PRESET_NAMES.join(', ')})`);
  }
  const basePreset = options.preset ? SYNTHETIC_PRESETS[options.preset] : null;
  if (!basePreset && !options.config) throw new SyntheticModelError('give a preset or a config');
  const merged = { ...(basePreset ?? {}), ...(options.config ?? {}) } as Partial<ModelConfig>;
  if (options.numLayers !== undefined) merged.numLayers = options.numLayers;
  if (merged.headDim === undefined && merged.hiddenSize && merged.numHeads) merged.headDim = merged.hiddenSize / merged.numHeads;
  const required: Array<keyof ModelConfig> = [
    'architecture',
    'hiddenSize',
    'intermediateSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'vocabSize',
    'contextLength',
    'ropeTheta',
  ];
  for (const key of required) {
    if (merged[key] === undefined) throw new SyntheticModelError(`config.${key} is missing`);
  }
  const c: ModelConfig = {
    name: 'synthetic',
    rmsNormEps: 1e-5,
    ropeScaling: null,
    tiedEmbeddings: true,
    attentionBias: merged.architecture === 'qwen2',
    bosTokenId: 1,
    eosTokenIds: [2],
    addBosToken: true,
    ...merged,
  } as ModelConfig;
  for (const key of ['hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new SyntheticModelError(`config.${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new SyntheticModelError(`numHeads (${c.numHeads}) must be a multiple of numKvHeads (${c.numKvHeads})`);
  }
  if (c.headDim % 2 !== 0) throw new SyntheticModelError(`headDim (${c.headDim}) must be even for RoPE`);
  return c;
}

/** Weight scales chosen so greedy decoding of random weights is not degenerate (see the plan below). */
function planTensors(c: ModelConfig): SyntheticTensorPlan[] {
  const h = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  // Chosen by measuring llama.cpp greedy output on the tiny presets (64 tokens, 4 seeds): logits get std ~2
  // (clear top-1 gaps); Q/K at 2/sqrt(in) make attention peaked (score std ~4) — at 1/sqrt(in) attention
  // averages the context and greedy text falls into long runs of one token (~50% repeats, vs ~6% now).
  // A tied head also favours tokens already in the residual stream, so tied models get small embeddings
  // and a final norm of ~10 that restores the logit spread.
  const embStd = (c.tiedEmbeddings ? 0.2 : 2) / Math.sqrt(h);
  const outNormMean = c.tiedEmbeddings ? 10 : 1;
  const lin = (name: string, hfName: string, out: number, inp: number, ropeHeads: number | null = null): SyntheticTensorPlan => ({
    name,
    hfName,
    shape: [out, inp],
    mean: 0,
    std: (ropeHeads ? 2 : 1) / Math.sqrt(inp),
    ropeHeads,
    fixed: null,
  });
  const vec = (name: string, hfName: string, n: number, mean: number, std: number, ropeHeads: number | null = null): SyntheticTensorPlan => ({
    name,
    hfName,
    shape: [n],
    mean,
    std,
    ropeHeads,
    fixed: null,
  });
  const plan: SyntheticTensorPlan[] = [
    { name: 'token_embd.weight', hfName: 'model.embed_tokens.weight', shape: [c.vocabSize, h], mean: 0, std: embStd, ropeHeads: null, fixed: null },
  ];
  if (c.ropeScaling) {
    plan.push({
      name: 'rope_freqs.weight',
      hfName: null,
      shape: [c.headDim / 2],
      mean: 0,
      std: 0,
      ropeHeads: null,
      fixed: llama3RopeDivisors(c.ropeScaling, c.headDim, c.ropeTheta),
    });
  }
  for (let i = 0; i < c.numLayers; i++) {
    const p = `blk.${i}.`;
    const hp = `model.layers.${i}.`;
    plan.push(vec(`${p}attn_norm.weight`, `${hp}input_layernorm.weight`, h, 1, 0.05));
    plan.push(lin(`${p}attn_q.weight`, `${hp}self_attn.q_proj.weight`, qDim, h, c.numHeads));
    if (c.attentionBias) plan.push(vec(`${p}attn_q.bias`, `${hp}self_attn.q_proj.bias`, qDim, 0, 0.2, c.numHeads));
    plan.push(lin(`${p}attn_k.weight`, `${hp}self_attn.k_proj.weight`, kvDim, h, c.numKvHeads));
    if (c.attentionBias) plan.push(vec(`${p}attn_k.bias`, `${hp}self_attn.k_proj.bias`, kvDim, 0, 0.2, c.numKvHeads));
    plan.push(lin(`${p}attn_v.weight`, `${hp}self_attn.v_proj.weight`, kvDim, h));
    if (c.attentionBias) plan.push(vec(`${p}attn_v.bias`, `${hp}self_attn.v_proj.bias`, kvDim, 0, 0.2));
    plan.push(lin(`${p}attn_output.weight`, `${hp}self_attn.o_proj.weight`, h, qDim));
    plan.push(vec(`${p}ffn_norm.weight`, `${hp}post_attention_layernorm.weight`, h, 1, 0.05));
    plan.push(lin(`${p}ffn_gate.weight`, `${hp}mlp.gate_proj.weight`, c.intermediateSize, h));
    plan.push(lin(`${p}ffn_up.weight`, `${hp}mlp.up_proj.weight`, c.intermediateSize, h));
    plan.push(lin(`${p}ffn_down.weight`, `${hp}mlp.down_proj.weight`, h, c.intermediateSize));
  }
  plan.push(vec('output_norm.weight', 'model.norm.weight', h, outNormMean, 0.05 * outNormMean));
  if (!c.tiedEmbeddings) {
    plan.push({ name: 'output.weight', hfName: 'lm_head.weight', shape: [c.vocabSize, h], mean: 0, std: embStd, ropeHeads: null, fixed: null });
  }
  return plan;
}

/**
 * The HF row behind GGUF row `g` of a Q/K projection: convert_hf_to_gguf's permute reshapes rows as
 * (heads, 2, headDim/2) and swaps the last two axes, so GGUF row h*hd + 2j + s is HF row h*hd + s*hd/2 + j.
 */
export function ggufRowToHfRow(g: number, headDim: number): number {
  const head = Math.floor(g / headDim);
  const r = g % headDim;
  return head * headDim + (r & 1) * (headDim / 2) + (r >> 1);
}

/** Fills `count` rows starting at `startRow` of tensor `t` (in GGUF-interleaved order when `interleave`). */
function fillRows(t: SyntheticTensorPlan, seed: number, startRow: number, count: number, out: Float32Array, interleave: boolean): void {
  if (t.fixed) {
    out.set(t.fixed);
    return;
  }
  const stream = hashString(t.name);
  const headDim = t.ropeHeads ? t.shape[0] / t.ropeHeads : 0;
  if (t.shape.length === 1) {
    // A vector is one row of random numbers; the permutation (biases of q/k) moves single elements.
    const values = new Float32Array(t.shape[0]);
    new SeededRandom(seed, stream, 0).fillNormal(values, t.mean, t.std);
    for (let i = 0; i < count; i++) {
      const g = startRow + i;
      out[i] = values[interleave && t.ropeHeads ? ggufRowToHfRow(g, headDim) : g];
    }
    return;
  }
  const rowLen = t.shape[1];
  for (let i = 0; i < count; i++) {
    const g = startRow + i;
    const hfRow = interleave && t.ropeHeads ? ggufRowToHfRow(g, headDim) : g;
    new SeededRandom(seed, stream, hfRow).fillNormal(out.subarray(i * rowLen, (i + 1) * rowLen), t.mean, t.std);
  }
}

const CHUNK_VALUES = 1 << 20;

function* tensorChunks(t: SyntheticTensorPlan, seed: number, interleave: boolean): Generator<Float32Array> {
  if (t.shape.length === 1) {
    const out = new Float32Array(t.shape[0]);
    fillRows(t, seed, 0, t.shape[0], out, interleave);
    yield out;
    return;
  }
  const [rows, rowLen] = t.shape;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
  for (let r = 0; r < rows; r += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - r);
    const out = new Float32Array(n * rowLen);
    fillRows(t, seed, r, n, out, interleave);
    yield out;
  }
}

/**
 * The values of one synthetic tensor as float32, row-major in its [out, in] shape: `layout` 'hf' gives
 * Hugging Face row order, 'gguf' the order the GGUF file stores (Q/K interleaved for llama).
 */
export function syntheticTensorValues(config: ModelConfig, seed: number, name: string, layout: 'hf' | 'gguf'): Float32Array {
  const t = planTensors(config).find((p) => p.name === name || p.hfName === name);
  if (!t) throw new SyntheticModelError(`the synthetic model has no tensor ${name}`);
  const parts = [...tensorChunks(t, seed, layout === 'gguf' && config.architecture === 'llama')];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const FILE_TYPE: Record<SyntheticDType, number> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };

function ggufDType(t: SyntheticTensorPlan, dtype: SyntheticDType): EncodedDType {
  if (t.shape.length === 1 || dtype === 'F32') return 'F32';
  // convert_hf_to_gguf falls back to F16 for rows Q8_0 cannot block.
  if (dtype === 'Q8_0' && t.shape[1] % Q8_0_BLOCK !== 0) return 'F16';
  return dtype;
}

function ggufMetadata(c: ModelConfig, tok: SyntheticTokenizer, dtype: SyntheticDType, seed: number): Array<[string, GgufMetadataValue]> {
  const a = c.architecture;
  const md: Array<[string, GgufMetadataValue]> = [
    ['general.architecture', gguf.str(a)],
    ['general.type', gguf.str('model')],
    ['general.name', gguf.str(c.name)],
    ['general.description', gguf.str(`edge-node synthetic model: random weights, seed ${seed}`)],
    ['general.file_type', gguf.u32(FILE_TYPE[dtype])],
    ['general.quantization_version', gguf.u32(2)],
    [`${a}.vocab_size`, gguf.u32(c.vocabSize)],
    [`${a}.context_length`, gguf.u32(c.contextLength)],
    [`${a}.embedding_length`, gguf.u32(c.hiddenSize)],
    [`${a}.block_count`, gguf.u32(c.numLayers)],
    [`${a}.feed_forward_length`, gguf.u32(c.intermediateSize)],
    [`${a}.attention.head_count`, gguf.u32(c.numHeads)],
    [`${a}.attention.head_count_kv`, gguf.u32(c.numKvHeads)],
    [`${a}.rope.freq_base`, gguf.f32(c.ropeTheta)],
    [`${a}.rope.dimension_count`, gguf.u32(c.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rmsNormEps)],
  ];
  if (c.headDim * c.numHeads !== c.hiddenSize) {
    md.push([`${a}.attention.key_length`, gguf.u32(c.headDim)], [`${a}.attention.value_length`, gguf.u32(c.headDim)]);
  }
  md.push(...tokenizerGgufMetadata(tok));
  return md;
}

async function resolveTokenizer(options: SyntheticModelOptions, config: ModelConfig): Promise<{ tok: SyntheticTokenizer; config: ModelConfig }> {
  let tok = options.tokenizerDir ? await loadTokenizerDir(options.tokenizerDir, options.tokenizerPre) : await loadBuiltinLlamaTokenizer();
  const padVocab = options.padVocab ?? true;
  let vocabSize = config.vocabSize;
  if (tok.tokens.length > vocabSize || !padVocab) vocabSize = tok.tokens.length;
  tok = padTokenizer(tok, vocabSize);
  return {
    tok,
    config: {
      ...config,
      vocabSize,
      bosTokenId: tok.bosTokenId,
      eosTokenIds: tok.eosTokenIds,
      addBosToken: tok.addBosToken,
    },
  };
}

/** Generates a random-weight model and writes it to `outPath`. Tensor data streams to disk. */
export async function generateSyntheticModel(options: SyntheticModelOptions): Promise<SyntheticModel> {
  const dtype = options.dtype ?? 'F32';
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new SyntheticModelError(`seed must be a 32-bit unsigned integer, got ${seed}`);
  if (options.format === 'safetensors' && dtype === 'Q8_0') {
    throw new SyntheticModelError('safetensors holds F32, F16 or BF16; Q8_0 is a GGUF type (use format "gguf")');
  }
  const resolved = await resolveTokenizer(options, resolveSyntheticConfig(options));
  const config = resolved.config;
  const tok = resolved.tok;
  const plan = planTensors(config);
  const outPath = resolve(options.outPath);

  if (options.format === 'gguf') {
    await mkdir(dirname(outPath), { recursive: true });
    const interleave = config.architecture === 'llama';
    const tensors: GgufTensorSource[] = plan.map((t) => ({
      name: t.name,
      shape: t.shape,
      dtype: ggufDType(t, dtype),
      chunks: () => tensorChunks(t, seed, interleave),
    }));
    const res = await writeGguf(outPath, { metadata: ggufMetadata(config, tok, dtype, seed), tensors });
    return { path: outPath, format: 'gguf', dtype, seed, config, ropeLayout: interleave ? 'interleaved' : 'half', files: [outPath], bytes: res.bytes };
  }

  if (options.format !== 'safetensors') throw new SyntheticModelError(`unknown format "${String(options.format)}" (gguf or safetensors)`);
  const stDtype = dtype as 'F32' | 'F16' | 'BF16';
  await mkdir(outPath, { recursive: true });
  const tensors: SafetensorsTensorSource[] = plan
    .filter((t): t is SyntheticTensorPlan & { hfName: string } => t.hfName !== null)
    .map((t) => ({ name: t.hfName, shape: t.shape, dtype: stDtype, chunks: () => tensorChunks(t, seed, false) }));
  const res = await writeSafetensors(outPath, {
    tensors,
    metadata: { 'edge-node.synthetic-seed': String(seed) },
    ...(options.maxShardBytes !== undefined ? { maxShardBytes: options.maxShardBytes } : {}),
  });
  const torchDtype = stDtype === 'F32' ? 'float32' : stDtype === 'F16' ? 'float16' : 'bfloat16';
  const files = [...res.files];
  if (res.indexPath) files.push(res.indexPath);
  const configPath = join(outPath, 'config.json');
  await writeFile(configPath, JSON.stringify(hfConfigJson(config, torchDtype), null, 2) + '\n');
  files.push(configPath);
  for (const [name, src] of tok.hfFiles) {
    await copyFile(src, join(outPath, name));
    files.push(join(outPath, name));
  }
  if (tok.hfTokenizerConfig) {
    const p = join(outPath, 'tokenizer_config.json');
    await writeFile(p, JSON.stringify(tok.hfTokenizerConfig, null, 2) + '\n');
    files.push(p);
  }
  let bytes = 0;
  for (const f of files) bytes += (await stat(f)).size;
  return { path: outPath, format: 'safetensors', dtype, seed, config, ropeLayout: 'half', files, bytes };
}
