import type { ModelProfile } from '@edge-node/partitioner';
import type { ClusterMember } from '../cluster/membership.js';
import type { StepTiming } from '../engine/bench-probe.js';
import { hopLatencyMs } from './hop-latency.js';
import type { Route } from './route.js';

type MemberOf = (peerId: string) => ClusterMember | undefined;

/** A decode step of a coordinated request, outside its stages' compute: as measured, and as the planner prices it. */
export interface ServedStepReading {
  /** Round trip and the coordinator's turn, less every stage's compute, ms. */
  measuredMs: number;
  /** What the cost model prices of it besides the hops' latency (ringHopLatencyMs): their transfer, the stages' and the coordinator's fixed costs, ms. */
  fixedMs: number;
  /** Network hops of the step (legs between two processes). */
  hops: number;
}

/** The network legs of a step of `route` coordinated by `self`, and whether each carries a hidden state (else a token id). */
function legsOf(route: Route, self: string): [from: string, to: string, hidden: boolean][] {
  const peers = route.peers;
  const legs: [string, string, boolean][] = [];
  if (peers[0] !== self) legs.push([self, peers[0], false]);
  for (let i = 0; i + 1 < peers.length; i++) if (peers[i] !== peers[i + 1]) legs.push([peers[i], peers[i + 1], true]);
  if (peers[peers.length - 1] !== self) legs.push([peers[peers.length - 1], self, false]);
  return legs;
}

/**
 * The latency the cost model prices a hop of `route`'s ring at now, the mean of its legs (hop-latency.ts), or null
 * when it has none or a link has not been measured. The served-hop excess is read against it as the links are now:
 * a link is re-measured every 15 s, and its ping read 0.3–1.05 ms on loopback between measurements (cores busy with
 * the ring's steps or not), so an excess read against the figure of its steps' time and priced with a later one was
 * off by that change (stories260K's 2-node ring priced its hops at 0 for 0.3 ms each).
 */
export function ringHopLatencyMs(route: Route, self: string, member: MemberOf): number | null {
  const legs = legsOf(route, self);
  if (legs.length === 0) return null;
  let sum = 0;
  for (const [from, to] of legs) {
    const link = member(from)?.links[to];
    if (!link) return null;
    sum += hopLatencyMs(link.rttMs, member(to)?.profile);
  }
  return sum / legs.length;
}

/**
 * What a step spends between its stages' kernels, set against what the partitioner's cost model prices for it. The
 * model takes a hop's latency from the fastest of a link's pings, warm ones among them (fastest-round-trip.ts), less
 * the receiver's wake-up that its fixed costs count (hop-latency.ts); a served hop also carries a frame bigger than a
 * ping through its codec and dispatch, and in a slow ring meets a receiver woken after a few ms. The difference per
 * hop, announced by the coordinator (device-watch.ts) and added to every link by `clusterOf`, prices the hops of the
 * rings this node serves as they are served. Each side is what the cost model counts in its place: every network leg
 * (latency + bytes over bandwidth), a stage's step cost where its layers do not start the model (it came in a frame),
 * and the coordinator's token cost (clusterOf's figures: fixed costs). Null for a step that is not one plain decode row
 * (a prompt, a verification of drafts), when a link has not been measured, or while a node of the ring is announced
 * busy: its slowdown is a probe's figure, and fixed costs priced at it (a restarted coordinator's neighbour read 6.9×
 * for a second) made a 3-node ring's excess −0.55 ms a hop, which priced its hops at 0 once the node was quiet again —
 * as a calibration, the excess is of quiet steps.
 */
export function readServedStep(timing: StepTiming, route: Route, self: string, member: MemberOf, model: Pick<ModelProfile, 'hiddenBytesPerToken' | 'tokenBytes'>): ServedStepReading | null {
  if (timing.step < 1 || (timing.tokens ?? 1) !== 1 || timing.stageMs.length !== route.peers.length) return null;
  const peers = route.peers;
  const busy = (peerId: string) => (member(peerId)?.load?.slowdown ?? 1) > 1;
  if (busy(self) || peers.some(busy)) return null;
  const legs = legsOf(route, self);
  if (legs.length === 0) return null;
  let fixedMs = 0;
  for (const [from, to, hidden] of legs) {
    const link = member(from)?.links[to];
    if (!link) return null;
    fixedMs += (hidden ? model.hiddenBytesPerToken : model.tokenBytes) / (link.bandwidthMBps * 1e3);
  }
  const fixed = (peerId: string, cost: 'stepOverheadMs' | 'tokenOverheadMs') => member(peerId)?.profile[cost] ?? 0;
  peers.forEach((peerId, i) => {
    if (route.ranges[i][0] !== 0) fixedMs += fixed(peerId, 'stepOverheadMs');
  });
  fixedMs += fixed(self, 'tokenOverheadMs');
  const computeMs = timing.stageMs.reduce((a, b) => a + b, 0);
  return { measuredMs: timing.roundTripMs + timing.coordinatorMs - computeMs, fixedMs, hops: legs.length };
}
