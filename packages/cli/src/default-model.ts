import { DEFAULT_HUB_CHAT_MODEL, DEFAULT_HUB_ENDPOINT, DEMO_MODEL_PATH, resolveModelSource, type HubSettings } from '@edge-node/node';

/** How long `edge-node start` waits to learn whether the Hub is reachable before it serves the demo model. */
export const DEFAULT_HUB_PROBE_MS = 2000;

export interface DefaultModelOptions {
  dataDir: string;
  hub: HubSettings;
  /** Default DEFAULT_HUB_PROBE_MS (env EDGE_NODE_HUB_PROBE_MS). */
  probeMs?: number;
  /** Where the choice and its reason are told. */
  say: (line: string) => void;
}

/**
 * The model `edge-node start` serves when no `--model` is given: the Hub's default chat model when it is cached or
 * the Hub answers within a short probe (downloaded with progress into `<data dir>/hub`), otherwise the demo model
 * shipped inside the package. Either way the node starts, and the log says which model and why. Returns what to
 * pass as --model: the repo id (now in the cache) or the demo model's path.
 */
export async function chooseDefaultModel(opts: DefaultModelOptions): Promise<string> {
  const repo = DEFAULT_HUB_CHAT_MODEL;
  const cached = await resolveModelSource(repo, opts.dataDir, { ...opts.hub, offline: true }).catch(() => null);
  if (cached) {
    opts.say(`no --model given: serving the Hub's default chat model ${repo} (from the cache in ${opts.dataDir}/hub)`);
    // The repo id, not the snapshot path: the node resolves it from the cache and names the model after it.
    return repo;
  }
  let why: string;
  if (opts.hub.offline) why = `HF_HUB_OFFLINE is set and ${repo} is not in the cache`;
  else {
    const endpoint = (opts.hub.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
    const probeMs = opts.probeMs ?? DEFAULT_HUB_PROBE_MS;
    const reachable = await fetch(`${endpoint}/api/models/${repo}/revision/main`, { signal: AbortSignal.timeout(probeMs), ...(opts.hub.token ? { headers: { authorization: `Bearer ${opts.hub.token}` } } : {}) }).then(
      (r) => (r.ok ? null : `it answered HTTP ${r.status}`),
      (err: Error) => (err.name === 'TimeoutError' ? `no answer within ${probeMs} ms` : (err.cause as Error | undefined)?.message ?? err.message),
    );
    if (reachable === null) {
      opts.say(`no --model given: downloading the Hub's default chat model ${repo} from ${endpoint} (cached for the next start)`);
      try {
        await resolveModelSource(repo, opts.dataDir, opts.hub);
        return repo;
      } catch (err) {
        why = `downloading ${repo} failed: ${(err as Error).message}`;
      }
    } else why = `the Hub at ${endpoint} is not reachable (${reachable})`;
  }
  opts.say(`no --model given and ${why}: serving the demo model shipped with edge-node, stories260K (1.1 MB; it writes children's stories, it does not follow instructions). Pass --model PATH|REPO for a real model.`);
  return DEMO_MODEL_PATH;
}
