import type { ModelConfig } from '@edge-node/node';

/** The config.json transformers writes for a Llama or Qwen2 causal LM of this shape. */
export function hfConfigJson(config: ModelConfig, torchDtype: 'float32' | 'float16' | 'bfloat16'): Record<string, unknown> {
  const common: Record<string, unknown> = {
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.contextLength,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: config.ropeScaling
      ? {
          rope_type: 'llama3',
          factor: config.ropeScaling.factor,
          low_freq_factor: config.ropeScaling.lowFreqFactor,
          high_freq_factor: config.ropeScaling.highFreqFactor,
          original_max_position_embeddings: config.ropeScaling.originalMaxPositionEmbeddings,
        }
      : null,
    tie_word_embeddings: config.tiedEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds,
    torch_dtype: torchDtype,
    use_cache: true,
    _name_or_path: config.name,
  };
  if (config.architecture === 'qwen2') {
    // Qwen2 always has q/k/v biases; the config has no attention_bias key.
    return {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      ...common,
      use_sliding_window: false,
      sliding_window: config.contextLength,
      max_window_layers: config.numLayers,
      attention_dropout: 0,
    };
  }
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...common,
    attention_bias: config.attentionBias,
    mlp_bias: false,
    attention_dropout: 0,
    pretraining_tp: 1,
  };
}
