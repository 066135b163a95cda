/**
 * tfjs picks another registered backend when the one asked for fails to start; edge-node must refuse instead. Its
 * own file: tfjs is one engine per process, and this one is broken on purpose.
 */
import * as tf from '@tensorflow/tfjs-core';
// What tfjs would fall back to (installed with tfjs-backend-wasm, which depends on it): registered here on purpose.
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { startTfjsBackend, TfjsBackendError } from '../src/engine/tfjs-backend.js';

describe('the tfjs backend when tfjs-backend-wasm cannot start', () => {
  it('throws a TfjsBackendError instead of computing on tfjs cpu, and again on the next try', async () => {
    expect(tf.findBackendFactory('cpu')).not.toBeNull();
    // Its .wasm binaries cannot be found: initialisation fails.
    setWasmPaths('/nonexistent-edge-node-test/');
    await expect(startTfjsBackend()).rejects.toThrow(TfjsBackendError);
    await expect(startTfjsBackend()).rejects.toThrow(/@tensorflow\/tfjs-backend-wasm did not start: tfjs would run on its "cpu" backend instead of "wasm"/);
  });
});
