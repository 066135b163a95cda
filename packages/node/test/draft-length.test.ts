/**
 * The draft length from measured costs (draft-length.ts), the pass and draft timings it reads (PassCost, DraftCost),
 * and the tuner that asks for it per request: back-off where drafts are rejected, the staircase climbed where they
 * are accepted, a draft model's time per token counted against long drafts.
 */
import { describe, expect, it } from 'vitest';
import { chooseDraftLength, draftCandidates, expectedTokensPerWalk, stairAbove, type DraftCosts } from '../src/engine/draft-length.js';
import { DraftCost } from '../src/engine/draft-cost.js';
import { PassCost } from '../src/engine/pass-cost.js';
import { SourceAcceptance } from '../src/engine/source-acceptance.js';
import { DraftTuner } from '../src/engine/speculation.js';

/** A pass of r rows costing `walk` ms plus `row` ms per extra row (a ring: hops and fixed costs in `walk`). */
const linear = (acceptance: number, walk: number, row: number, draftMsPerToken = 0): DraftCosts => ({ acceptance, passMs: (r) => walk + row * (r - 1), draftMsPerToken });

describe('chooseDraftLength', () => {
  it('expected tokens per walk is the geometric sum', () => {
    expect(expectedTokensPerWalk(0.5, 2)).toBeCloseTo(1.75);
    expect(expectedTokensPerWalk(1, 4)).toBe(5);
    expect(expectedTokensPerWalk(0, 4)).toBe(1);
  });

  it('chooses among the staircase up to the limit, the limit itself included', () => {
    expect(draftCandidates(16)).toEqual([1, 2, 3, 4, 6, 8, 12, 16]);
    expect(draftCandidates(5)).toEqual([1, 2, 3, 4, 5]);
    expect(draftCandidates(0)).toEqual([]);
    expect(stairAbove(4, 16)).toBe(6);
    expect(stairAbove(16, 16)).toBe(16);
    expect(stairAbove(8, 10)).toBe(8);
  });

  it('drafts the longest step when every draft is accepted and rows are cheap; nothing when drafts are rejected or a row costs a walk', () => {
    expect(chooseDraftLength(linear(1, 20, 1), 16)).toBe(16);
    expect(chooseDraftLength(linear(1, 20, 1), 7)).toBe(7);
    expect(chooseDraftLength(linear(0.05, 20, 2), 16)).toBe(0);
    expect(chooseDraftLength(linear(0.6, 20, 20), 16)).toBe(0);
    const mid = chooseDraftLength(linear(0.6, 20, 2), 16);
    expect(mid).toBeGreaterThan(0);
    expect(mid).toBeLessThan(16);
  });

  it('this CPU: a 4-row pass at 2.4 one-row walks and 100 % acceptance drafts long, but gains far less than the tokens per walk', () => {
    // 1-row walk 23 ms, each further row ~10 ms (the 300M ring's measured slope): rows are far from free.
    const costs = linear(1, 23, 10);
    const k = chooseDraftLength(costs, 16);
    expect(k).toBe(16);
    const gain = (k + 1) / costs.passMs(k + 1) / (1 / costs.passMs(1));
    expect(gain).toBeGreaterThan(1.5);
    expect(gain).toBeLessThan(2.3);
  });

  it("reads the measured pass of each size, not a line: a size that measured dear is skipped for a cheaper one", () => {
    const ms: Record<number, number> = { 1: 20, 2: 22, 3: 24, 4: 26, 5: 28, 7: 60, 9: 70, 13: 200, 17: 300 };
    expect(chooseDraftLength({ acceptance: 1, passMs: (r) => ms[r] ?? 1e9, draftMsPerToken: 0 }, 16)).toBe(4);
  });

  it("counts the draft's own time per token: a draft model as slow as a walk makes plain steps win", () => {
    expect(chooseDraftLength(linear(1, 20, 1, 0), 16)).toBe(16);
    expect(chooseDraftLength(linear(1, 20, 1, 4), 16)).toBeGreaterThan(0);
    expect(chooseDraftLength(linear(0.7, 20, 1, 4), 16)).toBeLessThan(chooseDraftLength(linear(0.7, 20, 1, 0), 16));
    expect(chooseDraftLength(linear(0.8, 20, 1, 25), 16)).toBe(0);
  });

  it('refuses estimates out of range', () => {
    expect(() => chooseDraftLength(linear(1.5, 20, 1), 4)).toThrow(RangeError);
    expect(() => chooseDraftLength(linear(1, 20, 1, -1), 4)).toThrow(RangeError);
    expect(() => chooseDraftLength(linear(1, 0, 1), 4)).toThrow(RangeError);
  });
});

