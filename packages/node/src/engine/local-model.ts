import type { ModelFile } from '../model/model-file.js';
import { readLoraAdapter } from '../model/lora-adapter-file.js';
import { openModel } from '../model/open-model.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ComputeBackend } from './compute-backend.js';
import { startComputeBackend, type EngineOptions } from './engine-options.js';
import type { ForwardShard } from './forward-shard.js';
import { generate, type GenerationResult } from './generate.js';
import type { EmbedOptions, Generator, GeneratorOptions } from './generator.js';
import type { ModelConfig } from '../model/model-config.js';
import { LocalExecutor } from './local-executor.js';
import { DEFAULT_MAX_DRAFT, NodeSpeculation, speculatesByDefault, type DraftSource, type SpeculationReport } from './speculation.js';
import { checkSameTokenizer, DraftModel } from './draft-model.js';
import { embeddingRequest } from './embedding-request.js';
import { buildTokenVocabulary, type TokenVocabulary } from '../grammar/token-vocabulary.js';

/** The tokenizer's vocabulary for constrained sampling, built on first use. */
function vocabularyOf(tokenizer: Tokenizer): () => TokenVocabulary {
  let v: TokenVocabulary | null = null;
  return () => (v ??= buildTokenVocabulary(tokenizer));
}

export interface LocalModelOptions extends EngineOptions {
  /** Context limit; defaults to the model's trained context. */
  contextLength?: number;
  /** Speculative decoding (prompt lookup) for requests that do not say (`--speculate`; default on with the kernels, off with tfjs). */
  speculate?: boolean;
  /**
   * A draft model for speculative decoding (`--draft-model`): drafts come from it instead of prompt lookup. A
   * LocalModel is checked against this model's tokenizer (DraftModelError); it stays open until the caller closes it.
   */
  draftModel?: DraftSource | LocalModel;
  /** What computes (default: the backend the engine options ask for, started for this model and closed with it). */
  compute?: ComputeBackend;
  /** A LoRA adapter file (llama.cpp's GGUF) applied to every layer, and its scale (`--lora`, `--lora-scale`). */
  lora?: { path: string; scale: number };
}



/** A whole model on this device: file, tokenizer, every layer, and the generation loop; it serves HTTP as a cluster does. */
export class LocalModel implements Generator {
  private constructor(
    readonly model: ModelFile,
    readonly tokenizer: Tokenizer,
    readonly compute: ComputeBackend,
    private readonly ownsCompute: boolean,
    readonly shard: ForwardShard,
    readonly executor: LocalExecutor,
    readonly contextLength: number,
    readonly vocabulary: () => TokenVocabulary,
    private readonly speculating: NodeSpeculation,
  ) {}

  static async open(path: string, opts: LocalModelOptions = {}): Promise<LocalModel> {
    const compute = opts.compute ?? (await startComputeBackend(opts));
    const model = await openModel(path).catch(async (err: unknown) => {
      if (!opts.compute) await compute.close();
      throw err;
    });
    try {
      compute.checkModel(model);
      const tokenizer = await loadTokenizer(model.tokenizer);
      const lora = opts.lora ? { adapter: await readLoraAdapter(opts.lora.path, model), scale: opts.lora.scale } : undefined;
      const shard = await compute.loadShard(model, { startLayer: 0, endLayer: model.config.numLayers }, lora);
      const contextLength = Math.min(opts.contextLength ?? model.config.contextLength, model.config.contextLength);
      const vocabulary = vocabularyOf(tokenizer);
      return new LocalModel(model, tokenizer, compute, !opts.compute, shard, new LocalExecutor(shard, vocabulary), contextLength, vocabulary, new NodeSpeculation(
          opts.speculate ?? speculatesByDefault(compute),
          DEFAULT_MAX_DRAFT,
          opts.draftModel instanceof LocalModel ? opts.draftModel.asDraftFor(tokenizer, contextLength) : (opts.draftModel ?? null),
        ));
    } catch (err) {
      await model.close();
      if (!opts.compute) await compute.close();
      throw err;
    }
  }

  get modelName(): string {
    return this.model.config.name;
  }

  get config(): ModelConfig {
    return this.model.config;
  }

  get chatTemplate(): string | null {
    return this.model.chatTemplate;
  }

  kvUsage(): { sessions: number; bytes: number } {
    return { sessions: this.executor.activeRequests, bytes: this.executor.cacheBytes() };
  }

  embed(opts: EmbedOptions): Promise<Float32Array> {
    return this.executor.embed(embeddingRequest(opts));
  }

  async generate(opts: GeneratorOptions): Promise<GenerationResult> {
    const { speculate, prediction, ...rest } = opts;
    const speculation = this.speculating.optionsFor(speculate, prediction);
    const result = await generate(this.executor, this.tokenizer, {
      ...rest,
      addBos: opts.addBos ?? this.model.config.addBosToken,
      contextLength: this.contextLength,
      ...(speculation ? { speculation } : {}),
    });
    this.speculating.count(result.speculation);
    return result;
  }

  /** This model as the draft model of one with `tokenizer` (checked: the same ids for the same text). */
  asDraftFor(tokenizer: Tokenizer, contextLength: number): DraftModel {
    checkSameTokenizer(tokenizer, this.tokenizer);
    return new DraftModel(this.shard, Math.min(contextLength, this.contextLength));
  }

  speculation(): SpeculationReport {
    return this.speculating.report();
  }

  async close(): Promise<void> {
    this.shard.dispose();
    await this.model.close();
    if (this.ownsCompute) await this.compute.close();
  }
}
