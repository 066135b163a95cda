import type { DeviceProfile } from '../cluster/device-profile.js';

/**
 * What a hop's latency is priced at: half the link's fastest ping, less what the receiver's fixed costs count of it
 * too. Both hold a turn of the receiver's event loop and its wake-up (device-fixed-costs.ts: a step is wake + turn
 * + 2 codecs, a token wake + turn + 1 codec, so wake + turn = 2 × token − step). Counted in both, stories260K's 2-node
 * ring was priced at 1.02 ms a step outside its kernels where it ran 0.58–0.85, the served-hop excess read −0.2 ms a
 * hop to make up for it, and a link whose half ping was below that was priced at 0, the rest of the correction lost.
 * Less the share: 0.64 ms for 0.62–0.72 (3 nodes: 0.99 for 0.89–1.11). A receiver that does not say both costs
 * shares nothing.
 */
export function hopLatencyMs(rttMs: number, receiver: Pick<DeviceProfile, 'stepOverheadMs' | 'tokenOverheadMs'> | undefined): number {
  const step = receiver?.stepOverheadMs;
  const token = receiver?.tokenOverheadMs;
  const shared = step === undefined || token === undefined ? 0 : Math.min(token, Math.max(0, 2 * token - step));
  return Math.max(0, rttMs / 2 - shared);
}
