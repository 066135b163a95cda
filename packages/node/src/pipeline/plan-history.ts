import type { DeviceLoad } from '../cluster/device-load.js';

/** One change of the plan in force, as /v1/cluster, `edge-node status` and the web page show it. */
export interface PlanChange {
  /** When the new plan took over (ms since epoch). */
  at: number;
  from: string;
  to: string;
  /** What changed on the devices, e.g. "b busy: 3.1× slower for 20 s". */
  cause: string;
  /** Which layers went where, e.g. "moved 6 layers to a". */
  moves: string;
  movedLayers: number;
  predictedBeforeMs: number;
  predictedAfterMs: number;
  /** Time to load the moved layers on their new devices. */
  loadMs: number;
  /** The whole line: cause; moves; predicted before → after. */
  reason: string;
}

export interface PlanStageView {
  peerId: string;
  name: string;
  startLayer: number;
  endLayer: number;
}

export interface DeviceView {
  peerId: string;
  name: string;
  load: DeviceLoad | null;
}

/** "b busy: 3.1× slower for 20 s", "b quiet again", "c low on memory: budget 300 MB (…)" for devices whose state differs from before. */
export function describeCause(now: number, devices: DeviceView[], before: Map<string, DeviceLoad | null>): string {
  const parts: string[] = [];
  for (const d of devices) {
    const was = before.get(d.peerId) ?? null;
    const slow = d.load?.slowdown ?? 1;
    const wasSlow = was?.slowdown ?? 1;
    if (slow !== wasSlow) {
      parts.push(slow > 1 ? `${d.name} busy: ${slow}× slower for ${Math.max(0, Math.round((now - (d.load?.since ?? now)) / 1000))} s` : `${d.name} quiet again`);
    }
    const budget = d.load?.memoryBudgetBytes;
    if (budget !== undefined && budget !== was?.memoryBudgetBytes && d.load?.memoryReason) {
      parts.push(`${d.name} short of memory: budget ${(budget / 1e6).toFixed(0)} MB (${d.load.memoryReason})`);
    } else if (budget !== undefined && was?.memoryReason && !d.load?.memoryReason) {
      parts.push(`${d.name} has its memory back`);
    }
  }
  return parts.length > 0 ? parts.join(', ') : 'device figures changed';
}

/** "moved 6 layers to a, 2 to c" (net layers each device gained), or "no layers moved". */
export function describeMoves(before: PlanStageView[], after: PlanStageView[]): string {
  const count = (stages: PlanStageView[]) => {
    const m = new Map<string, number>();
    for (const s of stages) m.set(s.peerId, (m.get(s.peerId) ?? 0) + s.endLayer - s.startLayer);
    return m;
  };
  const b = count(before);
  const names = new Map(after.map((s) => [s.peerId, s.name]));
  const gains = [...count(after)].map(([id, n]) => ({ name: names.get(id) ?? id.slice(-8), gain: n - (b.get(id) ?? 0) })).filter((g) => g.gain > 0);
  const left = before.filter((s) => !after.some((a) => a.peerId === s.peerId)).map((s) => s.name);
  if (gains.length === 0) return left.length ? `left out ${left.join(', ')}` : 'layers reordered';
  const moved = gains.map((g, i) => (i === 0 ? `${g.gain} layer${g.gain === 1 ? '' : 's'} to ${g.name}` : `${g.gain} to ${g.name}`)).join(', ');
  return `moved ${moved}${left.length ? `; left out ${left.join(', ')}` : ''}`;
}

/** Keeps the last `limit` changes. */
export class PlanHistory {
  private readonly items: PlanChange[] = [];
  constructor(private readonly limit = 10) {}
  add(change: PlanChange): void {
    this.items.push(change);
    if (this.items.length > this.limit) this.items.shift();
  }
  list(): PlanChange[] {
    return [...this.items];
  }
}
