import type { BenchInfo } from '@edge-node/node';
import { predictSplit, singleDeviceRow, type BenchRow } from './bench-analysis.js';
import { LlamaCppUnavailableError, openLlamaCpp } from './bench-llama-cpp.js';
import { measureLocal } from './bench-local.js';
import type { BenchOptions } from './bench-options.js';
import type { BenchProgress } from './bench-progress.js';

/** The model the baselines run: its file (null with --api and no --model) and layer count. */
export interface BaselineModel {
  path: string | null;
  layers: number;
}

/** Progress steps the baselines take: one node without network (unless --no-local), then each --baseline. */
export function baselineSteps(o: BenchOptions, model: BaselineModel): number {
  return (wantLocal(o, model) ? 1 : 0) + o.baselines.length;
}

const wantLocal = (o: BenchOptions, model: BaselineModel) => o.local && model.path !== null;

/** The single-device rows: the model on one node without network, and llama.cpp on the same GGUF when asked. */
export async function measureBaselines(o: BenchOptions, model: BaselineModel, info: BenchInfo, progress: BenchProgress): Promise<BenchRow[]> {
  const out: BenchRow[] = [];
  const { promptTokens: p, genTokens: g } = o;
  if (wantLocal(o, model)) {
    progress.status('one node, no network');
    const local = await measureLocal(model.path!, p, g, o.runs, o.engine);
    const r = local.runs;
    // The coordinator's device as calibrated on the whole model, its pass included: alone in its ring, that node
    // computes its steps back to back as this process does (over 2 s of runs: 0.15–0.19 ms a step against 0.16–0.17
    // here on stories260K), so its calibrated pass is what a step costs here — where the pass's share that a start-up
    // probe calls "after idling" (0.04–0.15 ms under the bench's load) is no cost this process skips. Without the
    // fixed costs it does not pay: frames (there are none) and a token's wake-up, turn of the event loop and frame
    // (the loop awaits the executor: 0.005–0.01 ms a token, where a node's token cost read ~0.2).
    const { stepOverheadMs: _step, tokenOverheadMs: _token, wakeMs: _wake, ...device } = info.cluster.devices.find((d) => d.id === info.coordinator) ?? info.cluster.devices[0];
    let prediction: BenchRow['predicted'] = null;
    try {
      prediction = predictSplit(info.modelShape, { devices: [device], links: [], defaultLink: info.cluster.defaultLink }, [model.layers], p, g, 1);
    } catch {
      prediction = null;
    }
    out.push(
      singleDeviceRow('local', '1 node, no network', model.layers, 1, {
        promptTokens: p,
        genTokens: g,
        ttftMs: r.map((x) => x.ttftMs),
        prefillTokPerS: r.map((x) => x.prefillTokPerS),
        decodeTokPerS: r.map((x) => x.decodeTokPerS),
        tokenLatencyMs: r.map((x) => x.tokenLatencyMs),
        stepMs: r.flatMap((x) => x.stepMs),
        loopMs: r.flatMap((x) => x.loopMs),
        prefillMs: r.map((x) => x.prefillMs),
      }, prediction),
    );
    progress.tick('one node, no network done');
    if (o.baselines.includes('llama.cpp')) await llamaInto(out, o, model, progress, local.promptIds);
  } else if (o.baselines.includes('llama.cpp')) {
    await llamaInto(out, o, model, progress, null);
  }
  return out;
}

/** llama.cpp on the same GGUF and prompt ids as the local run; skipped with a note when it cannot run. */
async function llamaInto(out: BenchRow[], o: BenchOptions, model: BaselineModel, progress: BenchProgress, promptIds: number[] | null): Promise<void> {
  const { path: modelPath } = model;
  progress.status('llama.cpp');
  if (!modelPath || !/\.gguf$/i.test(modelPath) || !promptIds) {
    progress.tick('llama.cpp skipped');
    process.stderr.write(`\nllama.cpp baseline skipped: it needs --model with a GGUF file${modelPath ? ' and the local baseline (no --no-local)' : ''}\n`);
    return;
  }
  let bench;
  try {
    bench = await openLlamaCpp(modelPath, o.llamaThreads);
  } catch (err) {
    if (!(err instanceof LlamaCppUnavailableError)) throw err;
    progress.tick('llama.cpp unavailable');
    process.stderr.write(`\n${err.message}\n`);
    return;
  }
  try {
    const r = await bench.measure(promptIds, o.genTokens, o.runs);
    out.push(
      singleDeviceRow('llama.cpp', `llama.cpp (${o.llamaThreads} thread${o.llamaThreads > 1 ? 's' : ''})`, model.layers, 1, {
        promptTokens: o.promptTokens,
        genTokens: o.genTokens,
        ttftMs: r.map((x) => x.ttftMs),
        prefillTokPerS: r.map((x) => x.prefillTokPerS),
        decodeTokPerS: r.map((x) => x.decodeTokPerS),
        tokenLatencyMs: r.map((x) => x.decodeMs / x.stepMs.length),
        stepMs: r.flatMap((x) => x.stepMs),
        prefillMs: r.map((x) => x.prefillMs),
      }, null, 'same GGUF, llama.cpp CPU build through node-llama-cpp'),
    );
  } finally {
    await bench.close();
  }
  progress.tick('llama.cpp done');
}
