import { describe, expect, it } from 'vitest';
import { TokenRate } from '../src/api/token-rate.js';

describe('TokenRate', () => {
  it('counts the tokens of the window over the span they cover, at least a second', () => {
    const r = new TokenRate(5000);
    expect(r.perSecond(0)).toBe(0);
    for (let t = 0; t < 2000; t += 10) r.add(t); // 200 tokens in 2 s
    expect(r.perSecond(2000)).toBeCloseTo(100, 0);
    r.add(2000, 3); // a verification step's three tokens
    expect(r.perSecond(2000)).toBeCloseTo(101.5, 0);
    // 6 s later every one of them has aged out.
    expect(r.perSecond(8001)).toBe(0);
    // A burst that just started is read over a second, not over its first milliseconds.
    r.add(9000);
    r.add(9001);
    expect(r.perSecond(9001)).toBe(2);
  });

  it('costs a token the same however many the window holds (a small model makes thousands a second)', () => {
    const r = new TokenRate(5000);
    const t0 = performance.now();
    // 50,000 tokens within one window: filtering the window on every token took 2 s for the first 20,000 here.
    for (let i = 0; i < 50_000; i++) r.add(i * 0.08);
    const ms = performance.now() - t0;
    expect(r.perSecond(4000)).toBeCloseTo(12_500, -2);
    expect(ms).toBeLessThan(500);
  });
});
