/**
 * Fine-tuning through the pipeline with real `edge-node start` processes on loopback: the data goes to one node
 * (`POST /v1/edge-node/finetune`, and `edge-node finetune --api`), which keeps it and drives the stages. A 1-node
 * cluster, a 2-node one (split 2,3) and a 3-node one (1,2,2) give the same losses and adapter bytes — and so does
 * training on one device (`edge-node finetune --model`); on 2 nodes the loss falls below half its start within 100 steps; a bad
 * data line is refused with its number; a stage killed mid-job fails the job with its name when no recovery is
 * allowed (nothing hangs), else the job goes on without it from its last checkpoint and ends with the uninterrupted
 * run's losses and adapter.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Max', 'Anna'];
const ANIMALS = ['cat', 'dog', 'bird', 'cow'];
const LINES = NAMES.flatMap((n, i) => [ANIMALS[i % 4], ANIMALS[(i + 1) % 4]].map((a) => JSON.stringify({ text: `${n} saw a ${a}. The ${a} said moo moo moo.` })));
const OPTIONS = { rank: 8, alpha: 16, lr: 1e-2, batch: 4, seed: 5 };

interface Done {
  type: 'done';
  losses: number[];
  adapter: string;
  stages: { name: string; startLayer: number; endLayer: number }[];
  tokensPerSecond: number;
  stepMs: number;
  predictedStepMs: number | null;
}
type Line = { type: 'progress'; step: number; loss: number } | { type: 'notice'; message: string } | Done | { type: 'error'; name: string; message: string };

/**
 * POSTs a job and reads its NDJSON lines to the end; `onLine` sees each as it comes. A connection of its own each
 * time (no keep-alive: a job's answer can come after the server has closed an idle pooled socket).
 */
