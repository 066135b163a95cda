/** Another running node uses this node's identity (its data dir was copied, or is shared). */
export class DuplicatePeerIdError extends Error {
  override name = 'DuplicatePeerIdError';
  constructor(
    readonly peerId: string,
    detail: string,
  ) {
    super(
      `another node is already running with this identity (peer id ${peerId}): ${detail}. ` +
        `Each node needs its own identity: use a different --data-dir for each node ` +
        `(do not copy a data dir between devices).`,
    );
  }
}

/** The cluster key file is missing or not in the libp2p pnet format. */
export class ClusterKeyError extends Error {
  override name = 'ClusterKeyError';
}

/** The node identity file in the data dir cannot be read or created. */
export class IdentityFileError extends Error {
  override name = 'IdentityFileError';
}

/** A --listen or --bootstrap value is not a usable multiaddr. */
export class InvalidAddressError extends Error {
  override name = 'InvalidAddressError';
}

/** Could not open a stream to a peer (not connected, refused, or it does not speak the protocol). */
export class PeerUnreachableError extends Error {
  override name = 'PeerUnreachableError';
}
