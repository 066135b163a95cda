import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeWasmFeatures, detectWasmFeatures } from '../src/wasm-features.js';

const here = new URL('../src/wasm-features.ts', import.meta.url).pathname;
// The probes run in a child Node, with and without V8's relaxed-SIMD flag: the answer must follow the flag.
function featuresIn(nodeFlags: string[]): { simd128: boolean; relaxedSimd: boolean } {
  const script = `import(${JSON.stringify(here)}).then((m) => console.log(JSON.stringify(m.detectWasmFeatures())))`;
  return JSON.parse(execFileSync(process.execPath, [...nodeFlags, '--import', 'tsx', '-e', script], { encoding: 'utf8' })) as { simd128: boolean; relaxedSimd: boolean };
}

describe('WebAssembly feature detection', () => {
  it('finds SIMD128 here, and relaxed SIMD exactly when the runtime has it', () => {
    expect(detectWasmFeatures().simd128).toBe(true);
    const major = Number(process.versions.node.split('.')[0]);
    const plain = featuresIn([]);
    expect(plain.simd128).toBe(true);
    if (major < 22) {
      expect(plain.relaxedSimd).toBe(false);
      expect(featuresIn(['--experimental-wasm-relaxed-simd']).relaxedSimd).toBe(true);
    } else {
      expect(plain.relaxedSimd).toBe(true);
    }
    expect(describeWasmFeatures({ simd128: false, relaxedSimd: false })).toMatch(/no WebAssembly SIMD128/);
  });
});
