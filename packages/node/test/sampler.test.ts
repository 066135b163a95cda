import { describe, expect, it } from 'vitest';
import { DEFAULT_SAMPLING, GREEDY, Sampler, SamplingParamsError } from '../src/engine/sampler.js';
import { StopStringFilter } from '../src/engine/stop-strings.js';

const logits = (values: number[]) => Float32Array.from(values);

function histogram(params: typeof DEFAULT_SAMPLING, l: Float32Array, draws: number): number[] {
  const s = new Sampler(params);
  const counts = new Array(l.length).fill(0);
  for (let i = 0; i < draws; i++) counts[s.sample(l)]++;
  return counts;
}

describe('Sampler', () => {
  it('greedy picks the argmax', () => {
    expect(new Sampler(GREEDY).sample(logits([0.1, 3, 2.9, -1]))).toBe(1);
  });

  it('repetition penalty turns a repeated argmax into the runner-up (llama.cpp rule)', () => {
    const s = new Sampler({ ...GREEDY, repetitionPenalty: 1.5 }, [1]);
    // token 1: 3 / 1.5 = 2 < 2.9
    expect(s.sample(logits([0.1, 3, 2.9, -1]))).toBe(2);
  });

  it('frequency and presence penalties subtract per count and once', () => {
    const s = new Sampler({ ...GREEDY, frequencyPenalty: 0.5, presencePenalty: 0 }, [0, 0, 0]);
    expect(s.sample(logits([3, 2, 0]))).toBe(1); // 3 - 1.5 = 1.5 < 2
    const p = new Sampler({ ...GREEDY, presencePenalty: 0.5 }, [0, 0, 0]);
    expect(p.sample(logits([3, 2.6, 0]))).toBe(1); // 3 - 0.5 = 2.5 < 2.6
  });

  it('top-k = 1 is greedy even at high temperature', () => {
    const counts = histogram({ ...DEFAULT_SAMPLING, temperature: 5, topK: 1, topP: 1, minP: 0, seed: 1 }, logits([1, 2, 0.5]), 200);
    expect(counts).toEqual([0, 200, 0]);
  });

  it('top-p keeps the smallest set reaching p', () => {
    // probs ≈ [0.665, 0.245, 0.09]: p = 0.6 keeps only token 0.
    const counts = histogram({ ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 0.6, minP: 0, seed: 3 }, logits([2, 1, 0]), 300);
    expect(counts[1] + counts[2]).toBe(0);
    const wider = histogram({ ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 0.9, minP: 0, seed: 3 }, logits([2, 1, 0]), 300);
    expect(wider[1]).toBeGreaterThan(0);
    expect(wider[2]).toBe(0);
  });

  it('min-p drops tokens below p × the best probability', () => {
    const counts = histogram({ ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 1, minP: 0.3, seed: 5 }, logits([2, 1, 0]), 300);
    expect(counts[2]).toBe(0);
    expect(counts[1]).toBeGreaterThan(0);
  });

  it('temperature 1 draws in proportion to softmax', () => {
    const counts = histogram({ ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 11 }, logits([Math.log(3), 0]), 4000);
    expect(counts[0] / 4000).toBeGreaterThan(0.72);
    expect(counts[0] / 4000).toBeLessThan(0.78);
  });

  it('the same seed repeats the same draws', () => {
    const p = { ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 42 };
    const l = logits([0, 0.1, 0.2, 0.3, 0.4]);
    const a = new Sampler(p);
    const b = new Sampler(p);
    const da = Array.from({ length: 50 }, () => a.sample(l));
    expect(Array.from({ length: 50 }, () => b.sample(l))).toEqual(da);
    expect(new Set(da).size).toBeGreaterThan(1);
  });

  it('rejects out-of-range parameters with a clear error', () => {
    expect(() => new Sampler({ ...DEFAULT_SAMPLING, temperature: -1 })).toThrow(SamplingParamsError);
    expect(() => new Sampler({ ...DEFAULT_SAMPLING, topP: 0 })).toThrow(/top_p/);
    expect(() => new Sampler({ ...DEFAULT_SAMPLING, seed: 1.5 })).toThrow(/seed/);
  });
});

describe('StopStringFilter', () => {
  it('cuts at the first stop string, even across deltas', () => {
    const f = new StopStringFilter(['\n\n', 'END']);
    const out: string[] = [];
    for (const d of ['Hello', ' wor', 'ld E', 'N', 'D and more']) {
      const r = f.push(d);
      out.push(r.emitted);
      if (r.stopped) break;
    }
    expect(out.join('')).toBe('Hello world ');
    expect(f.stopped).toBe(true);
  });

  it('releases held-back text that turned out not to be a stop string', () => {
    const f = new StopStringFilter(['END']);
    expect(f.push('The E').emitted).toBe('The ');
    expect(f.push('xit').emitted).toBe('Exit');
    expect(f.push('EN').emitted).toBe('');
    expect(f.flush()).toBe('EN');
  });

  it('passes everything through with no stop strings', () => {
    const f = new StopStringFilter([]);
    expect(f.push('abc').emitted).toBe('abc');
  });
});
