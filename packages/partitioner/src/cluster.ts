import { InvalidDevicesError } from './errors.js';

/** A device's measured (or declared) capabilities. */
export interface Device {
  id: string;
  /** Sustained compute, GFLOP/s (decode: matrix-vector work). */
  gflops: number;
  /** Sustained compute for prefill (matrix-matrix work), when measured separately. Default: gflops. */
  gflopsPrefill?: number;
  /** Sustained memory read bandwidth, GB/s. */
  memBandwidthGBps: number;
  /** Memory the runtime may use on this device, bytes. */
  memoryBytes: number;
  /**
   * Fixed ms of one step of a stage on this device whatever its layers, when the step comes in a frame from another
   * device: the runtime's scheduling, frames in and out, turns of the event loop. It dominates a small model's step.
   * The first stage's step is started by the token's coordinator on the same device (tokenOverheadMs). Default 0.
   */
  stepOverheadMs?: number;
  /** Fixed ms a token spends on this device when it coordinates: sampling, streaming it, sending the next step. Default 0. */
  tokenOverheadMs?: number;
  /** Fixed ms of every pass of a stage's layers after an idle moment, whatever its layers (caches and a core woken anew). Default 0. */
  passOverheadMs?: number;
  /**
   * The part of tokenOverheadMs that is the process being woken by the token's arrival. A token whose last stage ran
   * on its coordinator's device arrives without waking it (the coordinator computed it), so it pays the rest. Default 0.
   */
  wakeMs?: number;
}

export interface LinkProfile {
  latencyMs: number;
  bandwidthMBps: number;
}

/** A measured link. Applies to both directions unless the reverse direction is listed too. */
export interface Link extends LinkProfile {
  from: string;
  to: string;
}

export interface Cluster {
  devices: Device[];
  links: Link[];
  /** For pairs not listed in `links`. */
  defaultLink?: LinkProfile;
}

/** Looks links up by device index: listed direction first, then the reverse, then the default. */
export class LinkTable {
  private readonly table: (LinkProfile | undefined)[];
  constructor(readonly cluster: Cluster) {
    const n = cluster.devices.length;
    const index = new Map(cluster.devices.map((d, i) => [d.id, i]));
    this.table = new Array<LinkProfile | undefined>(n * n);
    // Reverse directions first so that an explicitly listed direction wins.
    for (const l of cluster.links) {
      const a = index.get(l.from);
      const b = index.get(l.to);
      if (a === undefined || b === undefined) continue;
      if (this.table[b * n + a] === undefined) this.table[b * n + a] = l;
    }
    for (const l of cluster.links) {
      const a = index.get(l.from);
      const b = index.get(l.to);
      if (a === undefined || b === undefined) continue;
      this.table[a * n + b] = l;
    }
  }
  get(a: number, b: number): LinkProfile {
    const l = this.table[a * this.cluster.devices.length + b] ?? this.cluster.defaultLink;
    if (!l) {
      const d = this.cluster.devices;
      throw new InvalidDevicesError(`no link between "${d[a].id}" and "${d[b].id}" and no defaultLink`);
    }
    return l;
  }
}

