/** A stage reported an error for this request (its message is the stage's). */
export class StageFailedError extends Error {
  override name = 'StageFailedError';
  constructor(
    readonly stage: string,
    readonly remoteName: string,
    message: string,
    /** With a PrefixMissError: positions of the prompt the stage does hold. */
    readonly held?: number,
  ) {
    super(`stage ${stage.slice(-8)} failed: ${remoteName}: ${message}`);
  }
}

/** A node of the route left (or could not be reached) while the request was running. */
export class StageLostError extends Error {
  override name = 'StageLostError';
  constructor(
    readonly peerId: string,
    detail = 'left the cluster mid-request',
  ) {
    super(`stage node ${peerId.slice(-8)} ${detail}`);
  }
}

/** The request was ended (released) while a token was still awaited. */
export class RequestEndedError extends Error {
  override name = 'RequestEndedError';
}
