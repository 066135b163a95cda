import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEdgeHost, type EdgeHost } from '../src/network/edge-host.js';
import type { MessageStream } from '../src/network/message-stream.js';
import { silentLogger } from '../src/network/node-logger.js';
import { corkSendData, installYamuxWindowUpdateThreshold } from '../src/network/libp2p-wire-tuning.js';

const PROTOCOL = '/edge-node-test/sink/1.0.0';

interface Msg {
  seq: number;
  hidden: Float32Array;
}

/** Counts socket writes that reach the kernel as separate calls (Node calls _write or, for corked data, _writev once). */
function countSocketWrites(): { count: () => number; restore: () => void } {
  const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
  const write = proto._write;
  const writev = proto._writev;
  let n = 0;
  proto._write = function (this: unknown, ...a: unknown[]) {
    n++;
    return write.apply(this, a);
  };
  proto._writev = function (this: unknown, ...a: unknown[]) {
    n++;
    return writev.apply(this, a);
  };
  return {
    count: () => n,
    restore: () => {
      proto._write = write;
      proto._writev = writev;
    },
  };
}

describe('libp2p wire tuning (corked sends, yamux window-update threshold)', () => {
  let dir: string;
  let a: EdgeHost;
  let b: EdgeHost;
  const received: Msg[] = [];
  let onMessage: (() => void) | null = null;
  let readDelayMs = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wire-tuning-'));
    const common = { listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, logger: silentLogger };
    a = await createEdgeHost({ ...common, dataDir: join(dir, 'a'), name: 'a' });
    b = await createEdgeHost({ ...common, dataDir: join(dir, 'b'), name: 'b' });
    await b.handle(PROTOCOL, async (stream) => {
      for await (const m of stream as MessageStream<Msg>) {
        // A slow reader: stalls now and then, so the window fills and the muxer must pause and resume the sender.
        if (readDelayMs > 0 && m.seq % 100 === 0) await new Promise((r) => setTimeout(r, readDelayMs));
        received.push(m);
        onMessage?.();
      }
    });
    await a.dial(b.addresses()[0]);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const frame = (seq: number, floats = 576): Msg => ({ seq, hidden: new Float32Array(floats).map((_, i) => seq + i / 1024) });
  const receivedCount = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (received.length >= n) {
          onMessage = null;
          resolve();
        }
      };
      onMessage = check;
      check();
    });

  it('is installed by createEdgeHost', () => {
    expect(installYamuxWindowUpdateThreshold()).toBe(true);
    // A connection without a socket is left alone rather than broken.
    expect(corkSendData({ sendData: () => undefined })).toBe(false);
  });

  it('a decode-step frame leaves in one socket write, and the receiver does not answer each with a window update', async () => {
    const s = await a.openMessageStream<Msg>(b.peerId, PROTOCOL);
    received.length = 0;
    for (let i = 0; i < 10; i++) await s.send(frame(i));
    await receivedCount(10);
    const writes = countSocketWrites();
    try {
      // One frame at a time, as a pipeline hop sends them: each is its own yamux message and Noise message.
      for (let i = 10; i < 110; i++) {
        const arrived = receivedCount(i + 1);
        await s.send(frame(i));
        await arrived;
      }
    } finally {
      writes.restore();
    }
    // Without the tuning: 4 writes per frame from the sender and 2 from the receiver's window update (600).
    expect(writes.count()).toBeGreaterThanOrEqual(100);
    expect(writes.count()).toBeLessThanOrEqual(110); // room for a window update or a libp2p keep-alive ping
    expect(received.map((m) => m.seq)).toEqual(Array.from({ length: 110 }, (_, i) => i));
    expect(received[57].hidden).toEqual(frame(57).hidden);
    await s.close();
  });

  it('flow control still works: 6 MB in small frames to a slow reader, then a 4 MB frame, all intact and in order', async () => {
    const s = await a.openMessageStream<Msg>(b.peerId, PROTOCOL);
    received.length = 0;
    readDelayMs = 20;
    try {
      const n = 2600; // × 2.3 KB ≈ 6 MB: many times the 256 KiB window, so the sender must wait for window updates
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) sends.push(s.send(frame(i)));
      sends.push(s.send(frame(n, 1024 * 1024)));
      await Promise.all(sends);
      await receivedCount(n + 1);
      expect(received.map((m) => m.seq)).toEqual(Array.from({ length: n + 1 }, (_, i) => i));
      expect(received[n].hidden).toEqual(frame(n, 1024 * 1024).hidden);
      expect(received[1234].hidden).toEqual(frame(1234).hidden);
    } finally {
      readDelayMs = 0;
    }
    await s.close();
  }, 60_000);
});
