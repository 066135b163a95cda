import { argmax } from './sampler.js';
import type { ForwardShard, ShardKvCache } from './forward-shard.js';
import type { DraftSource, Drafter } from './speculation.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** A draft model whose tokenizer is not the served model's: its token ids would mean other text. */
export class DraftModelError extends Error {
  override name = 'DraftModelError';
}

/** Text whose ids two tokenizers must agree on (and their vocabulary sizes and end-of-sequence ids). */
const PROBE = 'Hello, world! The quick brown fox jumps over the lazy dog. 12345 éàü — {"a": [1, 2]}\n';

/** Throws a DraftModelError unless the draft model's tokenizer is the served model's (same ids for the same text). */
export function checkSameTokenizer(served: Tokenizer, draft: Tokenizer): void {
  const why =
    served.vocabSize !== draft.vocabSize
      ? `its vocabulary has ${draft.vocabSize} tokens, the served model's ${served.vocabSize}`
      : served.eosIds.join(',') !== draft.eosIds.join(',')
        ? `its end-of-sequence ids are ${draft.eosIds.join(', ')}, the served model's ${served.eosIds.join(', ')}`
        : served.encode(PROBE, { addBos: false }).join(',') !== draft.encode(PROBE, { addBos: false }).join(',')
          ? 'it splits the same text into other token ids'
          : null;
  if (why) throw new DraftModelError(`the draft model's tokenizer is not the served model's: ${why}. Give --draft-model a smaller model of the same family (same tokenizer)`);
}

/**
 * A small model with the served model's tokenizer, whole on this device (the coordinator): each request gets a KV
 * cache of its own, and a draft is the model's greedy continuation of the sequence. Between drafts the cache is cut
 * back to what the sequence still shares with it (the drafts the served model rejected) and the new tokens fed.
 * Its drafts are one-hot, so the verification's rule keeps the served model's text and distribution exact.
 */
export class DraftModel implements DraftSource {
  constructor(
    private readonly shard: ForwardShard,
    /** Positions a request's draft cache holds (the draft model's context, at most the served one's). */
    private readonly contextLength: number,
  ) {
    if (!shard.isFirst || !shard.isLast) throw new DraftModelError('a draft model needs every layer on this device');
  }

  session(): { drafter: Drafter; close(): void } {
    let cache: ShardKvCache | null = null;
    /** Tokens whose rows the cache holds, in order. */
    let fed: number[] = [];
    const drafter: Drafter = async (history, maxTokens) => {
      if (maxTokens < 1 || history.length + maxTokens > this.contextLength) return [];
      cache ??= this.shard.createCache(this.contextLength);
      let common = 0;
      while (common < fed.length && common < history.length - 1 && fed[common] === history[common]) common++;
      cache.truncate(common);
      fed = fed.slice(0, common);
      const V = this.shard.config.vocabSize;
      const draft: number[] = [];
      let input = history.slice(common);
      for (let i = 0; i < maxTokens; i++) {
        const out = await this.shard.forward({ kind: 'tokens', tokens: input }, cache);
        if (out.kind !== 'logits') throw new DraftModelError('the draft model produced no logits');
        fed.push(...input);
        const token = argmax(out.logits.subarray(out.logits.length - V));
        draft.push(token);
        input = [token];
      }
      return draft;
    };
    return {
      drafter,
      close: () => {
        cache?.clear();
        cache = null;
      },
    };
  }
}
