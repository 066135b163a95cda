import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError, type CliCommand } from '../cli-command.js';
import { parseCommandLine } from '../command-line.js';
import { createDownloadProgressBar } from '../progress-bar.js';

const HELP = `Usage: edge-node download REPO[@REVISION] [FILE] [options]

Downloads a model from the Hugging Face Hub into the cache that \`edge-node start --model REPO\` uses, and prints
the local path. Only the files edge-node needs are fetched (config, tokenizer, weights; or the one GGUF FILE).
Interrupted downloads resume; a complete download is reused without network access.

Options:
  --data-dir DIR        node data dir whose hub/ cache to fill (default ~/.cache/edge-node/<--name or "default">)
  --name NAME           node name, for the default data dir
  --hub-endpoint URL    hub URL (env HF_ENDPOINT; default https://huggingface.co)
Environment: HF_TOKEN (gated or private models), HF_HUB_OFFLINE=1 (cache only).
`;

export const downloadCommand: CliCommand = {
  name: 'download',
  async run(argv) {
    const parsed = parseCommandLine(
      {
        args: argv,
        allowPositionals: true,
        options: { 'data-dir': { type: 'string' }, name: { type: 'string' }, 'hub-endpoint': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      },
      HELP,
    );
    if (!parsed) return 0;
    const v = parsed.values;
    const [repoText, file, ...extra] = parsed.positionals;
    if (repoText === undefined || extra.length > 0) throw new UsageError(`expected REPO[@REVISION] and at most one FILE\n\n${HELP}`);
    // The Hub client and the runtime only once there is something to download.
    const { downloadHubModel, formatHubModelRef, hubOptionsFromEnv, parseHubModelRef } = await import('@edge-node/node');
    const ref = parseHubModelRef(file === undefined ? repoText : `${repoText}/${file}`);
    if (ref === null) throw new UsageError(`"${repoText}" is not a Hugging Face repo id (owner/name)`);
    const dataDir = resolve(v['data-dir'] ?? join(homedir(), '.cache', 'edge-node', v.name ?? 'default'));
    const result = await downloadHubModel(ref, {
      ...hubOptionsFromEnv(process.env),
      ...(v['hub-endpoint'] !== undefined ? { endpoint: v['hub-endpoint'] } : {}),
      cacheDir: join(dataDir, 'hub'),
      onProgress: createDownloadProgressBar(),
    });
    process.stderr.write(
      `edge-node download: ${formatHubModelRef(ref)} at commit ${result.commit} ` +
        (result.fromCache ? '(already in the cache)' : `(${(result.downloadedBytes / 1e6).toFixed(1)} MB downloaded)`) + '\n',
    );
    process.stdout.write(`${result.modelPath}\n`);
    return 0;
  },
};
