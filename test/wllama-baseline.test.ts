/**
 * The wllama baseline (scripts/wllama-baseline.ts) on the stories260K GGUF in Debian's Chromium: the page is
 * cross-origin isolated, two threads really run wllama's pthread build (one thread its single-thread mode), and
 * llama.cpp counts exactly the prompt tokens we asked for (the page refuses a run where it does not — our tokenizer
 * builds the prompt text, llama.cpp's tokenizes it).
 */
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { measureWllama } from '../scripts/wllama-baseline.js';
import { STORIES_GGUF } from './support/single-device-run.js';

describe('llama.cpp WebAssembly baseline (wllama in Chromium)', () => {
  it('runs the pthread build with 2 threads on an isolated page, and the single-thread mode with 1', async () => {
    const opts = { modelPath: STORIES_GGUF, promptTokens: 24, genTokens: 4, runs: 1 };
    const two = await measureWllama({ ...opts, threads: 2 });
    expect(two.crossOriginIsolated).toBe(true);
    expect(two.multiThread).toBe(true);
    expect(two.threadsUsed).toBe(2);
    expect(two.prefillTokPerS).toBeGreaterThan(0);
    expect(two.decodeTokPerS).toBeGreaterThan(0);
    // The renderer holds at least the model (copied into the wasm heap).
    expect(two.peakRssBytes).toBeGreaterThan(statSync(STORIES_GGUF).size);

    const one = await measureWllama({ ...opts, threads: 1 });
    expect(one.multiThread).toBe(false);
    expect(one.threadsUsed).toBe(1);
  });
});
