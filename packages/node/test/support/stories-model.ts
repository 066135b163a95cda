import { afterAll, beforeAll } from 'vitest';
import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
import type { ComputeBackend } from '../../src/engine/compute-backend.js';
import { startComputeBackend } from '../../src/engine/engine-options.js';
import type { ModelFile } from '../../src/model/model-file.js';
import { openModel } from '../../src/model/open-model.js';

/** stories260K (real weights), the engine tests' model. */
export const STORIES_PATH = `${process.env.EDGE_NODE_SHARED_MODELS ?? '/work/shared/models'}/stories260k/stories260K.gguf`;

export interface StoriesEngine {
  runtime: KernelRuntime;
  model: ModelFile;
}

/** A one-thread kernel runtime and stories260K opened on it: a test file's beforeAll. */
export async function openStories(): Promise<StoriesEngine> {
  const runtime = await createKernelRuntime({ threads: 1 });
  return { runtime, model: await openModel(STORIES_PATH) };
}

/** Its afterAll: closes what was opened (a failed beforeAll may have opened nothing). */
export async function closeStories(opened: Partial<StoriesEngine>): Promise<void> {
  await opened.model?.close();
  await opened.runtime?.close();
}

/** A 12-token stories260K prompt (BOS, then a story's opening words) for the stage tests. */
export const STORIES_PROMPT = [1, 403, 407, 261, 378, 430, 260, 12, 290, 344, 417, 275];

/** stories260K with a one-thread compute backend beside it: what a stage test's workers compute with. */
export interface StoriesStage extends StoriesEngine {
  compute: ComputeBackend;
}

export async function openStoriesStage(): Promise<StoriesStage> {
  const opened = await openStories();
  return { ...opened, compute: await startComputeBackend({ threads: 1 }) };
}

export async function closeStoriesStage(opened: Partial<StoriesStage>): Promise<void> {
  await opened.compute?.close();
  await closeStories(opened);
}

/** A test file's beforeAll and afterAll for a StoriesStage: the object is filled before the file's tests run. */
export function useStoriesStage(): StoriesStage {
  const stage = {} as StoriesStage;
  beforeAll(async () => {
    Object.assign(stage, await openStoriesStage());
  });
  afterAll(() => closeStoriesStage(stage));
  return stage;
}
