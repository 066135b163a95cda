/**
 * Spawns real `edge-node start` processes for multi-process tests and waits for them. Every child's output goes
 * to test-artifacts/<suite>/<node>.log; cleanup() kills all children (and removes temp data dirs).
 *
 *   const h = new ClusterHarness('three-nodes');
 *   const a = await h.startNode({ name: 'a' });
 *   const b = await h.startNode({ name: 'b', args: ['--bootstrap', a.addresses[0]] });
 *   await h.waitFor(async () => (await b.health()).peers === 1, 5000, 'b sees a');
 *   afterAll(() => h.cleanup());
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSyntheticModel } from '@edge-node/testkit';
import { promisify } from 'node:util';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_BIN = join(REPO_ROOT, 'packages/cli/bin/edge-node.js');
const execFileAsync = promisify(execFile);

let built = false;
/** Builds the workspace once per test process (tsc -b is incremental); the CLI runs from dist/. */
export function ensureBuilt(): void {
  if (built) return;
  try {
    execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: REPO_ROOT, stdio: 'pipe', timeout: 120_000 });
  } catch (err) {
    // Type errors elsewhere still emit JavaScript; only a missing CLI build is fatal.
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
    if (!existsSync(join(REPO_ROOT, 'packages/cli/dist/main.js'))) throw new Error(`build failed:\n${out}`);
  }
  built = true;
}

export interface Health {
  status: string;
  peerId: string;
  name: string;
  addresses: string[];
  peers: number;
}

