import { objectTailBytes, type GrammarGraph, type GrammarNode } from './json-schema-compiler.js';

/**
 * A byte-level pushdown automaton for the JSON values a grammar graph allows. Pure and immutable: `advance` returns
 * new states and never changes its input, so the token masker can explore every token of a vocabulary from one
 * state. A state is a set of alternative stacks (a union of schemas is followed down each branch until the bytes
 * decide); each stack cell caches the fewest bytes that complete it (`close`), which is what lets the sampler
 * guarantee the output finishes within the token budget.
 */

/** Node index standing for "any JSON value" in frames built for `any` (it has no node of its own). */
const ANY = -1;

type ObjStage = 'open' | 'key' | 'afterValue' | 'comma';
type NumStage = 'minus' | 'zero' | 'int' | 'dot' | 'frac' | 'e' | 'esign' | 'exp';

export type Frame =
  | { t: 'value'; node: number }
  | { t: 'obj'; node: number; stage: ObjStage; idx: number; cands: readonly number[]; pos: number }
  | { t: 'free'; values: number; stage: 'open' | 'colon' | 'afterValue' | 'comma' }
  | { t: 'arr'; items: number; min: number; max: number; stage: 'open' | 'afterValue' | 'comma'; count: number }
  /** `cont`: UTF-8 continuation bytes still due; `lo`/`hi`: the range the next one must be in (no overlongs, surrogates). */
  | { t: 'str'; min: number; max: number; len: number; cont: number; lo: number; hi: number; esc: boolean }
  | { t: 'num'; integer: boolean; nonNeg: boolean; stage: NumStage; digits: number }
  | { t: 'lit'; options: readonly Uint8Array[]; pos: number };

export interface Stack {
  readonly f: Frame;
  readonly next: Stack | null;
  /** Fewest bytes that complete this frame and every one below it. */
  readonly close: number;
}

/** Alternatives still possible after the bytes so far; empty = the bytes cannot start a valid output. */
export type GrammarState = readonly (Stack | null)[];

/** Longest runs the number grammar allows (keeps every number finite and exactly representable enough). */
const MAX_INT_DIGITS = 15;
const MAX_FRAC_DIGITS = 15;
const MAX_EXP_DIGITS = 2;

const Q = 0x22; // "
const BS = 0x5c; // \
const ESCAPABLE = new Set([Q, BS, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]); // " \ / b f n r t
const LITERALS = ['true', 'false', 'null'].map((s) => new TextEncoder().encode(s));

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;

export class JsonGrammar {
  constructor(readonly graph: GrammarGraph) {}

  /** The state before any byte: an optional literal prefix, the root value, an optional literal suffix. */
  initial(prefix?: Uint8Array, suffix?: Uint8Array): GrammarState {
    let s: Stack | null = null;
    if (suffix && suffix.length > 0) s = this.push(s, { t: 'lit', options: [suffix], pos: 0 });
    s = this.push(s, { t: 'value', node: this.graph.root });
    if (prefix && prefix.length > 0) s = this.push(s, { t: 'lit', options: [prefix], pos: 0 });
    return [s];
  }

  /** The state after `byte`, or an empty state when the byte cannot continue a valid output. */
  advance(state: GrammarState, byte: number): GrammarState {
    const out: (Stack | null)[] = [];
    for (const s of state) if (s !== null) this.step(s, byte, out);
    return out;
  }

  advanceBytes(state: GrammarState, bytes: Uint8Array): GrammarState {
    let s = state;
    for (let i = 0; i < bytes.length && s.length > 0; i++) s = this.advance(s, bytes[i]);
    return s;
  }

  /** Whether the output may end here. */
  canEnd(state: GrammarState): boolean {
    return state.some((s) => endable(s));
  }

  /**
   * The open string at the top of a single-alternative state, between characters (the masker's fast path: plain
   * string tokens are then allowed wholesale), with the close bytes of the stack.
   */
  openString(state: GrammarState): { len: number; min: number; max: number; close: number } | null {
    if (state.length !== 1 || state[0] === null) return null;
    const f = state[0].f;
    if (f.t !== 'str' || f.esc || f.cont > 0) return null;
    return { len: f.len, min: f.min, max: f.max, close: state[0].close };
  }

