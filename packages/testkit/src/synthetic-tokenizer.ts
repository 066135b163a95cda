import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gguf } from './gguf-writer.js';
import type { GgufMetadataValue } from './gguf-writer.js';
import { SyntheticModelError } from './synth-errors.js';

/**
 * The tokenizer a synthetic model carries, in the two forms the writers need: GGUF tokenizer.ggml.* metadata
 * (what llama.cpp's convert_hf_to_gguf writes) and Hugging Face files to copy beside safetensors.
 */

/** llama.cpp's llama_token_type values (gguf TokenType). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SyntheticTokenizer {
  /** GGUF tokenizer.ggml.model: 'gpt2' (byte-level BPE) or 'llama' (SentencePiece). */
  model: 'gpt2' | 'llama';
  /** GGUF tokenizer.ggml.pre (gpt2 only). */
  pre: string | null;
  tokens: string[];
  tokenTypes: number[];
  /** SentencePiece scores (llama only). */
  scores: number[] | null;
  /** BPE merges as "left right" (gpt2 only). */
  merges: string[] | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  unkTokenId: number | null;
  padTokenId: number | null;
  addBosToken: boolean;
  chatTemplate: string | null;
  /** Files copied next to safetensors: [file name, source path]. */
  hfFiles: Array<[string, string]>;
  /** Contents of a tokenizer_config.json to write when hfFiles has none. */
  hfTokenizerConfig: Record<string, unknown> | null;
}

/** Where the shared model files live (the stories260K vocab is the built-in SentencePiece tokenizer). */
export const SHARED_MODELS_DIR = process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models';

interface TokenizerJson {
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  pre_tokenizer?: unknown;
  model?: { type?: string; vocab?: Record<string, number>; merges?: Array<string | [string, string]> };
}

async function readJson<T>(path: string): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    throw new SyntheticModelError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** llama.cpp picks the pre-tokenizer regex by name; SmolLM2's is recognisable from its tokenizer.json. */
function detectPre(preTokenizer: unknown): string {
  const text = JSON.stringify(preTokenizer ?? null);
  if (text.includes('"Digits"') && text.includes('"individual_digits":true') && text.includes('"ByteLevel"')) return 'smollm';
  return 'default';
}

function idsOf(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/**
 * The vocabulary as a GGUF stores it: every id up to the largest, a gap as an unused pad, added tokens as control
 * (special) or user-defined ones.
 */
function vocabularyOf(vocab: Record<string, number>, added: { id: number; content: string; special?: boolean }[]): { tokens: string[]; tokenTypes: number[] } {
  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(vocab)) byId.set(id, tok);
  const special = new Map<number, boolean>();
  for (const t of added) {
    byId.set(t.id, t.content);
    special.set(t.id, t.special === true);
  }
  const size = Math.max(...byId.keys()) + 1;
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  for (let i = 0; i < size; i++) {
    const tok = byId.get(i);
    if (tok === undefined) {
      tokens.push(`[PAD${i}]`);
      tokenTypes.push(TokenType.UNUSED);
    } else {
      tokens.push(tok);
      const s = special.get(i);
      tokenTypes.push(s === undefined ? TokenType.NORMAL : s ? TokenType.CONTROL : TokenType.USER_DEFINED);
    }
  }
  return { tokens, tokenTypes };
}

/**
 * Loads a Hugging Face byte-level BPE tokenizer folder (tokenizer.json, optional tokenizer_config.json,
 * chat_template.jinja, config.json for the special token ids).
 */
export async function loadTokenizerDir(dir: string, pre?: string): Promise<SyntheticTokenizer> {
  const tjPath = join(dir, 'tokenizer.json');
  if (!existsSync(tjPath)) throw new SyntheticModelError(`${dir} has no tokenizer.json; pass a Hugging Face tokenizer folder`);
  const tj = await readJson<TokenizerJson>(tjPath);
  if (tj.model?.type !== 'BPE' || !tj.model.vocab) {
    throw new SyntheticModelError(`${tjPath}: only BPE tokenizers can be embedded (found ${tj.model?.type ?? 'none'})`);
  }
  const cfgPath = join(dir, 'tokenizer_config.json');
  const tcfg = existsSync(cfgPath) ? await readJson<Record<string, unknown>>(cfgPath) : null;
  const mcfgPath = join(dir, 'config.json');
  const mcfg = existsSync(mcfgPath) ? await readJson<Record<string, unknown>>(mcfgPath) : null;
  const templatePath = join(dir, 'chat_template.jinja');
  const chatTemplate =
    typeof tcfg?.chat_template === 'string' ? tcfg.chat_template : existsSync(templatePath) ? await readFile(templatePath, 'utf8') : null;

  const { tokens, tokenTypes } = vocabularyOf(tj.model.vocab, tj.added_tokens ?? []);
  const merges = (tj.model.merges ?? []).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));

  const idOfToken = (v: unknown): number | null => {
    const content = tokenContent(v);
    if (content === null) return null;
    const id = tokens.indexOf(content);
    return id >= 0 ? id : null;
  };
  const bos = idsOf(mcfg?.bos_token_id)[0] ?? idOfToken(tcfg?.bos_token);
  let eos = idsOf(mcfg?.eos_token_id);
  if (eos.length === 0) {
    const e = idOfToken(tcfg?.eos_token);
    eos = e === null ? [] : [e];
  }
  const pad = idsOf(mcfg?.pad_token_id)[0] ?? idOfToken(tcfg?.pad_token);
  const addBos = tcfg?.add_bos_token === true;

  const hfFiles: Array<[string, string]> = [];
  for (const name of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja']) {
    if (existsSync(join(dir, name))) hfFiles.push([name, join(dir, name)]);
  }
  const hfTokenizerConfig = tcfg
    ? null
    : {
        tokenizer_class: 'PreTrainedTokenizerFast',
        add_bos_token: addBos,
        bos_token: bos === null ? null : tokens[bos],
        eos_token: eos.length ? tokens[eos[0]] : null,
        pad_token: pad === null ? null : tokens[pad],
        clean_up_tokenization_spaces: false,
        ...(chatTemplate ? { chat_template: chatTemplate } : {}),
      };

  return {
    model: 'gpt2',
    pre: pre ?? detectPre(tj.pre_tokenizer),
    tokens,
    tokenTypes,
    scores: null,
    merges,
    bosTokenId: bos ?? null,
    eosTokenIds: eos,
    unkTokenId: null,
    padTokenId: pad ?? null,
    addBosToken: addBos,
    chatTemplate,
    hfFiles,
    hfTokenizerConfig,
  };
}

