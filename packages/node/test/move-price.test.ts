/**
 * The price of moving a running request (move-price.ts), for the 300M shape (16 layers, 8 KV heads of 64, F16 KV):
 * live, the switch and the last positions' KV over the link; replayed, the prefill. A gain of a few ms/token pays
 * a live move back within 64 tokens, not a replay of seconds.
 */
import { describe, expect, it } from 'vitest';
import { modelProfile } from '@edge-node/partitioner';
import { movePauseMs, movesRunning } from '../src/pipeline/move-price.js';

const profile = modelProfile({ numLayers: 16, hiddenSize: 1024, intermediateSize: 4096, numHeads: 16, numKvHeads: 8, headDim: 64, vocabSize: 512, tiedEmbeddings: true, attentionBias: false, bytesPerWeight: 34 / 32, bytesPerKvValue: 2 });

describe('move price', () => {
  it('live: 16 positions of every layer over the slowest link plus the switch; replay: the prefill', () => {
    const base = { profile, linkMBps: 100, switchMs: 40, replayMs: 2000 };
    // 16 positions × 16 layers × 2 (K and V) × 512 values × 2 bytes = 524,288 bytes: 5.2 ms at 100 MB/s.
    expect(movePauseMs({ ...base, live: true })).toBeCloseTo(40 + 524_288 / 100_000, 6);
    expect(movePauseMs({ ...base, live: false })).toBe(2000);
    // 1 ms/token faster: 64 ms over the payback window; a live move pauses 45 ms, a replay 2 s.
    expect(movesRunning(1, { ...base, live: true })).toBe(true);
    expect(movesRunning(1, { ...base, live: false })).toBe(false);
    // A slow link makes the switch's copy count: 1 MB/s → 524 ms more.
    expect(movesRunning(1, { ...base, live: true, linkMBps: 1 })).toBe(false);
  });
});
