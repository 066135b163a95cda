/**
 * `edge-node --help` and `--version` answer at once: the commands' code (libp2p, the kernels, ~2 s to load) is
 * imported only by the command that runs. The built CLI in a child process, as a user runs it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, REPO_ROOT, ensureBuilt } from './support/cluster-harness.js';

/** The fastest of three runs (ms) and the last output: the minimum leaves out another job's load on a shared machine. */
function fastest(args: string[]): { ms: number; out: string } {
  let ms = Infinity;
  let out = '';
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    out = execFileSync(process.execPath, [CLI_BIN, ...args], { encoding: 'utf8' });
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, out };
}

describe('edge-node --help and --version', () => {
  ensureBuilt();

  it('--version prints the package version and Node\'s, quickly', () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/cli/package.json'), 'utf8')) as { version: string };
    const { ms, out } = fastest(['--version']);
    expect(out).toBe(`edge-node ${version} (Node ${process.version})\n`);
    console.log(`edge-node --version: ${ms.toFixed(0)} ms`);
    // Loading the runtime took ~2 s; Node alone starts in well under 0.5 s.
    expect(ms).toBeLessThan(500);
  });

  it('--help lists every command, quickly', () => {
    const { ms, out } = fastest(['--help']);
    for (const name of ['start', 'status', 'keygen', 'plan', 'run', 'download', 'chat', 'bench']) expect(out).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    console.log(`edge-node --help: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(500);
  });
});
