/** The serving node did not let this tab in: most often the cluster key is missing or wrong. */
export class JoinRefusedError extends Error {
  override name = 'JoinRefusedError';

  constructor(
    readonly address: string,
    readonly hadKey: boolean,
    override readonly cause: Error,
  ) {
    super(
      `the node at ${address} refused the connection (${cause.message}): ` +
        (hadKey
          ? 'the cluster key you gave is not this cluster\'s; paste the key file of the cluster (edge-node keygen wrote it)'
          : 'this cluster is private; open the join link with its key (…/join#key=…) or paste the key file'),
    );
  }
}
