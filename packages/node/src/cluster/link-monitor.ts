import type { EdgeHost } from '../network/edge-host.js';
import type { MessageStream } from '../network/message-stream.js';
import type { NodeLogger } from '../network/node-logger.js';
import { PROTOCOLS } from '../network/protocol-ids.js';
import { RequestChannel, type ChannelEnvelope } from '../network/request-channel.js';
import { fastestRoundTrip } from './fastest-round-trip.js';
import type { ClusterMember, Membership } from './membership.js';

/** One direction of a link as measured by its sending end. */
export interface LinkStats {
  /** Fastest round trip of a small frame on an open stream (of a measurement's pings; the best of recent measurements), ms. */
  rttMs: number;
  /** Throughput of one bulk frame (sender → receiver), MB/s (1e6 bytes). */
  bandwidthMBps: number;
  measuredAt: number;
}

export interface LinkMonitorOptions {
  /** Re-measure every link this often. Default 15 s. */
  refreshIntervalMs?: number;
  /** Pings per RTT measurement. Default 7. */
  pings?: number;
  /** Bulk frame size for bandwidth. Default 1 MB. */
  bulkBytes?: number;
}

type ProbeRequest = { t: 'ping' } | { t: 'bulk'; data: Uint8Array };
type ProbeEnvelope = ChannelEnvelope<ProbeRequest, number, never>;

/** Measurements a link's figure is the best of. */
const LINK_HISTORY = 4;
/** Second measurement after a join. */
const SETTLE_MS = 4000;

/** Pause between the pings (and the bulk probes) of one measurement. */
const PING_SPACING_MS = 150;

/** Largest bulk probe answered (the monitor sends 1 MB). */
const MAX_BULK_BYTES = 16 * 1024 * 1024;

function parseProbeRequest(body: unknown): ProbeRequest {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (b.t === 'ping') return { t: 'ping' };
  if (b.t === 'bulk' && b.data instanceof Uint8Array && b.data.byteLength <= MAX_BULK_BYTES) return { t: 'bulk', data: b.data };
  throw new Error('a probe is {t: "ping"} or {t: "bulk", data: bytes}');
}

/**
 * Measures latency and bandwidth to every member on join and periodically, over a kept-open
 * `/edge-node/probe` stream, and publishes the results through the membership announcement.
 */
export class LinkMonitor {
  private readonly stats = new Map<string, LinkStats>();
  private readonly history = new Map<string, LinkStats[]>();
  private readonly channels = new Map<string, RequestChannel<ProbeRequest, number>>();
  private readonly inFlight = new Set<string>();
  private readonly refreshIntervalMs: number;
  private readonly pings: number;
  private readonly bulkBytes: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly host: EdgeHost,
    private readonly membership: Membership,
    private readonly log: NodeLogger,
    options: LinkMonitorOptions = {},
  ) {
    this.refreshIntervalMs = options.refreshIntervalMs ?? 15_000;
    this.pings = options.pings ?? 7;
    this.bulkBytes = options.bulkBytes ?? 1_000_000;
  }

  async start(): Promise<void> {
    await this.host.handle(PROTOCOLS.probe, (stream, info) => {
      new RequestChannel<ProbeRequest, number>(stream as MessageStream<ProbeEnvelope>, {
        onRequest: (r) => (r.t === 'bulk' ? r.data.byteLength : 0),
        parseRequest: parseProbeRequest,
        onProtocolError: (err) => this.log.warn(`reset probe stream from ${info.remotePeer.slice(-8)}: ${err.message}`),
      });
    });
    this.membership.events.on('join', (m: ClusterMember) => {
      void this.measure(m.peerId).catch(() => {});
      // A node that just joined is often still loading its model: measure again once it has settled.
      setTimeout(() => {
        if (this.membership.get(m.peerId)) void this.measure(m.peerId).catch(() => {});
      }, SETTLE_MS).unref();
    });
    this.membership.events.on('leave', (m: ClusterMember) => {
      this.stats.delete(m.peerId);
      this.history.delete(m.peerId);
      this.channels.get(m.peerId)?.stream.abort(new Error('peer left'));
      this.channels.delete(m.peerId);
      this.membership.setLinks(this.links());
    });
    this.timer = setInterval(() => {
      for (const m of this.membership.members()) void this.measure(m.peerId).catch(() => {});
    }, this.refreshIntervalMs);
    this.timer.unref();
  }

  /** Current measurements from this node, keyed by peer id. */
  links(): Record<string, LinkStats> {
    return Object.fromEntries(this.stats);
  }

  /** Measures the link to `peerId` now (fastest of several pings, warm ones among them, then one bulk frame). */
  async measure(peerId: string): Promise<LinkStats> {
    if (this.inFlight.has(peerId)) throw new Error(`a measurement to ${peerId} is already running`);
    this.inFlight.add(peerId);
    try {
      const channel = await this.channel(peerId);
      // The fastest round trip is the link's own latency. Slower ones also hold time either node spent computing or
      // loading (a ping waits behind a stage's forward pass), which the planner already counts as compute.
      const rttMs = await fastestRoundTrip(() => channel.request({ t: 'ping' }, { timeoutMs: 2000 }), this.pings, PING_SPACING_MS);
      const data = new Uint8Array(this.bulkBytes);
      let best = Infinity;
      for (let i = 0; i < 2; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, PING_SPACING_MS));
        const t0 = performance.now();
        await channel.request({ t: 'bulk', data }, { timeoutMs: 10_000 });
        best = Math.min(best, performance.now() - t0);
      }
      // Subtract one round trip: what remains is the time the bytes took on the wire (and in the stacks).
      const seconds = Math.max(best - rttMs, 0.01) / 1000;
      const measured: LinkStats = {
        rttMs: Math.round(rttMs * 1000) / 1000,
        bandwidthMBps: Math.round((this.bulkBytes / seconds / 1e6) * 10) / 10,
        measuredAt: Date.now(),
      };
      if (!this.membership.get(peerId)) return measured;
      // A busy moment on either node only ever makes a link look slower, so the link is the best of the recent
      // measurements (a lasting change still shows once the older ones age out).
      const recent = [...(this.history.get(peerId) ?? []), measured].slice(-LINK_HISTORY);
      this.history.set(peerId, recent);
      const stats: LinkStats = {
        rttMs: Math.min(...recent.map((r) => r.rttMs)),
        bandwidthMBps: Math.max(...recent.map((r) => r.bandwidthMBps)),
        measuredAt: measured.measuredAt,
      };
      this.stats.set(peerId, stats);
      this.membership.setLinks(this.links());
      return stats;
    } catch (err) {
      this.log.debug(`link measurement to ${peerId} failed: ${(err as Error).message}`);
      throw err;
    } finally {
      this.inFlight.delete(peerId);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.channels.values()) c.stream.abort(new Error('node stopping'));
    this.channels.clear();
  }

  private async channel(peerId: string): Promise<RequestChannel<ProbeRequest, number>> {
    const existing = this.channels.get(peerId);
    if (existing && existing.stream.writable) return existing;
    const stream = await this.host.openMessageStream<ProbeEnvelope>(peerId, PROTOCOLS.probe);
    const channel = new RequestChannel<ProbeRequest, number>(stream);
    this.channels.set(peerId, channel);
    return channel;
  }
}
