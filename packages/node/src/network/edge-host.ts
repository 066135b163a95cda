import { EventEmitter } from 'node:events';
import { noise } from '@chainsafe/libp2p-noise';
import { identify, identifyPush } from '@libp2p/identify';
import type { Connection, IdentifyResult, Libp2p, PeerId, PeerInfo, Stream } from '@libp2p/interface';
import { mdns } from '@libp2p/mdns';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { yamux } from '@libp2p/yamux';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { DEFAULT_MAX_FRAME_BYTES, FrameCodec, FrameDecodeError, FrameTooLargeError } from './frame-codec.js';
import { MessageStream } from './message-stream.js';
import { DuplicatePeerIdError, InvalidAddressError, PeerUnreachableError } from './network-errors.js';
import type { NodeLogger } from './node-logger.js';
import { loadOrCreateIdentity } from './peer-identity.js';
import { coalescingTcp, installYamuxWindowUpdateThreshold } from './libp2p-wire-tuning.js';
import { findProtocolVersionMismatches, PROTOCOL_PREFIX } from './protocol-ids.js';

export interface EdgeHostOptions {
  /** Holds the persistent identity (`peer-key`). Created if missing. */
  dataDir: string;
  /** Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/0`. */
  listen: string[];
  /** Peers to dial at start and to keep reconnecting to, e.g. `/ip4/10.0.0.2/tcp/4001/p2p/12D3…` (the /p2p part is optional). */
  bootstrap: string[];
  /** Discover peers on the local network with mDNS (multicast). */
  mdns: boolean;
  /** pnet pre-shared key (file contents, see cluster-key.ts): only nodes with the same key can connect. */
  clusterKey?: Uint8Array;
  /** Human-readable node name (announced over mDNS and in profiles). */
  name: string;
  logger: NodeLogger;
  /** Largest frame a MessageStream accepts. Default 64 MiB; the muxer's buffers are raised to match. */
  maxFrameBytes?: number;
  /** mDNS query interval. Default 1000 ms (short: clusters are small and a LAN query is cheap). */
  mdnsIntervalMs?: number;
  /** Start libp2p (listen and dial) immediately. Pass false to register handlers first, then call start(). */
  start?: boolean;
}

export interface StreamInfo {
  remotePeer: string;
  connection: Connection;
}

/** Handles an inbound stream of `protocol`, already wrapped as a MessageStream. */
export type MessageStreamHandler = (stream: MessageStream<unknown, unknown>, info: StreamInfo) => void | Promise<void>;

export interface PeerIdentifiedEvent {
  peerId: string;
  protocols: string[];
  listenAddrs: string[];
  agentVersion?: string;
}

/** Events of an EdgeHost (listen with `host.events.on(name, listener)`). */
export interface EdgeHostEvents {
  /** First connection to a peer opened. */
  'peer:connect': [peerId: string];
  /** Last connection to a peer closed. */
  'peer:disconnect': [peerId: string];
  /** identify finished on a connection: the peer's protocols and listen addresses are known. */
  'peer:identify': [event: PeerIdentifiedEvent];
  /** This node's identity is in use elsewhere; the node must stop. */
  'fatal': [error: Error];
}

export interface EdgeHost {
  readonly peerId: string;
  readonly name: string;
  readonly codec: FrameCodec;
  readonly events: EventEmitter<EdgeHostEvents>;
  /** The underlying libp2p node, for what EdgeHost does not wrap. */
  readonly libp2p: Libp2p;
  /** Full multiaddrs ending in /p2p/<peerId>. */
  addresses(): string[];
  start(): Promise<void>;
  handle(protocol: string, handler: MessageStreamHandler, options?: { maxInboundStreams?: number }): Promise<void>;
  /** Opens a stream on an existing connection to `peerId`, or dials one using known addresses. */
  openMessageStream<In = unknown, Out = In>(peerId: string, protocol: string, options?: { signal?: AbortSignal }): Promise<MessageStream<In, Out>>;
  /** Dials a multiaddr (with or without /p2p/…) and returns the remote peer id. */
  dial(address: string, options?: { signal?: AbortSignal }): Promise<string>;
  connectedPeers(): string[];
  isConnected(peerId: string): boolean;
  /** Drops all connections to a peer at once (e.g. after missed heartbeats). */
  disconnect(peerId: string): void;
  close(): Promise<void>;
}

