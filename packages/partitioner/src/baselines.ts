import type { Cluster } from './cluster.js';
import type { Assignment } from './plan.js';

/**
 * exo's split (Python era), as in its RingMemoryWeightedPartitioningStrategy: devices sorted by memory, descending;
 * device i gets [int(start_frac·L), int(end_frac·L) − 1] where the fractions are cumulative memory shares;
 * the last device ends at L − 1; empty shards are dropped. Memory only: no compute, bandwidth or links.
 */
export function memoryWeightedSplit(cluster: Cluster, numLayers: number): Assignment[] {
  // exo sorts by (memory, node id) in reverse and rounds each cumulative fraction to 5 decimals.
  const order = cluster.devices
    .map((d, i) => ({ d, i }))
    .sort((a, b) => b.d.memoryBytes - a.d.memoryBytes || (a.d.id < b.d.id ? 1 : a.d.id > b.d.id ? -1 : 0));
  const total = order.reduce((s, x) => s + x.d.memoryBytes, 0);
  const out: Assignment[] = [];
  let startFrac = 0;
  order.forEach((x, k) => {
    const endFrac = Math.round((startFrac + x.d.memoryBytes / total) * 1e5) / 1e5;
    const start = Math.floor(startFrac * numLayers);
    const endInclusive = k === order.length - 1 ? numLayers - 1 : Math.floor(endFrac * numLayers) - 1;
    if (endInclusive >= start) out.push({ device: x.i, start, end: endInclusive + 1 });
    startFrac = endFrac;
  });
  return out;
}

/** Equal split in the listed device order; the first L mod k devices take one layer more. */
export function equalSplit(cluster: Cluster, numLayers: number): Assignment[] {
  const k = Math.min(cluster.devices.length, numLayers);
  const base = Math.floor(numLayers / k);
  const extra = numLayers % k;
  const out: Assignment[] = [];
  let at = 0;
  for (let i = 0; i < k; i++) {
    const n = base + (i < extra ? 1 : 0);
    out.push({ device: i, start: at, end: at + n });
    at += n;
  }
  return out;
}

/** A user's split: layers per device in the listed device order; zero-layer devices are left out. */
export function givenSplit(layersPerDevice: readonly number[]): Assignment[] {
  const out: Assignment[] = [];
  let at = 0;
  layersPerDevice.forEach((n, i) => {
    if (n > 0) out.push({ device: i, start: at, end: at + n });
    at += n;
  });
  return out;
}
