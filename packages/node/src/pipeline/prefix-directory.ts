import { PREFIX_BLOCK_TOKENS, PrefixTrie } from '../engine/prefix-trie.js';
import type { Route } from './route.js';

/** Blocks the coordinator remembers per node (token ids only, a few hundred bytes each): about a million tokens. */
const DIRECTORY_BLOCKS = 65_536;

/**
 * The coordinator's directory of what the stages of each route keep in their prefix caches: the token blocks every
 * stage of the route said it holds (the `held` positions that come back with a request's first token), and what a
 * finished request left there. It holds no KV data and may be stale — a stage evicts under its own budget — which
 * costs a refusal and a full prefill, never a wrong answer (the stage checks its own cache).
 */
export class PrefixDirectory {
  private readonly trie = new PrefixTrie<null>(DIRECTORY_BLOCKS, PREFIX_BLOCK_TOKENS);

  /** Positions of `tokens` the route's stages hold, as a request may use them: whole blocks, at least one token left to compute. */
  lookup(route: Route, tokens: readonly number[]): number {
    const usable = Math.floor((tokens.length - 1) / PREFIX_BLOCK_TOKENS);
    if (usable <= 0) return 0;
    return this.trie.match(namespaceOf(route), tokens, usable).length * PREFIX_BLOCK_TOKENS;
  }

  /** Every stage of the route holds the first `positions` positions of `tokens`. */
  record(route: Route, tokens: readonly number[], positions: number): void {
    const blocks = Math.floor(Math.min(positions, tokens.length) / PREFIX_BLOCK_TOKENS);
    if (blocks > 0) this.trie.insert(namespaceOf(route), tokens, () => ({ payload: null, bytes: 1 }), blocks);
  }

  /** A stage of the route holds only the first `held` positions of `tokens`: forget the blocks after them. */
  forget(route: Route, tokens: readonly number[], held: number): void {
    this.trie.forget(namespaceOf(route), tokens, Math.floor(held / PREFIX_BLOCK_TOKENS));
  }
}

/** A route's stages and their layers: the stages' caches are per layer range, so another split holds nothing. */
function namespaceOf(route: Route): string {
  return `${route.model}|${route.peers.map((p, i) => `${p}:${route.ranges[i][0]}-${route.ranges[i][1]}`).join(',')}`;
}
