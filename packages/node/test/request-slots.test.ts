import { describe, expect, it } from 'vitest';
import { defaultSlots, kvBytesPerRequest, MAX_DEFAULT_SLOTS } from '../src/engine/request-slots.js';

const llama1b = { numLayers: 16, kvDim: 512, contextLength: 4096, kvCache: 'f16' as const };

describe('defaultSlots', () => {
  it('counts the full-context KV caches that fit beside the weights', () => {
    const kv = kvBytesPerRequest(llama1b);
    expect(kv).toBe(16 * 4096 * 512 * 2 * 2); // 128 MiB
    const s = defaultSlots({ ...llama1b, memoryBytes: 1.3e9 + 5 * kv, weightBytes: 1.3e9 });
    expect(s.slots).toBe(4); // 90% of 5 caches' room
    expect(s.reason).toMatch(/^4: 4 KV caches of 128 MiB/);
  });

  it('an F32 cache takes twice the room; at least one slot, at most the cap', () => {
    const f16 = defaultSlots({ ...llama1b, memoryBytes: 2.5e9, weightBytes: 1e9 });
    const f32 = defaultSlots({ ...llama1b, kvCache: "f32", memoryBytes: 2.5e9, weightBytes: 1e9 });
    expect(f32.kvBytesPerRequest).toBe(2 * f16.kvBytesPerRequest);
    expect(f32.slots).toBeLessThan(f16.slots);
    expect(defaultSlots({ ...llama1b, memoryBytes: 1e9, weightBytes: 2e9 }).slots).toBe(1);
    expect(defaultSlots({ ...llama1b, memoryBytes: 1e12, weightBytes: 1e9 }).slots).toBe(MAX_DEFAULT_SLOTS);
  });

  it('a Q8_0 cache counts 34 bytes per 32 values: more slots than F16 in the same memory', () => {
    const f16 = defaultSlots({ ...llama1b, memoryBytes: 1e9 + 10 * 2 ** 27, weightBytes: 1e9 });
    const q8 = defaultSlots({ ...llama1b, kvCache: 'q8_0', memoryBytes: 1e9 + 10 * 2 ** 27, weightBytes: 1e9 });
    expect(q8.kvBytesPerRequest).toBe(16 * 4096 * 2 * (512 / 32) * 34); // 68 MiB against F16's 128
    expect(f16.slots).toBe(9);
    expect(q8.slots).toBe(16); // 17 fit: capped
    expect(q8.reason).toMatch(/KV caches of 68 MiB \(context 4096, q8_0\)/);
  });
});