/** A handshake failure that most likely means the two nodes do not share a cluster key. */
function looksLikeTimeout(err: Error): boolean {
  return /TimeoutError|timed? ?out|due to timeout/i.test(`${err.name} ${err.message}`);
}

function looksLikeKeyMismatch(err: Error): boolean {
  const text = `${err.name} ${err.message}`;
  return /EncryptionFailed|multistream|protocol selection|UnexpectedEOF|Unexpected end|invalid|decrypt|handshake|aborted|reset|varint|InvalidMessage/i.test(text);
}

function parseAddress(value: string, what: string): Multiaddr {
  try {
    return multiaddr(value);
  } catch (err) {
    throw new InvalidAddressError(`${what} "${value}" is not a multiaddr (${(err as Error).message}); example: /ip4/192.168.1.20/tcp/4001`);
  }
}

function peerIdOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
}

class Libp2pEdgeHost implements EdgeHost {
  readonly peerId: string;
  readonly events = new EventEmitter<EdgeHostEvents>();
  private closing = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly bootstrapPeers = new Map<string, string>(); // address → peer id learned by dialing it

  constructor(
    readonly libp2p: Libp2p,
    readonly codec: FrameCodec,
    private readonly options: EdgeHostOptions,
    private readonly bootstrap: Multiaddr[],
  ) {
    this.peerId = libp2p.peerId.toString();
    libp2p.addEventListener('peer:connect', (evt) => this.events.emit('peer:connect', evt.detail.toString()));
    libp2p.addEventListener('peer:disconnect', (evt) => this.events.emit('peer:disconnect', evt.detail.toString()));
    libp2p.addEventListener('peer:identify', (evt) => this.onIdentify(evt.detail));
    libp2p.addEventListener('peer:discovery', (evt) => this.onDiscovery(evt.detail));
  }

  get name(): string {
    return this.options.name;
  }

  get log(): NodeLogger {
    return this.options.logger;
  }

  addresses(): string[] {
    return this.libp2p.getMultiaddrs().map((ma) => {
      const s = ma.toString();
      return peerIdOf(ma) ? s : `${s}/p2p/${this.peerId}`;
    });
  }

  async start(): Promise<void> {
    if (this.libp2p.status !== 'started') await this.libp2p.start();
    for (const ma of this.bootstrap) this.keepConnected(ma);
  }

  async handle(protocol: string, handler: MessageStreamHandler, options: { maxInboundStreams?: number } = {}): Promise<void> {
    await this.libp2p.handle(
      protocol,
      async (stream: Stream, connection: Connection) => {
        const remotePeer = connection.remotePeer.toString();
        const ms = new MessageStream<unknown, unknown>(stream, { codec: this.codec, remotePeer });
        // Undecodable or oversized frames reset the stream inside MessageStream: say so here, for every protocol.
        ms.onClose((info) => {
          if (info.local && (info.error instanceof FrameDecodeError || info.error instanceof FrameTooLargeError)) {
            this.log.warn(`reset ${protocol} stream from ${remotePeer.slice(-8)}: ${info.error.message}`);
          }
        });
        try {
          await handler(ms, { remotePeer, connection });
        } catch (err) {
          this.log.warn(`handler for ${protocol} from ${remotePeer} failed: ${(err as Error).message}`);
          ms.abort(err as Error);
        }
      },
      { maxInboundStreams: options.maxInboundStreams ?? 64, maxOutboundStreams: 64, force: true },
    );
  }

