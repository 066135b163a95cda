import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { EdgeHost, PeerIdentifiedEvent } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import { DuplicatePeerIdError } from '../network/network-errors.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS, speaksEdgeNode } from '../network/protocol-ids.js';
import type { DeviceLoad } from './device-load.js';
import type { DeviceProfile } from './device-profile.js';
import type { LinkStats } from './link-monitor.js';
import { LoopLag, livenessVerdict, type LivenessPolicy } from './liveness.js';
import { parseHeartbeatMessage, parseProfileMessage, type Announcement, type GossipEntry, type HeartbeatMessage, type ProfileMessage } from './membership-messages.js';

/** What a node serves in the pipeline; filled in by the pipeline once a model is loaded. */
export interface StageInfo {
  /** Model identifier (file name or hash) the node has loaded. */
  model?: string;
  /** First layer (inclusive) of the contiguous range this node runs. */
  firstLayer?: number;
  /** Last layer (exclusive). */
  endLayer?: number;
  /** Ready to serve activations. */
  ready?: boolean;
  /** Anything else the pipeline wants every node to know (must be msgpack-serialisable). */
  [key: string]: unknown;
}

/** One node of the cluster, as known to this node. */
export interface ClusterMember {
  peerId: string;
  name: string;
  /** Random per process start: tells a restarted node from a stale record, and two nodes sharing an identity apart. */
  instanceId: string;
  /** Full multiaddrs ending /p2p/<peerId>, as announced by the node itself. */
  addresses: string[];
  profile: DeviceProfile;
  /** The device's load now (slowdown, memory budget), as the node watches it while serving; null before it says. */
  load: DeviceLoad | null;
  stageInfo: StageInfo | null;
  /** The node's own measurements of its links, keyed by the other end's peer id. */
  links: Record<string, LinkStats>;
  /** Bumped by the node at every change of its announcement. */
  version: number;
  /** Local clock (ms): when this node saw it join / last heard from it. */
  joinedAt: number;
  lastSeen: number;
}

export interface MembershipEvents {
  join: [member: ClusterMember];
  leave: [member: ClusterMember, reason: string];
  update: [member: ClusterMember];
  /** The node must stop (another node runs with the same identity). */
  fatal: [error: Error];
}

export interface MembershipOptions {
  /** Beat period on the heartbeat stream. Default 500 ms. */
  heartbeatIntervalMs?: number;
  /** A member not heard from for this long is dropped and disconnected. Default 2000 ms (leave noticed < 3 s). */
  failureTimeoutMs?: number;
  /** Member-list gossip period (piggybacks on beats). Default 2000 ms. */
  gossipIntervalMs?: number;
  /** Most extra silence tolerated from a peer that announced late beats (it is busy, not gone). Default 3 s (liveness.ts). */
  maxLagGraceMs?: number;
}


interface Session {
  profileOut: MessageStream<unknown, ProfileMessage> | null;
  heartbeatOut: MessageStream<unknown, HeartbeatMessage> | null;
  opening: boolean;
  lastHeard: number;
  /** How late the peer says its beats have recently been. */
  peerLagMs: number;
}

/**
 * The set of cluster peers (peers speaking our protocols) with their profiles. Each node announces itself on an
 * outbound `/edge-node/profile` stream to every peer (on connect and on change), beats on `/edge-node/heartbeat`,
 * and gossips the member list so a node that bootstrapped to one peer dials all the others.
 */
export class Membership {
  readonly events = new EventEmitter<MembershipEvents>();
  private readonly local: Announcement;
  private readonly remote = new Map<string, ClusterMember>();
  private readonly sessions = new Map<string, Session>();
  private readonly dialing = new Set<string>();
  private readonly heartbeatIntervalMs: number;
  private readonly failureTimeoutMs: number;
  private readonly gossipIntervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private lastGossip = 0;
  private broadcastPending = false;
  private conflictSince: number | null = null;
  private conflictLast = 0;
  private stopped = false;
  private lastTick = 0;
  private readonly loopLag = new LoopLag();
  private readonly liveness: LivenessPolicy;
  private readonly tickMs: number;

