import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { downloadHubModel, type HubDownloadOptions } from './hub-download.js';
import { formatHubModelRef, parseHubModelRef } from './hub-model-ref.js';
import { ModelFileError } from './model-errors.js';

export type HubSettings = Omit<HubDownloadOptions, 'cacheDir'> & { cacheDir?: string };

/** Where the download's outcome is told: any logger with info() (the model layer sits below the network's NodeLogger). */
export interface ModelSourceLog {
  info(message: string): void;
}

/**
 * What `--model` names: an existing file or folder is used as is; otherwise a Hugging Face repo id
 * (`owner/name[@rev][/file]`) is downloaded into `<dataDir>/hub` (or used from there) and its local path returned.
 */
export async function resolveModelSource(value: string, dataDir: string, hub: HubSettings = {}, log?: ModelSourceLog): Promise<string> {
  if (await stat(resolve(value)).then(() => true, () => false)) return value;
  const ref = parseHubModelRef(value);
  if (ref === null) throw new ModelFileError(resolve(value), 'does not exist (and is not a Hugging Face repo id like owner/name)');
  const cacheDir = hub.cacheDir ?? join(dataDir, 'hub');
  const result = await downloadHubModel(ref, { ...hub, cacheDir });
  log?.info(
    result.fromCache
      ? `model ${formatHubModelRef(ref)}: using the cached download (commit ${result.commit.slice(0, 10)}) in ${cacheDir}`
      : `model ${formatHubModelRef(ref)}: downloaded ${(result.downloadedBytes / 1e6).toFixed(1)} MB (commit ${result.commit.slice(0, 10)}) into ${cacheDir}`,
  );
  return result.modelPath;
}
