/**
 * The README's "A cluster on one machine" recipe, run exactly as written: its three `npx edge-node start` lines as
 * three shell commands (real processes, fixed ports), then its curl line, then a request through each node. Every
 * node must serve the same model id and show the same plan, owned by the node given --split.
 *
 * The fixed ports of the recipe (4001-4003, 8080-8082) may be taken on a shared machine, so the commands run in a
 * network namespace of their own (only `lo`), as the mDNS tests do; HOME is a temp dir so the nodes' data dirs
 * (~/.cache/edge-node/<name>) start empty.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, REPO_ROOT, sleep } from './support/cluster-harness.js';

const NS = `edge-readme-${process.pid}`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

/** The ```sh blocks of a README section (up to the next "## "), each as its lines (continuations joined). */
function readmeBlocks(heading: string): string[][] {
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README.md has no "${heading}" section`);
  const end = text.indexOf('\n## ', at + 1);
  const section = text.slice(at, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((b) =>
    b[1].replace(/\\\n\s*/g, '').split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '' && !l.startsWith('#')),
  );
}

interface Shell {
  proc: ChildProcess;
  output: string;
  exited: Promise<number | null>;
}

describe('README: a cluster on one machine', () => {
  const h = new ClusterHarness('readme-cluster', { netns: NS });
  const home = join(h.tempDir, 'home');
  const shells: Shell[] = [];

  /** Runs one README line with sh in the namespace, from the repository root, as a user would in a terminal. */
  function run(line: string, logName: string): Shell {
    const proc = spawn('ip', ['netns', 'exec', NS, 'sh', '-c', line], {
      cwd: REPO_ROOT,
      env: { ...process.env, HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: npx does not pass signals on, so cleanup signals the whole group.
      detached: true,
    });
    const log = createWriteStream(join(h.artifactsDir, `${logName}.log`));
    log.write(`$ ${line}\n`);
    const shell: Shell = { proc, output: '', exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
    const onData = (chunk: Buffer) => {
      shell.output += chunk.toString();
      log.write(chunk);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    shells.push(shell);
    return shell;
  }

  beforeAll(() => {
    ip('netns', 'add', NS);
    ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    mkdirSync(home, { recursive: true });
  });
  afterAll(async () => {
    for (const s of shells) if (s.proc.exitCode === null) process.kill(-s.proc.pid!, 'SIGTERM');
    await Promise.race([Promise.all(shells.map((s) => s.exited)), sleep(5000)]);
    for (const s of shells) if (s.proc.exitCode === null) process.kill(-s.proc.pid!, 'SIGKILL');
    await h.cleanup();
    try {
      ip('netns', 'delete', NS);
    } catch {
      // already gone
    }
  });

  it('three nodes from the recipe serve one model id and show one plan, owned by the node given --split', async () => {
    const t0 = Date.now();
    const [starts, asks] = readmeBlocks('## A cluster on one machine');
    expect(starts).toHaveLength(3);
    expect(starts.every((l) => l.startsWith('npx edge-node start '))).toBe(true);
    const nodes = starts.map((line) => ({ line, name: /--name (\S+)/.exec(line)![1], api: `http://127.0.0.1:${/--api-port (\d+)/.exec(line)![1]}`, shell: run(line, /--name (\S+)/.exec(line)![1]) }));
    expect(nodes.map((n) => n.name)).toEqual(['a', 'b', 'c']);

    // Every node up, every node seeing the other two with the model announced (c once it has the manifest).
    await h.waitFor(
      async () => {
        for (const n of nodes) {
          if (n.shell.proc.exitCode !== null) throw new Error(`${n.name} exited:\n${n.shell.output}`);
          const c = (await h.getJson(`${n.api}/v1/cluster`)) as { peers: { stageInfo: { model?: string } | null }[] };
          if (c.peers.filter((p) => p.stageInfo?.model).length < 2) return false;
        }
        return true;
      },
      45_000,
      'the three nodes to see each other with the model',
      250,
    );

    // The README's own request, as written (through b).
    const curl = asks.find((l) => l.startsWith('curl '))!;
    expect(curl).toContain('"model":"stories260K"');
    const answer = execFileSync('ip', ['netns', 'exec', NS, 'sh', '-c', `${curl} -s --max-time 30`], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect((JSON.parse(answer) as { choices: { message: { content: string } }[] }).choices[0].message.content.length).toBeGreaterThan(0);

    // A request through each node, under the id every node lists.
    for (const n of nodes) {
      const models = (await h.getJson(`${n.api}/v1/models`)) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id), n.name).toEqual(['stories260K']);
      const { status, json } = await h.postJson(`${n.api}/v1/chat/completions`, { model: 'stories260K', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 8 }, 30_000);
      expect(status, `${n.name}: ${JSON.stringify(json)}`).toBe(200);
    }

    // One plan on all three: the same stages, owned by a (it was given --split 2,2,1).
    type View = { model: { id: string }; plan: { stages: { name: string; startLayer: number; endLayer: number }[]; owner: { name: string; why: string } | null } | null };
    const views = (await Promise.all(nodes.map((n) => h.getJson(`${n.api}/v1/cluster`)))) as View[];
    for (const [i, v] of views.entries()) {
      expect(v.model.id, nodes[i].name).toBe('stories260K');
      expect(v.plan?.stages.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`), nodes[i].name).toEqual(['a[0,2)', 'b[2,4)', 'c[4,5)']);
      expect(v.plan?.owner?.name, nodes[i].name).toBe('a');
      expect(v.plan?.owner?.why).toMatch(/--split 2,2,1/);
    }
    console.log(`README cluster: three nodes up, four requests and the views checked in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, 60_000);
});
