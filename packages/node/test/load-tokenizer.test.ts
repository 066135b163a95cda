import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import { TokenizerMetadataError, UnsupportedTokenizerError } from '../src/tokenizer/tokenizer-errors.js';

describe('loadTokenizer', () => {
  it('rejects a GGUF tokenizer model it does not implement with a typed error naming the supported ones', async () => {
    const metadata = new Map<string, unknown>([
      ['tokenizer.ggml.model', 't5'],
      ['tokenizer.ggml.tokens', ['<pad>', '</s>', '<unk>']],
    ]);
    const err = await loadTokenizer({ kind: 'gguf', metadata }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedTokenizerError);
    expect((err as UnsupportedTokenizerError).value).toBe('t5');
    expect((err as Error).message).toMatch(/"t5" is not supported \(supported: llama, gpt2\)/);
  });

  it('reports missing or mistyped tokenizer metadata by key', async () => {
    await expect(loadTokenizer({ kind: 'gguf', metadata: new Map() })).rejects.toThrow(TokenizerMetadataError);
    const noTokens = new Map<string, unknown>([['tokenizer.ggml.model', 'llama']]);
    await expect(loadTokenizer({ kind: 'gguf', metadata: noTokens })).rejects.toThrow(/tokenizer\.ggml\.tokens/);
    const badScores = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'llama'],
      ['tokenizer.ggml.tokens', ['a', 'b']],
      ['tokenizer.ggml.scores', [0]],
    ]);
    await expect(loadTokenizer({ kind: 'gguf', metadata: badScores })).rejects.toThrow(/tokenizer\.ggml\.scores: has 1 entries for 2 tokens/);
  });

  it('builds a working SentencePiece tokenizer from a minimal metadata map (bigint ids accepted)', async () => {
    const metadata = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'llama'],
      ['tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '▁', 'h', 'i', '▁h', '▁hi']],
      ['tokenizer.ggml.scores', [0, 0, 0, -1, -2, -3, -1.5, -0.5]],
      ['tokenizer.ggml.token_type', [2, 3, 3, 1, 1, 1, 1, 1]],
      ['tokenizer.ggml.bos_token_id', 1n],
      ['tokenizer.ggml.add_bos_token', false],
    ]);
    const tok = await loadTokenizer({ kind: 'gguf', metadata });
    expect(tok.addBosByDefault).toBe(false);
    expect(tok.encode('hi hi')).toEqual([7, 7]);
    expect(tok.encode('hi', { addBos: true })).toEqual([1, 7]);
    // "x" has neither a piece nor byte tokens: it falls back to <unk>.
    expect(tok.encode('x')).toEqual([3, 0]);
  });
});