describe('PassCost and DraftCost', () => {
  it('a timed size reads its running mean, another the line through the timed ones; rowCost is the slope per one-row pass', () => {
    const c = new PassCost();
    expect(c.passMs(5)).toBeCloseTo(1.4); // nothing timed: the prior, in one-row passes
    c.record(1, 20);
    expect(c.rowCost()).toBe(0.1); // one size timed: the prior
    expect(c.passMs(3)).toBeCloseTo(24);
    c.record(5, 24);
    c.record(9, 28);
    expect(c.rowCost()).toBeCloseTo(1 / 20);
    expect(c.passMs(5)).toBeCloseTo(24);
    expect(c.passMs(17)).toBeCloseTo(36);
    c.record(5, 34);
    expect(c.timings()).toEqual({ 1: 20, 5: 26, 9: 28 }); // running mean, newest at 0.2
    // Timed twice, the size's mean (26) counts 2 against the line's 2 (its value at 5 rows, now ~24.7).
    expect(c.passMs(5)).toBeGreaterThan(24.7);
    expect(c.passMs(5)).toBeLessThan(26);
  });

  it('a size timed once under a burst of load is pulled back towards the line; timed often, it is read as measured', () => {
    const c = new PassCost();
    for (let i = 0; i < 10; i++) for (const r of [1, 3, 5]) c.record(r, 20 + 2 * (r - 1));
    c.record(9, 200); // one probe while another process took the cores
    expect(c.passMs(9)).toBeLessThan(110);
    const often = new PassCost();
    for (let i = 0; i < 10; i++) for (const r of [1, 3, 5, 9]) often.record(r, r === 9 ? 100 : 20 + 2 * (r - 1));
    expect(often.passMs(9)).toBeGreaterThan(80);
  });

  it("DraftCost: a running mean of milliseconds per drafted token, 0 before the first draft", () => {
    const d = new DraftCost();
    expect(d.msPerToken()).toBe(0);
    d.record(4, 8);
    expect(d.msPerToken()).toBe(2);
    d.record(0, 100); // nothing drafted: nothing learnt
    d.record(2, 12);
    expect(d.msPerToken()).toBeCloseTo(0.8 * 2 + 0.2 * 6);
  });
});

