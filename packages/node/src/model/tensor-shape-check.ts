import type { ModelConfig } from './model-config.js';
import type { TensorInfo, TensorName } from './model-file.js';
import { TensorShapeError } from './model-errors.js';

/** Every tensor the forward pass needs, with its PyTorch-order shape ([out, in] for linear weights). */
export function expectedTensorShapes(config: ModelConfig): Map<TensorName, number[]> {
  const { hiddenSize: h, numHeads, numKvHeads, headDim, intermediateSize: ffn, vocabSize } = config;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const shapes = new Map<TensorName, number[]>([
    ['token_embd.weight', [vocabSize, h]],
    ['output_norm.weight', [h]],
  ]);
  if (!config.tiedEmbeddings) shapes.set('output.weight', [vocabSize, h]);
  for (let i = 0; i < config.numLayers; i++) {
    const b = `blk.${i}.`;
    shapes.set(`${b}attn_norm.weight`, [h]);
    shapes.set(`${b}attn_q.weight`, [q, h]);
    shapes.set(`${b}attn_k.weight`, [kv, h]);
    shapes.set(`${b}attn_v.weight`, [kv, h]);
    shapes.set(`${b}attn_output.weight`, [h, q]);
    if (config.attentionBias) {
      shapes.set(`${b}attn_q.bias`, [q]);
      shapes.set(`${b}attn_k.bias`, [kv]);
      shapes.set(`${b}attn_v.bias`, [kv]);
    }
    shapes.set(`${b}ffn_norm.weight`, [h]);
    shapes.set(`${b}ffn_gate.weight`, [ffn, h]);
    shapes.set(`${b}ffn_up.weight`, [ffn, h]);
    shapes.set(`${b}ffn_down.weight`, [h, ffn]);
  }
  return shapes;
}

function describe(config: ModelConfig): string {
  return `hidden ${config.hiddenSize}, ${config.numHeads} heads / ${config.numKvHeads} kv heads x ${config.headDim}, ffn ${config.intermediateSize}, vocab ${config.vocabSize}`;
}

const LAYER_RE = /^blk\.(\d+)\./;

/**
 * Checks that every tensor the config implies exists with the implied shape, and that no layer tensors lie
 * beyond numLayers — so a mismatched config fails here, naming the tensor, not deep inside a matmul.
 * `fileOf` names the file (for a model with several shards) that an error should point at.
 */
export function checkTensorShapes(
  config: ModelConfig,
  tensors: ReadonlyMap<TensorName, TensorInfo>,
  modelPath: string,
): void {
  for (const [name, shape] of expectedTensorShapes(config)) {
    const info = tensors.get(name);
    if (info === undefined) {
      throw new TensorShapeError(modelPath, name, `missing (the config says ${config.numLayers} layers${config.tiedEmbeddings ? '' : ', untied output head'}${config.attentionBias ? ', q/k/v biases' : ''})`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new TensorShapeError(info.file, name, `shape [${info.shape.join(', ')}] does not match the config (${describe(config)}), which implies [${shape.join(', ')}]`);
    }
  }
  for (const [name, info] of tensors) {
    const m = LAYER_RE.exec(name);
    if (m !== null && Number(m[1]) >= config.numLayers) {
      throw new TensorShapeError(info.file, name, `belongs to layer ${m[1]} but the config has only ${config.numLayers} layers`);
    }
  }
}