/**
 * The stories260K SentencePiece vocab (512 pieces) from llama2.c's tok512.bin, with the transformations
 * llama2.c's exporter applied undone ('▁' for spaces, "\n<s>\n" for BOS). Scores come from the file.
 */
export async function loadBuiltinLlamaTokenizer(storiesDir = join(SHARED_MODELS_DIR, 'stories260k')): Promise<SyntheticTokenizer> {
  const binPath = join(storiesDir, 'tok512.bin');
  if (!existsSync(binPath)) {
    throw new SyntheticModelError(
      `the built-in SentencePiece vocab needs ${binPath} (set EDGE_NODE_SHARED_MODELS to the shared models folder, or pass tokenizerDir)`,
    );
  }
  const buf = await readFile(binPath);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tokens: string[] = [];
  const scores: number[] = [];
  const tokenTypes: number[] = [];
  let off = 4; // max_token_length
  const decoder = new TextDecoder();
  while (off + 8 <= buf.length) {
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    let piece = decoder.decode(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
    const id = tokens.length;
    if (id === 1) piece = '<s>';
    else if (id === 2) piece = '</s>';
    else piece = piece.replaceAll(' ', '\u2581');
    tokens.push(piece);
    scores.push(score);
    tokenTypes.push(
      id === 0 ? TokenType.UNKNOWN : id <= 2 ? TokenType.CONTROL : /^<0x[0-9A-F]{2}>$/.test(piece) ? TokenType.BYTE : TokenType.NORMAL,
    );
  }
  const hfDir = join(storiesDir, '..', 'stories260k-hf');
  const hfFiles: Array<[string, string]> = [];
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(hfDir, name))) hfFiles.push([name, join(hfDir, name)]);
  }
  return {
    model: 'llama',
    pre: null,
    tokens,
    tokenTypes,
    scores,
    merges: null,
    bosTokenId: 1,
    eosTokenIds: [2],
    unkTokenId: 0,
    padTokenId: null,
    addBosToken: true,
    chatTemplate: null,
    hfFiles,
    hfTokenizerConfig: null,
  };
}

/** Pads the vocabulary with unused "[PADi]" tokens up to `size` (as convert_hf_to_gguf does). */
export function padTokenizer(tok: SyntheticTokenizer, size: number): SyntheticTokenizer {
  if (tok.tokens.length >= size) return tok;
  const tokens = [...tok.tokens];
  const tokenTypes = [...tok.tokenTypes];
  const scores = tok.scores ? [...tok.scores] : null;
  for (let i = tokens.length; i < size; i++) {
    tokens.push(`[PAD${i}]`);
    tokenTypes.push(TokenType.UNUSED);
    scores?.push(-1000);
  }
  return { ...tok, tokens, tokenTypes, scores };
}

/** tokenizer.ggml.* (and tokenizer.chat_template) metadata entries. */
export function tokenizerGgufMetadata(tok: SyntheticTokenizer): Array<[string, GgufMetadataValue]> {
  const md: Array<[string, GgufMetadataValue]> = [['tokenizer.ggml.model', gguf.str(tok.model)]];
  if (tok.pre !== null) md.push(['tokenizer.ggml.pre', gguf.str(tok.pre)]);
  md.push(['tokenizer.ggml.tokens', gguf.strings(tok.tokens)]);
  if (tok.scores) md.push(['tokenizer.ggml.scores', gguf.f32s(tok.scores)]);
  md.push(['tokenizer.ggml.token_type', gguf.i32s(tok.tokenTypes)]);
  if (tok.merges) md.push(['tokenizer.ggml.merges', gguf.strings(tok.merges)]);
  if (tok.bosTokenId !== null) md.push(['tokenizer.ggml.bos_token_id', gguf.u32(tok.bosTokenId)]);
  if (tok.eosTokenIds.length) md.push(['tokenizer.ggml.eos_token_id', gguf.u32(tok.eosTokenIds[0])]);
  if (tok.unkTokenId !== null) md.push(['tokenizer.ggml.unknown_token_id', gguf.u32(tok.unkTokenId)]);
  if (tok.padTokenId !== null) md.push(['tokenizer.ggml.padding_token_id', gguf.u32(tok.padTokenId)]);
  md.push(['tokenizer.ggml.add_bos_token', gguf.bool(tok.addBosToken)]);
  md.push(['tokenizer.ggml.add_eos_token', gguf.bool(false)]);
  if (tok.chatTemplate !== null) md.push(['tokenizer.chat_template', gguf.str(tok.chatTemplate)]);
  return md;
}
