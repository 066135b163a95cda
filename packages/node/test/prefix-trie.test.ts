import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PrefixTrie } from '../src/engine/prefix-trie.js';

const B = 4;
/** A block's payload: the tokens it stands for from the start, so a match can be checked against its input. */
const blockOf = (tokens: number[]) => (b: number) => ({ payload: tokens.slice(0, (b + 1) * B).join(','), bytes: 10 });

describe('PrefixTrie', () => {
  it('matches the longest run of whole blocks from the start', () => {
    const t = new PrefixTrie<string>(1000, B);
    const a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(t.insert('s', a, blockOf(a)).added).toBe(2); // 10 tokens: 2 whole blocks
    expect(t.match('s', [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0])).toEqual(['1,2,3,4', '1,2,3,4,5,6,7,8']);
    expect(t.match('s', [1, 2, 3, 4, 5, 6, 7, 0])).toEqual(['1,2,3,4']);
    expect(t.match('s', [1, 2, 3, 4, 5, 6, 7, 8], 1)).toEqual(['1,2,3,4']);
    expect(t.match('other', a)).toEqual([]);
    expect(t.match('s', [0, 2, 3, 4])).toEqual([]);
    // Present blocks are not made again.
    let made = 0;
    t.insert('s', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], (b) => (made++, blockOf([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])(b)));
    expect(made).toBe(1);
    expect(t.stats()).toMatchObject({ blocks: 3, bytes: 30 });
  });

  it('evicts the least recently used leaf first, never a block before its descendants', () => {
    const t = new PrefixTrie<string>(40, B);
    const x = [1, 1, 1, 1, 2, 2, 2, 2];
    const y = [1, 1, 1, 1, 3, 3, 3, 3];
    t.insert('s', x, blockOf(x));
    t.insert('s', y, blockOf(y)); // shares the first block: 3 blocks, 30 bytes
    t.match('s', x); // y's leaf is now the oldest
    const z = [4, 4, 4, 4, 5, 5, 5, 5];
    const { evicted } = t.insert('s', z, blockOf(z)); // 50 bytes > 40: one leaf goes
    expect(evicted).toEqual(['1,1,1,1,3,3,3,3']);
    expect(t.depth('s', y)).toBe(1);
    expect(t.depth('s', x)).toBe(2);
    expect(t.depth('s', z)).toBe(2);
  });

  it('forgets a path from a block on, and a whole namespace', () => {
    const t = new PrefixTrie<string>(1000, B);
    const x = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3];
    t.insert('s', x, blockOf(x));
    t.insert('r', x, blockOf(x));
    expect(t.forget('s', x, 1)).toHaveLength(2);
    expect(t.depth('s', x)).toBe(1);
    expect(t.dropNamespace('r')).toHaveLength(3);
    expect(t.depth('r', x)).toBe(0);
    expect(t.stats()).toMatchObject({ blocks: 1, bytes: 10 });
  });

  it('a smaller budget evicts at once, least recently used first; a larger one keeps more again', () => {
    const t = new PrefixTrie<string>(100, B);
    const x = [1, 1, 1, 1, 2, 2, 2, 2];
    const y = [3, 3, 3, 3, 4, 4, 4, 4];
    t.insert('s', x, blockOf(x));
    t.insert('s', y, blockOf(y));
    t.match('s', x);
    expect(t.resize(25)).toEqual(['3,3,3,3,4,4,4,4', '3,3,3,3']);
    expect(t.stats()).toMatchObject({ blocks: 2, bytes: 20, budgetBytes: 25 });
    t.resize(100);
    t.insert('s', y, blockOf(y));
    expect(t.stats().blocks).toBe(4);
  });

  it('a budget of 0 keeps nothing', () => {
    const t = new PrefixTrie<string>(0, B);
    const x = [1, 1, 1, 1, 2, 2, 2, 2];
    t.insert('s', x, blockOf(x));
    expect(t.depth('s', x)).toBe(0);
    expect(t.stats()).toMatchObject({ blocks: 0, bytes: 0 });
  });

  it('property: under any operations the budget holds, matches are exact prefixes, and bytes add up', () => {
    const seq = fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 0, maxLength: 14 });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), ns: fc.constantFrom('a', 'b'), tokens: seq, bytes: fc.integer({ min: 1, max: 30 }) }),
      fc.record({ kind: fc.constant('match' as const), ns: fc.constantFrom('a', 'b'), tokens: seq }),
      fc.record({ kind: fc.constant('forget' as const), ns: fc.constantFrom('a', 'b'), tokens: seq, from: fc.integer({ min: 0, max: 3 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 120 }), fc.array(op, { maxLength: 40 }), (budget, ops) => {
        const t = new PrefixTrie<{ prefix: string; bytes: number }>(budget, B);
        const held = new Map<string, number>(); // payload prefix → bytes, as the model of what the trie holds
        const key = (ns: string, tokens: number[], b: number) => `${ns}|${tokens.slice(0, (b + 1) * B).join(',')}`;
        for (const o of ops) {
          if (o.kind === 'insert') {
            const { evicted } = t.insert(o.ns, o.tokens, (b) => {
              const prefix = key(o.ns, o.tokens, b);
              held.set(prefix, o.bytes);
              return { payload: { prefix, bytes: o.bytes }, bytes: o.bytes };
            });
            for (const e of evicted) held.delete(e.prefix);
            expect(t.stats().bytes).toBeLessThanOrEqual(budget);
          } else if (o.kind === 'match') {
            const got = t.match(o.ns, o.tokens);
            got.forEach((p, b) => expect(p.prefix).toBe(key(o.ns, o.tokens, b)));
            // The match is the longest: the next block is not held.
            expect(held.has(key(o.ns, o.tokens, got.length)) && o.tokens.length >= (got.length + 1) * B).toBe(false);
          } else {
            for (const e of t.forget(o.ns, o.tokens, o.from)) held.delete(e.prefix);
          }
          const s = t.stats();
          expect(s.blocks).toBe(held.size);
          expect(s.bytes).toBe([...held.values()].reduce((a, b) => a + b, 0));
        }
      }),
      { numRuns: 300 },
    );
  });
});