  /** Fewest further bytes that make the output complete (Infinity for a dead state). */
  minCloseBytes(state: GrammarState): number {
    let best = Infinity;
    for (const s of state) best = Math.min(best, s === null ? 0 : s.close);
    return best;
  }

  private push(next: Stack | null, f: Frame): Stack {
    return { f, next, close: this.frameClose(f) + (next?.close ?? 0) };
  }

  private minBytes(node: number): number {
    return node === ANY ? 1 : this.graph.minBytes[node];
  }

  private node(i: number): GrammarNode {
    return this.graph.nodes[i];
  }

  /** Candidate properties from `idx`: every one up to and including the next required one. */
  private candidates(node: number, idx: number): number[] {
    const n = this.node(node);
    if (n.kind !== 'object') return [];
    const out: number[] = [];
    for (let j = idx; j < n.props.length; j++) {
      out.push(j);
      if (n.props[j].required) break;
    }
    return out;
  }

  private frameClose(f: Frame): number {
    switch (f.t) {
      case 'value':
        return this.minBytes(f.node);
      case 'obj': {
        const n = this.node(f.node);
        if (n.kind !== 'object') return Infinity;
        const mb = this.graph.minBytes;
        if (f.stage === 'open') return objectTailBytes(n.props, 0, false, mb);
        if (f.stage === 'afterValue') return objectTailBytes(n.props, f.idx, true, mb);
        let best = Infinity;
        for (const c of f.cands) {
          const p = n.props[c];
          best = Math.min(best, p.keyBytes.length - f.pos + mb[p.node] + objectTailBytes(n.props, c + 1, true, mb));
        }
        return best;
      }
      case 'free': {
        const v = this.minBytes(f.values);
        return f.stage === 'open' || f.stage === 'afterValue' ? 1 : f.stage === 'colon' ? 2 + v : 4 + v;
      }
      case 'arr': {
        const m = this.minBytes(f.items);
        if (f.stage === 'open') return f.min === 0 ? 1 : f.min * (m + 1);
        if (f.stage === 'afterValue') return Math.max(0, f.min - f.count) * (m + 1) + 1;
        return m + Math.max(0, f.min - f.count - 1) * (m + 1) + 1;
      }
      case 'str':
        return (f.esc ? 1 : 0) + f.cont + Math.max(0, f.min - f.len) + 1;
      case 'num':
        return f.stage === 'minus' || f.stage === 'dot' || f.stage === 'e' || f.stage === 'esign' ? 1 : 0;
      case 'lit': {
        let best = Infinity;
        for (const o of f.options) best = Math.min(best, o.length - f.pos);
        return best;
      }
    }
  }

  /** Replaces the top frame with `f` (or pops it when f is null). */
  private replace(s: Stack, f: Frame | null): Stack | null {
    return f === null ? s.next : this.push(s.next, f);
  }