function positive(v: unknown, what: string, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidDevicesError(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function linkProfile(v: unknown, what: string): LinkProfile {
  if (typeof v !== 'object' || v === null) throw new InvalidDevicesError(`${what} must be an object { latencyMs, bandwidthMBps }`);
  const o = v as Record<string, unknown>;
  return { latencyMs: positive(o.latencyMs, `${what}.latencyMs`, true), bandwidthMBps: positive(o.bandwidthMBps, `${what}.bandwidthMBps`) };
}

/**
 * Validates a devices.json object: `{ devices: [{ id, gflops, memBandwidthGBps, memoryBytes, stepOverheadMs?,
 * tokenOverheadMs?, passOverheadMs?, wakeMs? }],
 * links?: [{ from, to, latencyMs, bandwidthMBps }], defaultLink?: { latencyMs, bandwidthMBps } }`.
 * A defaultLink is required when some pair of devices has no listed link.
 */
export function parseCluster(json: unknown): Cluster {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidDevicesError('devices file must be a JSON object with a "devices" array');
  }
  const o = json as Record<string, unknown>;
  if (!Array.isArray(o.devices) || o.devices.length === 0) {
    throw new InvalidDevicesError('devices file needs a non-empty "devices" array');
  }
  const ids = new Set<string>();
  const devices: Device[] = o.devices.map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw new InvalidDevicesError(`devices[${i}] must be an object`);
    const d = raw as Record<string, unknown>;
    if (typeof d.id !== 'string' || d.id === '') throw new InvalidDevicesError(`devices[${i}].id must be a non-empty string`);
    if (ids.has(d.id)) throw new InvalidDevicesError(`device id "${d.id}" appears twice`);
    ids.add(d.id);
    const dev: Device = {
      id: d.id,
      gflops: positive(d.gflops, `devices[${i}].gflops ("${d.id}")`),
      memBandwidthGBps: positive(d.memBandwidthGBps, `devices[${i}].memBandwidthGBps ("${d.id}")`),
      memoryBytes: positive(d.memoryBytes, `devices[${i}].memoryBytes ("${d.id}")`),
    };
    if (d.gflopsPrefill !== undefined) dev.gflopsPrefill = positive(d.gflopsPrefill, `devices[${i}].gflopsPrefill ("${d.id}")`);
    if (d.stepOverheadMs !== undefined) dev.stepOverheadMs = positive(d.stepOverheadMs, `devices[${i}].stepOverheadMs ("${d.id}")`, true);
    if (d.tokenOverheadMs !== undefined) dev.tokenOverheadMs = positive(d.tokenOverheadMs, `devices[${i}].tokenOverheadMs ("${d.id}")`, true);
    if (d.passOverheadMs !== undefined) dev.passOverheadMs = positive(d.passOverheadMs, `devices[${i}].passOverheadMs ("${d.id}")`, true);
    if (d.wakeMs !== undefined) dev.wakeMs = positive(d.wakeMs, `devices[${i}].wakeMs ("${d.id}")`, true);
    return dev;
  });
  const rawLinks = o.links ?? [];
  if (!Array.isArray(rawLinks)) throw new InvalidDevicesError('"links" must be an array');
  const links: Link[] = rawLinks.map((raw, i) => {
    const p = linkProfile(raw, `links[${i}]`);
    const l = raw as Record<string, unknown>;
    for (const end of ['from', 'to'] as const) {
      if (typeof l[end] !== 'string' || !ids.has(l[end] as string)) {
        throw new InvalidDevicesError(`links[${i}].${end} must name a listed device, got ${JSON.stringify(l[end])}`);
      }
    }
    if (l.from === l.to) throw new InvalidDevicesError(`links[${i}] connects "${String(l.from)}" to itself`);
    return { from: l.from as string, to: l.to as string, ...p };
  });
  const cluster: Cluster = { devices, links };
  if (o.defaultLink !== undefined) cluster.defaultLink = linkProfile(o.defaultLink, 'defaultLink');
  validateCluster(cluster);
  return cluster;
}

/** Checks a Cluster built in code (same rules as parseCluster). */
export function validateCluster(c: Cluster): void {
  if (c.devices.length === 0) throw new InvalidDevicesError('the cluster has no devices');
  const ids = new Set(c.devices.map((d) => d.id));
  if (ids.size !== c.devices.length) throw new InvalidDevicesError('device ids must be unique');
  for (const d of c.devices) {
    positive(d.gflops, `gflops of "${d.id}"`);
    positive(d.memBandwidthGBps, `memBandwidthGBps of "${d.id}"`);
    positive(d.memoryBytes, `memoryBytes of "${d.id}"`);
    if (d.stepOverheadMs !== undefined) positive(d.stepOverheadMs, `stepOverheadMs of "${d.id}"`, true);
    if (d.tokenOverheadMs !== undefined) positive(d.tokenOverheadMs, `tokenOverheadMs of "${d.id}"`, true);
    if (d.passOverheadMs !== undefined) positive(d.passOverheadMs, `passOverheadMs of "${d.id}"`, true);
    if (d.wakeMs !== undefined) positive(d.wakeMs, `wakeMs of "${d.id}"`, true);
  }
  if (!c.defaultLink && c.devices.length > 1) {
    const listed = new Set(c.links.flatMap((l) => [`${l.from}\u0000${l.to}`, `${l.to}\u0000${l.from}`]));
    for (const a of c.devices) {
      for (const b of c.devices) {
        if (a !== b && !listed.has(`${a.id}\u0000${b.id}`)) {
          throw new InvalidDevicesError(`no link between "${a.id}" and "${b.id}": list it in "links" or give a "defaultLink"`);
        }
      }
    }
  }
}
