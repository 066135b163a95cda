/**
 * Versioned libp2p protocol ids spoken between edge-node peers. Bump a version when its messages change
 * incompatibly: peers then refuse each other's streams and `findProtocolVersionMismatches` explains why.
 */
export const PROTOCOL_PREFIX = '/edge-node/';

export const PROTOCOLS = {
  /** Device profile, links and member-list gossip (membership). */
  profile: '/edge-node/profile/1.0.0',
  /** Request/response control messages (pipeline coordinator). */
  control: '/edge-node/control/1.0.0',
  /** Activation frames between pipeline stages. */
  activations: '/edge-node/activations/1.0.0',
  /** Link latency and bandwidth probes (link monitor). */
  probe: '/edge-node/probe/1.0.0',
  /** Liveness beats so a vanished node is noticed without a TCP close. */
  heartbeat: '/edge-node/heartbeat/1.0.0',
  /** Model manifest and tensor bytes for nodes that do not have the model file. */
  weights: '/edge-node/weights/1.0.0',
  /** A fine-tuning job's stage ops: hidden states forward, gradients back, steps (pipeline/train-frames.ts). */
  train: '/edge-node/train/1.0.0',
} as const;

export type ProtocolName = keyof typeof PROTOCOLS;
type ProtocolId = (typeof PROTOCOLS)[ProtocolName];

/** `/edge-node/profile/1.0.0` → `{ name: 'profile', version: '1.0.0' }`; null for anything not ours. */
export function parseProtocolId(id: string): { name: string; version: string } | null {
  if (!id.startsWith(PROTOCOL_PREFIX)) return null;
  const parts = id.slice(PROTOCOL_PREFIX.length).split('/');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return null;
  return { name: parts[0], version: parts[1] };
}

export interface ProtocolVersionMismatch {
  name: string;
  ours: string;
  theirs: string;
}

/**
 * Compares a peer's advertised protocols (from identify) with ours. A mismatch is one of our protocol names
 * that the peer advertises only at other versions.
 */
export function findProtocolVersionMismatches(
  remoteProtocols: readonly string[],
  localProtocols: readonly string[] = Object.values(PROTOCOLS),
): ProtocolVersionMismatch[] {
  const remote = new Map<string, string[]>();
  for (const id of remoteProtocols) {
    const p = parseProtocolId(id);
    if (p) remote.set(p.name, [...(remote.get(p.name) ?? []), p.version]);
  }
  const out: ProtocolVersionMismatch[] = [];
  for (const id of localProtocols) {
    const p = parseProtocolId(id);
    if (!p) continue;
    const theirs = remote.get(p.name);
    if (theirs && !theirs.includes(p.version)) out.push({ name: p.name, ours: p.version, theirs: theirs.join(', ') });
  }
  return out;
}

/** True when a peer advertises the membership protocol at our version, i.e. it is a cluster peer. */
export function speaksEdgeNode(remoteProtocols: readonly string[]): boolean {
  return remoteProtocols.includes(PROTOCOLS.profile);
}
