import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ClusterHarness, sleep } from './support/cluster-harness.js';

describe('node identity and private clusters (separate processes on loopback)', () => {
  const h = new ClusterHarness('cluster-security');
  afterAll(() => h.cleanup());

  it('a node started from a copied data dir exits non-zero with DuplicatePeerIdError', async () => {
    const a = await h.startNode({ name: 'orig' });
    const copy = h.dataDirFor('copy');
    cpSync(a.dataDir, copy, { recursive: true });
    const b = h.spawnNode({ name: 'copy', dataDir: copy, args: ['--bootstrap', a.addresses[0]] });
    const { code } = await b.exited;
    expect(code).not.toBe(0);
    expect(b.output()).toMatch(/another node is already running with this identity/);
    expect(b.output()).toMatch(/--data-dir/);
    // Same identity, bootstrap address without the /p2p/ part: found by dialing.
    const bare = a.addresses[0].replace(/\/p2p\/.*$/, '');
    const c = h.spawnNode({ name: 'copy', dataDir: copy, args: ['--bootstrap', bare] });
    const second = await c.exited;
    expect(second.code).not.toBe(0);
    expect(c.output()).toMatch(/DuplicatePeerIdError|another node is already running with this identity/);
    a.kill('SIGTERM');
    await a.exited;
  });

  it('only nodes holding the cluster key join a keyed cluster, and the outsiders log why', async () => {
    const key = join(h.tempDir, 'cluster.key');
    const other = join(h.tempDir, 'other.key');
    execFileSync(process.execPath, [CLI_BIN, 'keygen', key]);
    execFileSync(process.execPath, [CLI_BIN, 'keygen', other]);
    const k1 = await h.startNode({ name: 'k1', args: ['--cluster-key', key] });
    const [k2, nokey, wrong] = await Promise.all([
      // The key may also come from the environment.
      h.startNode({ name: 'k2', args: ['--bootstrap', k1.addresses[0]], env: { EDGE_NODE_CLUSTER_KEY: key } }),
      h.startNode({ name: 'nokey', args: ['--bootstrap', k1.addresses[0]] }),
      h.startNode({ name: 'wrong', args: ['--bootstrap', k1.addresses[0], '--cluster-key', other] }),
    ]);
    await h.waitFor(async () => (await k1.health()).peers === 1 && (await k2.health()).peers === 1, 8000, 'k1 and k2 to see each other');
    await h.waitFor(() => /cannot connect to bootstrap peer.*cluster key/.test(nokey.output()), 8000, 'nokey to explain its failure');
    await h.waitFor(() => /cannot connect to bootstrap peer.*cluster key/.test(wrong.output()), 8000, 'wrong to explain its failure');
    await sleep(500);
    expect((await nokey.health()).peers).toBe(0);
    expect((await wrong.health()).peers).toBe(0);
    expect((await k1.health()).peers).toBe(1);
    expect(nokey.running && wrong.running && k1.running).toBe(true); // a failed handshake is logged, not a crash
  });
});
