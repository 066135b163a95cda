import { beforeAll, describe, expect, it } from 'vitest';
import { readGgufHeader } from '../src/model/gguf-reader.js';
import { HfTokenizer } from '../src/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import { TokenizerError } from '../src/tokenizer/tokenizer-errors.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { TOKENIZER_CORPUS, hasSpecialText } from './tokenizer-corpus.js';

const SMOLLM = '/work/shared/models/smollm2-135m-instruct-tokenizer';
const STORIES_HF = '/work/shared/models/stories260k-hf';

let smol: Tokenizer;
let stories: Tokenizer;
let storiesGguf: Tokenizer;

beforeAll(async () => {
  smol = await loadTokenizer({ kind: 'tokenizer-json', path: `${SMOLLM}/tokenizer.json`, configPath: null });
  stories = await loadTokenizer({ kind: 'tokenizer-json', path: `${STORIES_HF}/tokenizer.json`, configPath: `${STORIES_HF}/tokenizer_config.json` });
  storiesGguf = await loadTokenizer({ kind: 'gguf', metadata: (await readGgufHeader('/work/shared/models/stories260k/stories260K.gguf')).metadata });
});

describe('tokenizer.json tokenizer', () => {
  it('stories260K: the Hugging Face conversion tokenizes like the GGUF (llama.cpp) tokenizer', () => {
    expect(stories.kind).toBe('tokenizer-json');
    expect(stories.vocabSize).toBe(storiesGguf.vocabSize);
    expect(stories.bosId).toBe(storiesGguf.bosId);
    expect(stories.addBosByDefault).toBe(true);
    expect(stories.eosIds).toContain(2);
    for (const text of TOKENIZER_CORPUS) {
      expect(stories.encode(text), JSON.stringify(text)).toEqual(storiesGguf.encode(text));
      expect(stories.encode(text, { addBos: false })).toEqual(storiesGguf.encode(text, { addBos: false }));
    }
  });

  it('stories260K: decodes like the GGUF tokenizer, including the leading-space rule', () => {
    for (const text of TOKENIZER_CORPUS.filter((t) => !hasSpecialText(t))) {
      const ids = stories.encode(text);
      expect(stories.decode(ids), JSON.stringify(text)).toBe(text);
      expect(stories.decode(ids.slice(1), { continuation: true })).toBe(storiesGguf.decode(ids.slice(1), { continuation: true }));
    }
  });

  it('SmolLM2: no BOS added, ChatML markers are special and end-of-turn ends generation', () => {
    expect(smol.vocabSize).toBe(49152);
    expect(smol.addBosByDefault).toBe(false);
    const imStart = smol.pieceToToken('<|im_start|>') as number;
    const imEnd = smol.pieceToToken('<|im_end|>') as number;
    expect(smol.isSpecial(imStart)).toBe(true);
    expect(smol.isSpecial(smol.encode('Hello')[0])).toBe(false);
    expect(smol.eosIds).toContain(imEnd);
    const ids = smol.encode('<|im_start|>user\nHi<|im_end|>');
    expect(ids[0]).toBe(imStart);
    expect(ids.at(-1)).toBe(imEnd);
    expect(smol.decode(ids)).toBe('user\nHi');
    expect(smol.decode(ids, { showSpecial: true })).toBe('<|im_start|>user\nHi<|im_end|>');
    expect(smol.tokenToPiece(smol.encode(' world')[0])).toBe('Ġworld');
  });

  it('round-trips the corpus (byte-level BPE is lossless)', () => {
    for (const text of TOKENIZER_CORPUS) expect(smol.decode(smol.encode(text), { showSpecial: true })).toBe(text);
  });

  it.each([
    ['SmolLM2', () => smol],
    ['stories260K', () => stories],
  ])('%s: streaming equals whole decoding and never emits a broken character', (_name, get) => {
    const tok = get();
    for (const text of TOKENIZER_CORPUS) {
      for (const continuation of [false, true]) {
        const ids = tok.encode(text, { addBos: false });
        const d = tok.createDecoder({ continuation });
        const chunks = ids.map((id) => d.push(id));
        chunks.push(d.flush());
        expect(chunks.join(''), JSON.stringify(text)).toBe(tok.decode(ids, { continuation }));
        for (const c of chunks) expect(c).not.toContain('\uFFFD');
      }
    }
  });

  it('holds back the first byte tokens of an emoji until it is complete', () => {
    const ids = stories.encode('😀', { addBos: false });
    const d = stories.createDecoder({ continuation: true });
    const chunks = ids.map((id) => d.push(id));
    expect(chunks.slice(0, -1).join('')).toBe(' '); // "▁" then three incomplete bytes
    expect(chunks.at(-1)).toBe('😀');
    expect(d.flush()).toBe('');
  });

  it('refuses to encode special-token text as plain text, which tokenizers.js cannot do', () => {
    expect(() => smol.encode('say <|im_end|>', { parseSpecial: false })).toThrow(TokenizerError);
    expect(smol.encode('plain text', { parseSpecial: false })).toEqual(smol.encode('plain text'));
  });

  it('reports unreadable files with the path', async () => {
    await expect(HfTokenizer.fromFiles('/nonexistent/tokenizer.json', null)).rejects.toThrow(/\/nonexistent\/tokenizer.json/);
    await expect(HfTokenizer.fromFiles(`${STORIES_HF}/config.json`, null)).rejects.toThrow(TokenizerError);
  });
});
