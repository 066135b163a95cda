import type { ClusterNode, DeviceProfile, PeerModelFile, WeightsFetchStats } from '@edge-node/node/browser';
import type { IdbTensorStore } from './idb-tensor-store.js';
import type { StageMeter } from './stage-meter.js';

/** Milliseconds from start to: device measured, joined (first peer), model manifest received. */
export interface BrowserNodeTimings {
  measuredMs: number;
  joinedMs: number;
  manifestMs: number | null;
  /** When the first layers the plan gave this tab were loaded (fetched or from IndexedDB), and how long that took. */
  layersLoadedMs: number | null;
  layersLoadMs: number | null;
}

export interface BrowserNodeStatus {
  peerId: string;
  profile: DeviceProfile;
  /** Layer ranges this tab holds, [start, end) each. */
  layers: { start: number; end: number }[];
  cachedBytes: number;
  cachedTensors: number;
  weights: WeightsFetchStats | null;
  /** Rows (tokens) per second this tab's stage computed over the last seconds, and in total. */
  tokensPerSecond: number;
  tokensTotal: number;
  /** Members this tab sees (itself first). */
  members: { peerId: string; name: string; runtime: string; layers: string }[];
  model: string | null;
  timings: BrowserNodeTimings;
}

/** What the page's status is read from. */
export interface BrowserNodeParts {
  cluster: ClusterNode;
  profile: DeviceProfile;
  store: IdbTensorStore;
  meter: StageMeter;
  model: () => PeerModelFile | null;
  timings: BrowserNodeTimings;
}

/** The tab as its page shows it: its layers, cache, weights fetched, rows computed, and the members it sees. */
export async function browserNodeStatus(p: BrowserNodeParts): Promise<BrowserNodeStatus> {
  const self = p.cluster.membership.self();
  const all = [self, ...p.cluster.membership.members()];
  const ranges = p.cluster.pipeline?.shards.ranges() ?? [];
  const model = p.model();
  return {
    peerId: self.peerId,
    profile: p.profile,
    layers: ranges.map((r) => ({ start: r.startLayer, end: r.endLayer })),
    cachedBytes: await p.store.storedBytes(),
    cachedTensors: await p.store.count(),
    weights: model?.fetchStats() ?? null,
    tokensPerSecond: p.meter.rate(),
    tokensTotal: p.meter.total,
    members: all.map((m) => ({ peerId: m.peerId, name: m.name, runtime: m.profile.runtime, layers: layersOf(m.stageInfo?.ranges) })),
    model: model?.config.name ?? null,
    timings: { ...p.timings },
  };
}

/** "[0, 2), [4, 5)" from the ranges a member announces ([start, end) pairs), as every view writes them. */
function layersOf(ranges: unknown): string {
  if (!Array.isArray(ranges)) return '';
  return ranges
    .filter((r): r is [number, number] => Array.isArray(r) && typeof r[0] === 'number' && typeof r[1] === 'number')
    .map(([a, b]) => `[${a}, ${b})`)
    .join(', ');
}
