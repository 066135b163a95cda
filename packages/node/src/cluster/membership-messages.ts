import { COMPUTE_BACKEND_NAMES, type ComputeBackendName } from '../engine/compute-backend.js';
import { KV_CACHE_TYPES, type KvCacheType } from '../engine/kv-cache.js';
import { NODE_RUNTIME_KINDS, type DeviceProfile, type NodeRuntimeKind } from './device-profile.js';
import type { DeviceLoad } from './device-load.js';
import type { LinkStats } from './link-monitor.js';
import type { ClusterMember, StageInfo } from './membership.js';

/**
 * Messages of the membership protocols and their validation: a peer's announcement feeds the planner, so a
 * malformed one must never reach it. Anything that does not match resets the stream it came on.
 */
export type Announcement = Omit<ClusterMember, 'joinedAt' | 'lastSeen'>;
export interface GossipEntry {
  peerId: string;
  instanceId: string;
  addresses: string[];
  heardMsAgo: number;
}
export type ProfileMessage = { t: 'profile'; member: Announcement } | { t: 'bye' };
/**
 * `lagMs`: how late this node's own beats have recently been (its event loop was busy computing or the device is
 * throttled). Peers wait that much longer before taking its silence for a loss.
 */
export type HeartbeatMessage = { t: 'hb'; seq: number; members?: GossipEntry[]; lagMs?: number };

/** A membership message that does not follow the schema. */
export class MembershipMessageError extends Error {
  override name = 'MembershipMessageError';
}

// Generous: the limits only keep a broken peer from making this node hold or loop over unbounded data.
const MAX_ADDRESSES = 256;
const MAX_MEMBERS = 1024;

function fail(msg: string): never {
  throw new MembershipMessageError(msg);
}

function record(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || ArrayBuffer.isView(x)) fail(`${what} must be a map`);
  return x as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, what: string, max = 256): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > max) fail(`${what}.${key} must be a string of at most ${max} characters`);
  return v;
}

function num(o: Record<string, unknown>, key: string, what: string, min = 0): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail(`${what}.${key} must be a finite number >= ${min}`);
  return v;
}

/** The fields of `keys` that a peer sent (older peers do not send them), each a finite number ≥ 0. */
function optionalNums<K extends string>(o: Record<string, unknown>, keys: readonly K[], what: string): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = num(o, k, what);
  return out;
}

function addresses(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_ADDRESSES || !v.every((a) => typeof a === 'string' && a.length <= 512)) {
    fail(`${what} must list at most ${MAX_ADDRESSES} address strings`);
  }
  return v as string[];
}

function parseProfile(v: unknown): DeviceProfile {
  const p = record(v, 'member.profile');
  const runtime = p.runtime;
  if (typeof runtime !== 'string' || !NODE_RUNTIME_KINDS.includes(runtime as NodeRuntimeKind)) fail(`member.profile.runtime must be one of ${NODE_RUNTIME_KINDS.join(', ')}`);
  const backend = p.backend;
  if (typeof backend !== 'string' || !COMPUTE_BACKEND_NAMES.includes(backend as ComputeBackendName)) fail(`member.profile.backend must be one of ${COMPUTE_BACKEND_NAMES.join(', ')}`);
  const kvCache = p.kvCache;
  if (kvCache !== undefined && (typeof kvCache !== 'string' || !KV_CACHE_TYPES.includes(kvCache as KvCacheType))) fail(`member.profile.kvCache must be one of ${KV_CACHE_TYPES.join(', ')}`);
  return {
    gflopsDecode: num(p, 'gflopsDecode', 'member.profile'),
    gflopsPrefill: num(p, 'gflopsPrefill', 'member.profile'),
    memBandwidthGBps: num(p, 'memBandwidthGBps', 'member.profile'),
    ...optionalNums(p, ['decodeSpread', 'stepOverheadMs', 'tokenOverheadMs', 'passOverheadMs', 'wakeMs'], 'member.profile'),
    memoryBytes: num(p, 'memoryBytes', 'member.profile'),
    memorySource: str(p, 'memorySource', 'member.profile'),
    runtime: runtime as NodeRuntimeKind,
    backend: backend as ComputeBackendName,
    isa: str(p, 'isa', 'member.profile', 32),
    threads: num(p, 'threads', 'member.profile', 1),
    ...(kvCache !== undefined ? { kvCache: kvCache as KvCacheType } : {}),
    cores: num(p, 'cores', 'member.profile'),
    hostname: str(p, 'hostname', 'member.profile'),
    measuredAt: num(p, 'measuredAt', 'member.profile'),
  };
}

function calibrationOf(l: Record<string, unknown>, key: 'calibration' | 'promptCalibration'): number | null {
  const v = l[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`member.load.${key} must be a positive number or null`);
  return v;
}

/** Largest hop excess a load may announce either way (a minute: far beyond any hop that still serves). */
const MAX_HOP_EXCESS_MS = 60_000;

function hopExcessOf(l: Record<string, unknown>): { hopExcessMs?: number } {
  const v = l.hopExcessMs;
  if (v === undefined || v === null) return {};
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_HOP_EXCESS_MS) fail(`member.load.hopExcessMs must be a number of ms within ±${MAX_HOP_EXCESS_MS}`);
  return { hopExcessMs: v };
}

