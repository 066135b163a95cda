import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEdgeHost, type EdgeHost } from '../src/network/edge-host.js';
import type { MessageStream } from '../src/network/message-stream.js';
import { createConsoleLogger, type NodeLogger } from '../src/network/node-logger.js';
import { RequestChannel, RequestTimeoutError, type ChannelEnvelope } from '../src/network/request-channel.js';
import { IDENTITY_FILE } from '../src/network/peer-identity.js';
import { FrameTooLargeError } from '../src/network/frame-codec.js';

const ECHO = '/edge-node-test/echo/1.0.0';
const RPC = '/edge-node-test/rpc/1.0.0';

function capture(): NodeLogger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createConsoleLogger({ level: 'debug', write: (_l, line) => lines.push(line) });
  return Object.assign(logger, { lines });
}

describe('edge host + message stream (two in-process nodes on loopback)', () => {
  let dir: string;
  let a: EdgeHost;
  let b: EdgeHost;
  const logA = capture();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edge-host-'));
    a = await createEdgeHost({ dataDir: join(dir, 'a'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, name: 'a', logger: logA, maxFrameBytes: 8 * 1024 * 1024 });
    await a.handle(ECHO, async (stream) => {
      for await (const m of stream) await stream.send(m);
    });
    b = await createEdgeHost({ dataDir: join(dir, 'b'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [a.addresses()[0]], mdns: false, name: 'b', logger: capture(), maxFrameBytes: 8 * 1024 * 1024 });
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a persistent identity in the data dir (mode 0600)', async () => {
    const st = await stat(join(dir, 'a', IDENTITY_FILE));
    expect(st.mode & 0o777).toBe(0o600);
    const again = await createEdgeHost({ dataDir: join(dir, 'a'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, name: 'a2', logger: capture() });
    try {
      expect(again.peerId).toBe(a.peerId);
      expect(again.addresses().every((ad) => ad.endsWith(`/p2p/${a.peerId}`))).toBe(true);
    } finally {
      await again.close();
    }
  });

  it('dials the bootstrap address and echoes messages in order, including large Float32Array frames', async () => {
    const deadline = Date.now() + 5000;
    while (!b.isConnected(a.peerId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(b.connectedPeers()).toContain(a.peerId);

    const s = await b.openMessageStream<{ i: number; x?: Float32Array }>(a.peerId, ECHO);
    const sends = [];
    for (let i = 0; i < 200; i++) sends.push(s.send({ i }));
    const big = Float32Array.from({ length: 1_000_000 }, (_, i) => i); // 4 MB: above yamux's 4 MiB default window
    sends.push(s.send({ i: 200, x: big }));
    await Promise.all(sends);
    const got: number[] = [];
    let bigBack: Float32Array | undefined;
    for await (const m of s) {
      got.push(m.i);
      if (m.x) bigBack = m.x;
      if (m.i === 200) break;
    }
    expect(got).toEqual(Array.from({ length: 201 }, (_, i) => i));
    expect(bigBack?.length).toBe(1_000_000);
    expect(bigBack?.[999_999]).toBe(999_999);
    await expect(s.send({ i: 0, x: new Float32Array(3 * 1024 * 1024) })).rejects.toBeInstanceOf(FrameTooLargeError);
    await s.close();
    const info = await s.closed;
    expect(info.error).toBeUndefined();
    await expect(s.send({ i: 1 })).rejects.toThrow(/closed/);
  });

  it('request/response with correlation ids and timeouts', async () => {
    type Req = { op: 'add'; a: number; b: number } | { op: 'slow' };
    await a.handle(RPC, (stream) => {
      new RequestChannel<Req, number>(stream as MessageStream<ChannelEnvelope<Req, number, never>>, {
        onRequest: async (r) => {
          if (r.op === 'slow') await new Promise((res) => setTimeout(res, 500));
          if (r.op === 'add') {
            if (r.a < 0) throw new RangeError('negative');
            return r.a + r.b;
          }
          return -1;
        },
      });
    });
    const stream = await b.openMessageStream<ChannelEnvelope<Req, number, never>>(a.peerId, RPC);
    const ch = new RequestChannel<Req, number>(stream);
    const replies = await Promise.all([1, 2, 3, 4].map((n) => ch.request({ op: 'add', a: n, b: 10 })));
    expect(replies).toEqual([11, 12, 13, 14]);
    await expect(ch.request({ op: 'add', a: -1, b: 0 })).rejects.toThrow(/RangeError: negative/);
    await expect(ch.request({ op: 'slow' }, { timeoutMs: 100 })).rejects.toBeInstanceOf(RequestTimeoutError);
    await ch.close();
  });

  it('round trip of a 576-float frame stays well under a millisecond on loopback', async () => {
    const s = await b.openMessageStream<{ h: Float32Array }>(a.peerId, ECHO);
    const h = new Float32Array(576).fill(0.5);
    const it = s[Symbol.asyncIterator]();
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await s.send({ h });
      await it.next();
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    const median = times[150];
    // Generous bound for a shared 2-core machine; bench-hop.mjs reports the real figures.
    expect(median).toBeLessThan(3);
    await s.close();
  });
});
