/**
 * The idle probe measures the device when the node computes nothing: a node that served from its start and is then
 * throttled (its layers moved away) must read busy from its probe, not take the throttled time for its quiet one,
 * and read quiet again within a probe run or two of the lift (the fastest run of a short window counts).
 */
import { describe, expect, it } from 'vitest';
import { DeviceWatch } from '../src/cluster/device-watch.js';
import { silentLogger } from '../src/network/node-logger.js';
import type { DeviceLoad } from '../src/cluster/device-load.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spin = (ms: number) => {
  const t0 = performance.now();
  while (performance.now() - t0 < ms);
};

describe('device watch idle probe', () => {
  it('takes its quiet figure at start, so a node first probed while throttled reads busy, then quiet after the lift', async () => {
    let pieceMs = 0.1;
    let serving = false;
    const announced: DeviceLoad[] = [];
    const watch = new DeviceWatch({
      profileMemoryBytes: 1e9,
      announce: (l) => announced.push(l),
      heldBytes: () => 0,
      log: silentLogger,
      intervalMs: 50,
      probeAfterIdleMs: 0,
      probeWhen: () => !serving,
      probe: () => spin(pieceMs),
      slowdown: { timeConstantMs: 60, quietBelow: 2.5 },
      probeWindowMs: 400,
    });
    watch.start();
    // It serves from the start (no probe meanwhile), then its layers move away from it, throttled: 10× slower.
    serving = true;
    await sleep(200);
    pieceMs = 1;
    serving = false;
    const busy = Date.now();
    while (watch.current().slowdown === 1 && Date.now() - busy < 5000) await sleep(20);
    try {
      expect(watch.current().source).toBe('probe');
      expect(watch.current().slowdown).toBeGreaterThan(2.5);
      // Still throttled for a while (several probe windows): it never reads quiet meanwhile.
      const throttledFrom = announced.length;
      await sleep(1500);
      expect(announced.slice(throttledFrom).map((l) => l.slowdown)).not.toContain(1);
      expect(watch.current().slowdown).toBeGreaterThan(2.5);
      pieceMs = 0.1;
      const quiet = Date.now();
      while (watch.current().slowdown > 1 && Date.now() - quiet < 5000) await sleep(20);
      expect(watch.current().slowdown).toBe(1);
      // Quiet again with the first fast runs, though the window still holds throttled ones.
      expect(Date.now() - quiet).toBeLessThan(1000);
      expect(announced.map((l) => l.slowdown > 1)).toContain(true);
    } finally {
      watch.stop();
    }
  });
});
