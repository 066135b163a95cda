import { openModel } from '@edge-node/node';
import type { CliCommand } from '../cli-command.js';
import { baselineSteps, measureBaselines, type BaselineModel } from './bench-baselines.js';
import { BenchClient } from './bench-cluster.js';
import { measureApi, measureNodes, type BaselineRunner, type SplitMeasurements } from './bench-measure.js';
import { resolveBenchModel } from './bench-model.js';
import { BENCH_HELP, parseBenchOptions, type BenchOptions } from './bench-options.js';
import { benchReport, writeBenchReport, type BenchModel } from './bench-report.js';

/** The model's name and shape from its file, or blanks until a cluster tells them (--api without --model). */
async function describeModel(path: string | null): Promise<BenchModel> {
  if (!path) return { path, name: '', layers: 0, hiddenSize: 0 };
  const m = await openModel(path);
  const out = { path, name: m.config.name, layers: m.config.numLayers, hiddenSize: m.config.hiddenSize };
  await m.close();
  return out;
}

/** --api: the cluster's model shape wins over the file's (its name only when the file gave none). */
async function measureRunningCluster(api: string, o: BenchOptions, model: BenchModel): Promise<SplitMeasurements> {
  const client = new BenchClient(api.replace(/\/+$/, ''), o.apiKey);
  client.prefixCache = o.prefixCache;
  const info = await client.info();
  model.layers = info.modelShape.numLayers;
  model.hiddenSize = info.modelShape.hiddenSize;
  model.name ||= info.modelShape.name ?? info.model;
  return measureApi(client, o, baselineSteps(o, model), baselinesOf(o, model));
}

const baselinesOf = (o: BenchOptions, model: BaselineModel): BaselineRunner => (info, progress) => measureBaselines(o, model, info, progress);

export const benchCommand: CliCommand = {
  name: 'bench',
  async run(argv) {
    const o = parseBenchOptions(argv);
    if (o === 'help') {
      process.stdout.write(BENCH_HELP);
      return 0;
    }
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const modelPath = o.model === undefined ? null : await resolveBenchModel(o.model, { ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), ...(o.syntheticTokenizer ? { tokenizerDir: o.syntheticTokenizer } : {}), log });
    const model = await describeModel(modelPath);
    const started = Date.now();
    const measured =
      o.api !== undefined
        ? await measureRunningCluster(o.api, o, model)
        : await measureNodes(modelPath!, model.layers, o, baselineSteps(o, model), baselinesOf(o, model));
    await writeBenchReport(o, benchReport(o, model, measured), Date.now() - started);
    return 0;
  },
};
