/**
 * A live 2-node cluster for the HTTP API tests: node "a" (layers [0,2) of stories260K) and node "b" ([2,5)), each
 * its own `edge-node start` process on loopback, b bootstrapped to a. Waits until each sees the other with the model.
 */
import { ClusterHarness, type RunningNode } from './cluster-harness.js';
import { STORIES_GGUF } from './single-device-run.js';

export interface ApiCluster {
  a: RunningNode;
  b: RunningNode;
  modelId: string;
}

export function authHeaders(apiKey?: string): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

export async function startApiCluster(h: ClusterHarness, opts: { args?: string[]; apiKey?: string; model?: string } = {}): Promise<ApiCluster> {
  const args = ['--model', opts.model ?? STORIES_GGUF, '--split', '2,3', '--no-mdns', ...(opts.args ?? []), ...(opts.apiKey ? ['--api-key', opts.apiKey] : [])];
  const a = await h.startNode({ name: 'a', args });
  const b = await h.startNode({ name: 'b', args: [...args, '--bootstrap', a.addresses[0]] });
  const headers = authHeaders(opts.apiKey);
  const sees = async (n: RunningNode, other: RunningNode) => {
    const res = await fetch(`${n.apiUrl}/v1/cluster`, { headers });
    const c = (await res.json()) as { peers: { peerId: string; stageInfo: { model?: string } | null }[] };
    return c.peers.some((p) => p.peerId === other.peerId && p.stageInfo?.model);
  };
  await h.waitFor(async () => (await sees(a, b)) && (await sees(b, a)), 15_000, 'a and b to see each other with the model');
  const models = (await (await fetch(`${a.apiUrl}/v1/models`, { headers })).json()) as { data: { id: string }[] };
  return { a, b, modelId: models.data[0].id };
}

/** A gauge or counter value from a node's /metrics (first series whose name and labels match). */
export async function metric(n: RunningNode, series: string, apiKey?: string): Promise<number> {
  const text = await (await fetch(`${n.apiUrl}/metrics`, { headers: authHeaders(apiKey) })).text();
  const escaped = series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
