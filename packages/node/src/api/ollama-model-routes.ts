import { readFileSync } from 'node:fs';
import { readJsonBody, type ApiRouter } from './api-router.js';
import { modelFacts, parameterSize, type ModelFacts } from './model-facts.js';
import { checkOllamaModel, OLLAMA_TAG } from './ollama-generation-routes.js';
import { ollamaErrors } from './ollama-errors.js';
import { requireObject } from './openai-request.js';
import type { ServingContext } from './serve-generation.js';

/** This runtime's version (a bare semver, as Ollama's /api/version gives its own). */
function runtimeVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** A model never unloads here (keep_alive is accepted but has nothing to do): its "expiry" is far away. */
const NEVER = '2999-12-31T23:59:59Z';

/**
 * Ollama's model routes: GET /api/tags (the model this cluster serves), POST /api/show (details, model_info, the
 * chat template, capabilities), GET /api/ps (it is loaded), GET /api/version. Sizes, digest, parameter count and
 * quantisation are read from the model file (once).
 */
export function addOllamaModelRoutes(router: ApiRouter, ctx: ServingContext, opts: { embeddings: boolean; maxBodyBytes?: number }): void {
  const facts = modelFacts(ctx.modelPath);
  const version = runtimeVersion();
  const details = (f: ModelFacts) => {
    const c = ctx.generator!.config;
    return { parent_model: '', format: f.format, family: c.architecture, families: [c.architecture], parameter_size: parameterSize(f.parameterCount), quantization_level: f.quantization };
  };
  const entry = async () => {
    const f = await facts();
    const name = `${ctx.modelId}${OLLAMA_TAG}`;
    return { name, model: name, modified_at: f.modifiedAt.toISOString(), size: f.sizeBytes, digest: f.digest, details: details(f) };
  };

  router.add('GET', '/api/version', () => ({ version }), { errors: ollamaErrors });
  router.add('GET', '/api/tags', async () => ({ models: ctx.generator ? [await entry()] : [] }), { errors: ollamaErrors });
  router.add(
    'GET',
    '/api/ps',
    async () => ({ models: ctx.generator ? [{ ...(await entry()), expires_at: NEVER, size_vram: 0, context_length: ctx.contextLength }] : [] }),
    { errors: ollamaErrors },
  );
  router.add(
    'POST',
    '/api/show',
    async (req) => {
      const b = requireObject(await readJsonBody(req, opts.maxBodyBytes));
      checkOllamaModel(ctx, b);
      const g = ctx.generator!;
      const c = g.config;
      const f = await facts();
      const arch = c.architecture;
      return {
        license: '',
        modelfile: `# Served by edge-node\nFROM ${ctx.modelPath ?? ctx.modelId}\n`,
        parameters: '',
        template: g.chatTemplate ?? '',
        details: details(f),
        model_info: {
          'general.architecture': arch,
          'general.name': g.modelName,
          'general.parameter_count': f.parameterCount,
          [`${arch}.context_length`]: c.contextLength,
          [`${arch}.embedding_length`]: c.hiddenSize,
          [`${arch}.feed_forward_length`]: c.intermediateSize,
          [`${arch}.block_count`]: c.numLayers,
          [`${arch}.attention.head_count`]: c.numHeads,
          [`${arch}.attention.head_count_kv`]: c.numKvHeads,
          [`${arch}.attention.layer_norm_rms_epsilon`]: c.rmsNormEps,
          [`${arch}.rope.freq_base`]: c.ropeTheta,
          [`${arch}.vocab_size`]: c.vocabSize,
        },
        // Tools work with every model: through its template when it takes them, else the described fallback.
        capabilities: ['completion', 'tools', ...(opts.embeddings ? ['embedding'] : [])],
        modified_at: f.modifiedAt.toISOString(),
      };
    },
    { errors: ollamaErrors },
  );
}
