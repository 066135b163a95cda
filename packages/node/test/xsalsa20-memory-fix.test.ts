/**
 * The pnet cipher (xsalsa20 1.2.0) with several connections taking turns on large chunks: without the fix its shared
 * WebAssembly memory grows on every turn until "Maximum memory size exceeded" (after ~60 MB) kills the node.
 */
import xsalsa20 from 'xsalsa20';
import { describe, expect, it } from 'vitest';
import '../src/network/xsalsa20-memory-fix.js';

describe('xsalsa20 memory fix', () => {
  it('keeps two interleaved ciphers correct and bounded over 200 MB of 1 MB chunks', () => {
    const nonce = new Uint8Array(24).fill(7);
    const key = new Uint8Array(32).fill(9);
    const chunks = Array.from({ length: 100 }, (_, i) => new Uint8Array((1 << 20) + 17 * i).fill(i));
    // Reference: one cipher alone (never sees a detached view), then the same stream through a cipher that shares
    // the memory with another one taking turns.
    const alone = xsalsa20(nonce, key);
    const expected = chunks.map((c) => alone.update(c));
    alone.finalize();
    const a = xsalsa20(nonce, key);
    const b = xsalsa20(new Uint8Array(24), key);
    chunks.forEach((c, i) => {
      expect(Buffer.from(a.update(c)).equals(Buffer.from(expected[i]))).toBe(true);
      b.update(new Uint8Array((2 << 20) + i));
    });
  });
});