  constructor(
    private readonly host: EdgeHost,
    init: { name: string; profile: DeviceProfile; stageInfo?: StageInfo | null },
    private readonly log: NodeLogger,
    options: MembershipOptions = {},
  ) {
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 500;
    this.failureTimeoutMs = options.failureTimeoutMs ?? 2000;
    this.gossipIntervalMs = options.gossipIntervalMs ?? 2000;
    this.liveness = { failureTimeoutMs: this.failureTimeoutMs, ...(options.maxLagGraceMs !== undefined ? { maxGraceMs: options.maxLagGraceMs } : {}) };
    this.tickMs = Math.min(this.heartbeatIntervalMs, 250);
    this.local = {
      peerId: host.peerId,
      name: init.name,
      instanceId: randomUUID(),
      addresses: [],
      profile: init.profile,
      load: null,
      stageInfo: init.stageInfo ?? null,
      links: {},
      version: 1,
    };
  }

  /** Registers the protocol handlers (before the host starts, so identify advertises them) and starts beating. */
  async start(): Promise<void> {
    await this.host.handle(PROTOCOLS.profile, (stream, info) => this.readProfiles(stream, info.remotePeer));
    await this.host.handle(PROTOCOLS.heartbeat, (stream, info) => this.readHeartbeats(stream, info.remotePeer));
    this.host.events.on('peer:identify', (e: PeerIdentifiedEvent) => {
      if (speaksEdgeNode(e.protocols)) this.ensureSession(e.peerId);
    });
    this.host.events.on('peer:disconnect', (peerId: string) => this.drop(peerId, 'connection closed'));
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** This node's own record. */
  self(): ClusterMember {
    const now = Date.now();
    return { ...this.local, addresses: this.host.addresses(), joinedAt: now, lastSeen: now };
  }

  /**
   * This node's device profile, without building its whole record: self() asks libp2p for its addresses (11–21 µs a
   * call with one address, hot, in a loop), which a stage's every run paid on the token's path when it read its
   * profile through it.
   */
  profile(): DeviceProfile {
    return this.local.profile;
  }

  /** The other members (not this node). */
  members(): ClusterMember[] {
    return [...this.remote.values()];
  }

  get(peerId: string): ClusterMember | undefined {
    return peerId === this.local.peerId ? this.self() : this.remote.get(peerId);
  }

  setStageInfo(stageInfo: StageInfo | null): void {
    this.local.stageInfo = stageInfo;
    this.changed();
  }

  setProfile(profile: DeviceProfile): void {
    this.local.profile = profile;
    this.changed();
  }

  setLoad(load: DeviceLoad): void {
    this.local.load = load;
    this.changed();
  }

  setLinks(links: Record<string, LinkStats>): void {
    this.local.links = links;
    this.changed();
  }

  /** Says goodbye to every peer (so they drop us at once) and stops. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(
      [...this.sessions.values()].map(async (s) => {
        await s.profileOut?.send({ t: 'bye' }).catch(() => {});
        await Promise.race([s.profileOut?.close(), new Promise((r) => setTimeout(r, 300))]);
        s.heartbeatOut?.abort(new Error('node stopping'));
      }),
    );
    this.sessions.clear();
  }

  private announcement(): Announcement {
    return { ...this.local, addresses: this.host.addresses() };
  }

  private changed(): void {
    this.local.version++;
    // Coalesce bursts of changes (e.g. links of several peers) into one broadcast.
    if (this.broadcastPending) return;
    this.broadcastPending = true;
    setTimeout(() => {
      this.broadcastPending = false;
      const msg: ProfileMessage = { t: 'profile', member: this.announcement() };
      for (const s of this.sessions.values()) s.profileOut?.send(msg).catch(() => {});
    }, 50);
  }

  private ensureSession(peerId: string): void {
    if (this.stopped || peerId === this.local.peerId) return;
    let s = this.sessions.get(peerId);
    if (!s) {
      s = { profileOut: null, heartbeatOut: null, opening: false, lastHeard: Date.now(), peerLagMs: 0 };
      this.sessions.set(peerId, s);
    }
    if (s.opening || (s.profileOut && s.heartbeatOut)) return;
    s.opening = true;
    const session = s;
    void (async () => {
      try {
        if (!session.profileOut) {
          const out = await this.host.openMessageStream<unknown, ProfileMessage>(peerId, PROTOCOLS.profile);
          session.profileOut = out;
          out.onClose(() => {
            if (session.profileOut === out) session.profileOut = null;
          });
          await out.send({ t: 'profile', member: this.announcement() });
        }
        if (!session.heartbeatOut) {
          const hb = await this.host.openMessageStream<unknown, HeartbeatMessage>(peerId, PROTOCOLS.heartbeat);
          session.heartbeatOut = hb;
          hb.onClose(() => {
            if (session.heartbeatOut === hb) session.heartbeatOut = null;
          });
          await hb.send({ t: 'hb', seq: this.seq, members: this.gossip() });
        }
      } catch (err) {
        this.log.debug(`cannot open membership streams to ${peerId}: ${(err as Error).message}`);
      } finally {
        session.opening = false;
      }
    })();
  }

  private async readProfiles(stream: MessageStream<unknown, unknown>, peerId: string): Promise<void> {
    for await (const raw of stream) {
      let msg: ProfileMessage;
      try {
        msg = parseProfileMessage(raw);
      } catch (err) {
        this.resetStream(stream, 'profile', peerId, err as Error);
        return;
      }
      this.heard(peerId);
      if (msg.t === 'bye') {
        this.drop(peerId, 'shut down');
        continue;
      }
      if (msg.member.peerId !== peerId) continue; // a node announces only itself
      const known = this.remote.get(peerId);
      const now = Date.now();
      if (!known) {
        const member: ClusterMember = { ...msg.member, joinedAt: now, lastSeen: now };
        this.remote.set(peerId, member);
        this.log.info(`join: ${member.name} (${peerId}) ${member.profile.runtime} ×${member.profile.threads} threads, ${formatBytes(member.profile.memoryBytes)}, ${this.remote.size + 1} nodes in the cluster`);
        this.events.emit('join', member);
        this.ensureSession(peerId);
      } else if (known.instanceId !== msg.member.instanceId || known.version !== msg.member.version) {
        const member: ClusterMember = { ...msg.member, joinedAt: known.joinedAt, lastSeen: now };
        this.remote.set(peerId, member);
        this.events.emit('update', member);
      }
    }
  }

  private async readHeartbeats(stream: MessageStream<unknown, unknown>, peerId: string): Promise<void> {
    for await (const raw of stream) {
      let msg: HeartbeatMessage;
      try {
        msg = parseHeartbeatMessage(raw);
      } catch (err) {
        this.resetStream(stream, 'heartbeat', peerId, err as Error);
        return;
      }
      this.heard(peerId);
      const s = this.sessions.get(peerId);
      if (s) s.peerLagMs = msg.lagMs ?? 0;
      if (msg.members) this.onGossip(msg.members, peerId);
    }
  }

  /** A malformed message: the stream is reset and the peer must open a new one (a healthy peer never does this). */
  private resetStream(stream: MessageStream<unknown, unknown>, protocol: string, peerId: string, err: Error): void {
    this.log.warn(`reset ${protocol} stream from ${peerId.slice(-8)}: ${err.message}`);
    stream.abort(err);
  }

  private heard(peerId: string): void {
    const now = Date.now();
    const s = this.sessions.get(peerId);
    if (s) s.lastHeard = now;
    const m = this.remote.get(peerId);
    if (m) m.lastSeen = now;
  }

  private gossip(): GossipEntry[] {
    const now = Date.now();
    const entries: GossipEntry[] = [{ peerId: this.local.peerId, instanceId: this.local.instanceId, addresses: this.host.addresses(), heardMsAgo: 0 }];
    for (const m of this.remote.values()) entries.push({ peerId: m.peerId, instanceId: m.instanceId, addresses: m.addresses, heardMsAgo: now - m.lastSeen });
    return entries;
  }

  private onGossip(entries: GossipEntry[], from: string): void {
    const now = Date.now();
    for (const e of entries) {
      if (typeof e?.peerId !== 'string' || !Array.isArray(e.addresses)) continue;
      if (e.peerId === this.local.peerId) {
        if (e.instanceId !== this.local.instanceId && e.heardMsAgo < this.failureTimeoutMs) this.noteConflict(from, now);
        continue;
      }
      if (this.remote.has(e.peerId) || this.host.isConnected(e.peerId) || this.dialing.has(e.peerId)) continue;
      // The first address this host has a transport for (a browser node dials only the WebSocket ones).
      const address = e.addresses.find((a) => typeof a === 'string' && a.endsWith(`/p2p/${e.peerId}`) && this.host.canDial(a));
      if (!address) continue;
      this.dialing.add(e.peerId);
      this.log.debug(`dialing ${e.peerId}, learned from ${from}`);
      this.host
        .dial(address)
        .catch((err: Error) => this.log.debug(`cannot dial gossiped peer ${e.peerId} at ${address}: ${err.message}`))
        .finally(() => this.dialing.delete(e.peerId));
    }
  }

  /**
   * Another process announces our peer id. A restart can briefly look like this (peers still remember our
   * previous instance), so only a conflict that persists past the failure timeout is fatal.
   */
  private noteConflict(from: string, now: number): void {
    if (this.conflictSince === null || now - this.conflictLast > 2 * this.gossipIntervalMs + this.failureTimeoutMs) this.conflictSince = now;
    this.conflictLast = now;
    if (now - this.conflictSince > this.failureTimeoutMs + this.gossipIntervalMs) {
      this.events.emit('fatal', new DuplicatePeerIdError(this.local.peerId, `peer ${from} is connected to another node with this identity`));
      this.conflictSince = null;
    }
  }

  /** How late this node's own beats have been over the last seconds (announced to peers in every beat). */
  get lagMs(): number {
    return this.loopLag.worst(Date.now());
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    const lag = Math.max(0, now - this.lastTick - this.tickMs);
    this.lastTick = now;
    this.loopLag.record(now, lag);
    if (lag > this.tickMs) {
      // This node's own loop was stalled: its peers' beats are waiting unread in the socket buffers (timers run
      // before I/O after a stall), so the stall is not their silence.
      for (const s of this.sessions.values()) s.lastHeard = Math.min(now, s.lastHeard + lag);
    }
    const withGossip = now - this.lastGossip >= this.gossipIntervalMs;
    if (withGossip) this.lastGossip = now;
    const seq = ++this.seq;
    const members = withGossip ? this.gossip() : undefined;
    const lagMs = Math.round(this.loopLag.worst(now));
    const beat: HeartbeatMessage = members ? { t: 'hb', seq, members, lagMs } : { t: 'hb', seq, lagMs };
    for (const [peerId, s] of this.sessions) {
      if (!s.heartbeatOut || !s.profileOut) {
        if (this.host.isConnected(peerId)) this.ensureSession(peerId);
      } else if (s.heartbeatOut.writable && s.heartbeatOut.raw.writeBufferLength < 64 * 1024) {
        s.heartbeatOut.send(beat).catch(() => {});
      }
      const verdict = livenessVerdict(now - s.lastHeard, s.peerLagMs, this.liveness, this.remote.get(peerId)?.load?.slowdown ?? 1);
      if (verdict.lost) {
        this.drop(peerId, verdict.reason);
        this.host.disconnect(peerId);
      }
    }
  }

  private drop(peerId: string, reason: string): void {
    const s = this.sessions.get(peerId);
    if (s) {
      this.sessions.delete(peerId);
      s.profileOut?.abort(new Error(reason));
      s.heartbeatOut?.abort(new Error(reason));
    }
    const member = this.remote.get(peerId);
    if (!member) return;
    this.remote.delete(peerId);
    this.log.info(`leave: ${member.name} (${peerId}): ${reason}; ${this.remote.size + 1} nodes in the cluster`);
    this.events.emit('leave', member, reason);
  }
}

function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(0)} MB`;
}