  private step(s: Stack, b: number, out: (Stack | null)[]): void {
    const f = s.f;
    switch (f.t) {
      case 'value':
        return this.startValue(s.next, f.node, b, out);
      case 'lit': {
        const options = f.options.filter((o) => o[f.pos] === b);
        if (options.length === 0) return;
        const pos = f.pos + 1;
        if (options.some((o) => o.length === pos)) out.push(s.next);
        const longer = options.filter((o) => o.length > pos);
        if (longer.length > 0) out.push(this.replace(s, { t: 'lit', options: longer, pos }));
        return;
      }
      case 'str': {
        if (f.esc) {
          if (ESCAPABLE.has(b)) out.push(this.replace(s, { ...f, esc: false }));
          return;
        }
        if (f.cont > 0) {
          if (b >= f.lo && b <= f.hi) out.push(this.replace(s, { ...f, cont: f.cont - 1, lo: 0x80, hi: 0xbf }));
          return;
        }
        if (b === Q) {
          if (f.len >= f.min) out.push(s.next);
          return;
        }
        if (b < 0x20 || f.len >= f.max) return;
        if (b === BS) out.push(this.replace(s, { ...f, esc: true, len: f.len + 1 }));
        else if (b < 0x80) out.push(this.replace(s, { ...f, len: f.len + 1 }));
        else if (b >= 0xc2 && b <= 0xdf) out.push(this.replace(s, { ...f, cont: 1, lo: 0x80, hi: 0xbf, len: f.len + 1 }));
        else if (b >= 0xe0 && b <= 0xef) out.push(this.replace(s, { ...f, cont: 2, lo: b === 0xe0 ? 0xa0 : 0x80, hi: b === 0xed ? 0x9f : 0xbf, len: f.len + 1 }));
        else if (b >= 0xf0 && b <= 0xf4) out.push(this.replace(s, { ...f, cont: 3, lo: b === 0xf0 ? 0x90 : 0x80, hi: b === 0xf4 ? 0x8f : 0xbf, len: f.len + 1 }));
        return;
      }
      case 'num':
        return this.stepNumber(s, f, b, out);
      case 'obj':
        return this.stepObject(s, f, b, out);
      case 'free':
        switch (f.stage) {
          case 'open':
          case 'comma':
            if (b === Q) out.push(this.push(this.replace(s, { ...f, stage: 'colon' }), { t: 'str', min: 0, max: Number.MAX_SAFE_INTEGER, len: 0, cont: 0, lo: 0x80, hi: 0xbf, esc: false }));
            else if (b === 0x7d && f.stage === 'open') out.push(s.next);
            return;
          case 'colon':
            if (b === 0x3a) out.push(this.push(this.replace(s, { ...f, stage: 'afterValue' }), { t: 'value', node: f.values }));
            return;
          case 'afterValue':
            if (b === 0x2c) out.push(this.replace(s, { ...f, stage: 'comma' }));
            else if (b === 0x7d) out.push(s.next);
            return;
        }
        return;
      case 'arr':
        if (f.stage === 'afterValue') {
          if (b === 0x2c && f.count < f.max) out.push(this.replace(s, { ...f, stage: 'comma' }));
          else if (b === 0x5d && f.count >= f.min) out.push(s.next);
          return;
        }
        if (f.stage === 'open' && b === 0x5d) {
          if (f.min === 0) out.push(s.next);
          return;
        }
        if (f.count >= f.max) return;
        // The byte starts the next item.
        return this.startValue(this.replace(s, { ...f, stage: 'afterValue', count: f.count + 1 }), f.items, b, out);
    }
  }

  /** A value of `node` starts with byte `b`, on top of `below`. */
  private startValue(below: Stack | null, node: number, b: number, out: (Stack | null)[]): void {
    if (node === ANY) return this.startAny(below, b, out);
    const n = this.node(node);
    switch (n.kind) {
      case 'object':
        if (b === 0x7b) out.push(this.push(below, { t: 'obj', node, stage: 'open', idx: 0, cands: [], pos: 0 }));
        return;
      case 'freeObject':
        if (b === 0x7b) out.push(this.push(below, { t: 'free', values: n.values, stage: 'open' }));
        return;
      case 'array':
        if (b === 0x5b) out.push(this.push(below, { t: 'arr', items: n.items, min: n.minItems, max: n.maxItems, stage: 'open', count: 0 }));
        return;
      case 'string':
        if (b === Q) out.push(this.push(below, { t: 'str', min: n.minLength, max: n.maxLength, len: 0, cont: 0, lo: 0x80, hi: 0xbf, esc: false }));
        return;
      case 'number':
        return this.startNumber(below, n.integer, n.nonNegative, b, out);
      case 'literal': {
        const lit: Stack = this.push(below, { t: 'lit', options: n.options, pos: 0 });
        return this.step(lit, b, out);
      }
      case 'union':
        for (const o of n.options) this.startValue(below, o, b, out);
        return;
      case 'any':
        return this.startAny(below, b, out);
    }
  }

  private startAny(below: Stack | null, b: number, out: (Stack | null)[]): void {
    if (b === 0x7b) out.push(this.push(below, { t: 'free', values: ANY, stage: 'open' }));
    else if (b === 0x5b) out.push(this.push(below, { t: 'arr', items: ANY, min: 0, max: Number.MAX_SAFE_INTEGER, stage: 'open', count: 0 }));
    else if (b === Q) out.push(this.push(below, { t: 'str', min: 0, max: Number.MAX_SAFE_INTEGER, len: 0, cont: 0, lo: 0x80, hi: 0xbf, esc: false }));
    else if (b === 0x2d || isDigit(b)) this.startNumber(below, false, false, b, out);
    else this.step(this.push(below, { t: 'lit', options: LITERALS, pos: 0 }), b, out);
  }

