/**
 * A browser tab joining a real-size model: one Node node with the model and a Chromium tab at /join; `--split` gives
 * the tab the second half of the layers (and the tied LM head). Prints the tab's times (device measured, connected,
 * manifest, its layers fetched from the peer and stored in IndexedDB), the fetch rate, decode tok/s through node + tab
 * against the node alone, and the same after a reload (layers from IndexedDB).
 *
 *   node packages/testkit/scripts/make-model.mjs --preset smollm2-135m --dtype Q8_0 \
 *     --tokenizer ../shared/models/smollm2-135m-instruct-tokenizer --out /tmp/smollm2-135m-q8_0.gguf
 *   npx tsx scripts/bench-browser-join.ts --model /tmp/smollm2-135m-q8_0.gguf [--split 15,15] [--tokens 32]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';

const { values } = parseArgs({ options: { model: { type: 'string' }, split: { type: 'string', default: '15,15' }, tokens: { type: 'string', default: '32' } } });
if (!values.model) throw new Error('--model PATH is required (see the comment at the top for one)');
const CLI = fileURLToPath(new URL('../packages/cli/bin/edge-node.js', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const dir = mkdtempSync(join(tmpdir(), 'bench-browser-join-'));

const proc: ChildProcess = spawn(process.execPath, [CLI, 'start', '--name', 'n1', '--data-dir', join(dir, 'n1'), '--model', values.model, '--split', values.split,
  '--no-mdns', '--threads', '1', '--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/ip4/127.0.0.1/tcp/0/ws'], { stdio: ['ignore', 'pipe', 'pipe'] });
let out = '';
let tabLog = '';
proc.stdout!.on('data', (d) => (out += d));
proc.stderr!.on('data', (d) => (out += d));
const api = await new Promise<string>((resolve, reject) => {
  const t = setInterval(() => {
    const m = /API at (\S+)/.exec(out);
    if (m) {
      clearInterval(t);
      resolve(m[1]);
    }
  }, 100);
  proc.once('exit', (code) => reject(new Error(`node exited (${code}): ${out}`)));
});
const tokens = Number(values.tokens);
const complete = async () => {
  const model = ((await (await fetch(`${api}/v1/models`)).json()) as { data: { id: string }[] }).data[0].id;
  const t = performance.now();
  const res = (await (await fetch(`${api}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: tokens, temperature: 0, ignore_eos: true }) })).json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
  return { text: res.choices[0].text, tokPerS: res.usage.completion_tokens / ((performance.now() - t) / 1000) };
};
const tab = (page: Page) => page.evaluate(() => (globalThis as unknown as { edgeNode: { state: string; status: { peerId: string; layers: unknown[]; timings: Record<string, number | null>; weights: Record<string, number> | null; cachedBytes: number; profile: { gflopsDecode: number } } | null } }).edgeNode);
const peers = async () => ((await (await fetch(`${api}/v1/cluster`)).json()) as { peers: { name: string; peerId: string; stageInfo: { model?: string } | null }[] }).peers;
const tabAnnounced = async () => (await peers()).some((p) => p.name === 'n2-tab' && p.stageInfo?.model !== undefined);
const until = async (check: () => Promise<boolean>, what: string, ms = 120_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

try {
  await complete(); // warm
  const alone = await complete();
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  const page = await browser.newPage();
  page.on('console', (m) => (tabLog += `${m.text()}\n`));
  page.on('pageerror', (e) => (tabLog += `page error: ${e.message}\n`));
  const report = async (what: string) => {
    await until(async () => ((await tab(page)).status?.layers.length ?? 0) > 0, `${what}: the tab's layers`);
    const s = (await tab(page)).status!;
    const t = s.timings;
    const w = s.weights!;
    const mb = (w.fetchedBytes + w.reusedBytes) / 1e6;
    console.log(
      `${what}: measured ${(t.measuredMs! / 1000).toFixed(2)} s, connected ${(t.joinedMs! / 1000).toFixed(2)} s, manifest ${(t.manifestMs! / 1000).toFixed(2)} s, ` +
        `layers loaded at ${(t.layersLoadedMs! / 1000).toFixed(2)} s (load ${(t.layersLoadMs! / 1000).toFixed(2)} s for ${mb.toFixed(1)} MB: ${(mb / (t.layersLoadMs! / 1000)).toFixed(1)} MB/s; ` +
        `${w.fetchedTensors} tensors fetched, ${w.reusedTensors} from IndexedDB); tab decode ${s.profile.gflopsDecode} GFLOP/s`,
    );
  };
  await page.goto(`${api}/join?name=n2-tab&memory=1024`);
  await until(async () => (await tab(page)).state === 'joined', 'the tab to join', 30_000);
  await until(tabAnnounced, 'n1 to see the tab with the model', 60_000);
  const withTab = await complete();
  await report('first join');
  const again = await complete();
  const oldPeer = (await tab(page)).status?.peerId;
  await page.reload();
  await until(async () => (await tab(page)).state === 'joined', 'the reloaded tab to join', 30_000);
  await until(async () => (await tabAnnounced()) && !(await peers()).some((p) => p.peerId === oldPeer), 'the old tab dropped, the new one announced', 60_000);
  const afterReload = await complete();
  await report('after reload');
  console.log(`decode tok/s (${tokens} tokens, 1 thread each): n1 alone ${alone.tokPerS.toFixed(1)}, n1 + tab ${again.tokPerS.toFixed(1)} (first request incl. the fetch ${withTab.tokPerS.toFixed(1)})`);
  console.log(`same text through n1 + tab as n1 alone: ${withTab.text === alone.text && again.text === alone.text && afterReload.text === alone.text}`);
  console.log(/plan: .*/.exec(out.split('\n').filter((l) => l.includes('plan:')).at(-1) ?? '')?.[0] ?? '');
  await browser.close();
} catch (err) {
  console.error(out.split('\n').filter((l) => /plan|join|leave|warn|error|cannot/i.test(l)).join('\n'));
  console.error(`tab:\n${tabLog}`);
  throw err;
} finally {
  proc.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
