import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchInfo, BenchPromptKind, BenchResponse, EngineOptions } from '@edge-node/node';
import { engineFlagsOf } from '../engine-flags.js';
import { nodeApi, type NodeApi } from '../node-api.js';

/** The cluster under test did not come up, answered an error, or a node died. */
export class BenchClusterError extends Error {
  override name = 'BenchClusterError';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a bench request's runs are: their prompt (default random ids) and whether they speculate (default not). */
export interface BenchRequestShape {
  prompt?: BenchPromptKind;
  speculate?: boolean;
}

/** Talks to a coordinator's bench route. */
export class BenchClient {
  /** Let runs take their prompt from the stages' prefix caches (`--prefix-cache`): a repeated prompt's figures. */
  prefixCache = false;
  /** The coordinator's prefix cache after the last run. */
  lastPrefixCache: BenchResponse['prefixCache'] = null;

  constructor(private readonly api: NodeApi) {}

  get apiUrl(): string {
    return this.api.base;
  }

  private headers(): Record<string, string> {
    return this.api.headers;
  }

  async info(): Promise<BenchInfo> {
    const res = await fetch(`${this.apiUrl}/v1/edge-node/bench`, { headers: this.headers(), signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as BenchInfo & { error?: { message: string } };
    if (!res.ok) throw new BenchClusterError(`${this.apiUrl}: GET /v1/edge-node/bench answered ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
    return body;
  }

  async run(promptTokens: number, genTokens: number, runs: number, seed = 1, shape: BenchRequestShape = {}): Promise<BenchResponse> {
    const res = await fetch(`${this.apiUrl}/v1/edge-node/bench`, {
      method: 'POST',
      headers: this.headers(),
      body: JSON.stringify({ prompt_tokens: promptTokens, gen_tokens: genTokens, runs, seed, ...(this.prefixCache ? { prefix_cache: true } : {}), ...shape }),
      signal: AbortSignal.timeout(30 * 60_000),
    });
    const body = (await res.json()) as BenchResponse & { error?: { message: string } };
    if (!res.ok) {
      const hint = res.status === 404 ? ' (is the node older than `edge-node bench`? it has no bench route)' : '';
      throw new BenchClusterError(`${this.apiUrl}: POST /v1/edge-node/bench answered ${res.status}: ${body.error?.message ?? JSON.stringify(body)}${hint}`);
    }
    this.lastPrefixCache = body.prefixCache ?? null;
    return body;
  }

  /** Waits until the coordinator sees `members` nodes with the model (itself included). */
  async waitForMembers(members: number, timeoutMs: number, alive: () => void = () => {}): Promise<BenchInfo> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      alive();
      try {
        const info = await this.info();
        if (info.members.length >= members) return info;
        last = `${info.members.length} of ${members} nodes with the model`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new BenchClusterError(`the cluster did not come together in ${timeoutMs / 1000} s (${last})`);
      await sleep(200);
    }
  }
}

interface NodeProcess {
  name: string;
  dataDir: string;
  proc: ChildProcess;
  log: WriteStream;
  output: string;
  addresses: string[];
  apiUrl: string;
  exited: Promise<void>;
}

export interface LocalClusterOptions {
  nodes: number;
  modelPath: string;
  /** Coordinator's split (layers per stage, nodes in name order). */
  split: number[];
  contextLength: number;
  /** Pipeline slots on the coordinator (the highest concurrency measured). */
  concurrency: number;
  engine?: EngineOptions;
  /** Where node logs go (default: a temp dir, removed on success). */
  logDir?: string;
  /** Runs may take their prompt from the stages' prefix caches (`--prefix-cache`). */
  prefixCache?: boolean;
}

/**
 * N `edge-node start` processes on loopback, dialled by explicit address (no mDNS). Node bench-1 sorts first, so it
 * is stage 0 and the coordinator; only its --split matters, so a new split restarts just that node.
 */
export class LocalCluster {
  private readonly nodes: NodeProcess[] = [];
  private split: number[];
  readonly tempDir: string;
  readonly logDir: string;

  private constructor(private readonly opts: LocalClusterOptions) {
    this.split = opts.split;
    this.tempDir = mkdtempSync(join(tmpdir(), 'edge-node-bench-'));
    this.logDir = opts.logDir ?? this.tempDir;
    mkdirSync(this.logDir, { recursive: true });
  }

  static async start(opts: LocalClusterOptions): Promise<LocalCluster> {
    const c = new LocalCluster(opts);
    process.once('SIGINT', c.onSignal);
    process.once('SIGTERM', c.onSignal);
    try {
      const first = await c.spawnNode(1, []);
      c.nodes.push(first);
      // One at a time: each node measures its device at start, and nodes measuring together slow each other down.
      for (let i = 2; i <= opts.nodes; i++) c.nodes.push(await c.spawnNode(i, first.addresses));
      await c.client.waitForMembers(opts.nodes, 60_000, () => c.checkAlive());
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private current: BenchClient | null = null;

  /** The coordinator's client (a new one after a restart of the coordinator). */
  get client(): BenchClient {
    if (this.current?.apiUrl !== this.nodes[0].apiUrl) {
      // The nodes run with this process's environment: an EDGE_NODE_API_KEY there guards them, and nodeApi sends it.
      this.current = new BenchClient(nodeApi(this.nodes[0].apiUrl, undefined));
      this.current.prefixCache = this.opts.prefixCache === true;
    }
    return this.current;
  }

  get coordinatorLog(): string {
    return join(this.logDir, 'bench-1.log');
  }

  /** Restarts the coordinator with `split` (same identity), unless it already runs it; waits for every node. */
  async setSplit(split: number[]): Promise<void> {
    if (split.join(',') === this.split.join(',')) return;
    const old = this.nodes[0];
    old.proc.kill('SIGTERM');
    await Promise.race([old.exited, sleep(8000)]);
    if (old.proc.exitCode === null && old.proc.signalCode === null) {
      old.proc.kill('SIGKILL');
      await old.exited;
    }
    this.split = split;
    this.nodes[0] = await this.spawnNode(1, this.nodes.slice(1).flatMap((n) => n.addresses.slice(0, 1)));
    await this.client.waitForMembers(this.opts.nodes, 60_000, () => this.checkAlive());
  }

  /** Throws if a node process has exited. */
  checkAlive(): void {
    for (const n of this.nodes) {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) {
        throw new BenchClusterError(`node ${n.name} exited (code ${n.proc.exitCode}, signal ${n.proc.signalCode}); its log: ${join(this.logDir, `${n.name}.log`)}\n${n.output.slice(-2000)}`);
      }
    }
  }

  /** Ctrl-C or a kill: the nodes must not outlive the bench. */
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    for (const n of this.nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGTERM');
    process.stderr.write(`\nedge-node bench: stopped (${signal}); node logs in ${this.logDir}\n`);
    process.exit(130);
  };

  async stop(keepLogs = false): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    for (const n of this.nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGTERM');
    await Promise.race([Promise.all(this.nodes.map((n) => n.exited)), sleep(6000)]);
    for (const n of this.nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    await Promise.race([Promise.all(this.nodes.map((n) => n.exited)), sleep(2000)]);
    for (const n of this.nodes) n.log.end();
    if (!keepLogs && this.logDir === this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    else rmSync(join(this.tempDir, 'data'), { recursive: true, force: true });
  }

  private async spawnNode(index: number, bootstrap: string[]): Promise<NodeProcess> {
    const name = `bench-${index}`;
    const dataDir = join(this.tempDir, 'data', name);
    const o = this.opts;
    const args = [
      'start',
      '--name', name,
      '--data-dir', dataDir,
      '--model', o.modelPath,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--api-host', '127.0.0.1',
      '--api-port', '0',
      '--no-mdns',
      '--context', String(o.contextLength),
      '--concurrency', String(o.concurrency),
      ...engineFlagsOf(o.engine ?? {}),
      ...(index === 1 ? ['--split', this.split.join(',')] : []),
      ...bootstrap.flatMap((a) => ['--bootstrap', a]),
    ];
    // The same program that runs this command (bin/edge-node.js, or main.ts under tsx).
    const proc = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    const log = createWriteStream(join(this.logDir, `${name}.log`), { flags: 'a' });
    const node: NodeProcess = {
      name,
      dataDir,
      proc,
      log,
      output: '',
      addresses: [],
      apiUrl: '',
      exited: new Promise((r) => proc.once('exit', () => r())),
    };
    const onData = (chunk: Buffer) => {
      node.output = (node.output + chunk.toString()).slice(-200_000);
      log.write(chunk);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    const deadline = Date.now() + 120_000;
    while (!/edge-node: API at (\S+)/.test(node.output)) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new BenchClusterError(`node ${name} exited before it was ready:\n${node.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new BenchClusterError(`node ${name} was not ready after 120 s:\n${node.output.slice(-3000)}`);
      await sleep(50);
    }
    node.apiUrl = /edge-node: API at (\S+)/.exec(node.output)![1];
    node.addresses = [...node.output.matchAll(/edge-node: listening on (\S+)/g)].map((m) => m[1]);
    return node;
  }
}