describe('DraftTuner', () => {
  const always = (h: readonly number[], k: number) => Array.from({ length: k }, (_, i) => h.length + i);
  const tuner = (maxDraft: number, cost = new PassCost(), draftCost = new DraftCost(), sourceAcceptance = new SourceAcceptance()) => new DraftTuner({ drafter: always, maxDraft, cost, draftCost, sourceAcceptance });

  it('backs off to plain steps when drafts are rejected, still probing one token now and then', async () => {
    const t = tuner(16);
    expect((await t.draft([1, 2, 3], 100, 1)).length).toBeGreaterThan(0);
    for (let i = 0; i < 30; i++) t.record(3, 0, 10);
    expect(t.acceptance).toBeLessThan(0.11);
    const sizes: number[] = [];
    for (let i = 0; i < 16; i++) sizes.push((await t.draft([1, 2, 3], 100, 1)).length);
    // Two probes in 16 opportunities, as long as the (low) acceptance would make worth it with free rows.
    expect(sizes.filter((n) => n > 0)).toEqual([1, 1]);
    expect(t.stats.draftLength).toBe(0);
  });

  it('drafts up to its limit when everything is accepted and rows are cheap, never past the tokens left', async () => {
    const cost = new PassCost();
    for (const r of [1, 5, 9]) cost.record(r, 20 + r);
    const t = tuner(6, cost);
    for (let i = 0; i < 10; i++) t.record(4, 4, 24);
    expect(await t.draft([1], 100, 1)).toHaveLength(6);
    expect(t.stats.draftLength).toBe(6);
    expect(await t.draft([1], 2, 1)).toHaveLength(2);
    // The length reported is the costs' choice, not the one the 2 tokens left cut short.
    expect(t.stats).toEqual({ drafted: 40, accepted: 40, walks: 10, tokens: 50, draftLength: 6 });
  });

  it('tries a longer draft never timed at once where the acceptance makes it pay: a fresh node climbs to 16 in a few passes', async () => {
    const timedShort = () => {
      const cost = new PassCost();
      // Short passes timed at 6 ms a row: on that line, with 98 % acceptance, 6 drafts are the best buy.
      for (const [r, ms] of [[1, 10], [2, 16], [3, 22], [4, 28]]) for (let i = 0; i < 6; i++) cost.record(r, ms);
      return cost;
    };
    const cost = timedShort();
    const t = tuner(16, cost);
    for (let i = 0; i < 10; i++) t.record(3, 3, 28);
    const choice = () => chooseDraftLength({ acceptance: t.acceptance, passMs: (r) => cost.passMs(r), draftMsPerToken: 0 }, 16);
    expect(choice()).toBe(6);
    // The long passes turn out cheaper per row than the line said.
    const sizes: number[] = [];
    for (let i = 0; i < 7; i++) {
      const k = (await t.draft([1], 100, 1)).length;
      sizes.push(k);
      t.record(k, k, 12 + 2 * k);
    }
    expect(sizes[0]).toBe(8);
    expect(new Set(sizes.slice(0, 4))).toEqual(new Set([8, 12, 16]));
    expect(sizes.slice(4)).toEqual([16, 16, 16]);
    // At 50 % acceptance a longer draft would not yield a fifth more tokens: the costs' choice is kept.
    const lowCost = timedShort();
    const low = tuner(16, lowCost);
    for (let i = 0; i < 10; i++) low.record(3, 1, 28);
    const lowChoice = chooseDraftLength({ acceptance: low.acceptance, passMs: (r) => lowCost.passMs(r), draftMsPerToken: 0 }, 16);
    for (let i = 0; i < 7; i++) expect((await low.draft([1], 100, 1)).length).toBe(lowChoice);
  });

  it('climbs the staircase: every 8th verification drafts a step higher, so the next size gets timed', async () => {
    const cost = new PassCost();
    // Rows dear enough that a short draft wins: 1 → 10 ms, each further row 6 ms, every size on the staircase timed.
    for (const r of [1, 2, 3, 4, 5, 7, 9, 13, 17]) cost.record(r, 10 + 6 * (r - 1));
    const t = tuner(16, cost);
    for (let i = 0; i < 10; i++) t.record(4, 4, 28);
    const sizes: number[] = [];
    for (let i = 0; i < 8; i++) sizes.push((await t.draft([1], 100, 1)).length);
    const settled = sizes[0];
    expect(sizes.slice(0, 7).every((n) => n === settled)).toBe(true);
    expect(sizes[7]).toBe(stairAbove(settled, 16));
  });

  it("times its drafter: a slow drafter's time per token reaches the shared DraftCost", async () => {
    const draftCost = new DraftCost();
    const slow = async (h: readonly number[], k: number) => {
      await new Promise((r) => setTimeout(r, 5 * k));
      return always(h, k);
    };
    const t = new DraftTuner({ drafter: slow, maxDraft: 4, cost: new PassCost(), draftCost, sourceAcceptance: new SourceAcceptance() });
    const d = await t.draft([1, 2], 100, 1);
    expect(d.length).toBeGreaterThan(0);
    expect(draftCost.msPerToken()).toBeGreaterThanOrEqual(4);
  });

  it("starts from its source's acceptance across requests: after fully accepted requests, a new one drafts long at once", async () => {
    const cost = new PassCost();
    for (const r of [1, 5, 9]) for (let i = 0; i < 3; i++) cost.record(r, 20 + 3 * (r - 1));
    const source = new SourceAcceptance();
    expect(source.estimate()).toBeCloseTo(0.6);
    const first = tuner(16, cost, new DraftCost(), source);
    const firstLength = (await first.draft([1], 100, 1)).length;
    for (let i = 0; i < 12; i++) first.record(8, 8, 44);
    expect(source.estimate()).toBeGreaterThan(0.99);
    const next = tuner(16, cost, new DraftCost(), source);
    expect(next.acceptance).toBeGreaterThan(0.99);
    expect((await next.draft([1], 100, 1)).length).toBeGreaterThan(firstLength);
  });
});
