import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';

// mDNS multicasts on every interface, so it runs only inside a network namespace of our own with just `lo` up.
const NS = `en-test-${randomBytes(4).toString('hex')}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' }).toString();

describe('mDNS discovery inside a private network namespace', () => {
  let h: ClusterHarness;

  beforeAll(() => {
    ip('netns', 'add', NS);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    // lo has no multicast flag and no route for 224.0.0.0/4 by default; both stay inside the namespace.
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'multicast', 'on');
    ip('netns', 'exec', NS, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo');
    h = new ClusterHarness('cluster-mdns', { netns: NS });
  });

  afterAll(async () => {
    await h?.cleanup();
    try {
      ip('netns', 'delete', NS);
    } catch {
      // already gone
    }
  });

  it('three nodes with --mdns and no bootstrap find each other within 5 s', async () => {
    const nodes: RunningNode[] = await Promise.all(['m1', 'm2', 'm3'].map((name) => h.startNode({ name, args: ['--mdns'] })));
    const readyAt = Date.now();
    await h.waitFor(async () => (await Promise.all(nodes.map((n) => n.health()))).every((x) => x.peers === 2), 5000, 'all to see 2 peers via mDNS');
    expect(Date.now() - readyAt).toBeLessThan(5000);
    for (const n of nodes) expect(n.output()).not.toMatch(/connected to bootstrap/);
  });
});
