#!/usr/bin/env node
// Round-trip latency of one small activation frame (576 float32 = 2.3 KB) between two edge-node hosts on
// loopback, over a kept-open MessageStream, compared with raw TCP carrying the same bytes.
// Usage: npm run build && node scripts/bench-hop.mjs [iterations=2000]
import '@edge-node/node/polyfills';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEdgeHost, silentLogger } from '@edge-node/node';

const N = Number(process.argv[2] ?? 2000);
const WARMUP = 200;
const hidden = new Float32Array(576).map((_, i) => Math.sin(i));

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p95: q(0.95), p99: q(0.99), min: s[0] };
}

async function benchMessageStream() {
  const dir = await mkdtemp(join(tmpdir(), 'bench-hop-'));
  const common = { listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, logger: silentLogger };
  const a = await createEdgeHost({ ...common, dataDir: join(dir, 'a'), name: 'a' });
  const b = await createEdgeHost({ ...common, dataDir: join(dir, 'b'), name: 'b' });
  await a.handle('/edge-node-bench/echo/1.0.0', async (stream) => {
    for await (const m of stream) await stream.send(m);
  });
  await b.dial(a.addresses()[0]);
  const s = await b.openMessageStream(a.peerId, '/edge-node-bench/echo/1.0.0');
  const it = s[Symbol.asyncIterator]();
  const times = [];
  for (let i = 0; i < N + WARMUP; i++) {
    const t0 = process.hrtime.bigint();
    await s.send({ seq: i, pos: i, hidden });
    await it.next();
    if (i >= WARMUP) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await s.close();
  await Promise.all([a.close(), b.close()]);
  await rm(dir, { recursive: true, force: true });
  return stats(times);
}

async function benchRawTcp() {
  const payload = Buffer.from(hidden.buffer);
  const frame = Buffer.alloc(4 + payload.length);
  frame.writeUInt32BE(payload.length);
  payload.copy(frame, 4);
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d) => sock.write(d));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const sock = net.connect(server.address().port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  let pending = 0;
  let wake = null;
  sock.on('data', (d) => {
    pending += d.length;
    if (pending >= frame.length && wake) {
      pending -= frame.length;
      const w = wake;
      wake = null;
      w();
    }
  });
  const times = [];
  for (let i = 0; i < N + WARMUP; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((r) => {
      wake = r;
      sock.write(frame);
    });
    if (i >= WARMUP) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  sock.destroy();
  server.close();
  return stats(times);
}

const fmt = (s) => `median ${s.median.toFixed(3)} ms, p95 ${s.p95.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms, min ${s.min.toFixed(3)} ms`;
const raw = await benchRawTcp();
const ms = await benchMessageStream();
console.log(`round trip of a 576-float32 frame on loopback, ${N} iterations:`);
console.log(`  raw TCP:                          ${fmt(raw)}`);
console.log(`  MessageStream (noise+yamux+msgpack): ${fmt(ms)}`);
console.log(`  added per hop (one way, median):  ${((ms.median - raw.median) / 2).toFixed(3)} ms`);