/** The parts of a /v1/completions answer the tests read. */
export interface CompletionJson {
  id: string;
  model: string;
  choices: { index: number; text: string; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface StartNodeOptions {
  name: string;
  /** Extra CLI arguments (e.g. --bootstrap ADDR, --cluster-key FILE). */
  args?: string[];
  /** Default: a fresh temp dir per node name (reused on restart of the same name). */
  dataDir?: string;
  /** Default /ip4/127.0.0.1/tcp/0. */
  listen?: string;
  env?: Record<string, string>;
  /** How long to wait for the "API at" line. Default 20 s. */
  timeoutMs?: number;
  /**
   * Without --model: serve the default model as `edge-node start` does on a first run (Hub or demo model). By
   * default the harness starts such nodes with --no-model (relays), which is what most cluster tests want.
   */
  defaultModel?: boolean;
}

export class RunningNode {
  peerId = '';
  addresses: string[] = [];
  apiUrl = '';
  private servedModel = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private text = '';

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly dataDir: string,
    readonly logFile: string,
    private readonly harness: ClusterHarness,
  ) {
    const log: WriteStream = createWriteStream(logFile, { flags: 'a' });
    log.write(`\n=== ${new Date().toISOString()} spawn ${proc.spawnargs.join(' ')}\n`);
    const onData = (chunk: Buffer) => {
      this.text += chunk.toString();
      log.write(chunk);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    this.exited = new Promise((res) =>
      proc.once('exit', (code, signal) => {
        log.end(`=== exit code ${code} signal ${signal}\n`);
        res({ code, signal });
      }),
    );
  }

  /** Everything the process printed so far (stdout and stderr interleaved). */
  output(): string {
    return this.text;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async health(): Promise<Health> {
    return (await this.harness.getJson(`${this.apiUrl}/health`)) as Health;
  }

  async cluster(): Promise<unknown> {
    return this.harness.getJson(`${this.apiUrl}/v1/cluster`);
  }

  /** The id of the model this node serves (GET /v1/models), as requests name it. */
  async modelId(): Promise<string> {
    if (!this.servedModel) {
      const { data } = (await this.harness.getJson(`${this.apiUrl}/v1/models`)) as { data: { id: string }[] };
      if (!data[0]) throw new Error(`${this.name} serves no model`);
      this.servedModel = data[0].id;
    }
    return this.servedModel;
  }

  /** POST /v1/completions on this node (`model` filled in when absent); throws unless it answers 200. */
  async complete(body: Record<string, unknown>, timeoutMs = 60_000): Promise<CompletionJson> {
    const full = body.model === undefined ? { model: await this.modelId(), ...body } : body;
    const { status, json } = await this.harness.postJson(`${this.apiUrl}/v1/completions`, full, timeoutMs);
    if (status !== 200) throw new Error(`${this.name}: POST /v1/completions answered ${status}: ${JSON.stringify(json)}`);
    return json as CompletionJson;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.proc.kill(signal);
  }

  /** Resolves once the process printed its peer id, addresses and API URL; rejects if it exits first. */
  async ready(timeoutMs: number): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    while (!/edge-node: API at (\S+)/.test(this.text)) {
      if (!this.running) throw new Error(`node ${this.name} exited before it was ready:\n${this.text}`);
      if (Date.now() > deadline) throw new Error(`node ${this.name} not ready after ${timeoutMs} ms:\n${this.text}`);
      await sleep(50);
    }
    this.peerId = /edge-node: peer id (\S+)/.exec(this.text)![1];
    this.addresses = [...this.text.matchAll(/edge-node: listening on (\S+)/g)].map((m) => m[1]);
    this.apiUrl = /edge-node: API at (\S+)/.exec(this.text)![1];
    return this;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class ClusterHarness {
  readonly artifactsDir: string;
  readonly tempDir: string;
  private readonly children: RunningNode[] = [];

  /** `netns`: run every node (and HTTP queries) inside this network namespace via `ip netns exec`. */
  constructor(
    readonly suite: string,
    readonly options: { netns?: string } = {},
  ) {
    ensureBuilt();
    this.artifactsDir = join(REPO_ROOT, 'test-artifacts', suite);
    mkdirSync(this.artifactsDir, { recursive: true });
    this.tempDir = mkdtempSync(join(tmpdir(), `edge-${suite}-`));
  }

  /** Data dir used for a node name unless another is given. */
  /**
   * A random-weight GGUF of a 768-wide SmolLM2-like shape (12 heads, 4 KV heads, FFN 2048) in the temp dir: big
   * enough that a stage computes for real, small enough to generate in seconds.
   */
  async syntheticGguf(file: string, o: { numLayers: number; dtype: 'F32' | 'Q8_0'; seed: number }): Promise<string> {
    const outPath = join(this.tempDir, file);
    await generateSyntheticModel({
      preset: 'smollm2-135m',
      config: { hiddenSize: 768, intermediateSize: 2048, numLayers: o.numLayers, numHeads: 12, numKvHeads: 4, headDim: 64 },
      padVocab: false,
      format: 'gguf',
      dtype: o.dtype,
      seed: o.seed,
      outPath,
    });
    return outPath;
  }

  dataDirFor(name: string): string {
    return join(this.tempDir, name);
  }

  /** Spawns `edge-node start` without waiting (use for processes expected to fail). */
  spawnNode(opts: StartNodeOptions): RunningNode {
    const dataDir = opts.dataDir ?? this.dataDirFor(opts.name);
    const args = [
      CLI_BIN,
      'start',
      '--name', opts.name,
      '--data-dir', dataDir,
      '--listen', opts.listen ?? '/ip4/127.0.0.1/tcp/0',
      '--api-port', '0',
      '--threads', '1',
      ...(opts.args ?? []),
    ];
    const modelChosen = (opts.args ?? []).some((a) => a === '--model' || a === '--model-from-peers' || a === '--no-model');
    if (!modelChosen && !opts.defaultModel) args.push('--no-model');
    const [cmd, argv] = this.options.netns
      ? ['ip', ['netns', 'exec', this.options.netns, process.execPath, ...args]]
      : [process.execPath, args];
    const proc = spawn(cmd, argv, { cwd: REPO_ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const node = new RunningNode(opts.name, proc, dataDir, join(this.artifactsDir, `${opts.name}.log`), this);
    this.children.push(node);
    return node;
  }

  async startNode(opts: StartNodeOptions): Promise<RunningNode> {
    return this.spawnNode(opts).ready(opts.timeoutMs ?? 20_000);
  }

  /** GET a JSON URL (inside the namespace when there is one). */
  async getJson(url: string): Promise<unknown> {
    if (this.options.netns) {
      const { stdout } = await execFileAsync('ip', ['netns', 'exec', this.options.netns, 'curl', '-sf', '--max-time', '3', url]);
      return JSON.parse(stdout);
    }
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  /** POST a JSON body (inside the namespace when there is one); returns the status and the parsed answer. */
  async postJson(url: string, body: unknown, timeoutMs = 60_000): Promise<{ status: number; json: unknown }> {
    const text = JSON.stringify(body);
    if (this.options.netns) {
      const { stdout } = await execFileAsync(
        'ip',
        ['netns', 'exec', this.options.netns, 'curl', '-s', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-H', 'content-type: application/json', '--data-binary', text, '-w', '\n%{http_code}', url],
        { maxBuffer: 16 * 1024 * 1024 },
      );
      const cut = stdout.lastIndexOf('\n');
      return { status: Number(stdout.slice(cut + 1)), json: JSON.parse(stdout.slice(0, cut)) };
    }
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, json: await res.json() };
  }

  /**
   * Stops a node (SIGTERM, so the others see it leave at once) and starts it again with the same name and data
   * dir (so the same peer id) and new options, e.g. another --split.
   */
  async restartNode(node: RunningNode, opts: Omit<StartNodeOptions, 'name' | 'dataDir'>): Promise<RunningNode> {
    node.kill('SIGTERM');
    const exited = await Promise.race([node.exited, sleep(5000).then(() => null)]);
    if (!exited) {
      node.kill('SIGKILL');
      await node.exited;
    }
    return this.startNode({ ...opts, name: node.name, dataDir: node.dataDir });
  }

  /**
   * Waits until every node lists every other one (by peer id) as a member with a model announced, so that a
   * request to any of them can plan over all of them. Returns the elapsed ms.
   */
  async waitForPipelineMembers(nodes: RunningNode[], timeoutMs = 15_000): Promise<number> {
    return this.waitFor(
      async () => {
        for (const n of nodes) {
          const c = (await n.cluster()) as { peers: { peerId: string; stageInfo: { model?: string } | null }[] };
          const withModel = new Set(c.peers.filter((p) => p.stageInfo?.model).map((p) => p.peerId));
          if (!nodes.every((o) => o === n || withModel.has(o.peerId))) return false;
        }
        return true;
      },
      timeoutMs,
      `${nodes.map((n) => n.name).join(', ')} to see each other with a model`,
    );
  }

  /** Polls `check` until it returns true; returns the elapsed ms. Errors inside `check` count as "not yet". */
  async waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 100): Promise<number> {
    const start = Date.now();
    let lastError = '';
    for (;;) {
      try {
        if (await check()) return Date.now() - start;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() - start > timeoutMs) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}; logs in ${this.artifactsDir}`);
      }
      await sleep(intervalMs);
    }
  }

  /** Kills every child still running (SIGTERM, then SIGKILL after 2 s) and removes temp dirs. */
  async cleanup(): Promise<void> {
    const alive = this.children.filter((c) => c.running);
    for (const c of alive) c.kill('SIGTERM');
    await Promise.race([Promise.all(alive.map((c) => c.exited)), sleep(2000)]);
    for (const c of alive) c.kill('SIGKILL');
    await Promise.race([Promise.all(alive.map((c) => c.exited)), sleep(1000)]);
    rmSync(this.tempDir, { recursive: true, force: true });
  }
}
