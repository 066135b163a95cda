/** What happened when a stage was lost mid-request. */
export interface RecoveryEvent {
  requestId: string;
  lostPeer: string;
  oldPlan: string;
  newPlan: string;
  /** Tokens (prompt + generated so far) replayed through the new route to rebuild the KV caches. */
  replayedTokens: number;
  recoveryMs: number;
}

/** A request moved to a newer plan's route between two tokens. */
export interface MigrationEvent {
  requestId: string;
  oldPlan: string;
  newPlan: string;
  replayedTokens: number;
  /** From the decision to the first token on the new route. */
  ms: number;
}
