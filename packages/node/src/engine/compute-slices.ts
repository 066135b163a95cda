/**
 * A forward pass runs on the node's event loop, which also carries its heartbeats, membership, HTTP and streams. A
 * pass of seconds (a prompt on a throttled or starved device) would silence all of them, and its peers would take the
 * node for lost. So the pass is cut into slices: at its checkpoints (between layers and products) it asks whether the
 * slice has run its length, and if so lets the event loop turn before it goes on. A slice is measured in wall time
 * since the last turn, so a device that computes slowly turns the loop as often as a fast one.
 */

/** Milliseconds, monotonic (performance.now by default). */
export type Clock = () => number;
/** Lets the event loop turn (timers, I/O) and resolves after. */
export type LoopTurn = () => Promise<void>;

/** Longest run of compute between two turns of the event loop, ms: short next to a 500 ms heartbeat period. */
export const DEFAULT_SLICE_MS = 20;
/**
 * Most multiply-adds of one kernel call between checkpoints: about a millisecond on one core, so a device throttled to
 * 5 % of a core still reaches a checkpoint every few tens of milliseconds (a larger product is cut into pieces).
 */
export const DEFAULT_PIECE_MACS = 16 << 20;

export interface ComputeSliceOptions {
  /** Default DEFAULT_SLICE_MS; 0 turns the loop at every checkpoint. */
  sliceMs?: number;
  /** Default DEFAULT_PIECE_MACS. */
  pieceMacs?: number;
  now?: Clock;
  turn?: LoopTurn;
}

/** setImmediate runs after pending I/O and the timers due (the browser bundle provides it over a MessageChannel). */
export const turnEventLoop: LoopTurn = () => new Promise((resolve) => setImmediate(resolve));

/** The slices of one computation: create one per pass, call `checkpoint()` wherever pausing is safe. */
export class ComputeSlices {
  private readonly sliceMs: number;
  /** Most multiply-adds a kernel call should do between two checkpoints. */
  readonly pieceMacs: number;
  private readonly now: Clock;
  private readonly turn: LoopTurn;
  private sliceStart: number;
  /** Turns of the event loop taken so far. */
  turns = 0;
  /** Milliseconds spent away from the computation (in other work on the loop). */
  awayMs = 0;

  constructor(opts: ComputeSliceOptions = {}) {
    this.sliceMs = opts.sliceMs ?? DEFAULT_SLICE_MS;
    this.pieceMacs = opts.pieceMacs ?? DEFAULT_PIECE_MACS;
    this.now = opts.now ?? (() => performance.now());
    this.turn = opts.turn ?? turnEventLoop;
    this.sliceStart = this.now();
  }

  /** True once the current slice has run its length. */
  get due(): boolean {
    return this.now() - this.sliceStart >= this.sliceMs;
  }

  /**
   * Turns the event loop if the slice is due, else returns null at once (callers `await` only a promise, so a
   * checkpoint that does not turn costs a clock read, not a microtask).
   */
  checkpoint(): Promise<void> | null {
    return this.due ? this.yield() : null;
  }

  /** Turns the event loop now and starts a new slice. */
  async yield(): Promise<void> {
    const left = this.now();
    await this.turn();
    this.turns++;
    this.sliceStart = this.now();
    this.awayMs += this.sliceStart - left;
  }
}
