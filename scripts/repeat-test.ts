/**
 * Runs one test file N times in a row, optionally while this script keeps the machine loaded with busy processes
 * of its own (the "other job"), and reports each run's result, wall time and the load average: how reliable and how
 * long a test is on a busy machine.
 *
 *   npx tsx scripts/repeat-test.ts test/adaptive-load.test.ts [--runs 20] [--busy 1] [--json OUT]
 *
 * --busy N: N processes spinning for the whole time (0: only what else runs on the machine). Each run's output goes
 * to test-artifacts/repeat/<file>-<i>.log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../test/support/cluster-harness.js';

const { values: v, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string', default: '20' }, busy: { type: 'string', default: '1' }, json: { type: 'string' } },
});
const file = positionals[0];
if (!file) throw new Error('usage: repeat-test.ts TEST_FILE [--runs N] [--busy N] [--json OUT]');
const runs = Number(v.runs);
const dir = join(REPO_ROOT, 'test-artifacts', 'repeat');
mkdirSync(dir, { recursive: true });

interface Run {
  run: number;
  passed: boolean;
  seconds: number;
  /** Load average (1 min) at the start and the end of the run. */
  load: [number, number];
  failure: string;
}

function runOnce(i: number): Promise<Run> {
  const t0 = performance.now();
  const loadBefore = loadavg()[0];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/vitest/vitest.mjs'), 'run', file], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) => {
      writeFileSync(join(dir, `${basename(file)}-${i}.log`), out);
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const failure = code === 0 ? '' : (/(?:AssertionError|Error): .*$/m.exec(plain)?.[0] ?? `exit code ${code}`).slice(0, 200);
      resolve({ run: i, passed: code === 0, seconds: Math.round((performance.now() - t0) / 100) / 10, load: [loadBefore, loadavg()[0]], failure });
    });
  });
}

const busy: ChildProcess[] = [];
for (let i = 0; i < Number(v.busy); i++) busy.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
// Stopped early, the busy processes go too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const p of busy) p.kill('SIGKILL');
    process.exit(130);
  });
}
const results: Run[] = [];
try {
  for (let i = 1; i <= runs; i++) {
    const r = await runOnce(i);
    results.push(r);
    console.log(`run ${i}/${runs}: ${r.passed ? 'passed' : 'FAILED'} in ${r.seconds} s, load ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}${r.failure ? `: ${r.failure}` : ''}`);
  }
} finally {
  for (const p of busy) p.kill('SIGKILL');
}
const secs = results.map((r) => r.seconds).sort((a, b) => a - b);
console.log(`\n${file}: ${results.filter((r) => r.passed).length} of ${results.length} passed with ${v.busy} busy process(es) besides the machine's other work; ` +
  `wall time ${secs[0]}–${secs.at(-1)} s (median ${secs[Math.floor(secs.length / 2)]} s); load average ${Math.min(...results.map((r) => r.load[0])).toFixed(1)}–${Math.max(...results.flatMap((r) => r.load)).toFixed(1)}`);
if (v.json) writeFileSync(v.json, JSON.stringify(results, null, 2));
