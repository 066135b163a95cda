import type { PrefixCacheReport } from './prefix-cache.js';
import type { SpeculationReport } from './speculation.js';
import type { TokenVocabulary } from '../grammar/token-vocabulary.js';
import type { ModelConfig } from '../model/model-config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { BenchProbe } from './bench-probe.js';
import type { GenerateOptions, GenerationResult } from './generate.js';

export interface EmbedOptions {
  /** Token ids, BOS included when the model wants one. */
  tokens: number[];
  signal?: AbortSignal;
  requestId?: string;
}

/** A request as a generator takes it: BOS defaults to what the model asks for, the context is the generator's. */
export type GeneratorOptions = Omit<GenerateOptions, 'addBos' | 'contextLength' | 'speculation'> & {
  addBos?: boolean;
  /** Speculative decoding for this request (default: the node's `--speculate`, or on with a prediction). */
  speculate?: boolean;
  /** The output expected (token ids: OpenAI's `prediction`): drafts come from it first. Needs a token-id prompt length. */
  prediction?: number[];
};

/**
 * What the HTTP API needs to serve a model, whether it runs on this device (LocalModel) or over a ring of nodes
 * (ClusterPipeline): the model's description, its tokenizer, and the generation loop with its streaming callbacks.
 */
export interface Generator {
  /** The model's own name (general.name), accepted as `model` beside the API's id. */
  readonly modelName: string;
  readonly config: ModelConfig;
  /** The model's chat template (Jinja), or null for the plain transcript. */
  readonly chatTemplate: string | null;
  readonly tokenizer: Tokenizer;
  /** Context limit per request (prompt + generated). */
  readonly contextLength: number;
  /** The tokenizer's token byte strings and trie, for grammars and logprobs (built once, on first use). */
  vocabulary(): TokenVocabulary;
  generate(opts: GeneratorOptions): Promise<GenerationResult>;
  /**
   * The embedding of a tokenized text: the model's final-normed hidden states of every position, mean-pooled and
   * L2-normalised, computed where the layers are (through the ring, like any request's prompt).
   */
  embed(opts: EmbedOptions): Promise<Float32Array>;
  /** KV caches this node holds now (requests, and bytes), for /metrics. */
  kvUsage(): { sessions: number; bytes: number };
  /** The prefix cache: blocks this node's stage keeps, and what its requests took from the stages' caches. */
  prefixCache?(): PrefixCacheReport;
  /** Speculative decoding of the requests this node coordinated (absent: the generator cannot speculate). */
  speculation?(): SpeculationReport;
  /** Step-timed generations for `edge-node bench` (absent: the bench route answers 501). */
  readonly bench?: BenchProbe;
}
