import { readFile } from 'node:fs/promises';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { TokenizerError } from './tokenizer-errors.js';
import type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './tokenizer.js';

/** Texts of end-of-turn/end-of-text tokens that end generation even when the config names another EOS. */
const EOG_TEXTS = new Set(['<|im_end|>', '<|eot_id|>', '<|endoftext|>', '<|end_of_text|>', '<|eom_id|>', '<end_of_turn>', '<|end|>', '</s>', '<eos>']);

/** A `bos_token`-style entry of tokenizer_config.json: a string or an AddedToken object. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return null;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A tokenizer.json (+ tokenizer_config.json) tokenizer, run by `@huggingface/tokenizers`. */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'tokenizer-json' as const;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly addBosByDefault: boolean;
  private readonly impl: HfTokenizerImpl;
  private readonly specialIds = new Set<number>();
  private readonly specialTexts: string[] = [];
  /** A token that decodes to plain text, put in front of a window so decoders that strip a leading space do it there. */
  private readonly probe: number | null;
  private readonly probeText: string;

  static async fromFiles(path: string, configPath: string | null): Promise<HfTokenizer> {
    const parse = async (p: string): Promise<Record<string, unknown>> => {
      let text: string;
      try {
        text = await readFile(p, 'utf8');
      } catch (e) {
        throw new TokenizerError(`cannot read ${p}: ${(e as Error).message}`);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new TokenizerError(`${p} is not valid JSON: ${(e as Error).message}`);
      }
      if (!isRecord(json)) throw new TokenizerError(`${p} does not hold a JSON object`);
      return json;
    };
    return new HfTokenizer(await parse(path), configPath === null ? {} : await parse(configPath), path);
  }

  constructor(tokenizerJson: Record<string, unknown>, config: Record<string, unknown> = {}, source = 'tokenizer.json') {
    if (!isRecord(tokenizerJson.model)) throw new TokenizerError(`${source}: no "model" section; is this a Hugging Face tokenizer.json?`);
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(`${source}: @huggingface/tokenizers cannot load it: ${(e as Error).message}`);
    }
    const added = (Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : []) as AddedTokenJson[];
    for (const t of added) {
      if (t.special === true) {
        this.specialIds.add(t.id);
        this.specialTexts.push(t.content);
      }
    }
    let maxId = -1;
    for (const id of this.impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const withSpecial = this.impl.encode('a', { add_special_tokens: true }).ids;
    const plain = this.impl.encode('a', { add_special_tokens: false }).ids;
    const configBos = tokenText(config.bos_token);
    const impliedBos = withSpecial.length > plain.length && withSpecial[0] !== plain[0] ? withSpecial[0] : null;
    this.bosId = (configBos !== null ? this.impl.token_to_id(configBos) : undefined) ?? impliedBos;
    this.addBosByDefault = this.bosId !== null && withSpecial[0] === this.bosId;

    const eos = new Set<number>();
    const configEos = tokenText(config.eos_token);
    const configEosId = configEos !== null ? this.impl.token_to_id(configEos) : undefined;
    if (configEosId !== undefined) eos.add(configEosId);
    for (const t of added) if (EOG_TEXTS.has(t.content)) eos.add(t.id);
    this.eosIds = [...eos].sort((a, b) => a - b);

    this.probe = plain.length === 1 && this.decodeRaw(plain, false) !== '' ? plain[0] : null;
    this.probeText = this.probe === null ? '' : this.decodeRaw([this.probe], false);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (opts.parseSpecial === false) {
      // tokenizers.js always matches added tokens; refuse rather than silently treat them as special.
      const found = this.specialTexts.find((s) => text.includes(s));
      if (found !== undefined) {
        throw new TokenizerError(`text contains the special token ${JSON.stringify(found)}, and tokenizer.json tokenizers cannot encode it as plain text (parseSpecial: false)`);
      }
    }
    const ids = this.impl.encode(text, { add_special_tokens: opts.addBos ?? true }).ids;
    if (opts.addBos === true && this.bosId !== null && ids[0] !== this.bosId) ids.unshift(this.bosId);
    return ids;
  }

  /**
   * Hugging Face decode with `clean_up_tokenization_spaces` off whatever the config says: the clean-up is
   * lossy and would make streamed and whole decodes disagree.
   */
  private decodeRaw(ids: readonly number[], showSpecial: boolean): string {
    if (ids.length === 0) return '';
    return this.impl.decode([...ids], { skip_special_tokens: !showSpecial, clean_up_tokenization_spaces: false });
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) this.checkId(id);
    const showSpecial = opts.showSpecial ?? false;
    if (opts.continuation === true && this.probe !== null) {
      return this.decodeRaw([this.probe, ...ids], showSpecial).slice(this.probeText.length);
    }
    return this.decodeRaw(ids, showSpecial);
  }

  /**
   * Window-diff streaming (as text-generation-inference does): decode a short window with and without the new
   * tokens and emit the difference once it no longer ends in U+FFFD (an incomplete UTF-8 sequence).
   */
  createDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const showSpecial = opts.showSpecial ?? false;
    const ids: number[] = [];
    let prefixOffset = 0;
    let readOffset = 0;
    let started = opts.continuation === true;
    const window = (from: number, to: number): string => {
      const slice = ids.slice(from, to);
      // Once text has been emitted, later windows continue it: decode them behind the probe.
      if (started && this.probe !== null) return this.decodeRaw([this.probe, ...slice], showSpecial).slice(this.probeText.length);
      return this.decodeRaw(slice, showSpecial);
    };
    const emit = (final: boolean): string => {
      const prefix = window(prefixOffset, readOffset);
      const full = window(prefixOffset, ids.length);
      if (full.length <= prefix.length || (!final && full.endsWith('\uFFFD'))) return '';
      prefixOffset = readOffset;
      readOffset = ids.length;
      started = true;
      return full.slice(prefix.length);
    };
    return {
      push: (id: number): string => {
        this.checkId(id);
        ids.push(id);
        return emit(false);
      },
      flush: (): string => (readOffset < ids.length ? emit(true) : ''),
    };
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  tokenToPiece(id: number): string {
    const piece = this.impl.id_to_token(id);
    if (piece === undefined) throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return piece;
  }

  pieceToToken(piece: string): number | null {
    return this.impl.token_to_id(piece) ?? null;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}