function finetune(node: RunningNode, body: Record<string, unknown>, onLine: (l: Line) => void = () => {}, timeoutMs = 120_000): Promise<{ status: number; lines: Line[]; error?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${node.apiUrl}/v1/edge-node/finetune`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' }, timeout: timeoutMs }, (res) => {
      const lines: Line[] = [];
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while (res.statusCode === 200 && (nl = buffered.indexOf('\n')) >= 0) {
          const line = JSON.parse(buffered.slice(0, nl)) as Line;
          buffered = buffered.slice(nl + 1);
          lines.push(line);
          onLine(line);
        }
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status !== 200) resolve({ status, lines, error: (JSON.parse(buffered) as { error: { message: string } }).error.message });
        else resolve({ status, lines });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function done(lines: Line[]): Done {
  const last = lines.at(-1);
  if (last?.type !== 'done') throw new Error(`the job did not finish: ${JSON.stringify(last)}`);
  return last;
}

describe('fine-tuning through a 2-node pipeline', () => {
  const h = new ClusterHarness('finetune-pipeline');
  let solo: RunningNode;
  let n1: RunningNode;
  let n2: RunningNode;
  let data = '';
  afterAll(() => h.cleanup());

  beforeAll(async () => {
    data = join(h.tempDir, 'moo.jsonl');
    writeFileSync(data, LINES.join('\n'));
    [solo, n1] = await Promise.all([
      h.startNode({ name: 'solo', args: ['--model', STORIES_GGUF, '--no-mdns'] }),
      h.startNode({ name: 'n1', args: ['--model', STORIES_GGUF, '--split', '2,3', '--no-mdns'] }),
    ]);
    n2 = await h.startNode({ name: 'n2', args: ['--model', STORIES_GGUF, '--no-mdns', '--bootstrap', n1.addresses[0]] });
    await h.waitForPipelineMembers([n1, n2]);
  }, 120_000);

  it('1 node, 2 nodes and one device give the same losses and adapter bytes; 2 nodes learn within 100 steps', async () => {
    const body = { data: LINES.join('\n'), source: 'moo.jsonl', steps: 100, ...OPTIONS };
    expect(await h.getJson(`${solo.apiUrl}/v1/edge-node/finetune`)).toEqual({ job: null });
    const oneRun = await finetune(solo, body);
    // Without --split the partitioner plans the job; its first line says so, with the predicted step.
    expect(oneRun.lines[0]).toEqual({ type: 'notice', message: expect.stringMatching(/^training plan solo\[0,5\) \(partitioner, exact, over 1 node\): predicted \d+ ms per step of 4 sequences/) });
    const one = done(oneRun.lines);
    const progress: number[] = [];
    const twoRun = await finetune(n1, body, (l) => l.type === 'progress' && progress.push(l.loss));
    // A split given by hand (n1's --split 2,3) is kept, without a notice.
    expect(twoRun.lines.filter((l) => l.type === 'notice')).toEqual([]);
    const two = done(twoRun.lines);
    expect(two.stages).toEqual([{ name: 'n1', startLayer: 0, endLayer: 2 }, { name: 'n2', startLayer: 2, endLayer: 5 }]);
    expect(one.stages).toEqual([{ name: 'solo', startLayer: 0, endLayer: 5 }]);
    expect(progress).toEqual(two.losses);
    expect(two.losses).toEqual(one.losses);
    expect(two.adapter).toBe(one.adapter);
    expect(two.losses.length).toBe(100);
    expect(Math.min(...two.losses)).toBeLessThan(two.losses[0] / 2);
    // Each job reports its measured step beside the training plan's price of its split, a split given by hand too.
    for (const d of [one, two]) {
      expect(d.stepMs).toBeGreaterThan(0);
      expect(d.predictedStepMs).toBeGreaterThan(0);
    }
    // Its node has the memory: it keeps both micro-batches in flight's activations, and recomputes nothing.
    expect(n2.output()).toMatch(/training: job \S+ of \S+ opened on layers \[2, 5\) \(rank 8\); keeps the activations of up to 2 micro-batch\(es\) at once/);
    // The owner keeps the last job's curve for its web page (which polls this and draws it).
    expect(await h.getJson(`${n1.apiUrl}/v1/edge-node/finetune`)).toEqual({ job: { state: 'done', step: 100, steps: 100, losses: two.losses, tokensPerSecond: two.tokensPerSecond, stages: 'n1[0,2) → n2[2,5)', message: null } });
    expect(await (await fetch(`${n1.apiUrl}/`)).text()).toMatch(/<svg id="loss-curve"/);
    expect(await (await fetch(`${n1.apiUrl}/app.js`)).text()).toMatch(/fetch\('\/v1\/edge-node\/finetune'/);
    // One device (`edge-node finetune --model`, no cluster) trains the same adapter, byte for byte.
    const local = join(h.tempDir, 'local.gguf');
    const r = spawnSync(process.execPath, [CLI_BIN, 'finetune', '--model', STORIES_GGUF, '--data', data, '--out', local, '--steps', '100', '--rank', '8', '--alpha', '16', '--lr', '0.01', '--batch', '4', '--seed', '5', '--threads', '1'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(0);
    expect(readFileSync(local).toString('base64')).toBe(two.adapter);
    console.log(`finetune-pipeline: 100 steps, loss ${two.losses[0].toFixed(4)} → ${two.losses[99].toFixed(4)} (min ${Math.min(...two.losses).toFixed(4)}); ${one.tokensPerSecond.toFixed(0)} tok/s on 1 node, ${two.tokensPerSecond.toFixed(0)} on 2; ms per step measured / predicted: ${one.stepMs.toFixed(1)} / ${one.predictedStepMs!.toFixed(1)} on 1 node, ${two.stepMs.toFixed(1)} / ${two.predictedStepMs!.toFixed(1)} on 2`);
  }, 240_000);

  it('edge-node finetune --api writes the node\'s adapter with the progress line; a bad line is refused with its number', async () => {
    const out = join(h.tempDir, 'api.gguf');
    const args = ['--steps', '20', '--rank', '8', '--alpha', '16', '--lr', '0.01', '--batch', '4', '--seed', '5'];
    const r = spawnSync(process.execPath, [CLI_BIN, 'finetune', '--api', n1.apiUrl, '--data', data, '--out', out, ...args], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toMatch(/step 20\/20 \[#+\] loss \d+\.\d{4}\s+\d+ tok\/s\s+ETA 0:00/);
    expect(r.stderr).toMatch(/20 steps on 12 examples through n1\[0,2\) → n2\[2,5\), loss \d+\.\d{4} → \d+\.\d{4}/);
    expect(r.status).toBe(0);
    const direct = done((await finetune(solo, { data: LINES.join('\n'), steps: 20, ...OPTIONS })).lines);
    expect(readFileSync(out).toString('base64')).toBe(direct.adapter);

    const bad = join(h.tempDir, 'bad.jsonl');
    writeFileSync(bad, `${LINES[0]}\n{"text": 42}\n`);
    const refused = spawnSync(process.execPath, [CLI_BIN, 'finetune', '--api', n1.apiUrl, '--data', bad, '--out', join(h.tempDir, 'bad.gguf')], { encoding: 'utf8', timeout: 60_000 });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/refused the job \(400\): bad\.jsonl line 2: /);
    const http = await finetune(n1, { lines: [LINES[0], 'not json'], source: 'x.jsonl' });
    expect(http.status).toBe(400);
    expect(http.error).toMatch(/^x\.jsonl line 2: /);
  }, 120_000);

  it('a stage killed mid-job: with no recoveries allowed the job fails naming it, and nothing hangs', async () => {
    let killedAt = 0;
    const t0 = Date.now();
    const r = await finetune(n1, { data: LINES.join('\n'), steps: 100_000, recoveries: 0, ...OPTIONS }, (l) => {
      if (l.type === 'progress' && l.step === 5) {
        killedAt = Date.now();
        n2.kill('SIGKILL');
      }
    }, 60_000);
    const last = r.lines.at(-1)!;
    expect(last.type).toBe('error');
    expect((last as { message: string }).message).toMatch(/stage n2 \(layers \[2, 5\)\) was lost mid-job/);
    expect(killedAt).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect((await n1.health()).status).toBe('ok');
  }, 90_000);

  it('a stage killed mid-job otherwise: the job goes on without it from its last checkpoint, with the same adapter as without the loss', async () => {
    await n2.exited;
    n2 = await h.startNode({ name: 'n2', args: ['--model', STORIES_GGUF, '--no-mdns', '--bootstrap', n1.addresses[0]] });
    await h.waitForPipelineMembers([n1, n2]);
    const body = { data: LINES.join('\n'), steps: 30, ...OPTIONS };
    const uninterrupted = done((await finetune(solo, body)).lines);
    let killed = false;
    let killedAt = 0;
    let noticeAt = 0;
    let resumedAt = 0;
    const r = await finetune(n1, body, (l) => {
      if (l.type === 'progress' && l.step === 15 && !killed) {
        killed = true;
        killedAt = Date.now();
        n2.kill('SIGKILL');
      } else if (l.type === 'notice') noticeAt = Date.now();
      else if (l.type === 'progress' && noticeAt > 0 && resumedAt === 0) resumedAt = Date.now();
    });
    console.log(`finetune-pipeline: n2 killed at step 15; the owner noticed in ${noticeAt - killedAt} ms, the first step again (11) done ${resumedAt - noticeAt} ms later`);
    const resumed = done(r.lines);
    expect(killed).toBe(true);
    expect(resumed.stages).toEqual([{ name: 'n1', startLayer: 0, endLayer: 5 }]);
    expect(resumed.losses).toEqual(uninterrupted.losses);
    expect(resumed.adapter).toBe(uninterrupted.adapter);
    // Steps 11–15 were done again on the new split, from the checkpoint after step 10.
    const steps = r.lines.flatMap((l) => (l.type === 'progress' ? [l.step] : []));
    expect(steps.slice(0, 16)).toEqual([...Array.from({ length: 15 }, (_, i) => i + 1), 11]);
    expect(n1.output()).toMatch(/training: stage n2 \(layers \[2, 5\)\) was lost mid-job[^\n]*; going on without it from step 10/);
    const notices = r.lines.flatMap((l) => (l.type === 'notice' ? [l.message] : []));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^stage n2 \(layers \[2, 5\)\) was lost mid-job.*; going on without it from step 10 \(its last checkpoint\)$/);
  }, 120_000);

  it('3 nodes (split 1,2,2) give the same losses and adapter bytes as 1', async () => {
    const m1 = await h.startNode({ name: 'm1', args: ['--model', STORIES_GGUF, '--split', '1,2,2', '--no-mdns'] });
    const [m2, m3] = await Promise.all(['m2', 'm3'].map((name) => h.startNode({ name, args: ['--model', STORIES_GGUF, '--no-mdns', '--bootstrap', m1.addresses[0]] })));
    await h.waitForPipelineMembers([m1, m2, m3]);
    const body = { data: LINES.join('\n'), steps: 20, ...OPTIONS };
    const one = done((await finetune(solo, body)).lines);
    const three = done((await finetune(m1, body)).lines);
    expect(three.stages).toEqual([{ name: 'm1', startLayer: 0, endLayer: 1 }, { name: 'm2', startLayer: 1, endLayer: 3 }, { name: 'm3', startLayer: 3, endLayer: 5 }]);
    expect(three.losses).toEqual(one.losses);
    expect(three.adapter).toBe(one.adapter);
  }, 120_000);

  it('2 nodes without --split: the partitioner plans the job, its first line says the split, the same losses and adapter as 1', async () => {
    const p1 = await h.startNode({ name: 'p1', args: ['--model', STORIES_GGUF, '--no-mdns'] });
    const p2 = await h.startNode({ name: 'p2', args: ['--model', STORIES_GGUF, '--no-mdns', '--bootstrap', p1.addresses[0]] });
    await h.waitForPipelineMembers([p1, p2]);
    const body = { data: LINES.join('\n'), steps: 20, ...OPTIONS };
    const one = done((await finetune(solo, body)).lines);
    const run = await finetune(p1, body);
    const planned = done(run.lines);
    const first = run.lines[0];
    expect(first.type).toBe('notice');
    // The serving split is named when a plan is in force (none before the first request, as here).
    const message = (first as { message: string }).message;
    expect(message).toMatch(/^training plan p1\[0,\d\)[^(]* \(partitioner, exact, over 2 nodes\): predicted \d+ ms per step of 4 sequences(; the serving split .* would take \d+ ms)?$/);
    // The job ran on the split its first line names.
    expect(message.slice('training plan '.length, message.indexOf(' (partitioner'))).toBe(planned.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`).join(' → '));
    expect(planned.losses).toEqual(one.losses);
    expect(planned.adapter).toBe(one.adapter);
    p2.kill('SIGKILL');
    p1.kill('SIGKILL');
  }, 120_000);
});
