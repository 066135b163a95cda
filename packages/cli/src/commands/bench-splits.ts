import { modelProfile, planPipeline, type Cluster, type ModelShape, type RequestShape } from '@edge-node/partitioner';
import { UsageError } from '../cli-command.js';
import type { PlanStrategy } from '../option-parsers.js';

/** `all` enumerates this many splits at most: beyond, the run would take hours; name the splits instead. */
export const MAX_ALL_SPLITS = 64;

export type SplitSpec = { kind: 'all' } | { kind: 'auto' } | { kind: 'given'; splits: number[][] };

/** Parses --splits: all, auto, or splits separated by ";" or spaces, e.g. "30; 15,15; 10,10,10". */
export function parseSplitSpec(value: string): SplitSpec {
  const v = value.trim();
  if (v === 'all' || v === 'auto') return { kind: v };
  const splits = v
    .split(/[;\s]+/)
    .filter((s) => s !== '')
    .map((s) => {
      const parts = s.split(',').map((x) => Number(x.trim()));
      if (parts.length === 0 || parts.some((n) => !Number.isInteger(n) || n < 1)) {
        throw new UsageError(`--splits needs all, auto, or layer counts per stage like "3,2" (several separated by ";"), got "${s}"`);
      }
      return parts;
    });
  if (splits.length === 0) throw new UsageError('--splits is empty');
  return { kind: 'given', splits };
}

/** Every way to cut `layers` contiguous layers into 1..maxStages non-empty stages. */
export function allSplits(layers: number, maxStages: number): number[][] {
  const out: number[][] = [];
  const rec = (left: number, stagesLeft: number, prefix: number[]) => {
    if (left === 0) {
      if (prefix.length > 0) out.push(prefix);
      return;
    }
    if (stagesLeft === 0) return;
    // The last stage takes whatever is left; earlier ones take 1..left.
    for (let n = 1; n <= left; n++) rec(left - n, stagesLeft - 1, [...prefix, n]);
  };
  rec(layers, maxStages, []);
  return out.sort((a, b) => a.length - b.length);
}

/**
 * The partitioner's split for each cluster size 1..n (the first k nodes in ring order), as layer counts of its
 * stages in ring order. Duplicates (a plan that leaves nodes out) are dropped.
 */
export function autoSplits(shape: ModelShape, cluster: Cluster, request: RequestShape, strategy: PlanStrategy): number[][] {
  const profile = modelProfile(shape);
  const seen = new Set<string>();
  const out: number[][] = [];
  for (let k = 1; k <= cluster.devices.length; k++) {
    const sub: Cluster = { ...cluster, devices: cluster.devices.slice(0, k) };
    const plan = planPipeline(profile, sub, request, { objective: 'latency', strategy });
    const split = plan.stages.filter((s) => s.endLayer > s.startLayer).sort((a, b) => a.startLayer - b.startLayer).map((s) => s.endLayer - s.startLayer);
    const key = split.join(',');
    if (!seen.has(key)) {
      seen.add(key);
      out.push(split);
    }
  }
  return out;
}

/** Checks given splits against the model and the node count. */
export function checkSplits(splits: number[][], layers: number, nodes: number): void {
  for (const s of splits) {
    const total = s.reduce((a, b) => a + b, 0);
    if (total !== layers) throw new UsageError(`split ${s.join(',')} assigns ${total} layers; the model has ${layers}`);
    if (s.length > nodes) throw new UsageError(`split ${s.join(',')} has ${s.length} stages but only ${nodes} node(s) run`);
  }
}

export function resolveSplits(spec: SplitSpec, layers: number, nodes: number, auto: () => number[][]): number[][] {
  if (spec.kind === 'given') {
    checkSplits(spec.splits, layers, nodes);
    return spec.splits;
  }
  if (spec.kind === 'auto') return auto();
  const all = allSplits(layers, nodes);
  if (all.length > MAX_ALL_SPLITS) {
    throw new UsageError(`--splits all would measure ${all.length} splits of ${layers} layers over ${nodes} nodes; use auto or list splits like "10,10,10; 15,15"`);
  }
  return all;
}
