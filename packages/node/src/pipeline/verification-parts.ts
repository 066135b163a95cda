/**
 * How many parts a verification step goes in. A verification of k drafts is 1 + k rows that every stage computes; in
 * one frame each stage waits for the stage before it to finish all of them, so a ring of S stages takes S times a
 * stage's pass. Sent in parts, a stage computes the first part while the next part is still on the stage before it
 * (as a prompt's chunks flow): with two parts on three stages about 2/3 of the time where rows cost much. Each part
 * costs every stage a step's fixed costs and a hop, so a part holds at least `minRows` rows.
 */

/** Fewest rows in a part: below that a part's fixed costs (a step on every stage, a hop) outweigh the overlap. */
export const MIN_VERIFICATION_PART_ROWS = 6;

/** Sizes of the parts of a verification of `rows` rows through `stages` stages, in order (the larger first). */
export function verificationParts(rows: number, stages: number, minRows = MIN_VERIFICATION_PART_ROWS): number[] {
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`a verification has a whole number of rows ≥ 1 (got ${rows})`);
  if (!Number.isInteger(minRows) || minRows < 1) throw new RangeError(`a part's fewest rows must be a whole number ≥ 1 (got ${minRows})`);
  const parts = Math.max(1, Math.min(stages, Math.floor(rows / minRows)));
  const base = Math.floor(rows / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < rows % parts ? 1 : 0));
}
