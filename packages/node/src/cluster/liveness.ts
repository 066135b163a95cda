/**
 * When is a silent peer lost? Pure rules, so they can be tested without a network.
 *
 * A peer that is computing (or whose device is throttled) beats late; that is not a loss. Each node tells its peers
 * how late its own beats have recently been (`lagMs` in its heartbeats), and a peer is declared lost only after
 * silence well beyond that. A node whose own event loop was stalled does not count the stall against its peers:
 * their beats were waiting, unread, in its socket buffers.
 */
export interface LivenessPolicy {
  /** Silence tolerated from a peer that beats on time. */
  failureTimeoutMs: number;
  /** Extra silence tolerated per ms of announced lag. Default 3. */
  lagFactor?: number;
  /** Most extra silence a lagging peer gets (a frozen process is still dropped). Default DEFAULT_MAX_GRACE_MS. */
  maxGraceMs?: number;
}

/**
 * Compute no longer holds the event loop for long (a pass lets it turn every 20 ms, engine/compute-slices.ts), so a
 * busy or throttled node beats nearly on time; what is left to excuse is a throttled device's bursts (a garbage
 * collection, a kernel call at 5 % of a core). A stopped (SIGSTOP) or hung process is lost within the failure
 * timeout plus this, whatever it announced before.
 */
export const DEFAULT_MAX_GRACE_MS = 3000;

/**
 * How long a peer may stay silent before it is taken for lost: the failure timeout, plus `lagFactor` × the lateness
 * it announced for its beats, plus (slowdown − 1) × the failure timeout when it announced that its device runs
 * `peerSlowdown` times slower than profiled (a throttled device stalls in bursts: a garbage collection or a layer
 * load at 10 % of a core takes seconds).
 */
export function silenceAllowedMs(peerLagMs: number, policy: LivenessPolicy, peerSlowdown = 1): number {
  const lag = (policy.lagFactor ?? 3) * Math.max(0, peerLagMs);
  const slow = Math.max(0, peerSlowdown - 1) * policy.failureTimeoutMs;
  return policy.failureTimeoutMs + Math.min(policy.maxGraceMs ?? DEFAULT_MAX_GRACE_MS, lag + slow);
}

export type LivenessVerdict = { lost: false } | { lost: true; reason: string };

/** Whether a peer silent for `silentMs` is lost, with the reason a log line and a `leave` event carry. */
export function livenessVerdict(silentMs: number, peerLagMs: number, policy: LivenessPolicy, peerSlowdown = 1): LivenessVerdict {
  const allowed = silenceAllowedMs(peerLagMs, policy, peerSlowdown);
  if (silentMs <= allowed) return { lost: false };
  const said: string[] = [];
  if (peerLagMs > 0) said.push(`its beats were up to ${(peerLagMs / 1000).toFixed(1)} s late`);
  if (peerSlowdown > 1) said.push(`it announced running ${peerSlowdown}× slower`);
  const lateness = said.length > 0 ? `; ${said.join(' and ')}, so it had ${(allowed / 1000).toFixed(1)} s` : '';
  return { lost: true, reason: `no heartbeat for ${(silentMs / 1000).toFixed(1)} s with the connection open${lateness}` };
}

/**
 * This node's own event-loop lag: how late its timer ticks ran, as the worst over a sliding window (so a peer
 * learns "my beats may come this late" before the next late beat, and forgets it a while after).
 */
export class LoopLag {
  private samples: { at: number; lagMs: number }[] = [];

  constructor(private readonly windowMs = 15_000) {}

  /** Records one tick that ran `lagMs` later than scheduled. */
  record(at: number, lagMs: number): void {
    if (lagMs <= 0) return;
    this.samples.push({ at, lagMs });
    this.prune(at);
  }

  /** Worst lag in the window ending at `now`. */
  worst(now: number): number {
    this.prune(now);
    let worst = 0;
    for (const s of this.samples) worst = Math.max(worst, s.lagMs);
    return worst;
  }

  private prune(now: number): void {
    while (this.samples.length > 0 && now - this.samples[0].at > this.windowMs) this.samples.shift();
    if (this.samples.length > 256) this.samples = this.samples.slice(-256);
  }
}
