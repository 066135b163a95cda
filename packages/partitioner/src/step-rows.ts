/**
 * How the runtime batches a stage's step (the node's engine/batch-scheduler.ts takes these as DEFAULT_PROMPT_ROWS
 * and DEFAULT_BATCH_ROWS): at most this many rows of one prompt per step, and at most this many rows in all. The cost
 * model counts a prompt's steps with them; the simulator forms its steps with them.
 */
export const PROMPT_ROWS_PER_STEP = 32;
export const BATCH_ROWS_PER_STEP = 64;
