import type { ClusterMember } from '../cluster/membership.js';

/** Whose word decides the cluster's plan, and why: the same answer on every node that sees the same members. */
export interface PlanOwner {
  peerId: string;
  name: string;
  /** The layer counts that node was given with --split, or null: then the partitioner plans from shared figures. */
  split: number[] | null;
  why: string;
}

/** Ring order, as the plan lays out stages: by name, then peer id. */
export const ringOrder = (a: ClusterMember, b: ClusterMember): number => a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId);

/** The --split a member announces with its stage (stageInfo.split), if any. */
export function announcedSplit(m: ClusterMember): number[] | null {
  const s = m.stageInfo?.split;
  return Array.isArray(s) && s.length > 0 && s.every((x) => Number.isInteger(x) && x > 0) ? (s as number[]) : null;
}

/**
 * The plan owner among the members serving a model: the first node, in ring order, that was given --split (its
 * split is announced to all, so every node lays out the same stages whoever coordinates a request); without one, the
 * coordinator (else the first node by name) plans with the partitioner from the figures all nodes share. A
 * coordinator given a --split of its own (`self`) keeps it: give --split to one node for one plan everywhere.
 */
export function planOwner(members: readonly ClusterMember[], self?: string): PlanOwner | null {
  const ordered = [...members].sort(ringOrder);
  const own = ordered.find((m) => m.peerId === self && announcedSplit(m) !== null);
  const withSplit = own ?? ordered.find((m) => announcedSplit(m) !== null);
  if (withSplit) {
    const split = announcedSplit(withSplit)!;
    return { peerId: withSplit.peerId, name: withSplit.name, split, why: `${withSplit.name} was given --split ${split.join(',')}` };
  }
  // No split anywhere: the coordinator plans with the partitioner, from the figures every node shares.
  const planner = ordered.find((m) => m.peerId === self) ?? ordered[0];
  return planner ? { peerId: planner.peerId, name: planner.name, split: null, why: `no node was given --split: ${planner.name} planned it with the partitioner` } : null;
}
