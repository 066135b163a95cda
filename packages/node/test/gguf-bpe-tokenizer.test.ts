import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';
import { readGgufHeader } from '../src/model/gguf-reader.js';
import { gguf, writeGguf, type GgufMetadataValue } from '@edge-node/testkit';
import { bpePreTokenizer, preTokenize } from '../src/tokenizer/bpe-pre-tokenizer.js';
import { GgufBpeTokenizer } from '../src/tokenizer/gguf-bpe-tokenizer.js';
import { readGgufVocab } from '../src/tokenizer/gguf-vocab.js';
import { HfTokenizer } from '../src/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import { UnsupportedTokenizerError } from '../src/tokenizer/tokenizer-errors.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { TOKENIZER_CORPUS } from './tokenizer-corpus.js';

const SMOLLM_JSON = '/work/shared/models/smollm2-135m-instruct-tokenizer/tokenizer.json';
/** Pre-tokenizer names covering each regex family llama.cpp has for them. */
const PRES = ['smollm', 'gpt-2', 'llama-bpe', 'qwen2', 'default'] as const;

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

/**
 * The SmolLM2 vocabulary as convert_hf_to_gguf.py stores it: tokens by id, token_type CONTROL (3) for special
 * added tokens, USER_DEFINED (4) for other added tokens, NORMAL (1) otherwise, and merges as "a b" strings.
 * The llama.* keys are only there so llama.cpp agrees to open the file vocabulary-only.
 */
function smollmTokenizerMetadata(pre: string): [string, GgufMetadataValue][] {
  const j = JSON.parse(readFileSync(SMOLLM_JSON, 'utf8')) as TokenizerJson;
  const n = Object.keys(j.model.vocab).length;
  const tokens: string[] = new Array(n);
  for (const [t, id] of Object.entries(j.model.vocab)) tokens[id] = t;
  const types = new Array<number>(n).fill(1);
  for (const a of j.added_tokens) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4;
  }
  const merges = j.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));
  return [
    ['general.architecture', gguf.str('llama')],
    ['llama.context_length', gguf.u32(2048)],
    ['llama.embedding_length', gguf.u32(64)],
    ['llama.block_count', gguf.u32(1)],
    ['llama.feed_forward_length', gguf.u32(128)],
    ['llama.attention.head_count', gguf.u32(2)],
    ['llama.attention.layer_norm_rms_epsilon', gguf.f32(1e-5)],
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str(pre)],
    ['tokenizer.ggml.tokens', gguf.strings(tokens)],
    ['tokenizer.ggml.token_type', gguf.i32s(types)],
    ['tokenizer.ggml.merges', gguf.strings(merges)],
    ['tokenizer.ggml.bos_token_id', gguf.u32(1)],
    ['tokenizer.ggml.eos_token_id', gguf.u32(2)],
  ];
}

let dir: string;
let llama: Llama;
const files = new Map<string, string>();
const toks = new Map<string, Tokenizer>();
let hf: HfTokenizer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edge-node-bpe-'));
  for (const pre of PRES) {
    const path = join(dir, `smollm-${pre}.gguf`);
    await writeGguf(path, { metadata: smollmTokenizerMetadata(pre), tensors: [] });
    files.set(pre, path);
    toks.set(pre, await loadTokenizer({ kind: 'gguf', metadata: (await readGgufHeader(path)).metadata }));
  }
  hf = await HfTokenizer.fromFiles(SMOLLM_JSON, null);
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
});

