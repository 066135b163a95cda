import type { NodeLogger } from '../network/node-logger.js';
import type { DeviceProfile } from './device-profile.js';
import type { Membership } from './membership.js';

export interface ProfileRefinerOptions {
  membership: Membership;
  initial: DeviceProfile;
  /** True while the node serves requests: a measurement then would both disturb them and read low. */
  isBusy: () => boolean;
  measure: () => Promise<DeviceProfile>;
  /** When to measure again after start, ms. */
  delaysMs: number[];
  log: NodeLogger;
}

/**
 * The start-up measurement of a device is taken while the machine is at its busiest (this node loading its model,
 * its neighbours doing the same), and a busy moment only ever makes a device look slower. So the node measures again
 * a few times once idle and announces the best figures seen; the memory budget stays as first set.
 */
export function refineProfile(opts: ProfileRefinerOptions): { stop(): void } {
  let best = opts.initial;
  const timers = opts.delaysMs.map((delay) => {
    const t = setTimeout(() => void remeasure(), delay);
    t.unref();
    return t;
  });
  const remeasure = async (): Promise<void> => {
    if (opts.isBusy()) return;
    try {
      const m = await opts.measure();
      const next: DeviceProfile = {
        ...best,
        gflopsDecode: Math.max(best.gflopsDecode, m.gflopsDecode),
        gflopsPrefill: Math.max(best.gflopsPrefill, m.gflopsPrefill),
        memBandwidthGBps: Math.max(best.memBandwidthGBps, m.memBandwidthGBps),
        measuredAt: m.measuredAt,
      };
      if (next.gflopsDecode === best.gflopsDecode && next.gflopsPrefill === best.gflopsPrefill && next.memBandwidthGBps === best.memBandwidthGBps) return;
      best = next;
      opts.membership.setProfile(best);
      opts.log.info(`device re-measured: decode ${best.gflopsDecode} GFLOP/s, prefill ${best.gflopsPrefill} GFLOP/s, ${best.memBandwidthGBps} GB/s`);
    } catch (err) {
      opts.log.warn(`device re-measurement failed: ${(err as Error).message}`);
    }
  };
  return { stop: () => timers.forEach((t) => clearTimeout(t)) };
}
