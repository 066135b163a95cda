/**
 * The serving node did not let this tab in. The message says what is known: the page learns from /join/info whether
 * the cluster has a key, so a missing or superfluous key is named for sure; with a key on a keyed cluster, a failed
 * handshake (another key) and an unreachable WebSocket port look alike from a page, and the message says both.
 */
export class JoinRefusedError extends Error {
  override name = 'JoinRefusedError';

  constructor(
    readonly address: string,
    readonly hadKey: boolean,
    readonly keyRequired: boolean,
    override readonly cause: Error,
  ) {
    super(
      `the node at ${address} refused the connection (${cause.message}): ` +
        (!hadKey && keyRequired
          ? 'this cluster is private; open the join link with its key (…/join#key=…) or paste the key file'
          : hadKey && !keyRequired
            ? 'this cluster has no key; open /join without one'
            : hadKey
              ? "the cluster key you gave is not this cluster's (paste the key file edge-node keygen wrote), or this device cannot reach the node's WebSocket port"
              : "this device cannot reach the node's WebSocket port (a firewall, or the node listens on another interface)"),
    );
  }
}
