import { noise } from '@chainsafe/libp2p-noise';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { identify, identifyPush } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { webSockets } from '@libp2p/websockets';
import { yamux } from '@libp2p/yamux';
import { createLibp2p } from 'libp2p';
import { DEFAULT_MAX_FRAME_BYTES, wrapLibp2p, type EdgeHost, type NodeLogger } from '@edge-node/node/browser';
import { JoinRefusedError } from './join-errors.js';

/** How a tab reaches the cluster: through one serving node, with the cluster's key when it has one. */
export interface BrowserHostOptions {
  name: string;
  /** The serving node's WebSocket multiaddr, ending in /p2p/<id>. */
  bootstrap: string;
  clusterKey?: Uint8Array;
  /** Whether the serving node said the cluster has a key: makes a refusal's message exact (default true). */
  clusterKeyRequired?: boolean;
  log: NodeLogger;
}

/**
 * libp2p for a page (WebSockets, Noise, yamux, pnet with the key; no listening), started and connected to the
 * serving node, as an EdgeHost. Throws JoinRefusedError when the serving node refuses the tab (no key, another key):
 * an answer for the user, not something to retry.
 */
export async function joinCluster(options: BrowserHostOptions): Promise<EdgeHost> {
  const maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  const libp2p = await createLibp2p({
    // A fresh identity per tab: two tabs of one browser are two nodes.
    privateKey: await generateKeyPair('Ed25519'),
    start: false,
    addresses: { listen: [] },
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxReadBufferLength: maxFrameBytes + 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 } })],
    ...(options.clusterKey ? { connectionProtector: preSharedKey({ psk: options.clusterKey }) } : {}),
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() },
    // In a page libp2p refuses private addresses by default; a home cluster lives on them.
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { dialTimeout: 5000 },
  });
  const host = wrapLibp2p(libp2p, {
    dataDir: '',
    listen: [],
    bootstrap: [options.bootstrap],
    mdns: false,
    name: options.name,
    logger: options.log,
    maxFrameBytes,
    canDial: (a) => /\/wss?(\/|$)/.test(a),
    ...(options.clusterKey ? { clusterKey: options.clusterKey } : {}),
  });
  // Dial once by hand first: a refusal is said at once, not retried by the bootstrapper.
  await libp2p.start();
  try {
    await host.dial(options.bootstrap, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    await Promise.resolve(libp2p.stop()).catch(() => {});
    throw new JoinRefusedError(options.bootstrap, options.clusterKey !== undefined, options.clusterKeyRequired ?? true, err as Error);
  }
  return host;
}