  async openMessageStream<In = unknown, Out = In>(peerId: string, protocol: string, options: { signal?: AbortSignal } = {}): Promise<MessageStream<In, Out>> {
    let id: PeerId;
    try {
      id = peerIdFromString(peerId);
    } catch {
      throw new PeerUnreachableError(`"${peerId}" is not a peer id`);
    }
    let stream: Stream;
    try {
      stream = await this.libp2p.dialProtocol(id, protocol, { signal: options.signal ?? AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new PeerUnreachableError(`cannot open ${protocol} to ${peerId}: ${(err as Error).message}`);
    }
    return new MessageStream<In, Out>(stream, { codec: this.codec, remotePeer: peerId });
  }

  async dial(address: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    const ma = parseAddress(address, 'address');
    const connection = await this.libp2p.dial(ma, { signal: options.signal ?? AbortSignal.timeout(10_000) });
    return connection.remotePeer.toString();
  }

  connectedPeers(): string[] {
    return this.libp2p.getPeers().map((p) => p.toString());
  }

  isConnected(peerId: string): boolean {
    try {
      return this.libp2p.getConnections(peerIdFromString(peerId)).some((c) => c.status === 'open');
    } catch {
      return false;
    }
  }

  disconnect(peerId: string): void {
    try {
      for (const c of this.libp2p.getConnections(peerIdFromString(peerId))) c.abort(new Error('peer stopped answering heartbeats'));
    } catch {
      // not a peer id or already gone
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.libp2p.stop();
  }

  private later(ms: number, fn: () => void): void {
    if (this.closing) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Dials a bootstrap address now and whenever it is not connected, with backoff (1 s … 5 s). */
  private keepConnected(ma: Multiaddr, failures = 0): void {
    if (this.closing) return;
    const address = ma.toString();
    const known = peerIdOf(ma) ?? this.bootstrapPeers.get(address);
    if (known && this.isConnected(known)) {
      this.later(1000, () => this.keepConnected(ma, 0));
      return;
    }
    this.libp2p
      .dial(ma, { signal: AbortSignal.timeout(5000) })
      .then((connection) => {
        const remote = connection.remotePeer.toString();
        this.bootstrapPeers.set(address, remote);
        this.log.info(`connected to bootstrap peer ${address}${peerIdOf(ma) ? '' : ` (peer id ${remote})`}`);
        this.later(1000, () => this.keepConnected(ma, 0));
      })
      .catch((err: Error) => {
        if (this.closing) return;
        if (/dial self/i.test(err.message) && !this.isOwnAddress(ma)) {
          this.events.emit('fatal', new DuplicatePeerIdError(this.peerId, `the bootstrap address ${address} answered with this node's own peer id`));
          return;
        }
        // Log the first failure and then every 10th, so a node waiting for its bootstrap peer does not flood the log.
        if (failures % 10 === 0) this.log.warn(`cannot connect to bootstrap peer ${address}: ${this.explainDialError(err)}; retrying`);
        this.later(Math.min(5000, 1000 * 2 ** Math.min(failures, 3)), () => this.keepConnected(ma, failures + 1));
      });
  }

  private isOwnAddress(ma: Multiaddr): boolean {
    const s = ma.toString();
    return this.libp2p.getMultiaddrs().some((own) => own.toString() === s || own.toString().startsWith(`${s}/p2p/`));
  }

  /** Adds the likely cause for handshake failures: the cluster key. */
  explainDialError(err: Error): string {
    const base = `${err.name}: ${err.message}`;
    // A peer too busy to finish the handshake in time is not a peer with another key: say which one it was.
    if (looksLikeTimeout(err)) {
      // In a keyed cluster a peer with another key never answers the garbled handshake either: name both causes.
      return this.options.clusterKey
        ? `${base} — the peer did not complete the connection within 5 s: it may be busy, throttled or far away, or hold a different cluster key (every node needs the same --cluster-key file)`
        : `${base} — the peer did not complete the connection within 5 s (it may be busy, throttled or far away)`;
    }
    if (!looksLikeKeyMismatch(err)) return base;
    return this.options.clusterKey
      ? `${base} — the secure handshake failed: the peer probably has a different cluster key, or none (every node needs the same --cluster-key file)`
      : `${base} — the secure handshake failed: the peer probably requires a cluster key (start this node with --cluster-key FILE, the same file as the cluster)`;
  }

  private onIdentify(result: IdentifyResult): void {
    const peerId = result.peerId.toString();
    if (peerId === this.peerId) return;
    const mismatches = findProtocolVersionMismatches(result.protocols);
    for (const m of mismatches) {
      this.log.error(
        `peer ${peerId} speaks ${PROTOCOL_PREFIX}${m.name}/${m.theirs} but this node speaks ${PROTOCOL_PREFIX}${m.name}/${m.ours}: ` +
          `the two nodes run incompatible edge-node versions; install the same version on every node`,
      );
    }
    this.events.emit('peer:identify', {
      peerId,
      protocols: result.protocols,
      listenAddrs: result.listenAddrs.map((a) => a.toString()),
      ...(result.agentVersion ? { agentVersion: result.agentVersion } : {}),
    });
  }

  private onDiscovery(info: PeerInfo): void {
    // libp2p also emits discovery for peers learned otherwise (identify, our own dials): dial only for mDNS.
    if (!this.options.mdns) return;
    const peerId = info.id.toString();
    if (this.closing || peerId === this.peerId || this.isConnected(peerId)) return;
    this.libp2p.dial(info.id, { signal: AbortSignal.timeout(5000) }).catch((err: Error) => {
      this.log.warn(`cannot connect to discovered peer ${peerId}: ${this.explainDialError(err)}`);
    });
  }
}

/**
 * Creates the libp2p node of an edge-node: TCP + (optional pnet) + Noise + yamux, identify, ping, mDNS when
 * enabled, bootstrap addresses kept connected, and a persistent identity in `dataDir`.
 */
export async function createEdgeHost(options: EdgeHostOptions): Promise<EdgeHost> {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const codec = new FrameCodec({ maxFrameBytes });
  const listen = options.listen.map((a) => parseAddress(a, '--listen'));
  const bootstrap = options.bootstrap.map((a) => parseAddress(a, '--bootstrap'));
  const { privateKey } = await loadOrCreateIdentity(options.dataDir);

  installYamuxWindowUpdateThreshold();
  const node = await createLibp2p({
    privateKey,
    start: false,
    addresses: { listen: listen.map((ma) => ma.toString()) },
    // One socket write per message, and yamux window updates only when due (see libp2p-wire-tuning.ts).
    transports: [coalescingTcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        // A whole frame may sit in the read buffer while the reader is busy; yamux's window grows to match.
        streamOptions: { maxReadBufferLength: maxFrameBytes + 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 },
      }),
    ],
    ...(options.clusterKey ? { connectionProtector: preSharedKey({ psk: options.clusterKey }) } : {}),
    peerDiscovery: options.mdns ? [mdns({ interval: options.mdnsIntervalMs ?? 1000, peerName: options.name })] : [],
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() },
    connectionManager: { dialTimeout: 5000 },
    // A peer too busy to answer libp2p's periodic ping in time is not gone: membership decides loss from evidence
    // (closed connection, silence beyond what the peer announced), so the monitor must not cut the connection.
    connectionMonitor: { abortConnectionOnPingFailure: false },
  });

  const host = new Libp2pEdgeHost(node, codec, options, bootstrap);
  const self = bootstrap.find((ma) => peerIdOf(ma) === host.peerId);
  if (self) {
    await node.stop();
    throw new DuplicatePeerIdError(
      host.peerId,
      `the bootstrap address ${self.toString()} has this node's own peer id, so its data dir was copied from that node`,
    );
  }
  if (options.start !== false) await host.start();
  return host;
}