function parseLoad(v: unknown): DeviceLoad | null {
  if (v === null || v === undefined) return null;
  const l = record(v, 'member.load');
  const source = l.source;
  if (source !== 'stage' && source !== 'probe' && source !== 'none') fail('member.load.source must be stage, probe or none');
  const slowdown = num(l, 'slowdown', 'member.load', 1);
  return {
    slowdown,
    calibration: calibrationOf(l, 'calibration'),
    // Absent from nodes of an earlier version: null, as before any prompt.
    promptCalibration: calibrationOf(l, 'promptCalibration'),
    ...hopExcessOf(l),
    source,
    since: num(l, 'since', 'member.load'),
    otherCpuCores: num(l, 'otherCpuCores', 'member.load'),
    availableMemoryBytes: num(l, 'availableMemoryBytes', 'member.load'),
    memoryBudgetBytes: num(l, 'memoryBudgetBytes', 'member.load'),
    memoryReason: str(l, 'memoryReason', 'member.load', 512),
  };
}

function parseStageInfo(v: unknown): StageInfo | null {
  if (v === null || v === undefined) return null;
  const s = record(v, 'member.stageInfo');
  if (s.model !== undefined && (typeof s.model !== 'string' || s.model.length > 512)) fail('member.stageInfo.model must be a string');
  if (s.ready !== undefined && typeof s.ready !== 'boolean') fail('member.stageInfo.ready must be a boolean');
  if (s.ranges !== undefined) {
    const ok =
      Array.isArray(s.ranges) &&
      s.ranges.length <= 64 &&
      s.ranges.every((r) => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isInteger(x) && x >= 0));
    if (!ok) fail('member.stageInfo.ranges must list [start, end) layer pairs');
  }
  if (s.split !== undefined && !(Array.isArray(s.split) && s.split.length >= 1 && s.split.length <= 1024 && s.split.every((x) => Number.isInteger(x) && x > 0))) {
    fail('member.stageInfo.split must list positive layer counts');
  }
  return s as StageInfo;
}

function parseLinks(v: unknown): Record<string, LinkStats> {
  const l = record(v, 'member.links');
  const keys = Object.keys(l);
  if (keys.length > MAX_MEMBERS) fail(`member.links has more than ${MAX_MEMBERS} entries`);
  const out: Record<string, LinkStats> = {};
  for (const k of keys) {
    const s = record(l[k], 'member.links entry');
    out[k] = { rttMs: num(s, 'rttMs', 'link'), bandwidthMBps: num(s, 'bandwidthMBps', 'link'), measuredAt: num(s, 'measuredAt', 'link') };
  }
  return out;
}

/** Checks a message of `/edge-node/profile`; throws MembershipMessageError. */
export function parseProfileMessage(raw: unknown): ProfileMessage {
  const m = record(raw, 'a profile message');
  if (m.t === 'bye') return { t: 'bye' };
  if (m.t !== 'profile') fail(`unknown profile message type ${JSON.stringify(m.t)?.slice(0, 40)}`);
  const a = record(m.member, 'member');
  const version = a.version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) fail('member.version must be a non-negative integer');
  return {
    t: 'profile',
    member: {
      peerId: str(a, 'peerId', 'member', 128),
      name: str(a, 'name', 'member', 1024),
      instanceId: str(a, 'instanceId', 'member', 128),
      addresses: addresses(a.addresses, 'member.addresses'),
      profile: parseProfile(a.profile),
      load: parseLoad(a.load),
      stageInfo: parseStageInfo(a.stageInfo),
      links: parseLinks(a.links),
      version,
    },
  };
}

/** Checks a message of `/edge-node/heartbeat`; throws MembershipMessageError. */
export function parseHeartbeatMessage(raw: unknown): HeartbeatMessage {
  const m = record(raw, 'a heartbeat');
  if (m.t !== 'hb') fail(`unknown heartbeat message type ${JSON.stringify(m.t)?.slice(0, 40)}`);
  const seq = m.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) fail('hb.seq must be a non-negative integer');
  const lag = m.lagMs;
  if (lag !== undefined && (typeof lag !== 'number' || !Number.isFinite(lag) || lag < 0)) fail('hb.lagMs must be a finite number >= 0');
  const base: HeartbeatMessage = lag === undefined ? { t: 'hb', seq } : { t: 'hb', seq, lagMs: lag };
  if (m.members === undefined) return base;
  if (!Array.isArray(m.members) || m.members.length > MAX_MEMBERS) fail(`hb.members must list at most ${MAX_MEMBERS} entries`);
  const members = m.members.map((e): GossipEntry => {
    const g = record(e, 'hb.members entry');
    return {
      peerId: str(g, 'peerId', 'hb.members entry', 128),
      instanceId: str(g, 'instanceId', 'hb.members entry', 128),
      addresses: addresses(g.addresses, 'hb.members entry addresses'),
      heardMsAgo: num(g, 'heardMsAgo', 'hb.members entry', -Infinity),
    };
  });
  return { ...base, members };
}
