import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { readGgufHeader } from '../src/model/gguf-reader.js';
import { loadTokenizer } from '../src/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { TOKENIZER_CORPUS, hasSpecialText } from './tokenizer-corpus.js';

const MODELS = '/work/shared/models/stories260k';
const GGUF = `${MODELS}/stories260K.gguf`;

interface Reference {
  prompt_text: string;
  prompt_ids_with_bos: number[];
  greedy_from_bos_ids: number[];
  greedy_from_bos_text: string;
}
const reference = JSON.parse(readFileSync(`${MODELS}/reference_outputs.json`, 'utf8')) as Reference;

let tok: Tokenizer;
let llama: Llama;
let ref: LlamaModel;

beforeAll(async () => {
  tok = await loadTokenizer({ kind: 'gguf', metadata: (await readGgufHeader(GGUF)).metadata });
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  ref = await llama.loadModel({ modelPath: GGUF, vocabOnly: true });
});

afterAll(async () => {
  await ref?.dispose();
  await llama?.dispose();
});

describe('GGUF SentencePiece tokenizer (stories260K)', () => {
  it('encodes "Once upon a time" with BOS to the reference prompt ids', () => {
    expect(tok.kind).toBe('gguf-spm');
    expect(tok.addBosByDefault).toBe(true);
    expect(tok.encode(reference.prompt_text)).toEqual(reference.prompt_ids_with_bos);
    expect(tok.encode(reference.prompt_text, { addBos: false })).toEqual(reference.prompt_ids_with_bos.slice(1));
  });

  it('reads vocabulary facts from the metadata', () => {
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(ref.tokens.bos);
    expect(tok.eosIds).toContain(ref.tokens.eos);
    expect(tok.isSpecial(tok.bosId as number)).toBe(true);
    expect(tok.isSpecial(tok.encode('Once', { addBos: false })[0])).toBe(false);
    expect(tok.tokenToPiece(tok.pieceToToken('<0x0A>') as number)).toBe('<0x0A>');
  });

  it('matches llama.cpp (node-llama-cpp) token for token, with and without special-token parsing', () => {
    for (const text of TOKENIZER_CORPUS) {
      for (const parseSpecial of [true, false]) {
        expect(tok.encode(text, { addBos: false, parseSpecial }), `${JSON.stringify(text)} parseSpecial=${parseSpecial}`).toEqual([
          ...ref.tokenize(text, parseSpecial),
        ]);
      }
    }
  });

  it('uses byte fallback for characters outside the vocabulary', () => {
    const ids = tok.encode('😀', { addBos: false });
    const pieces = ids.map((id) => tok.tokenToPiece(id));
    expect(pieces).toEqual(['▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']);
  });

  it('decodes back to the input, dropping only the added prefix space', () => {
    for (const text of TOKENIZER_CORPUS.filter((t) => !hasSpecialText(t))) {
      expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    }
    // A continuation keeps its leading space: generated ", there" / " there" after a prompt.
    const there = tok.encode(' there', { addBos: false }).slice(1);
    expect(tok.decode(there)).toBe('there');
    expect(tok.decode(there, { continuation: true })).toBe(' there');
    expect(tok.decode(tok.encode('Once'), { showSpecial: true })).toBe('<s> Once');
  });

  it('streams complete characters only, and streaming equals whole decoding', () => {
    const ids = tok.encode('emoji 😀 ok', { addBos: false });
    const d = tok.createDecoder();
    const chunks = ids.map((id) => d.push(id));
    chunks.push(d.flush());
    expect(chunks.join('')).toBe('emoji 😀 ok');
    for (const c of chunks) expect(c).not.toContain('\uFFFD');
    // The four byte tokens of 😀 release nothing until the last one.
    const first = ids.findIndex((id) => tok.tokenToPiece(id) === '<0xF0>');
    expect(chunks.slice(first, first + 3)).toEqual(['', '', '']);
    expect(chunks[first + 3]).toBe('😀');

    for (const text of TOKENIZER_CORPUS) {
      const all = tok.encode(text);
      const s = tok.createDecoder();
      let out = '';
      for (const id of all) out += s.push(id);
      expect(out + s.flush()).toBe(tok.decode(all));
    }
  });

  it('flushes an incomplete UTF-8 tail as U+FFFD', () => {
    const d = tok.createDecoder({ continuation: true });
    expect(d.push(tok.pieceToToken('<0xE2>') as number)).toBe('');
    expect(d.flush()).toBe('\uFFFD');
  });

  it('decodes the reference greedy continuation to its reference text', () => {
    expect(tok.decode(reference.greedy_from_bos_ids)).toBe(reference.greedy_from_bos_text);
  });

  it('tokenizes a 2,000-token prompt in well under 100 ms', () => {
    const story = tok.decode(reference.greedy_from_bos_ids);
    let text = story;
    while (tok.encode(text).length < 2000) text += `\n${story}`;
    tok.encode(text); // warm-up (JIT)
    const t0 = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - t0;
    expect(ids.length).toBeGreaterThanOrEqual(2000);
    expect(ms).toBeLessThan(100);
    console.log(`SPM: ${ids.length} tokens in ${ms.toFixed(1)} ms`);
  });
});
