/**
 * The pure parts of the browser node, under Node: which WebSocket address a page dials, how it reads a cluster key,
 * the tokens/s meter, and the browser versions of node:crypto and node:events the bundle uses instead of Node's.
 */
import { createHash as nodeCreateHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clusterKeyFromFragment, clusterKeyFromText } from '../src/cluster-key-text.js';
import { StageMeter } from '../src/stage-meter.js';
import { pickWebSocketAddress } from '../src/ws-address.js';
import { createHash, randomUUID } from '../src/shims/crypto.js';
import { EventEmitter } from '../src/shims/events.js';

const ID = '12D3KooWJuK1b8UsaWVkRrJt6xc8yPAf43uNMZ7qMWZRZt7rW36M';

describe('pickWebSocketAddress', () => {
  const addrs = [`/ip4/127.0.0.1/tcp/4001/p2p/${ID}`, `/ip4/127.0.0.1/tcp/4002/ws/p2p/${ID}`, `/ip4/192.168.1.20/tcp/4002/ws/p2p/${ID}`];
  it('takes the WebSocket address on the host the page came from', () => {
    expect(pickWebSocketAddress(addrs, '192.168.1.20')).toBe(`/ip4/192.168.1.20/tcp/4002/ws/p2p/${ID}`);
    expect(pickWebSocketAddress(addrs, '127.0.0.1')).toBe(`/ip4/127.0.0.1/tcp/4002/ws/p2p/${ID}`);
    expect(pickWebSocketAddress(addrs, 'localhost')).toBe(`/ip4/127.0.0.1/tcp/4002/ws/p2p/${ID}`);
  });
  it("puts the page's host into an address announced for another interface", () => {
    expect(pickWebSocketAddress([`/ip4/10.0.0.5/tcp/4002/ws/p2p/${ID}`], '192.168.1.20')).toBe(`/ip4/192.168.1.20/tcp/4002/ws/p2p/${ID}`);
    expect(pickWebSocketAddress([`/ip4/10.0.0.5/tcp/4002/ws/p2p/${ID}`], 'node.local')).toBe(`/dns4/node.local/tcp/4002/ws/p2p/${ID}`);
  });
  it('answers null when the node has no WebSocket address', () => {
    expect(pickWebSocketAddress([`/ip4/127.0.0.1/tcp/4001/p2p/${ID}`], '127.0.0.1')).toBeNull();
  });
});

describe('cluster key text', () => {
  const hex = 'a1'.repeat(32);
  const file = `/key/swarm/psk/1.0.0/\n/base16/\n${hex}\n`;
  it('accepts the key file or its 64 hex digits, giving pnet the same bytes', () => {
    expect(new TextDecoder().decode(clusterKeyFromText(file))).toBe(file.trim());
    expect(clusterKeyFromText(hex.toUpperCase())).toEqual(clusterKeyFromText(file));
  });
  it('refuses anything else with a message that says what to paste', () => {
    expect(() => clusterKeyFromText('hunter2')).toThrow(/not a cluster key: paste the key file/);
    expect(() => clusterKeyFromText(hex.slice(2))).toThrow(/not a cluster key/);
  });
  it('reads the key from a fragment only', () => {
    expect(clusterKeyFromFragment(`#key=${hex}`)).toBe(hex);
    expect(clusterKeyFromFragment('')).toBeNull();
  });
});

describe('StageMeter', () => {
  it('counts rows and gives the rate over its window', () => {
    const m = new StageMeter(5000);
    m.add(10, 5, 0);
    m.add(1, 1, 1000);
    m.add(1, 1, 2000);
    expect(m.total).toBe(12);
    expect(m.rate(2000)).toBeCloseTo(12 / 2, 5);
    expect(m.rate(6500)).toBeCloseTo(1 / 5, 5); // only the last row is in the 5 s window
    expect(m.rate(20_000)).toBe(0);
  });
});

describe('browser shims', () => {
  it('sha256 matches node:crypto in hex', () => {
    for (const n of [0, 1, 63, 64, 65, 100_000]) {
      const data = randomBytes(n);
      expect(createHash('sha256').update(data).digest('hex')).toBe(nodeCreateHash('sha256').update(data).digest('hex'));
    }
    expect(() => createHash('md5')).toThrow(/only sha256/);
  });
  it('randomUUID gives RFC 4122 version-4 ids', () => {
    const ids = new Set(Array.from({ length: 100 }, () => randomUUID()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
  it('EventEmitter calls listeners in order, once only once, and off removes', () => {
    const e = new EventEmitter();
    const seen: string[] = [];
    const a = (x: unknown) => seen.push(`a${x}`);
    e.on('x', a);
    e.once('x', (x: unknown) => seen.push(`once${x}`));
    expect(e.emit('x', 1)).toBe(true);
    e.emit('x', 2);
    e.off('x', a);
    expect(e.emit('x', 3)).toBe(false);
    expect(seen).toEqual(['a1', 'once1', 'a2']);
    expect(() => e.emit('error', new Error('boom'))).toThrow('boom');
  });
});
