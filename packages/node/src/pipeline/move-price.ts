import type { ModelProfile } from '@edge-node/partitioner';
import { MAX_SWITCH_DELTA } from './live-move.js';

/** Tokens over which moving a running request to a new plan must pay back its pause. */
const MIGRATION_PAYBACK_TOKENS = 64;

/** What the pause of one moved request is priced with, as of now. */
export interface MovePricing {
  /** Requests move with their KV (live-move.ts); otherwise they replay their history. */
  live: boolean;
  profile: ModelProfile;
  /** The slowest measured link between the cluster's nodes (MB/s), for the KV copied at the switch. */
  linkMBps: number;
  /** The switch's own cost: what live switches took lately (the first step on the new route), or a step's prediction. */
  switchMs: number;
  /** A replay's pause: the new plan's predicted prefill. */
  replayMs: number;
}

/**
 * The pause a running request takes to move (ms). Live, its KV is copied while it decodes, so it pauses only for the
 * positions decoded since (at most MAX_SWITCH_DELTA, every layer's rows over the slowest link) and the switch;
 * replayed, for the prefill of its history.
 */
export function movePauseMs(p: MovePricing): number {
  if (!p.live) return p.replayMs;
  const kvBytes = MAX_SWITCH_DELTA * p.profile.layers.reduce((s, l) => s + l.kvBytesPerToken, 0);
  return kvBytes / (Math.max(1e-3, p.linkMBps) * 1e3) + p.switchMs;
}

/** Whether running requests move to a plan `gainMs` per token faster: when the gain pays the pause back soon enough. */
export function movesRunning(gainMs: number, p: MovePricing): boolean {
  return gainMs * MIGRATION_PAYBACK_TOKENS > movePauseMs(p);
}
