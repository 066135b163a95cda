import type { KernelRuntime } from '@edge-node/kernels';
import type { ModelFile } from '../model/model-file.js';
import { openModel } from '../model/open-model.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { startKernels, type EngineOptions } from './engine-options.js';
import { generate, type GenerateOptions, type GenerationResult } from './generate.js';
import { LocalExecutor } from './local-executor.js';
import { QuantShard } from './quant-shard.js';
import { loadShardWeights } from './shard-weights.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';

/** The tokenizer's vocabulary for constrained sampling, built on first use. */
function vocabularyOf(tokenizer: Tokenizer): () => TokenVocabulary {
  let v: TokenVocabulary | null = null;
  return () => (v ??= buildTokenVocabulary(tokenizer));
}

export interface LocalModelOptions extends EngineOptions {
  /** Context limit; defaults to the model's trained context. */
  contextLength?: number;
  /** Kernels to run on (default: a runtime started for this model, closed with it). */
  runtime?: KernelRuntime;
}

export type LocalGenerateOptions = Omit<GenerateOptions, 'addBos' | 'contextLength'> & { addBos?: boolean };

/** A whole model on this device: file, tokenizer, every layer, and the generation loop. */
export class LocalModel {
  private constructor(
    readonly model: ModelFile,
    readonly tokenizer: Tokenizer,
    readonly runtime: KernelRuntime,
    private readonly ownsRuntime: boolean,
    readonly shard: QuantShard,
    readonly executor: LocalExecutor,
    readonly contextLength: number,
  ) {}

  static async open(path: string, opts: LocalModelOptions = {}): Promise<LocalModel> {
    const runtime = opts.runtime ?? (await startKernels(opts));
    const model = await openModel(path).catch(async (err: unknown) => {
      if (!opts.runtime) await runtime.close();
      throw err;
    });
    try {
      const tokenizer = await loadTokenizer(model.tokenizer);
      const weights = await loadShardWeights(model, { startLayer: 0, endLayer: model.config.numLayers }, runtime);
      const shard = new QuantShard(weights, runtime, model.ropeLayout, opts.kvCache);
      const contextLength = Math.min(opts.contextLength ?? model.config.contextLength, model.config.contextLength);
      return new LocalModel(model, tokenizer, runtime, !opts.runtime, shard, new LocalExecutor(shard, vocabularyOf(tokenizer)), contextLength);
    } catch (err) {
      await model.close();
      if (!opts.runtime) await runtime.close();
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
    await this.model.close();
    if (this.ownsRuntime) await this.runtime.close();
  }
}
