/**
 * Ctrl-C or a service manager's stop reaches a node started with `npx edge-node start`: the signal goes to npm
 * alone (as `kill -INT <pid of npm>` does), and the node must stop cleanly. Through npm's default `sh -c` it never
 * arrived; the repository's .npmrc has npm run bins through bash, which replaces itself with the node.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ensureBuilt, sleep } from './support/cluster-harness.js';

describe('npx edge-node start', () => {
  ensureBuilt();
  const home = mkdtempSync(join(tmpdir(), 'edge-npx-'));
  const groups: number[] = [];
  afterAll(() => {
    for (const g of groups) {
      try {
        process.kill(-g, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(home, { recursive: true, force: true });
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`stops cleanly when npm gets ${signal}`, async () => {
      const npx = spawn('npx', ['edge-node', 'start', '--no-model', '--name', `npx-${signal}`, '--no-mdns', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'], {
        cwd: REPO_ROOT,
        env: { ...process.env, HOME: home, npm_config_update_notifier: 'false' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own group, so that a failure can be cleaned up whole
      });
      groups.push(npx.pid!);
      let out = '';
      npx.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      npx.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => npx.once('exit', (code) => r(code)));
      for (let waited = 0; !/edge-node: API at/.test(out); waited += 100) {
        if (waited > 30_000 || npx.exitCode !== null) throw new Error(`the node did not start:\n${out}`);
        await sleep(100);
      }
      npx.kill(signal); // npm's pid only, as a terminal's Ctrl-C to a backgrounded npm or a service manager's stop
      const code = await Promise.race([exited, sleep(10_000).then(() => 'still running' as const)]);
      expect(code, out).not.toBe('still running');
      expect(out).toContain(`stopping (${signal})`);
      // Nothing of the group is left: the node itself exited, not only npm (signal 0 to a group that is gone throws).
      const groupGone = async () => {
        for (let waited = 0; waited < 5_000; waited += 100) {
          try {
            process.kill(-npx.pid!, 0);
          } catch {
            return true;
          }
          await sleep(100);
        }
        return false;
      };
      expect(await groupGone(), out).toBe(true);
    }, 60_000);
  }
});
