import type { NodeLogger } from '../network/node-logger.js';
import { turnEventLoop } from '../engine/compute-slices.js';
import type { DeviceProfile } from './device-profile.js';
import type { Membership } from './membership.js';

export interface ProfileRefinerOptions {
  membership: Membership;
  initial: DeviceProfile;
  /** True while the node serves requests: a measurement then would both disturb them and read low. */
  isBusy: () => boolean;
  /** Measures the device, calling `between` between timed products (it rejects once the node has work again). */
  measure: (between: () => Promise<void>) => Promise<DeviceProfile>;
  /** When to measure again after start, ms (each waits, too, for the node to be idle `idleBeforeMs`). */
  delaysMs: number[];
  /** Idle time before a measurement: requests often come in bursts, and one may come back. Default 20 s. */
  idleBeforeMs?: number;
  /** How often it looks whether the node is busy. Default 1 s. */
  pollMs?: number;
  log: NodeLogger;
}

export const DEFAULT_IDLE_BEFORE_MEASURE_MS = 20_000;

/** A measurement given up because work arrived. */
class WorkArrived extends Error {
  override name = 'WorkArrived';
}

/**
 * The start-up measurement of a device is taken while the machine is at its busiest (this node loading its model,
 * its neighbours doing the same), and a busy moment only ever makes a device look slower. So the node measures again
 * a few times once idle and announces the best figures seen; the memory budget stays as first set.
 *
 * A measurement is a second of products on the node's event loop: it lets the loop turn between products, starts
 * only after the node has been idle a while (counted from start, when it loads its model), and stops as soon as
 * work arrives — then it is tried again once the node is idle again.
 */
export function refineProfile(opts: ProfileRefinerOptions): { stop(): void } {
  const idleBeforeMs = opts.idleBeforeMs ?? DEFAULT_IDLE_BEFORE_MEASURE_MS;
  const start = Date.now();
  let best = opts.initial;
  /** Since when the node has had no work (nor a measurement: two in a row would tell nothing new). */
  let quietSince = start;
  let measuring = false;
  /** Start-relative times of the measurements still to take. */
  const due = [...opts.delaysMs].sort((a, b) => a - b);

  const between = async (): Promise<void> => {
    await turnEventLoop();
    if (opts.isBusy()) throw new WorkArrived('a request arrived');
  };

  const remeasure = async (): Promise<void> => {
    measuring = true;
    try {
      const m = await opts.measure(between);
      due.shift();
      const next: DeviceProfile = {
        ...best,
        gflopsDecode: Math.max(best.gflopsDecode, m.gflopsDecode),
        gflopsPrefill: Math.max(best.gflopsPrefill, m.gflopsPrefill),
        memBandwidthGBps: Math.max(best.memBandwidthGBps, m.memBandwidthGBps),
        ...leastFixedCosts(best, m),
        measuredAt: m.measuredAt,
      };
      const same = (k: 'gflopsDecode' | 'gflopsPrefill' | 'memBandwidthGBps' | FixedCostKey) => next[k] === best[k];
      if (same('gflopsDecode') && same('gflopsPrefill') && same('memBandwidthGBps') && FIXED_COSTS.every(same)) return;
      best = next;
      opts.membership.setProfile(best);
      opts.log.info(
        `device re-measured: decode ${best.gflopsDecode} GFLOP/s, prefill ${best.gflopsPrefill} GFLOP/s, ${best.memBandwidthGBps} GB/s, ` +
          `fixed ${best.stepOverheadMs ?? '?'} ms a step, ${best.tokenOverheadMs ?? '?'} ms a token, ${best.passOverheadMs ?? '?'} ms a pass after idling`,
      );
    } catch (err) {
      if (err instanceof WorkArrived) {
        // Taken again once the node is idle again.
        opts.log.debug('device re-measurement stopped: work arrived');
        return;
      }
      due.shift();
      opts.log.warn(`device re-measurement failed: ${(err as Error).message}`);
    } finally {
      measuring = false;
      quietSince = Date.now();
    }
  };

  const timer = setInterval(() => {
    const now = Date.now();
    if (opts.isBusy()) quietSince = now;
    if (measuring || due.length === 0) return;
    if (now - start >= due[0] && now - quietSince >= idleBeforeMs) void remeasure();
  }, opts.pollMs ?? 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

const FIXED_COSTS = ['stepOverheadMs', 'tokenOverheadMs', 'passOverheadMs', 'wakeMs'] as const;
type FixedCostKey = (typeof FIXED_COSTS)[number];

/** The smaller fixed costs of two measurements, as the larger speeds: a quiet moment shows what the device costs. */
function leastFixedCosts(a: DeviceProfile, b: DeviceProfile): Pick<DeviceProfile, FixedCostKey> {
  const out: Pick<DeviceProfile, FixedCostKey> = {};
  for (const k of FIXED_COSTS) {
    const x = a[k];
    const y = b[k];
    const least = x === undefined ? y : y === undefined ? x : Math.min(x, y);
    if (least !== undefined) out[k] = least;
  }
  return out;
}
