/**
 * The pipeline across separate `edge-node start` processes on loopback (explicit bootstrap, no mDNS): greedy output
 * of stories260K through every contiguous split of its 5 layers over 2 and 3 nodes, and one over 4, must equal the
 * single-device run.
 *
 * Only the coordinator's --split is used (ClusterPipeline.replan passes its own `split` to computeClusterPlan; the
 * other stages get route and ranges in the request's `open` frame and load them on demand). So one split is
 * tested per node, and between splits only the node that will coordinate restarts (same data dir, same peer id).
 * Ring order is by name: the nodes are n1, n2, n3, and a fourth, n0, joins last and sorts first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF, runSingleDevice, storiesReference, type SingleDeviceResult } from './support/single-device-run.js';

const TOKENS = 40;
const LAYERS = 5;
/** "Once upon a time" (after BOS), and BOS alone. */
const PROMPTS = ['Once upon a time', ''] as const;

/** Every way to cut `total` layers into `parts` non-empty contiguous stages. */
function compositions(total: number, parts: number): number[][] {
  if (parts === 1) return [[total]];
  const out: number[][] = [];
  for (let first = 1; first <= total - parts + 1; first++) for (const rest of compositions(total - first, parts - 1)) out.push([first, ...rest]);
  return out;
}

function ranges(split: number[]): [number, number][] {
  let start = 0;
  return split.map((n) => [start, (start += n)] as [number, number]);
}

interface PlanJson {
  plan: { stages: { name: string; peerId: string; startLayer: number; endLayer: number }[] } | null;
}

describe('greedy output through every split of stories260K across node processes', () => {
  const h = new ClusterHarness('pipeline-splits');
  const reference = new Map<string, SingleDeviceResult>();
  const live = new Map<string, RunningNode>();
  const splitOf = new Map<string, number[]>();
  afterAll(() => h.cleanup());

  beforeAll(async () => {
    const ref = storiesReference();
    const [story, bos] = await Promise.all(PROMPTS.map((p) => runSingleDevice(STORIES_GGUF, p, TOKENS)));
    // The single-device engine itself matches the float64 reference token for token.
    expect(story.promptTokens).toEqual(ref.prompt_ids_with_bos);
    expect(story.tokens).toEqual(ref.greedy_from_bos_ids.slice(4, 4 + TOKENS));
    expect(bos.promptTokens).toEqual([ref.prompt_ids_with_bos[0]]);
    expect(bos.tokens).toEqual(ref.greedy_from_bos_ids.slice(0, TOKENS));
    reference.set(PROMPTS[0], story);
    reference.set(PROMPTS[1], bos);
  }, 120_000);

  const splitArgs = (split: number[]) => ['--model', STORIES_GGUF, '--split', split.join(','), '--no-mdns'];
  const bootstrapArgs = (except: string) => [...live.values()].filter((n) => n.name !== except && n.running).flatMap((n) => ['--bootstrap', n.addresses[0]]);

  async function start(name: string, split: number[]): Promise<RunningNode> {
    const node = await h.startNode({ name, args: [...splitArgs(split), ...bootstrapArgs(name)] });
    live.set(name, node);
    splitOf.set(name, split);
    return node;
  }

  async function restart(name: string, split: number[]): Promise<RunningNode> {
    const old = live.get(name)!;
    live.delete(name);
    const node = await h.restartNode(old, { args: [...splitArgs(split), ...bootstrapArgs(name)] });
    live.set(name, node);
    splitOf.set(name, split);
    return node;
  }

  /** Asks `coordinator` for both prompts and checks the text, the token counts and the plan it ran. */
  async function expectSingleDeviceOutput(coordinator: RunningNode, split: number[], ring: string[]): Promise<void> {
    await h.waitForPipelineMembers([...live.values()]);
    for (const prompt of PROMPTS) {
      const ref = reference.get(prompt)!;
      const res = await coordinator.complete({ prompt, max_tokens: TOKENS, temperature: 0 });
      const what = `split ${split.join(',')} coordinated by ${coordinator.name}, prompt ${JSON.stringify(prompt)}`;
      expect(res.choices[0].text, what).toBe(ref.text);
      expect(res.usage.completion_tokens, what).toBe(TOKENS);
      expect(res.usage.prompt_tokens, what).toBe(ref.promptTokens.length);
      expect(res.choices[0].finish_reason, what).toBe('length');
    }
    const { plan } = (await coordinator.cluster()) as PlanJson;
    expect(plan?.stages.map((s) => [s.name, s.startLayer, s.endLayer])).toEqual(ring.map((name, i) => [name, ...ranges(split)[i]]));
    expect(plan?.stages.map((s) => s.peerId)).toEqual(ring.map((n) => live.get(n)!.peerId));
  }

  it('2 nodes: all 4 splits, coordinated by the first and by the second node', async () => {
    const splits = compositions(LAYERS, 2);
    expect(splits).toHaveLength(4);
    const ring = ['n1', 'n2'];
    const n1 = await start('n1', splits[0]);
    const n2 = await start('n2', splits[1]);
    await expectSingleDeviceOutput(n1, splits[0], ring);
    // n2 is the last stage and the coordinator: its own token comes back in-process.
    await expectSingleDeviceOutput(n2, splits[1], ring);
    await expectSingleDeviceOutput(await restart('n1', splits[2]), splits[2], ring);
    await expectSingleDeviceOutput(await restart('n2', splits[3]), splits[3], ring);
  }, 90_000);

  it('3 nodes: all 6 splits, each coordinated by the node that was restarted with it', async () => {
    const splits = compositions(LAYERS, 3);
    expect(splits).toHaveLength(6);
    const ring = ['n1', 'n2', 'n3'];
    await expectSingleDeviceOutput(await start('n3', splits[0]), splits[0], ring);
    const order = ['n1', 'n2', 'n3', 'n1', 'n2'];
    for (let i = 1; i < splits.length; i++) {
      await expectSingleDeviceOutput(await restart(order[i - 1], splits[i]), splits[i], ring);
    }
  }, 120_000);

  it('4 nodes: a joining node that sorts first coordinates a 4-way split; a coordinator outside its ring still works', async () => {
    const split = [1, 2, 1, 1];
    const n0 = await start('n0', split);
    await expectSingleDeviceOutput(n0, split, ['n0', 'n1', 'n2', 'n3']);
    // n3 kept its 3-way split from above: its ring is now the first three by name, n0 n1 n2, without n3 itself.
    const n3Split = splitOf.get('n3')!;
    expect(n3Split).toHaveLength(3);
    await expectSingleDeviceOutput(live.get('n3')!, n3Split, ['n0', 'n1', 'n2']);
  }, 60_000);
});
