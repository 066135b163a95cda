import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../..');
const bin = join(root, 'packages/cli/bin/edge-node.js');
const config = '/work/shared/models/smollm2-135m-instruct-tokenizer/config.json';
let dir = '';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'plan', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface PlanJson {
  strategy: string;
  objective: string;
  stages: { device: string; startLayer: number; endLayer: number; memoryBytes: number; memoryAvailableBytes: number; stageMs: number }[];
  excluded: { device: string; reason: string }[];
  predicted: { ttftMs: number; tokenLatencyMs: number; throughputTokPerS: number };
}

beforeAll(() => {
  // The test runs the built CLI: bring dist/ up to date (incremental, fast when nothing changed).
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'packages/partitioner', 'packages/cli'], { cwd: root, stdio: 'pipe' });
  } catch {
    // Another package's type errors must not hide this command's behaviour; dist/ is checked below.
  }
  expect(existsSync(join(root, 'packages/cli/dist/commands/plan.js'))).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'edge-plan-'));
  writeFileSync(
    join(dir, 'devices.json'),
    JSON.stringify({
      devices: [
        { id: 'desktop', gflops: 200, memBandwidthGBps: 50, memoryBytes: 16e9 },
        { id: 'laptop', gflops: 100, memBandwidthGBps: 60, memoryBytes: 8e9 },
        { id: 'phone', gflops: 50, memBandwidthGBps: 30, memoryBytes: 0.3e9 },
      ],
      links: [{ from: 'desktop', to: 'laptop', latencyMs: 1, bandwidthMBps: 100 }],
      defaultLink: { latencyMs: 5, bandwidthMBps: 30 },
    }),
  );
  writeFileSync(
    join(dir, 'small.json'),
    JSON.stringify({
      devices: [
        { id: 'a', gflops: 50, memBandwidthGBps: 20, memoryBytes: 100e6 },
        { id: 'b', gflops: 50, memBandwidthGBps: 20, memoryBytes: 100e6 },
      ],
      defaultLink: { latencyMs: 2, bandwidthMBps: 50 },
    }),
  );
  writeFileSync(join(dir, 'broken.json'), JSON.stringify({ devices: [{ id: 'a', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1e9 }, { id: 'b', gflops: 1, memBandwidthGBps: 1, memoryBytes: 1e9 }] }));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('edge-node plan', () => {
  it('--json: contiguous stages covering all 30 layers, within memory, with predictions and reasons', () => {
    for (const objective of ['latency', 'throughput']) {
      const r = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--objective', objective, '--concurrency', '3', '--json');
      expect(r.code, r.stderr).toBe(0);
      const p = JSON.parse(r.stdout) as PlanJson;
      expect(p.strategy).toBe('optimal');
      expect(p.objective).toBe(objective);
      let at = 0;
      for (const s of p.stages) {
        expect(s.startLayer).toBe(at);
        expect(s.endLayer).toBeGreaterThan(s.startLayer);
        expect(s.memoryBytes).toBeLessThanOrEqual(s.memoryAvailableBytes);
        expect(s.stageMs).toBeGreaterThan(0);
        at = s.endLayer;
      }
      expect(at).toBe(30);
      expect(p.stages.length + p.excluded.length).toBe(3);
      for (const e of p.excluded) expect(e.reason.length).toBeGreaterThan(10);
      expect(p.predicted.ttftMs).toBeGreaterThan(0);
      expect(p.predicted.tokenLatencyMs).toBeGreaterThan(0);
      expect(p.predicted.throughputTokPerS).toBeGreaterThan(0);
    }
  });

  it('--backend tfjs plans for F32 weights (tfjs dequantises an F16 file to twice its bytes) and refuses a quantised file', () => {
    const f16 = join(dir, 'tiny-f16.gguf');
    execFileSync(process.execPath, [join(root, 'packages/testkit/scripts/make-model.mjs'), '--preset', 'tiny-llama-3.2', '--dtype', 'F16', '--out', f16], { stdio: 'ignore' });
    const stageBytes = (...extra: string[]) => {
      const r = cli('--model', f16, '--devices', join(dir, 'devices.json'), '--split', '3,0,0', '--json', ...extra);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as PlanJson).stages[0].memoryBytes;
    };
    const kernels = stageBytes();
    const tfjs = stageBytes('--backend', 'tfjs');
    // Weights 2 → 4 bytes each; the KV cache and activations are the same, so the stage grows by less than 2×.
    expect(tfjs).toBeGreaterThan(kernels * 1.3);
    expect(tfjs).toBeLessThan(kernels * 2);

    const q8 = cli('--model', '/work/shared/models/stories260k/stories260K-Q8_0.gguf', '--devices', join(dir, 'devices.json'), '--backend', 'tfjs');
    expect(q8.code).toBe(1);
    expect(q8.stderr).toMatch(/is Q8_0: the tfjs backend computes only F32, F16 and BF16 weights\. Use the default kernels backend/);
    const bad = cli('--model', f16, '--devices', join(dir, 'devices.json'), '--backend', 'gpu');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--backend: .*kernels, tfjs/);
  });

  it('--kv-cache sizes the KV cache a stage reserves: f32 4, f16 2 (the default), q8_0 34/32 bytes per value', () => {
    const stage = (...extra: string[]) => {
      const r = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--split', '12,18,0', '--context-tokens', '4096', '--json', ...extra);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as PlanJson).stages[0].memoryBytes;
    };
    // SmolLM2: 3 KV heads of 64; 12 layers × 4096 positions × K and V.
    const values = 12 * 4096 * 2 * 3 * 64;
    const f32 = stage('--kv-cache', 'f32');
    expect(f32 - stage()).toBe(values * 2);
    expect(f32 - stage('--kv-cache', 'q8_0')).toBe(values * (4 - 34 / 32));
    // The plan says which cache it counted, and its bytes per token of context (30 layers × K and V × 192 values).
    const json = JSON.parse(cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--kv-cache', 'q8_0', '--json').stdout) as { kvCache: string; kvBytesPerToken: number };
    expect(json).toMatchObject({ kvCache: 'q8_0', kvBytesPerToken: 30 * 2 * 192 * (34 / 32) });
    const text = cli('--model-config', config, '--devices', join(dir, 'devices.json'));
    expect(text.stdout).toMatch(/; KV cache f16, 23\.0 kB per token\n/);
    const bad = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--kv-cache', 'q4');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--kv-cache: .*f16, f32, q8_0/);
    // Heads of 8 (stories260K) cannot hold Q8_0 blocks of 32: a node would refuse the model, so the plan does.
    const heads8 = cli('--model', '/work/shared/models/stories260k/stories260K.gguf', '--devices', join(dir, 'devices.json'), '--kv-cache', 'q8_0');
    expect(heads8.code).toBe(1);
    expect(heads8.stderr).toMatch(/--kv-cache q8_0 needs a head size that is a multiple of 32.*heads have 8/);
  });

  it('optimal predicts no worse per-request time than memory-weighted and equal', () => {
    const run = (...extra: string[]) => JSON.parse(cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--json', ...extra).stdout) as PlanJson;
    const total = (p: PlanJson) => p.predicted.ttftMs + 127 * p.predicted.tokenLatencyMs;
    const opt = run();
    const mw = run('--strategy', 'memory-weighted');
    const eq = run('--strategy', 'equal');
    // exo's split by memory share: 16 / 24.3 of 30 layers → 0-18, 8 / 24.3 → 19-28, the phone the last one.
    expect(mw.stages.map((s) => [s.device, s.endLayer - s.startLayer])).toEqual([['desktop', 19], ['laptop', 10], ['phone', 1]]);
    expect(eq.stages.map((s) => s.endLayer - s.startLayer)).toEqual([10, 10, 10]);
    expect(total(opt)).toBeLessThanOrEqual(total(mw) * 1.001);
    expect(total(opt)).toBeLessThanOrEqual(total(eq) * 1.001);
  });

  it('--split evaluates the given split; the table shows devices and predictions', () => {
    const r = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--split', '12,18,0', '--json');
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as PlanJson;
    expect(p.strategy).toBe('given');
    expect(p.stages.map((s) => [s.device, s.startLayer, s.endLayer])).toEqual([['desktop', 0, 12], ['laptop', 12, 30]]);
    expect(p.excluded.map((e) => e.device)).toEqual(['phone']);
    const t = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--split', '12,18,0');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/device\s+layers\s+memory used \/ available\s+stage ms/);
    expect(t.stdout).toMatch(/desktop\s+\[0, 12\) \(12\)/);
    expect(t.stdout).toMatch(/Predicted .*TTFT [\d.]+ ms, per token [\d.]+ ms/);
  });

  it('fails clearly: model does not fit (exit 1, missing memory), bad devices.json (exit 1), bad flags (exit 2)', () => {
    const nofit = cli('--model-config', config, '--devices', join(dir, 'small.json'));
    expect(nofit.code).toBe(1);
    expect(nofit.stderr).toMatch(/does not fit.*missing about [\d.]+ (MB|GB)/);
    const broken = cli('--model-config', config, '--devices', join(dir, 'broken.json'));
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/defaultLink/);
    expect(cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--objective', 'speed').code).toBe(2);
    expect(cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--split', '1,2,3').code).toBe(2);
    const strategy = cli('--model-config', config, '--devices', join(dir, 'devices.json'), '--strategy', 'fastest');
    expect(strategy.code).toBe(2);
    expect(strategy.stderr).toMatch(/--strategy must be optimal, memory-weighted or equal, got "fastest"/);
    expect(cli('--devices', join(dir, 'devices.json')).code).toBe(2);
  });
});
