/**
 * `edge-node bench --nodes 2 --splits all` on stories260K: two real node processes on loopback, the coordinator
 * restarted per split, a few tokens per run. Checks the JSON has a row per split with every figure, that the parts
 * of a decode step (stage compute + hop transfer + queueing + the coordinator's time between tokens) add up to the measured time per token within 10%,
 * that the plot draws the parts, and that each split's decode is compared with speculation off and on. The nodes
 * run with EDGE_NODE_API_KEY set, as a user's shell may have it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../packages/cli/src/commands/bench-report.js';
import { CLI_BIN, REPO_ROOT, ensureBuilt } from './support/cluster-harness.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const run = promisify(execFile);
const PROMPT = 32;
const GEN = 16;

describe('edge-node bench --nodes 2 --splits all (stories260K)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-bench-test-'));
  const jsonPath = join(dir, 'bench.json');
  const svgPath = join(dir, 'bench.svg');
  let report: BenchReport;
  let stdout = '';

  beforeAll(async () => {
    ensureBuilt();
    const res = await run(
      process.execPath,
      [CLI_BIN, 'bench', '--model', STORIES_GGUF, '--nodes', '2', '--splits', 'all', '--threads', '1',
        '--prompt-tokens', String(PROMPT), '--gen-tokens', String(GEN), '--runs', '2', '--json', jsonPath, '--plot', svgPath,
        '--log-dir', join(REPO_ROOT, 'test-artifacts', 'bench-command')],
      // A key in the environment guards the nodes bench starts (they inherit it): bench must send it to them.
      { cwd: REPO_ROOT, timeout: 170_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, EDGE_NODE_API_KEY: 'bench-test-key' } },
    ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`edge-node bench failed: ${err.message}\n${err.stdout ?? ''}\n${(err.stderr ?? '').slice(-4000)}`);
    });
    stdout = res.stdout;
    report = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchReport;
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has one row per way to split 5 layers over 1-2 nodes, with every figure', () => {
    const pipeline = report.rows.filter((r) => r.kind === 'pipeline');
    expect(pipeline.map((r) => r.split.join(',')).sort()).toEqual(['1,4', '2,3', '3,2', '4,1', '5']);
    for (const r of pipeline) {
      expect(r.concurrency).toBe(1);
      expect(r.promptTokens).toBe(PROMPT);
      expect(r.genTokens).toBe(GEN);
      // Two runs asked for, but a run of this model lasts tens of ms: they are repeated until they have lasted 2 s.
      expect(r.runs).toBeGreaterThan(2);
      for (const x of [r.ttftMs, r.prefillTokPerS, r.decodeTokPerS, r.throughputTokPerS, r.tokenLatencyMs, r.tokenLatencyP50Ms, r.tokenLatencyP95Ms]) {
        expect(Number.isFinite(x) && x > 0).toBe(true);
      }
      expect(r.tokenLatencyP95Ms).toBeGreaterThanOrEqual(r.tokenLatencyP50Ms);
      // Stages as the cluster ran them: contiguous layer ranges of the asked sizes, each with its compute time.
      expect(r.stages.map((s) => s.endLayer - s.startLayer)).toEqual(r.split);
      expect(r.stages[0].startLayer).toBe(0);
      expect(r.stages.at(-1)!.endLayer).toBe(5);
      for (const s of r.stages) expect(s.computeMs).toBeGreaterThan(0);
      // Coordinator = stage 0: a k-stage ring has k network hops; hidden states (64 floats) cross all but the last.
      expect(r.hops).toHaveLength(r.split.length === 1 ? 0 : r.split.length);
      for (const [i, h] of r.hops.entries()) {
        expect(h.transferMs).toBeGreaterThanOrEqual(0);
        if (i < r.hops.length - 1) expect(h.decodeBytes).toBeGreaterThan(64 * 4);
        expect(h.prefillBytes).toBeGreaterThanOrEqual(h.decodeBytes);
      }
      expect(r.predicted).not.toBeNull();
      expect(r.predicted!.stageComputeMs).toHaveLength(r.split.length);
      expect(r.errorPct).not.toBeNull();
      expect(r.errorPct!.tokenLatency).toBeCloseTo(((r.tokenLatencyMs - r.predicted!.tokenLatencyMs) / r.predicted!.tokenLatencyMs) * 100, 6);
    }
    // The one-node-without-network baseline is there too.
    const local = report.rows.find((r) => r.kind === 'local');
    expect(local?.split).toEqual([5]);
    expect(local!.tokenLatencyMs).toBeGreaterThan(0);
    // Its runs last milliseconds too.
    expect(local!.runs).toBeGreaterThan(10);
  });

  it('says what each prediction was made from; one device is predicted from the whole-model split, without network costs', () => {
    for (const r of report.rows.filter((x) => x.kind === 'pipeline')) {
      const from = r.predicted!.from;
      // One device a stage, each with the fixed costs its node measured.
      expect(from.devices).toHaveLength(r.split.length);
      for (const d of from.devices) expect(d.stepOverheadMs).toBeGreaterThan(0);
    }
    const whole = report.rows.find((r) => r.kind === 'pipeline' && r.split.length === 1)!.predicted!.from.devices[0];
    const local = report.rows.find((r) => r.kind === 'local')!.predicted!.from.devices;
    // The device as the nodes saw it after the whole model ran on it (its calibrated pass too: that node also computed
    // its steps back to back), less the frames and a token's wake-up and turn, which this process does not pay.
    expect(whole.tokenOverheadMs).toBeGreaterThan(0);
    const { stepOverheadMs: _s, tokenOverheadMs: _t, wakeMs: _w, ...rest } = whole;
    expect(local).toEqual([rest]);
    expect(rest.passOverheadMs).toBeDefined();
  });

  it('the parts of a decode step add up to the measured time per token within 10%', () => {
    for (const r of report.rows) {
      const stages = r.stages.reduce((a, s) => a + s.computeMs, 0);
      const hops = r.hops.reduce((a, h) => a + h.transferMs, 0);
      expect(r.parts.computeMs).toBeCloseTo(stages, 6);
      expect(r.parts.transferMs).toBeCloseTo(hops, 6);
      // The coordinator's time between tokens is measured on its own (token arrival → next frame; in this process the
      // generation loop's time before each step), not as a remainder.
      if (r.kind !== 'llama.cpp') expect(r.parts.coordinatorMs, r.label).toBeGreaterThan(0);
      const parts = stages + hops + r.parts.queueMs + r.parts.coordinatorMs;
      // Within 10%, or 0.15 ms for sub-millisecond steps.
      const off = Math.abs(parts - r.tokenLatencyMs);
      expect(off < 0.15 || off / r.tokenLatencyMs < 0.1, `${r.label}: parts ${parts.toFixed(3)} ms vs ${r.tokenLatencyMs.toFixed(3)} ms per token`).toBe(true);
    }
    // Two nodes pay the network: their transfer share is real time, not zero.
    for (const r of report.rows.filter((x) => x.kind === 'pipeline' && x.split.length === 2)) expect(r.parts.transferMs).toBeGreaterThan(0);
  });

  it('compares the decode of every split with speculation off and on, on a quoting prompt, in a second table', () => {
    expect(report.speculation.map((r) => r.label).sort()).toEqual(['1,4', '2,3', '3,2', '4,1', '5']);
    for (const r of report.speculation) {
      expect(r.runs).toBe(2);
      expect(r.concurrency).toBe(1);
      expect(r.offDecodeTokPerS).toBeGreaterThan(0);
      expect(r.offThroughputTokPerS).toBeGreaterThan(0);
      expect(r.onThroughputTokPerS).toBeGreaterThan(0);
      expect(r.onDecodeTokPerS).toBeGreaterThan(0);
      expect(r.speedup).toBeCloseTo(r.onDecodeTokPerS / r.offDecodeTokPerS, 6);
      expect(r.accepted).toBeGreaterThanOrEqual(0);
      expect(r.accepted).toBeLessThanOrEqual(r.drafted);
      // A walk returns its token and the drafts accepted: at least one, at most all a verification could hold.
      expect(r.tokensPerWalk).toBeGreaterThanOrEqual(1);
      expect(r.tokensPerWalk).toBeLessThanOrEqual(GEN - 1);
    }
    // The passage repeats: prompt lookup finds drafts in it.
    expect(report.speculation.reduce((n, r) => n + r.drafted, 0)).toBeGreaterThan(0);
    expect(stdout).toMatch(/speculative decoding — a quoting prompt/);
    expect(stdout).toMatch(/decode tok\/s off +on +speed-up +total tok\/s off +on +tokens\/walk +accepted\/drafted/);
  });

  it('prints a table and writes an SVG with a bar segment per stage and hop', () => {
    for (const split of ['1,4', '2,3', '3,2', '4,1']) expect(stdout).toContain(split);
    expect(stdout).toMatch(/parts vs whole: at most [\d.]+% apart/);
    const svg = readFileSync(svgPath, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    // 2-stage rows: 2 compute + up to 2 hop segments; every segment carries a tooltip naming what it is.
    expect((svg.match(/<title>bench-2 layers/g) ?? []).length).toBe(4);
    expect((svg.match(/<title>bench-1→bench-2 transfer/g) ?? []).length).toBe(4);
    expect((svg.match(/<title>predicted /g) ?? []).length).toBeGreaterThanOrEqual(5);
  });
});
