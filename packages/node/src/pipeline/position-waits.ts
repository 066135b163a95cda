/**
 * Work that reaches a stage before the KV positions it needs. At a live move's switch the coordinator sends the
 * first step on the new route while the stages may still copy the last positions, so that the copy overlaps the step
 * instead of preceding it; a stage that gets the step first holds it until its copy has those positions. On the old
 * route, the last round's read of the position a step is computing is held until that step is done.
 */
export class PositionWaits {
  private readonly waits = new Map<string, { pos: number; done: () => void }[]>();

  constructor(private readonly timeoutMs: number) {}

  /**
   * Resolves once `reached(rid, n)` said that `rid` holds at least `pos` positions, when it ends, or after the
   * timeout (then the frame fails as any frame whose position the request does not hold).
   */
  until(rid: string, pos: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      const list = this.waits.get(rid) ?? [];
      list.push({ pos, done });
      this.waits.set(rid, list);
    });
  }

  /** `rid` now holds `length` positions: the frames waiting for at most that many go on. */
  reached(rid: string, length: number): void {
    const list = this.waits.get(rid);
    if (!list) return;
    const left = list.filter((w) => (w.pos <= length ? (w.done(), false) : true));
    if (left.length > 0) this.waits.set(rid, left);
    else this.waits.delete(rid);
  }

  /** `rid` was freed: every frame waiting for it goes on (to fail: the request is not open). */
  end(rid: string): void {
    this.reached(rid, Infinity);
  }
}
