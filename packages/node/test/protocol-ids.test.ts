import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEdgeHost } from '../src/network/edge-host.js';
import { createConsoleLogger } from '../src/network/node-logger.js';
import { findProtocolVersionMismatches, parseProtocolId, PROTOCOLS, speaksEdgeNode } from '../src/network/protocol-ids.js';

describe('protocol ids', () => {
  it('parses ids and finds version mismatches', () => {
    expect(parseProtocolId(PROTOCOLS.activations)).toEqual({ name: 'activations', version: '1.0.0' });
    expect(parseProtocolId('/ipfs/id/1.0.0')).toBeNull();
    const remote = ['/ipfs/id/1.0.0', '/edge-node/profile/2.0.0', '/edge-node/probe/1.0.0'];
    expect(findProtocolVersionMismatches(remote)).toEqual([{ name: 'profile', ours: '1.0.0', theirs: '2.0.0' }]);
    expect(speaksEdgeNode(remote)).toBe(false);
    expect(findProtocolVersionMismatches(Object.values(PROTOCOLS))).toEqual([]);
  });

  it('logs an error naming both versions when a peer speaks another version of our protocols', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'proto-'));
    const lines: string[] = [];
    const logger = createConsoleLogger({ write: (_l, line) => lines.push(line) });
    const common = { listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false };
    const a = await createEdgeHost({ ...common, dataDir: join(dir, 'a'), name: 'a', logger });
    const b = await createEdgeHost({ ...common, dataDir: join(dir, 'b'), name: 'b', logger: createConsoleLogger({ write: () => {} }) });
    try {
      await a.handle(PROTOCOLS.profile, () => {});
      await b.handle('/edge-node/profile/2.0.0', () => {});
      await b.dial(a.addresses()[0]);
      const deadline = Date.now() + 5000;
      while (!lines.some((l) => l.includes('ERROR')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const line = lines.find((l) => l.includes('ERROR')) ?? '';
      expect(line).toContain(b.peerId);
      expect(line).toContain('/edge-node/profile/2.0.0');
      expect(line).toContain('/edge-node/profile/1.0.0');
    } finally {
      await Promise.all([a.close(), b.close()]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
