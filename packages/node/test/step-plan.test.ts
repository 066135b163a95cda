import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FIRST_STEP_ROWS, planStep, stepBudget, type WaitingWork } from '../src/engine/step-plan.js';

const decode = (request: string): WaitingWork => ({ request, rows: 1, rowsLeft: 1 });
const prompt = (request: string, rows: number, rowsLeft = rows): WaitingWork => ({ request, rows, rowsLeft });

describe('planStep', () => {
  it('takes every waiting decode row and a slice of a long prompt in the same step', () => {
    const parts = planStep([decode('a'), prompt('b', 500), decode('c')], { promptRows: 32, batchRows: 64 });
    expect(parts).toEqual([
      { index: 0, rows: 1 },
      { index: 1, rows: 32 },
      { index: 2, rows: 1 },
    ]);
  });

  it("takes only a request's first waiting item, and stops at the batch budget", () => {
    expect(planStep([prompt('a', 10), decode('a'), decode('b')], { promptRows: 32, batchRows: 64 })).toEqual([
      { index: 0, rows: 10 },
      { index: 2, rows: 1 },
    ]);
    expect(planStep([prompt('a', 100), prompt('b', 100), decode('c')], { promptRows: 48, batchRows: 64 })).toEqual([
      { index: 0, rows: 48 },
      { index: 1, rows: 16 },
    ]);
  });

  it('never exceeds its budgets, takes at most one item per request, and never starves the first waiting item', () => {
    const work = fc.array(
      fc.record({ request: fc.constantFrom('a', 'b', 'c', 'd', 'e'), rows: fc.integer({ min: 1, max: 300 }) }).chain((w) =>
        fc.integer({ min: 1, max: w.rows }).map((rowsLeft) => ({ ...w, rowsLeft })),
      ),
      { maxLength: 20 },
    );
    fc.assert(
      fc.property(work, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 128 }), (waiting, promptRows, batchRows) => {
        const parts = planStep(waiting, { promptRows, batchRows });
        const total = parts.reduce((s, p) => s + p.rows, 0);
        expect(total).toBeLessThanOrEqual(batchRows);
        const requests = parts.map((p) => waiting[p.index].request);
        expect(new Set(requests).size).toBe(requests.length);
        for (const p of parts) {
          const w = waiting[p.index];
          expect(p.rows).toBeGreaterThan(0);
          expect(p.rows).toBeLessThanOrEqual(w.rowsLeft);
          if (w.rows > 1) expect(p.rows).toBeLessThanOrEqual(promptRows);
          // It is the request's first waiting item.
          expect(waiting.findIndex((x) => x.request === w.request)).toBe(p.index);
        }
        if (waiting.length > 0) expect(parts[0]?.index).toBe(0);
      }),
    );
  });
});

describe('stepBudget', () => {
  const limits = { promptRows: 32, batchRows: 64 };
  it('starts small, then sizes steps to the target time at the measured ms per row, within the limits', () => {
    expect(stepBudget(limits, null, 750)).toEqual({ promptRows: FIRST_STEP_ROWS, batchRows: FIRST_STEP_ROWS });
    expect(stepBudget(limits, 0.05, 750)).toEqual(limits); // a fast device keeps the configured budget
    expect(stepBudget(limits, 50, 750)).toEqual({ promptRows: 15, batchRows: 15 });
    expect(stepBudget(limits, 240, 750)).toEqual({ promptRows: 3, batchRows: 3 }); // 8B layers on one slow thread
    expect(stepBudget(limits, 5000, 750)).toEqual({ promptRows: 1, batchRows: 1 }); // never below one row
    expect(stepBudget(limits, null, Infinity)).toEqual(limits);
  });

  it('never exceeds the limits nor goes below one row', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 128 }), fc.option(fc.double({ min: 0, max: 1e5, noNaN: true })), fc.integer({ min: 1, max: 5000 }), (p, b, ms, target) => {
        const r = stepBudget({ promptRows: p, batchRows: b }, ms, target);
        return r.promptRows >= 1 && r.promptRows <= p && r.batchRows >= 1 && r.batchRows <= b;
      }),
    );
  });
});
