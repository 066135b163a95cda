import type { TensorName } from './model-file.js';

// Maps, not object literals: a name like `model.layers.0.constructor` must not hit Object.prototype.
const GLOBAL: ReadonlyMap<string, TensorName> = new Map(Object.entries({
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
}));

const LAYER: ReadonlyMap<string, string> = new Map(Object.entries({
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
  'input_layernorm.weight': 'attn_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
}));

const LAYER_RE = /^model\.layers\.(\d+)\.(.+)$/;

/**
 * Maps a Hugging Face Llama/Mistral/Qwen2 tensor name to llama.cpp's canonical name, or null for tensors
 * edge-node does not use (e.g. `rotary_emb.inv_freq` buffers in old checkpoints).
 */
export function canonicalTensorName(hfName: string): TensorName | null {
  const global = GLOBAL.get(hfName);
  if (global !== undefined) return global;
  const m = LAYER_RE.exec(hfName);
  if (m === null) return null;
  const suffix = LAYER.get(m[2]);
  return suffix === undefined ? null : `blk.${Number(m[1])}.${suffix}`;
}
