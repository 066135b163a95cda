import { peerIdFromString } from '@libp2p/peer-id';
import type { Membership } from '../cluster/membership.js';
import type { EdgeHost } from '../network/edge-host.js';
import { PROTOCOLS } from '../network/protocol-ids.js';

/** Members that announce a model and serve `/edge-node/weights` (as identify told us), in name order. */
export async function weightsSources(host: EdgeHost, membership: Membership): Promise<string[]> {
  const out: string[] = [];
  const members = membership.members().filter((m) => typeof m.stageInfo?.model === 'string');
  members.sort((a, b) => a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId));
  for (const m of members) {
    try {
      const peer = await host.libp2p.peerStore.get(peerIdFromString(m.peerId));
      if (peer.protocols.includes(PROTOCOLS.weights)) out.push(m.peerId);
    } catch {
      // not identified yet
    }
  }
  return out;
}

/** Resolves with the sources once at least one peer has the model; polls until `signal` aborts. */
export async function waitForWeightsSources(host: EdgeHost, membership: Membership, signal: AbortSignal, intervalMs = 250): Promise<string[]> {
  for (;;) {
    signal.throwIfAborted();
    const sources = await weightsSources(host, membership);
    if (sources.length > 0) return sources;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
