import { initBackend, type ActiveBackend, type BackendName } from '../backend/tf-backend.js';
import type { ModelFile } from '../model/model-file.js';
import { openModel } from '../model/open-model.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { generate, type GenerateOptions, type GenerationResult } from './generate.js';
import { LocalExecutor } from './local-executor.js';
import { disposeShard, loadShard, type ShardWeights } from './shard-loader.js';
import { TransformerShard } from './transformer-shard.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';

/** The tokenizer's vocabulary for constrained sampling, built on first use. */
function vocabularyOf(tokenizer: Tokenizer): () => TokenVocabulary {
  let v: TokenVocabulary | null = null;
  return () => (v ??= buildTokenVocabulary(tokenizer));
}

export interface LocalModelOptions {
  backend?: BackendName;
  /** Context limit; defaults to the model's trained context. */
  contextLength?: number;
}

export type LocalGenerateOptions = Omit<GenerateOptions, 'addBos' | 'contextLength'> & { addBos?: boolean };

/** A whole model on this device: file, tokenizer, every layer, and the generation loop. */
export class LocalModel {
  private constructor(
    readonly model: ModelFile,
    readonly tokenizer: Tokenizer,
    readonly backend: ActiveBackend,
    private readonly weights: ShardWeights,
    readonly shard: TransformerShard,
    readonly executor: LocalExecutor,
    readonly contextLength: number,
  ) {}

  static async open(path: string, opts: LocalModelOptions = {}): Promise<LocalModel> {
    const backend = await initBackend(opts.backend);
    const model = await openModel(path);
    try {
      const tokenizer = await loadTokenizer(model.tokenizer);
      const weights = await loadShard(model, { startLayer: 0, endLayer: model.config.numLayers });
      const shard = new TransformerShard(weights);
      const contextLength = Math.min(opts.contextLength ?? model.config.contextLength, model.config.contextLength);
      return new LocalModel(model, tokenizer, backend, weights, shard, new LocalExecutor(shard, vocabularyOf(tokenizer)), contextLength);
    } catch (err) {
      await model.close();
      throw err;
    }
  }

  generate(opts: LocalGenerateOptions): Promise<GenerationResult> {
    return generate(this.executor, this.tokenizer, {
      ...opts,
      addBos: opts.addBos ?? this.model.config.addBosToken,
      contextLength: this.contextLength,
    });
  }

  async close(): Promise<void> {
    this.shard.dispose();
    disposeShard(this.weights);
    await this.model.close();
  }
}