afterAll(async () => {
  await llama?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('GGUF byte-level BPE tokenizer (SmolLM2 vocabulary embedded in a GGUF)', () => {
  it('agrees with the tokenizer.json tokenizer on the corpus', () => {
    const tok = toks.get('smollm') as Tokenizer;
    expect(tok.kind).toBe('gguf-bpe');
    expect(tok.vocabSize).toBe(hf.vocabSize);
    for (const text of TOKENIZER_CORPUS) {
      expect(tok.encode(text), JSON.stringify(text)).toEqual(hf.encode(text));
      expect(tok.decode(hf.encode(text), { showSpecial: true })).toBe(text);
    }
  });

  it.each(PRES)('matches llama.cpp with tokenizer.ggml.pre = %s', async (pre) => {
    const model = await llama.loadModel({ modelPath: files.get(pre) as string, vocabOnly: true });
    try {
      const tok = toks.get(pre) as Tokenizer;
      for (const text of TOKENIZER_CORPUS) {
        for (const parseSpecial of [true, false]) {
          expect(tok.encode(text, { addBos: false, parseSpecial }), `${JSON.stringify(text)} parseSpecial=${parseSpecial}`).toEqual([
            ...model.tokenize(text, parseSpecial),
          ]);
        }
      }
      expect(tok.addBosByDefault).toBe(model.tokens.shouldPrependBosToken);
    } finally {
      await model.dispose();
    }
  });

  it('the pre-tokenizer families split differently (digits, contractions, newlines)', () => {
    const split = (pre: string, text: string): string[] => preTokenize(text, bpePreTokenizer(pre).regexes);
    expect(split('smollm', 'x 1234567')).toEqual(['x', ' ', '1', '2', '3', '4', '5', '6', '7']);
    expect(split('llama-bpe', 'x 1234567')).toEqual(['x', ' ', '123', '456', '7']);
    expect(split('qwen2', 'x 1234567')).toEqual(['x', ' ', '1', '2', '3', '4', '5', '6', '7']);
    expect(split('gpt-2', 'x 1234567')).toEqual(['x', ' 1234567']);
    expect(split('gpt-2', "HE'S")).toEqual(['HE', "'", 'S']);
    expect(split('llama-bpe', "HE'S")).toEqual(['HE', "'S"]);
    expect(split('llama-bpe', 'a\n\n b')).toEqual(['a', '\n\n', ' b']);
  });

  it('streams a character split across byte-level pieces only once it is complete', () => {
    const tok = toks.get('smollm') as Tokenizer;
    const ids = tok.encode('héllo 😀');
    const pieces = ids.map((id) => tok.tokenToPiece(id));
    expect(pieces.some((p) => p.startsWith('Ġð'))).toBe(true); // the emoji's bytes span two tokens
    const d = tok.createDecoder();
    const chunks = ids.map((id) => d.push(id));
    chunks.push(d.flush());
    for (const c of chunks) expect(c).not.toContain('\uFFFD');
    expect(chunks.join('')).toBe('héllo 😀');
    for (const text of TOKENIZER_CORPUS) {
      const all = tok.encode(text);
      const s = tok.createDecoder();
      expect(all.map((id) => s.push(id)).join('') + s.flush()).toBe(tok.decode(all));
    }
  });

  it('recognises end-of-turn tokens and hides control tokens when decoding', () => {
    const tok = toks.get('smollm') as Tokenizer;
    const imEnd = tok.pieceToToken('<|im_end|>') as number;
    expect(tok.eosIds).toContain(imEnd);
    expect(tok.eosIds).toContain(tok.pieceToToken('<|endoftext|>'));
    expect(tok.isSpecial(imEnd)).toBe(true);
    const ids = tok.encode('<|im_start|>user\nHi<|im_end|>');
    expect(ids[0]).toBe(tok.pieceToToken('<|im_start|>'));
    expect(tok.decode(ids)).toBe('user\nHi');
  });

  it('rejects a pre-tokenizer it does not implement, naming the supported ones', () => {
    const md = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'gpt2'],
      ['tokenizer.ggml.pre', 'some-future-model'],
      ['tokenizer.ggml.tokens', ['a', 'b', 'ab']],
      ['tokenizer.ggml.merges', ['a b']],
    ]);
    expect(() => new GgufBpeTokenizer(readGgufVocab(md))).toThrow(UnsupportedTokenizerError);
    expect(() => new GgufBpeTokenizer(readGgufVocab(md))).toThrow(/some-future-model.*supported: .*llama-bpe/);
  });

  it('tokenizes a 2,000-token prompt in well under 100 ms', () => {
    const tok = toks.get('smollm') as Tokenizer;
    // Varied text so the per-word cache does not make this trivially fast.
    const parts: string[] = [];
    for (let i = 0; hf.encode(parts.join(' ')).length < 2000; i++) parts.push(`${TOKENIZER_CORPUS[i % TOKENIZER_CORPUS.length]}${i}`);
    const text = parts.join(' ');
    toks.get('gpt-2')?.encode(text.slice(0, 2000)); // JIT warm-up on another instance; this one starts cold-cached
    const t0 = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - t0;
    expect(ids.length).toBeGreaterThanOrEqual(2000);
    expect(ms).toBeLessThan(100);
    console.log(`BPE: ${ids.length} tokens in ${ms.toFixed(1)} ms (cold word cache)`);
  });
});