  private startNumber(below: Stack | null, integer: boolean, nonNeg: boolean, b: number, out: (Stack | null)[]): void {
    const num = (stage: NumStage, digits: number): Frame => ({ t: 'num', integer, nonNeg, stage, digits });
    if (b === 0x2d && !nonNeg) out.push(this.push(below, num('minus', 0)));
    else if (b === 0x30) out.push(this.push(below, num('zero', 1)));
    else if (isDigit(b)) out.push(this.push(below, num('int', 1)));
  }

  private stepNumber(s: Stack, f: Extract<Frame, { t: 'num' }>, b: number, out: (Stack | null)[]): void {
    const to = (stage: NumStage, digits: number) => out.push(this.replace(s, { ...f, stage, digits }));
    const fraction = !f.integer && b === 0x2e;
    const exponent = !f.integer && (b === 0x65 || b === 0x45);
    switch (f.stage) {
      case 'minus':
        if (b === 0x30) to('zero', 1);
        else if (isDigit(b)) to('int', 1);
        return;
      case 'zero':
      case 'int':
        if (f.stage === 'int' && isDigit(b) && f.digits < MAX_INT_DIGITS) return void to('int', f.digits + 1);
        if (fraction) return void to('dot', 0);
        if (exponent) return void to('e', 0);
        break;
      case 'dot':
        if (isDigit(b)) to('frac', 1);
        return;
      case 'frac':
        if (isDigit(b) && f.digits < MAX_FRAC_DIGITS) return void to('frac', f.digits + 1);
        if (exponent) return void to('e', 0);
        break;
      case 'e':
        if (b === 0x2b || b === 0x2d) to('esign', 0);
        else if (isDigit(b)) to('exp', 1);
        return;
      case 'esign':
        if (isDigit(b)) to('exp', 1);
        return;
      case 'exp':
        if (isDigit(b) && f.digits < MAX_EXP_DIGITS) return void to('exp', f.digits + 1);
        break;
    }
    // The number is complete; the byte belongs to what follows it.
    if (s.next !== null && !isDigit(b)) this.step(s.next, b, out);
  }

  private stepObject(s: Stack, f: Extract<Frame, { t: 'obj' }>, b: number, out: (Stack | null)[]): void {
    const n = this.node(f.node);
    if (n.kind !== 'object') return;
    if (f.stage === 'afterValue') {
      if (b === 0x2c) {
        const cands = this.candidates(f.node, f.idx);
        if (cands.length > 0) out.push(this.replace(s, { ...f, stage: 'comma', cands, pos: 0 }));
      } else if (b === 0x7d && objectTailBytes(n.props, f.idx, true, this.graph.minBytes) === 1) out.push(s.next);
      return;
    }
    if (f.stage === 'open' && b === 0x7d) {
      if (objectTailBytes(n.props, 0, false, this.graph.minBytes) === 1) out.push(s.next);
      return;
    }
    const cands = f.stage === 'key' ? f.cands : this.candidates(f.node, f.idx);
    const pos = f.stage === 'key' ? f.pos : 0;
    const matching = cands.filter((c) => n.props[c].keyBytes[pos] === b);
    if (matching.length === 0) return;
    const done = matching.find((c) => n.props[c].keyBytes.length === pos + 1);
    if (done !== undefined) {
      // `"key":` matched: the property's value comes next, then the rest of the object.
      const after = this.replace(s, { ...f, stage: 'afterValue', idx: done + 1, cands: [], pos: 0 });
      out.push(this.push(after, { t: 'value', node: n.props[done].node }));
      return;
    }
    out.push(this.replace(s, { ...f, stage: 'key', cands: matching, pos: pos + 1 }));
  }
}

function endable(s: Stack | null): boolean {
  if (s === null) return true;
  const f = s.f;
  return f.t === 'num' && (f.stage === 'zero' || f.stage === 'int' || f.stage === 'frac' || f.stage === 'exp') && s.next === null;
}
