import type { CliCommand } from '../cli-command.js';
import type { BaselineModel } from './bench-baselines.js';
import type { BaselineRunner, SplitMeasurements } from './bench-measure.js';
import { BENCH_HELP, parseBenchOptions, type BenchOptions } from './bench-options.js';
import type { BenchModel } from './bench-report.js';

/** The model's name and shape from its file, or blanks until a cluster tells them (--api without --model). */
async function describeModel(path: string | null): Promise<BenchModel> {
  if (!path) return { path, name: '', layers: 0, hiddenSize: 0 };
  const { openModel } = await import('@edge-node/node');
  const m = await openModel(path);
  const out = { path, name: m.config.name, layers: m.config.numLayers, hiddenSize: m.config.hiddenSize };
  await m.close();
  return out;
}

/** --api: the cluster's model shape wins over the file's (its name only when the file gave none). */
async function measureRunningCluster(api: string, o: BenchOptions, model: BenchModel): Promise<SplitMeasurements> {
  const [{ BenchClient }, { measureApi }, { baselineSteps }, { nodeApi }] = await Promise.all([import('./bench-cluster.js'), import('./bench-measure.js'), import('./bench-baselines.js'), import('../node-api.js')]);
  const client = new BenchClient(nodeApi(api, o.apiKey));
  client.prefixCache = o.prefixCache;
  const info = await client.info();
  model.layers = info.modelShape.numLayers;
  model.hiddenSize = info.modelShape.hiddenSize;
  model.name ||= info.modelShape.name ?? info.model;
  return measureApi(client, o, baselineSteps(o, model), baselinesOf(o, model));
}

const baselinesOf = (o: BenchOptions, model: BaselineModel): BaselineRunner => async (info, progress) => (await import('./bench-baselines.js')).measureBaselines(o, model, info, progress);

export const benchCommand: CliCommand = {
  name: 'bench',
  async run(argv) {
    const o = parseBenchOptions(argv);
    if (o === 'help') {
      process.stdout.write(BENCH_HELP);
      return 0;
    }
    // The measuring code (and with it the runtime) only once the flags are read: `bench --help` answers at once.
    const [{ resolveBenchModel }, { measureNodes }, { baselineSteps }, { benchReport, writeBenchReport }] = await Promise.all([
      import('./bench-model.js'),
      import('./bench-measure.js'),
      import('./bench-baselines.js'),
      import('./bench-report.js'),
    ]);
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
