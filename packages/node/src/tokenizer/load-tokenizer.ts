import type { TokenizerSource } from '../model/model-file.js';
import { GgufBpeTokenizer } from './gguf-bpe-tokenizer.js';
import { GgufSpmTokenizer } from './gguf-spm-tokenizer.js';
import { readGgufVocab } from './gguf-vocab.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { UnsupportedTokenizerError } from './tokenizer-errors.js';
import type { Tokenizer } from './tokenizer.js';

/** GGUF `tokenizer.ggml.model` values with an implementation here. */
export const SUPPORTED_GGUF_TOKENIZER_MODELS = ['llama', 'gpt2'] as const;

/**
 * Builds the tokenizer a model file describes. Throws UnsupportedTokenizerError for GGUF tokenizer models
 * or pre-tokenizers edge-node does not implement, TokenizerMetadataError for malformed metadata, and
 * TokenizerError for unreadable tokenizer.json files.
 */
export async function loadTokenizer(source: TokenizerSource): Promise<Tokenizer> {
  if (source.kind === 'tokenizer-json') return HfTokenizer.fromFiles(source.path, source.configPath);
  const vocab = readGgufVocab(source.metadata);
  switch (vocab.model) {
    case 'llama':
      return new GgufSpmTokenizer(vocab);
    case 'gpt2':
      return new GgufBpeTokenizer(vocab);
    default:
      throw new UnsupportedTokenizerError('GGUF tokenizer model (tokenizer.ggml.model)', vocab.model, SUPPORTED_GGUF_TOKENIZER_MODELS);
  }
}
