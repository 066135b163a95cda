import { createKernelRuntime, type KernelRuntime } from '@edge-node/kernels';
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
