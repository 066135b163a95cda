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
  /** Tokens replayed on the new route (0 for a live move). */
  replayedTokens: number;
  /** KV bytes the new route's stages copied (a live move: pre-copy and switch), 0 for a replay. */
  copiedBytes: number;
  /** A live move: of `ms`, the copy of the last positions at the switch (the rest is the step on the new route). */
  switchCopyMs?: number;
  /** From the decision (a live move: the switch) to the first token on the new route. */
  ms: number;
}
