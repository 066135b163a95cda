import { describe, expect, it } from 'vitest';
import { createRequestSampler } from '../src/engine/request-sampler.js';
import { DEFAULT_SAMPLING, GREEDY, mulberry32 } from '../src/engine/sampler.js';
import { vocabularyFromBytes } from '../src/grammar/token-vocabulary.js';

const utf8 = new TextEncoder();
// A small vocabulary: the printable ASCII bytes, some multi-byte pieces, EOS last.
const PIECES = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)), '{"', '":', '","', '"}', 'true', 'false', ' the', 'ing'].map((s) => utf8.encode(s));
const EOS = PIECES.length;
const VOCAB = vocabularyFromBytes([...PIECES, null], [EOS]);
const SCHEMA = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, ok: { type: 'boolean' }, n: { type: 'integer' } }, required: ['name', 'ok', 'n'] };

/** Deterministic pseudo-logits per position (the "model"). */
function logitsAt(pos: number): Float32Array {
  const r = mulberry32(pos * 7919 + 1);
  return Float32Array.from({ length: PIECES.length + 1 }, () => (r() - 0.5) * 8);
}

function run(setup: Parameters<typeof createRequestSampler>[0], from: number, steps: number, budgetEnd: number): number[] {
  const s = createRequestSampler(setup, () => VOCAB);
  const out: number[] = [];
  for (let pos = from; pos < from + steps; pos++) {
    const t = s.sample(logitsAt(pos), budgetEnd - pos);
    out.push(t);
    if (t === EOS) break;
  }
  return out;
}

describe('the last stage\'s request sampler', () => {
  for (const [label, sampling] of [['seeded temperature 1', { ...DEFAULT_SAMPLING, temperature: 1, topK: 0, topP: 1, minP: 0, seed: 42 }], ['greedy', GREEDY]] as const) {
    it(`a replay after a lost stage continues with exactly the tokens the first route would have sampled (${label}, grammar)`, () => {
      const prompt = [1, 2, 3];
      const budgetEnd = prompt.length + 60;
      const grammar = { type: 'json' as const, schema: SCHEMA };
      const full = run({ sampling, promptTokens: prompt, grammar }, prompt.length, 60, budgetEnd);
      expect(full.at(-1)).toBe(EOS);
      const text = new TextDecoder().decode(Uint8Array.from(full.slice(0, -1).flatMap((t) => [...PIECES[t]])));
      expect(Object.keys(JSON.parse(text))).toEqual(['name', 'ok', 'n']);
      for (const cut of [1, 5, Math.floor(full.length / 2), full.length - 2]) {
        const generated = full.slice(0, cut);
        const drawn = sampling.temperature > 0 ? cut : 0;
        const replay = run({ sampling, promptTokens: [...prompt, ...generated], generated: cut, samplesDrawn: drawn, grammar }, prompt.length + cut, 60, budgetEnd);
        expect([...generated, ...replay], `cut at ${cut}`).toEqual(full);
      }
    });
  }

  it('a replay that did not advance the grammar would write something else (what the `generated` field prevents)', () => {
    const prompt = [1, 2, 3];
    const grammar = { type: 'json' as const, schema: SCHEMA };
    const full = run({ sampling: GREEDY, promptTokens: prompt, grammar }, prompt.length, 60, prompt.length + 60);
    const cut = 4;
    const wrong = run({ sampling: GREEDY, promptTokens: [...prompt, ...full.slice(0, cut)], grammar }, prompt.length + cut, 60, prompt.length + 60);
    expect([...full.slice(0, cut), ...wrong]).not.toEqual(full);
    // A fresh grammar starts the object again: its first token writes "{".
    expect(PIECES[wrong[0]][0]).toBe(0x7b);
  });

  it('logprobs: the greedy token is the top one, and the chosen token\'s logprob is reported', () => {
    const s = createRequestSampler({ sampling: GREEDY, promptTokens: [1], logprobs: 3, grammar: { type: 'json', schema: null } }, () => VOCAB);
    const t = s.sample(logitsAt(0), 100);
    const lp = s.lastLogprob!;
    expect(lp.token).toBe(t);
    expect(lp.top[0].token).toBe(t);
    expect(lp.logprob).toBe(lp.top[0].logprob);
    expect(PIECES[t][0]).toBe(0x7b); // json_object: the first byte is "{"
    // Masked tokens carry no probability: the allowed ones sum to 1.
    expect(lp.top.length).toBeLessThanOrEqual(3);
  });
});
