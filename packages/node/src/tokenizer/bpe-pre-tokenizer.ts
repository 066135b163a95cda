import { UnsupportedTokenizerError } from './tokenizer-errors.js';

/**
 * Pre-tokenizer regexes of llama.cpp (llm_tokenizer_bpe) by `tokenizer.ggml.pre`. Each regex in a list splits
 * every piece produced by the previous one; both matches and the text between them become pieces.
 * `\s` is written as \p{White_Space}: JavaScript's \s differs (it includes U+FEFF, excludes U+0085), while
 * llama.cpp and the Rust regex crate use the Unicode White_Space property.
 */
const S = '\\p{White_Space}';
const NOT_S = '\\P{White_Space}';
const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${S}\\p{L}\\p{N}]+|${S}+(?!${NOT_S})|${S}+`;
const CONTRACTIONS_ANY_CASE = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const llama3Like = (digits: string): string =>
  `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}${digits}| ?[^${S}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NOT_S})|${S}+`;

export interface BpePreTokenizer {
  /** llama.cpp's family name for these rules. */
  family: 'default' | 'gpt2' | 'llama3' | 'qwen2' | 'smollm';
  regexes: RegExp[];
  /** Look a whole piece up in the vocabulary before merging (llama.cpp's ignore_merges). */
  ignoreMerges: boolean;
  /** add_bos default for this family when the GGUF does not say. */
  addBos: boolean;
}

const FAMILIES: Record<BpePreTokenizer['family'], { patterns: string[]; ignoreMerges: boolean; addBos: boolean }> = {
  default: {
    patterns: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
    ignoreMerges: false,
    addBos: false,
  },
  gpt2: { patterns: [GPT2], ignoreMerges: false, addBos: false },
  llama3: { patterns: [llama3Like('{1,3}')], ignoreMerges: true, addBos: true },
  qwen2: { patterns: [llama3Like('')], ignoreMerges: false, addBos: false },
  smollm: { patterns: ['\\p{N}', GPT2], ignoreMerges: false, addBos: false },
};

/** `tokenizer.ggml.pre` values (as llama.cpp's vocab loader groups them) → rule family. */
const PRE_NAMES: Record<string, BpePreTokenizer['family']> = {
  default: 'default',
  'gpt-2': 'gpt2', 'phi-2': 'gpt2', mpt: 'gpt2', olmo: 'gpt2', jais: 'gpt2', 'roberta-bpe': 'gpt2', exaone4: 'gpt2',
  llama3: 'llama3', 'llama-v3': 'llama3', 'llama-bpe': 'llama3', falcon3: 'llama3', pixtral: 'llama3',
  qwen2: 'qwen2', 'deepseek-r1-qwen': 'qwen2', megrez: 'qwen2', stablelm2: 'qwen2',
  smollm: 'smollm', starcoder: 'smollm', refact: 'smollm', 'command-r': 'smollm', codeshell: 'smollm',
  exaone: 'smollm', 'minerva-7b': 'smollm',
};

export const SUPPORTED_BPE_PRE = Object.keys(PRE_NAMES);

/** The pre-tokenizer for a `tokenizer.ggml.pre` value; a missing value means llama.cpp's "default". */
export function bpePreTokenizer(pre: string | null): BpePreTokenizer {
  const family = PRE_NAMES[pre ?? 'default'];
  if (family === undefined) throw new UnsupportedTokenizerError('GGUF pre-tokenizer (tokenizer.ggml.pre)', pre ?? '', SUPPORTED_BPE_PRE);
  const f = FAMILIES[family];
  return { family, regexes: f.patterns.map((p) => new RegExp(p, 'gu')), ignoreMerges: f.ignoreMerges, addBos: f.addBos };
}

/** Splits text into the pieces BPE merges within. */
export function preTokenize(text: string, regexes: readonly RegExp[]): string[] {
  let pieces = [text];
  for (const re of regexes) {
    const next: string[] = [];
    for (const piece of pieces) {
      let last = 0;
      for (const m of piece.matchAll(re)) {
        const at = m.index;
        if (at > last) next.push(piece.slice(last, at));
        if (m[0].length > 0) next.push(m[0]);
        last = at + m[0].length;
      }
      if (last < piece.length) next.push(piece.slice(last));
    }
    pieces = next;
  }
  return pieces;
}
