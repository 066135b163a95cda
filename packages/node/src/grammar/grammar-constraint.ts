import { compileJsonSchema, type GrammarGraph } from './json-schema-compiler.js';
import { JsonGrammar, type GrammarState } from './json-grammar.js';
import type { GrammarSpec } from './grammar-spec.js';
import type { TokenVocabulary, TrieNode } from './token-vocabulary.js';

/** A token that the grammar does not allow was fed in (a replay that disagrees with the grammar, or a bug). */
export class GrammarViolationError extends Error {
  override name = 'GrammarViolationError';
}

/** Cost of masking, for measurement (`scripts/bench-grammar.ts`, logs). */
export interface MaskStats {
  calls: number;
  totalMs: number;
  maxMs: number;
  /** Trie nodes visited, summed over calls. */
  visited: number;
}

const utf8 = new TextEncoder();

/**
 * Constrained sampling for one request: before each draw, every token whose bytes cannot continue a valid output —
 * or would leave more bytes to write than the token budget allows — gets logit −∞. The budget rule is what makes
 * termination certain: a token is allowed only if, after it, the shortest completion (in bytes, one token per byte
 * at worst, since byte tokens exist) still fits in the tokens left. EOS is allowed exactly when the output is
 * complete, and is then the only choice once nothing may follow.
 */
export class GrammarConstraint {
  private state: GrammarState;
  private readonly grammar: JsonGrammar;
  private readonly buffer: Uint8Array;
  readonly stats: MaskStats = { calls: 0, totalMs: 0, maxMs: 0, visited: 0 };

  constructor(
    readonly graph: GrammarGraph,
    private readonly vocab: TokenVocabulary,
    spec: Pick<GrammarSpec, 'prefix' | 'suffix'> = {},
  ) {
    this.grammar = new JsonGrammar(graph);
    this.buffer = new Uint8Array(vocab.size);
    this.state = this.grammar.initial(spec.prefix ? utf8.encode(spec.prefix) : undefined, spec.suffix ? utf8.encode(spec.suffix) : undefined);
  }

  static fromSpec(spec: GrammarSpec, vocab: TokenVocabulary): GrammarConstraint {
    return new GrammarConstraint(compileJsonSchema(spec.schema), vocab, spec);
  }

  /** Fewest bytes (hence tokens, at worst) still needed to finish the output. */
  get minRemainingBytes(): number {
    return this.grammar.minCloseBytes(this.state);
  }

  get complete(): boolean {
    return this.grammar.canEnd(this.state) && this.grammar.minCloseBytes(this.state) === 0;
  }

  /** Token ids allowed next, given `remaining` tokens left including this one. */
  allowed(remaining: number): number[] {
    const m = this.allowedMask(remaining);
    const out: number[] = [];
    for (let i = 0; i < m.length; i++) if (m[i]) out.push(i);
    return out;
  }

  /** 1 for each token allowed next (a buffer reused between calls: read it before the next call). */
  allowedMask(remaining: number): Uint8Array {
    const t0 = performance.now();
    const out = this.buffer;
    out.fill(0);
    let any = false;
    const budget = remaining - 1;
    let visited = 0;
    const g = this.grammar;
    const walk = (node: TrieNode, state: GrammarState) => {
      for (const [byte, child] of node.children) {
        visited++;
        const next = g.advance(state, byte);
        if (next.length === 0) continue;
        if (child.tokens.length > 0 && g.minCloseBytes(next) <= budget) {
          for (const t of child.tokens) out[t] = 1;
          any = true;
        }
        if (child.children.size > 0) walk(child, next);
      }
    };
    const str = g.openString(this.state);
    if (str) {
      // Inside a string: a plain token only adds characters; its check is arithmetic. The others (quotes,
      // escapes, partial UTF-8) are few and are checked byte by byte.
      const { plainChars, nonPlain, bytes } = this.vocab;
      const room = str.max - str.len;
      const owed = Math.max(0, str.min - str.len);
      for (let id = 0; id < plainChars.length; id++) {
        const n = plainChars[id];
        if (n >= 0 && n <= room && str.close - Math.min(n, owed) <= budget) {
          out[id] = 1;
          any = true;
        }
      }
      for (const id of nonPlain) {
        visited++;
        const next = g.advanceBytes(this.state, bytes[id]!);
        if (next.length > 0 && g.minCloseBytes(next) <= budget) {
          out[id] = 1;
          any = true;
        }
      }
    } else walk(this.vocab.trie, this.state);
    // EOS once the output is complete (and, defensively, when nothing else is possible).
    if (g.canEnd(this.state) || !any) for (const e of this.vocab.eosIds) out[e] = 1;
    const ms = performance.now() - t0;
    this.stats.calls++;
    this.stats.totalMs += ms;
    this.stats.maxMs = Math.max(this.stats.maxMs, ms);
    this.stats.visited += visited;
    return out;
  }

  /** Sets every token not allowed next to −∞ (in place). */
  mask(logits: Float32Array, remaining: number): void {
    const m = this.allowedMask(remaining);
    const n = Math.min(m.length, logits.length);
    for (let i = 0; i < n; i++) if (!m[i]) logits[i] = -Infinity;
    for (let i = n; i < logits.length; i++) logits[i] = -Infinity;
  }

  /** Advances over a token that entered the output (sampled here, or replayed after a lost stage). */
  accept(token: number): void {
    if (this.vocab.eosIds.includes(token)) return;
    const bytes = this.vocab.bytes[token];
    if (bytes === null || bytes === undefined) throw new GrammarViolationError(`token ${token} writes nothing the grammar can take`);
    const next = this.grammar.advanceBytes(this.state, bytes);
    if (next.length === 0) throw new GrammarViolationError(`token ${token} cannot continue the constrained output here`);
    this.state = next;
  }
}
