import { TokenizerMetadataError } from './tokenizer-errors.js';

/** GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type). */
export const GgufTokenType = {
  Undefined: 0,
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;

/**
 * Token texts llama.cpp treats as end-of-generation whatever their declared ids (its vocab loader matches
 * these strings, because converters often leave eot ids unset).
 */
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>',
]);

/** The `tokenizer.ggml.*` part of a GGUF file, decoded and checked. */
export interface GgufVocab {
  model: string;
  pre: string | null;
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  /** Text → id; a text occurring twice maps to its last id, as in llama.cpp. */
  textToId: Map<string, number>;
  merges: string[] | null;
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  eogIds: number[];
  /** `tokenizer.ggml.add_bos_token` etc. when present (null: use the model type's default). */
  addBos: boolean | null;
  addEos: boolean | null;
  addSpacePrefix: boolean | null;
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

function readStringArray(md: ReadonlyMap<string, unknown>, key: string, required: boolean): string[] | null {
  const v = md.get(key);
  if (v === undefined) {
    if (required) throw new TokenizerMetadataError(key, 'missing; the GGUF file has no usable tokenizer');
    return null;
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new TokenizerMetadataError(key, 'expected an array of strings');
  }
  return v as string[];
}

function readNumberArray(md: ReadonlyMap<string, unknown>, key: string, n: number): number[] | null {
  const v = md.get(key);
  if (v === undefined) return null;
  if (!isArrayLike(v)) throw new TokenizerMetadataError(key, 'expected an array of numbers');
  if (v.length < n) throw new TokenizerMetadataError(key, `has ${v.length} entries for ${n} tokens`);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = v[i];
    if (typeof x === 'number') out[i] = x;
    else if (typeof x === 'bigint') out[i] = Number(x);
    else throw new TokenizerMetadataError(key, `entry ${i} is not a number`);
  }
  return out;
}

function readString(md: ReadonlyMap<string, unknown>, key: string): string | null {
  const v = md.get(key);
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new TokenizerMetadataError(key, 'expected a string');
  return v;
}

function readBool(md: ReadonlyMap<string, unknown>, key: string): boolean | null {
  const v = md.get(key);
  if (v === undefined) return null;
  if (typeof v !== 'boolean') throw new TokenizerMetadataError(key, 'expected a boolean');
  return v;
}

/** A token id from metadata, or the default; ids outside the vocabulary are dropped as llama.cpp does. */
function readId(md: ReadonlyMap<string, unknown>, key: string, fallback: number | null, n: number): number | null {
  const v = md.get(key);
  let id = fallback;
  if (v !== undefined) {
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new TokenizerMetadataError(key, 'expected an integer');
    const x = Number(v);
    if (Number.isInteger(x) && x >= 0 && x < n) id = x;
  }
  return id !== null && id >= 0 && id < n ? id : null;
}

/** Token-id defaults per tokenizer model, as llama.cpp's vocab loader sets them before reading metadata. */
const DEFAULT_IDS: Record<string, { bos: number | null; eos: number | null; unk: number | null }> = {
  llama: { bos: 1, eos: 2, unk: 0 },
  gpt2: { bos: 11, eos: 11, unk: null },
};

export function readGgufVocab(md: ReadonlyMap<string, unknown>): GgufVocab {
  const model = readString(md, 'tokenizer.ggml.model');
  if (model === null) throw new TokenizerMetadataError('tokenizer.ggml.model', 'missing; the GGUF file has no tokenizer');
  const rawTokens = readStringArray(md, 'tokenizer.ggml.tokens', true) as string[];
  const n = rawTokens.length;
  const tokens = rawTokens.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));
  const scoreList = readNumberArray(md, 'tokenizer.ggml.scores', n);
  const scores = scoreList === null ? new Float32Array(n) : Float32Array.from(scoreList);
  const types = new Int32Array(readNumberArray(md, 'tokenizer.ggml.token_type', n) ?? new Array(n).fill(GgufTokenType.Normal));
  const textToId = new Map<string, number>();
  tokens.forEach((t, i) => textToId.set(t, i));

  const defaults = DEFAULT_IDS[model] ?? { bos: null, eos: null, unk: null };
  const bosId = readId(md, 'tokenizer.ggml.bos_token_id', defaults.bos, n);
  const eosId = readId(md, 'tokenizer.ggml.eos_token_id', defaults.eos, n);
  const eotId = readId(md, 'tokenizer.ggml.eot_token_id', null, n);
  const eomId = readId(md, 'tokenizer.ggml.eom_token_id', null, n);
  const unkId = readId(md, 'tokenizer.ggml.unknown_token_id', defaults.unk, n);

  const eog = new Set<number>();
  for (const [text, id] of textToId) {
    if (EOG_TEXTS.has(text)) {
      eog.add(id);
      // llama.cpp promotes these to control tokens so they never decode as text.
      if (types[id] !== GgufTokenType.Control) types[id] = GgufTokenType.Control;
    }
  }
  for (const id of [eosId, eotId, eomId]) if (id !== null) eog.add(id);

  return {
    model,
    pre: readString(md, 'tokenizer.ggml.pre'),
    tokens,
    scores,
    types,
    textToId,
    merges: readStringArray(md, 'tokenizer.ggml.merges', false),
    bosId,
    eosId,
    unkId,
    eogIds: [...eog].sort((a, b) => a - b),
    addBos: readBool(md, 'tokenizer.ggml.add_bos_token'),
    addEos: readBool(md, 'tokenizer.ggml.add_eos_token'),
    addSpacePrefix: readBool(md, 'tokenizer.ggml.add_space_prefix'),
  };
}

/** A piece of input: raw text to tokenize, or an already recognised special token. */
export type Fragment = string | number;

/**
 * Splits text at occurrences of special tokens, as llama.cpp's tokenizer_st_partition: control and unknown
 * tokens only when `parseSpecial`, user-defined tokens always; longer tokens are matched first.
 */
export class SpecialTokenSplitter {
  private readonly all: { text: string; id: number; control: boolean }[];

  constructor(vocab: GgufVocab) {
    const list: { text: string; id: number; control: boolean }[] = [];
    vocab.types.forEach((type, id) => {
      if (type === GgufTokenType.Control || type === GgufTokenType.UserDefined || type === GgufTokenType.Unknown) {
        list.push({ text: vocab.tokens[id], id, control: type !== GgufTokenType.UserDefined });
      }
    });
    // Stable sort by byte length, longest first (llama.cpp compares std::string sizes, i.e. UTF-8 bytes).
    const enc = new TextEncoder();
    const len = new Map(list.map((s) => [s.id, enc.encode(s.text).length]));
    this.all = list.sort((a, b) => (len.get(b.id) as number) - (len.get(a.id) as number));
  }

  split(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    let frags: Fragment[] = [text];
    for (const special of this.all) {
      if (special.control && !parseSpecial) continue;
      const next: Fragment[] = [];
      let changed = false;
      for (const f of frags) {
        if (typeof f !== 'string' || !f.includes(special.text)) {
          next.push(f);
          continue;
        }
        changed = true;
        let from = 0;
        for (;;) {
          const at = f.indexOf(special.text, from);
          if (at < 0) break;
          if (at > from) next.push(f.slice(from, at));
          next.push(special.id);
          from = at + special.text.length;
        }
        if (from < f.length) next.push(f.slice(from));
      }
      if (changed) frags = next;
    }
    return frags;
  }
}
