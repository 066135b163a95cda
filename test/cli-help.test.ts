/**
 * `edge-node --help`, `--version` and every `<command> --help` answer at once: the runtime (libp2p, the HTTP server,
 * the model readers: ~1 s of CPU) is imported only by a command that runs, and the help texts take their defaults
 * from `@edge-node/node/settings`. The built CLI in a child process, as a user runs it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, REPO_ROOT, ensureBuilt } from './support/cluster-harness.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The median of three runs (ms) of the CLI and of Node starting with nothing to do, interleaved, and the CLI's last
 * output. Node alone starts in ~50 ms on a quiet machine; the runtime took 1–2 s more.
 */
function timed(args: string[]): { ms: number; bareNodeMs: number; out: string } {
  const cli: number[] = [];
  const bare: number[] = [];
  let out = '';
  for (let i = 0; i < 3; i++) {
    let t0 = performance.now();
    out = execFileSync(process.execPath, [CLI_BIN, ...args], { encoding: 'utf8' });
    cli.push(performance.now() - t0);
    t0 = performance.now();
    execFileSync(process.execPath, ['-e', '']);
    bare.push(performance.now() - t0);
  }
  return { ms: median(cli), bareNodeMs: median(bare), out };
}

/**
 * Under 0.5 s; on a machine so loaded that Node alone takes over 0.2 s to start, within 0.3 s of that (loading the
 * runtime costs over 1 s of CPU, so it still fails there).
 */
function expectQuick(args: string[], t: { ms: number; bareNodeMs: number }): void {
  console.log(`edge-node ${args.join(' ')}: ${t.ms.toFixed(0)} ms (node alone ${t.bareNodeMs.toFixed(0)} ms)`);
  expect(t.ms).toBeLessThan(Math.max(500, t.bareNodeMs + 300));
}

describe('edge-node --help and --version', () => {
  ensureBuilt();

  it('--version prints the package version and Node\'s, quickly', () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/cli/package.json'), 'utf8')) as { version: string };
    const t = timed(['--version']);
    expect(t.out).toBe(`edge-node ${version} (Node ${process.version})\n`);
    expectQuick(['--version'], t);
  });

  it('--help lists every command, quickly', () => {
    const t = timed(['--help']);
    for (const name of ['start', 'status', 'keygen', 'plan', 'run', 'download', 'chat', 'bench']) expect(t.out).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    expectQuick(['--help'], t);
  });

  it('start --help shows its options with the API\'s defaults, quickly', () => {
    const t = timed(['start', '--help']);
    expect(t.out).toMatch(/^Usage: edge-node start /);
    expect(t.out).toMatch(/--api-port N +HTTP API port \(default 8080;/);
    expect(t.out).toMatch(/--queue-length N .*\(default 32\)/);
    expectQuick(['start', '--help'], t);
  });

  it('every other command\'s --help answers quickly with its usage', () => {
    for (const name of ['run', 'chat', 'status', 'plan', 'download', 'keygen', 'bench']) {
      const t = timed([name, '--help']);
      expect(t.out).toMatch(new RegExp(`^Usage: edge-node ${name}\\b`));
      expectQuick([name, '--help'], t);
    }
    // One temperature and one answer length for the two commands that generate for a person.
    const run = execFileSync(process.execPath, [CLI_BIN, 'run', '--help'], { encoding: 'utf8' });
    const chat = execFileSync(process.execPath, [CLI_BIN, 'chat', '--help'], { encoding: 'utf8' });
    for (const text of [run, chat]) {
      expect(text).toMatch(/--max-tokens N +most tokens .*\(default 256, as edge-node/);
      expect(text).toMatch(/--temperature T +0 = greedy \(default 0\.8, as edge-node/);
    }
  });

  it('an unknown flag is a usage error (exit 2) with the command\'s usage, not a stack trace', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [CLI_BIN, 'run', '--bogus'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      ({ status, stderr } = err as { status: number; stderr: string });
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/^edge-node run: Unknown option '--bogus'\n\nUsage: edge-node run /);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
