/**
 * The moments of a live move's switch, as each node sees them (coordinator, new stages, old stages), logged at debug
 * level: the pause a moved request makes spans three processes, so each line carries wall-clock times that compare
 * across processes on one machine (`scripts/bench-migration.ts` reads them to break the pause down).
 */

/** Wall-clock milliseconds with the sub-millisecond precision of the monotonic clock. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

const at = (t: number) => t.toFixed(1);

/** The coordinator's side: from the old route's last token to the new route's first. */
export interface CoordinatorSwitch {
  rid: string;
  /** The old route's last token arrived (null if none had). */
  lastToken: number | null;
  /** The switch began (the coordinator decided it at this token boundary). */
  decided: number;
  /** The delta's kv-adopt requests and the first step were handed to the network. */
  sent: number;
  /** Every new stage said it holds the delta. */
  copied: number;
  /** The new route's first token arrived. */
  token: number;
}

export function coordinatorSwitchLine(s: CoordinatorSwitch): string {
  return `switch phases ${s.rid}: last=${s.lastToken === null ? '-' : at(s.lastToken)} decided=${at(s.decided)} sent=${at(s.sent)} copied=${at(s.copied)} token=${at(s.token)}`;
}

/** A new stage's side of one kv-adopt: asked, the pieces read from the old stages, checked and written. */
export interface StageAdopt {
  rid: string;
  start: number;
  count: number;
  received: number;
  /** Of the time to `counted`, waiting for the old stages' pieces. */
  readMs: number;
  counted: number;
}

export function stageAdoptLine(s: StageAdopt): string {
  return `adopt phases ${s.rid} [${s.start}+${s.count}]: received=${at(s.received)} readMs=${s.readMs.toFixed(1)} counted=${at(s.counted)}`;
}

/** A new stage's step of a moved request (its first ones): arrived, its positions there, computing, computed. */
export interface StageStep {
  rid: string;
  step: number;
  arrived: number;
  ready: number;
  started: number;
  computed: number;
}

export function stageStepLine(s: StageStep): string {
  return `step phases ${s.rid} ${s.step}: arrived=${at(s.arrived)} ready=${at(s.ready)} started=${at(s.started)} computed=${at(s.computed)}`;
}

/** An old stage's side of one kv-read: asked, and the piece read out and hashed. */
export interface StageRead {
  rid: string;
  start: number;
  count: number;
  received: number;
  exported: number;
}

export function stageReadLine(s: StageRead): string {
  return `read phases ${s.rid} [${s.start}+${s.count}]: received=${at(s.received)} exported=${at(s.exported)}`;
}
