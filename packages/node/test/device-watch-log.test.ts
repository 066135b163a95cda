/**
 * What the device watch tells a person: a change of state (quiet → busy → quiet) once each at info, and how busy,
 * as it moves while busy, only at debug (it was two thirds of every log on a shared machine).
 */
import { describe, expect, it } from 'vitest';
import { DeviceWatch } from '../src/cluster/device-watch.js';
import type { NodeLogger } from '../src/network/node-logger.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('device watch log', () => {
  it('says busy and quiet again once each at info; the slowdown moving while busy goes to debug', async () => {
    const lines: { level: string; text: string }[] = [];
    const log: NodeLogger = {
      debug: (text) => lines.push({ level: 'debug', text }),
      info: (text) => lines.push({ level: 'info', text }),
      warn: (text) => lines.push({ level: 'warn', text }),
      error: (text) => lines.push({ level: 'error', text }),
    };
    // A time constant of 1 ms: the smoothed figure follows the samples at once, so the test is about the log only.
    const watch = new DeviceWatch({ profileMemoryBytes: 1e9, announce: () => {}, heldBytes: () => 0, log, intervalMs: 5, probeWhen: () => false, slowdown: { timeConstantMs: 1, minSamples: 1 } });
    watch.start();
    try {
      const phase = async (measuredMs: number) => {
        for (let i = 0; i < 5; i++) {
          watch.observeCompute(measuredMs, 10);
          await sleep(10);
        }
        await sleep(30);
      };
      await phase(10); // quiet: as fast as its best
      await phase(40); // 4× slower: busy
      await phase(80); // 8×: still busy, more so
      await phase(40);
      await phase(10); // quiet again
    } finally {
      watch.stop();
    }
    const load = lines.filter((l) => l.text.startsWith('device load:'));
    expect(load.filter((l) => l.level === 'info').map((l) => l.text.replace(/ \(.*$/, ''))).toEqual(['device load: busy, 4× slower than profiled', 'device load: quiet again']);
    expect(load.filter((l) => l.level === 'debug').map((l) => l.text.replace(/ \(.*$/, ''))).toEqual(['device load: busy, 8× slower than profiled', 'device load: busy, 4× slower than profiled']);
  });
});
