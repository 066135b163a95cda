import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chooseKernelIsa } from '@edge-node/kernels';
import { CLI_BIN, ClusterHarness, type RunningNode } from './support/cluster-harness.js';

const execFileAsync = promisify(execFile);

interface ClusterJson {
  self: { peerId: string };
  peers: { peerId: string; name: string; profile: { runtime: string; threads: number; gflopsDecode: number; memoryBytes: number } }[];
  links: { from: string; to: string; rttMs: number; bandwidthMBps: number }[];
}

describe('three edge-node processes on loopback, bootstrapped to node 1', () => {
  const h = new ClusterHarness('cluster-membership');
  afterAll(() => h.cleanup());
  let n1: RunningNode;
  let n2: RunningNode;
  let n3: RunningNode;
  const peersOf = async (n: RunningNode) => (await n.health()).peers;

  it('all three see two peers, and node 3 learned node 2 through gossip', async () => {
    n1 = await h.startNode({ name: 'n1' });
    [n2, n3] = await Promise.all([
      h.startNode({ name: 'n2', args: ['--bootstrap', n1.addresses[0]] }),
      h.startNode({ name: 'n3', args: ['--bootstrap', n1.addresses[0]] }),
    ]);
    for (const n of [n1, n2, n3]) {
      expect(n.addresses[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${n.peerId}$`));
    }
    const ms = await h.waitFor(async () => (await Promise.all([n1, n2, n3].map(peersOf))).every((p) => p === 2), 8000, 'every node to see 2 peers');
    expect(ms).toBeLessThan(8000);
    const h3 = await n3.health();
    expect(h3.status).toBe('ok');
    expect(h3.addresses).toEqual(n3.addresses);
  });

  it('serves profiles and measured links of every member at /v1/cluster', async () => {
    await h.waitFor(async () => ((await n1.cluster()) as ClusterJson).links.length === 6, 8000, 'all 6 directed links measured');
    const c = (await n1.cluster()) as ClusterJson;
    expect(c.self.peerId).toBe(n1.peerId);
    expect(c.peers.map((p) => p.name).sort()).toEqual(['n2', 'n3']);
    for (const p of c.peers) {
      expect(p.profile.runtime).toBe('node');
      expect(p.profile.threads).toBe(1);
      expect(p.profile.gflopsDecode).toBeGreaterThan(0);
      expect(p.profile.memoryBytes).toBeGreaterThan(0);
    }
    for (const l of c.links) {
      expect(l.rttMs).toBeGreaterThan(0);
      expect(l.rttMs).toBeLessThan(250); // loopback; generous because the first probe runs while peers are starting
      expect(l.bandwidthMBps).toBeGreaterThan(1);
    }
    const { stdout } = await execFileAsync(process.execPath, [CLI_BIN, 'status', '--api', n1.apiUrl]);
    expect(stdout).toMatch(/Cluster: 3 node\(s\)/);
    // The nodes run on this runtime, so they chose the build it chooses (relaxed SIMD on Node ≥ 22).
    expect(stdout).toMatch(new RegExp(`n2 .*\\n.*node, kernels ${(await chooseKernelIsa()).isa} × 1 threads`));
    // and each node's start line says which build it runs and why.
    expect(n1.output()).toMatch(new RegExp(`kernel build ${(await chooseKernelIsa()).isa} \\(${(await chooseKernelIsa()).reason}\\)`));
    expect(stdout).toMatch(/n3 → n1: RTT \d+\.\d+ ms/);
  });

  it('a SIGKILLed node is reported gone within 3 s, and seen again after a restart', async () => {
    n2.kill('SIGKILL');
    const killedAt = Date.now();
    await n2.exited;
    await h.waitFor(async () => (await peersOf(n1)) === 1 && (await peersOf(n3)) === 1, 3000, 'n1 and n3 to drop n2', 50);
    expect(Date.now() - killedAt).toBeLessThan(3000);
    expect(n1.output()).toMatch(/leave: n2/);

    n2 = await h.startNode({ name: 'n2', args: ['--bootstrap', n1.addresses[0]] });
    await h.waitFor(async () => (await Promise.all([n1, n2, n3].map(peersOf))).every((p) => p === 2), 8000, 'n2 to rejoin everyone');
    expect(n3.output()).toMatch(/join: n2 .*\n(.|\n)*leave: n2(.|\n)*join: n2/);
  });

  it('a frozen node (SIGSTOP: no TCP close, like a network cut) is dropped within 3 s by missed heartbeats', async () => {
    n2.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      await h.waitFor(async () => (await peersOf(n1)) === 1 && (await peersOf(n3)) === 1, 3000, 'n1 and n3 to drop the frozen n2', 50);
      expect(Date.now() - stoppedAt).toBeLessThan(3000);
      expect(n1.output()).toMatch(/leave: n2 .*no heartbeat/);
    } finally {
      n2.kill('SIGCONT');
    }
    // Thawed, it reconnects to its bootstrap peer and is a member again.
    await h.waitFor(async () => (await Promise.all([n1, n2, n3].map(peersOf))).every((p) => p === 2), 8000, 'n2 to rejoin after SIGCONT');
  });

  it('shuts down on SIGTERM with exit code 0 and the others notice at once', async () => {
    n3.kill('SIGTERM');
    const { code } = await n3.exited;
    expect(code).toBe(0);
    await h.waitFor(async () => (await peersOf(n1)) === 1, 1500, 'n1 to drop n3');
    expect(n1.output()).toMatch(/leave: n3 .*shut down/);
  });
});
